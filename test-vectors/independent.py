#!/usr/bin/env python3
"""Writes test-vectors/independent.json: signatures, keys and tags computed by another
implementation (pyca/cryptography for Ed25519, Python's hmac/hashlib for HMAC-SHA256), from the
formats as docs/PROTOCOL.md states them, never by fleetwire's code. The Rust tests named in the
file replay them against fleetwire, so a fleetwire bug that its own regression vectors
(session.json, transfer.json, sensor.json, written by fleetwire) would faithfully pin shows up
here as a mismatch.

    pip install cryptography   # 41 or later
    python3 test-vectors/independent.py          # rewrites the file
    python3 test-vectors/independent.py --check  # exits 1 if the file is not what it would write

The inputs that are data, not crypto (the manifest body, the sensor frames), are read from the
regression vectors; every signature, public key, derived key and tag is recomputed here, and the
script fails if a regression vector disagrees with it.
"""
import hashlib
import hmac
import json
import pathlib
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "independent.json"

# RFC 8032 section 7.1, tests 1, 2, 3 and SHA(abc): secret key, public key, message, signature,
# as printed in the RFC (checked against pyca/cryptography below).
RFC8032 = [
    ("TEST 1",
     "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("TEST 2",
     "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
     "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("TEST 3",
     "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
     "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ("TEST SHA(abc)",
     "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
     "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
     "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"),
]


def ed25519(seed_hex):
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))


def public(key):
    return key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def hmac256(key, *parts):
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def rfc8032():
    out = []
    for name, sk, pk, msg, sig in RFC8032:
        key = ed25519(sk)
        assert public(key) == pk, name
        assert key.sign(bytes.fromhex(msg)).hex() == sig, name
        out.append({"name": name, "secret_key": sk, "public_key": pk, "message": msg,
                    "signature": sig})
    return out


def session_login():
    # docs/PROTOCOL.md: the proof is Ed25519(secret, "fleetwire/session/v1/login\0" ||
    # player_id (16 bytes) || nonce (32) || channel_binding (32)).
    secret = "11" * 32
    player_id = "0123456789abcdef0123456789abcdef"
    nonce = "22" * 32
    key = ed25519(secret)
    out = []
    for binding in ("00" * 32, "42" * 32):
        msg = (b"fleetwire/session/v1/login\0" + bytes.fromhex(player_id)
               + bytes.fromhex(nonce) + bytes.fromhex(binding))
        out.append({"secret": secret, "verifier": public(key), "player_id": player_id,
                    "nonce": nonce, "channel_binding": binding,
                    "signature": key.sign(msg).hex()})
    pinned = json.loads((HERE / "session.json").read_text())
    assert pinned["login"]["verifier"] == out[0]["verifier"], "session.json verifier"
    proof = next(m for m in pinned["messages"] if m["name"] == "proof")
    assert proof["fields"]["signature"] == out[0]["signature"], "session.json proof"
    return out


def transfer_manifest():
    # docs/PROTOCOL.md: a signed manifest is body || Ed25519(seed, "fleetwire manifest v1\0" ||
    # body).
    pinned = json.loads((HERE / "transfer.json").read_text())
    seed = pinned["signing_key_seed"]
    key = ed25519(seed)
    signed = bytes.fromhex(pinned["manifest"]["hex"])
    body = signed[:-64]
    sig = key.sign(b"fleetwire manifest v1\0" + body)
    assert public(key) == pinned["public_key"], "transfer.json public key"
    assert sig == signed[-64:], "transfer.json manifest signature"
    assert hashlib.sha256(bytes.fromhex(pinned["file"])).hexdigest() == \
        pinned["manifest"]["file_sha256"], "transfer.json file digest"
    return {"signing_key_seed": seed, "public_key": public(key), "body": body.hex(),
            "signature": sig.hex(), "file": pinned["file"],
            "file_sha256": hashlib.sha256(bytes.fromhex(pinned["file"])).hexdigest()}


def sensor():
    # docs/PROTOCOL.md: logger_key = HMAC-SHA256(master, "fleetwire-sensor/v1 logger key" ||
    # logger u64be) (the key label stayed v1 so provisioned keys stay valid); protocol v2: an
    # upload's tag = HMAC-SHA256(key, "fleetwire-sensor/v2 batch" || body without tag)[..16];
    # an ack's = HMAC-SHA256(key, "fleetwire-sensor/v2 ack" || upload tag || body without
    # tag)[..16]. Frames: version | type | length u32be | body.
    pinned = json.loads((HERE / "sensor.json").read_text())
    master = bytes.fromhex(pinned["master_key"])
    logger = pinned["logger"]
    key = hmac256(master, b"fleetwire-sensor/v1 logger key", logger.to_bytes(8, "big"))
    assert key.hex() == pinned["logger_key"], "sensor.json logger key"
    uploads = []
    for u in pinned["uploads"]:
        body = bytes.fromhex(u["frame"])[6:]
        tag = hmac256(key, b"fleetwire-sensor/v2 batch", body[:-16])[:16]
        assert tag == body[-16:], f"sensor.json upload {u['name']}"
        uploads.append({"name": u["name"], "body_without_tag": body[:-16].hex(),
                        "tag": tag.hex()})
    acks = []
    for a in pinned["acks"]:
        body = bytes.fromhex(a["frame"])[6:]
        upload_tag = bytes.fromhex(a["answers_tag"])
        tag = hmac256(key, b"fleetwire-sensor/v2 ack", upload_tag, body[:-16])[:16]
        assert tag == body[-16:], f"sensor.json ack {a['name']}"
        acks.append({"name": a["name"], "answers_tag": upload_tag.hex(),
                     "body_without_tag": body[:-16].hex(), "tag": tag.hex()})
    return {"master_key": master.hex(), "logger": logger, "logger_key": key.hex(),
            "uploads": uploads, "acks": acks}


def device_cookie():
    # crates/fleetwire-auth lockout.rs: "dc1." + base64url(nonce) + "." + base64url(HMAC-SHA256(
    # secret, "fleetwire-device-cookie" || len(subject) u64be || subject || nonce)), no padding.
    import base64

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    secret = bytes(range(32))
    subject = b"alice@example.com"
    nonce = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    tag = hmac256(secret, b"fleetwire-device-cookie", len(subject).to_bytes(8, "big"),
                  subject, nonce)
    return {"secret": secret.hex(), "subject": subject.decode(), "nonce": nonce.hex(),
            "cookie": f"dc1.{b64(nonce)}.{b64(tag)}"}


def build():
    return {
        "description": "Computed by test-vectors/independent.py with pyca/cryptography (Ed25519) "
                       "and Python's hmac/hashlib (HMAC-SHA256, SHA-256) from the formats in "
                       "docs/PROTOCOL.md, not by fleetwire. Replayed by the independent_vectors "
                       "tests of fleetwire-session, -transfer, -sensor and -auth.",
        "ed25519_rfc8032": rfc8032(),
        "session_login": session_login(),
        "transfer_manifest": transfer_manifest(),
        "sensor": sensor(),
        "device_cookie": device_cookie(),
    }


def main():
    text = json.dumps(build(), indent=2) + "\n"
    if "--check" in sys.argv[1:]:
        if OUT.read_text() != text:
            print("test-vectors/independent.json differs from what independent.py computes")
            sys.exit(1)
        print("test-vectors/independent.json: matches")
        return
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
