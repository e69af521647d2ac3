#!/usr/bin/env bash
# Builds the pyo3 extension into .venv with maturin and runs the pytest suite.
# Creates .venv and installs the Python tools when missing. Idempotent; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# maturin is pinned; pytest for the suite; mypy checks the stubs; argon2-cffi and cbor2 are
# for later protocol tests.
if ! .venv/bin/python -c 'import importlib.metadata as m, sys; sys.exit(m.version("maturin") != "1.16.0")' 2>/dev/null \
    || ! .venv/bin/python -c 'import pytest, mypy, argon2, cbor2' 2>/dev/null; then
    .venv/bin/pip install --quiet --disable-pip-version-check "maturin==1.16.0" pytest mypy argon2-cffi cbor2
fi

VIRTUAL_ENV=$ROOT/.venv .venv/bin/maturin develop --locked -m bindings/python/Cargo.toml

# The .pyi stubs must match the native module, and the tests must type-check against them.
# (Run from target/mypy so mypy's cache stays out of the source tree.)
mkdir -p target/mypy
(cd target/mypy && "$ROOT/.venv/bin/python" -m mypy.stubtest fleetwire)
(cd target/mypy && "$ROOT/.venv/bin/python" -m mypy "$ROOT/bindings/python/tests")

exec .venv/bin/pytest -q -p no:cacheprovider bindings/python/tests "$@"
