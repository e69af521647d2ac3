#!/usr/bin/env python3
"""Writes test-vectors/auth.json: Argon2id PHC strings made by fleetwire-auth and by argon2-cffi.

Usage (from the repository root):
    pip install argon2-cffi
    cargo run -q -p fleetwire-auth --example auth_vectors > /tmp/fw.jsonl
    python3 crates/fleetwire-auth/tests/gen_argon2_cffi_vectors.py /tmp/fw.jsonl

Every fleetwire-made hash is verified here with argon2-cffi (fleetwire -> argon2-cffi); the
argon2-cffi-made hashes are verified by the Rust test tests/argon2_cffi_vectors.rs
(argon2-cffi -> fleetwire). Passwords are given to argon2-cffi in NFKC form, which is what
fleetwire hashes.
"""
import json
import sys
import unicodedata
from importlib.metadata import version

import argon2
from argon2 import PasswordHasher, Type

OUT = "test-vectors/auth.json"


def main() -> None:
    fleetwire = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8") if line.strip()]
    for v in fleetwire:
        ok = PasswordHasher().verify(v["phc"], unicodedata.normalize("NFKC", v["password"]))
        assert ok, v
        v["verified_by"] = "argon2-cffi " + version("argon2-cffi")

    cffi = []
    cases = [
        ("password", dict(time_cost=1, memory_cost=64, parallelism=1)),
        ("hunter2-but-longer", dict(time_cost=2, memory_cost=1024, parallelism=2)),
        ("pässwörd-ñ-🦀", dict(time_cost=3, memory_cost=256, parallelism=1)),
        ("Tulip-Harbour-7", dict(time_cost=2, memory_cost=19 * 1024, parallelism=1)),
    ]
    for password, params in cases:
        ph = PasswordHasher(hash_len=32, salt_len=16, type=Type.ID, **params)
        phc = ph.hash(unicodedata.normalize("NFKC", password))
        cffi.append({"password": password, "phc": phc, "made_by": "argon2-cffi " + version("argon2-cffi")})

    doc = {
        "description": "Argon2id PHC strings that must verify in fleetwire-auth and in argon2-cffi. "
        "Passwords are hashed as UTF-8 of their NFKC form. Regenerate with "
        "crates/fleetwire-auth/tests/gen_argon2_cffi_vectors.py.",
        "wrong_password": "not-the-password",
        "rfc9106_argon2id": {
            "password_hex": "01" * 32,
            "salt_hex": "02" * 16,
            "secret_hex": "03" * 8,
            "associated_data_hex": "04" * 12,
            "m_cost_kib": 32,
            "t_cost": 3,
            "p_cost": 4,
            "tag_hex": "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659",
        },
        "argon2id_phc": fleetwire + cffi,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {OUT}: {len(fleetwire)} fleetwire-made, {len(cffi)} argon2-cffi-made")


if __name__ == "__main__":
    main()
