#!/usr/bin/env bash
# Builds the uniffi library, generates the Kotlin bindings, compiles them with the Kotlin test
# program and runs it on the JVM with JNA. Installs JNA (Debian) and kotlinc (npm) when missing.
# Idempotent; run from anywhere. The test program (bindings/kotlin/tests/*.kt, one `main` in
# Harness.kt running every protocol's checks) prints "N passed, N failed" last and exits
# non-zero on any failure, which this script propagates.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

JNA=/usr/share/java/jna.jar
KOTLIN_VERSION=2.4.20
KC=$ROOT/.tools/kotlin/package

if [ ! -f "$JNA" ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
    $SUDO apt-get install -y libjna-java || { $SUDO apt-get update && $SUDO apt-get install -y libjna-java; }
fi

if [ ! -x "$KC/bin/kotlinc" ]; then
    mkdir -p "$ROOT/.tools/kotlin"
    (
        cd "$ROOT/.tools/kotlin"
        npm pack --silent "kotlin-compiler@$KOTLIN_VERSION" >/dev/null
        tar xzf "kotlin-compiler-$KOTLIN_VERSION.tgz"
        rm -f "kotlin-compiler-$KOTLIN_VERSION.tgz"
    )
fi

# The bindgen bin needs uniffi's `cli` feature; build it first, then the shipped library
# without it, so target/debug/libfleetwire_kotlin.so is the plain library.
cargo build -p fleetwire-kotlin --features cli --bin uniffi-bindgen
cargo build -p fleetwire-kotlin --lib
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
LIB=$TARGET/debug/libfleetwire_kotlin.so

rm -rf target/kotlin-gen target/kotlin-classes
"$TARGET/debug/uniffi-bindgen" generate --no-format --library "$LIB" --language kotlin \
    --out-dir target/kotlin-gen

mapfile -t SOURCES < <(find target/kotlin-gen -name '*.kt' | sort)
"$KC/bin/kotlinc" -nowarn -cp "$JNA" "${SOURCES[@]}" bindings/kotlin/tests/*.kt \
    -d target/kotlin-classes

set +e
java -Djna.library.path="$TARGET/debug" \
    -cp "target/kotlin-classes:$JNA:$KC/lib/kotlin-stdlib.jar" \
    org.fleetwire.tests.HarnessKt "$ROOT/test-vectors"
status=$?
set -e
exit $status
