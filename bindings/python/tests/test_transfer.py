"""fleetwire.transfer through the Python bindings: transfer.json manifest and message vectors."""

from __future__ import annotations

import json
import pathlib

import pytest

import fleetwire
from fleetwire import transfer as t

VECTORS = json.loads(
    (pathlib.Path(__file__).resolve().parents[3] / "test-vectors" / "transfer.json").read_text()
)
KEY = bytes.fromhex(VECTORS["public_key"])
FILE = bytes.fromhex(VECTORS["file"])


def test_manifest_verifies_with_the_test_key():
    v = VECTORS["manifest"]
    data = bytes.fromhex(v["hex"])
    m = t.decode_manifest(data, [KEY])
    assert (m.kind, m.file_id, m.version, m.length, m.chunk_size) == (
        v["kind"],
        v["file_id"],
        v["version"],
        v["length"],
        v["chunk_size"],
    )
    assert m.file_sha256.hex() == v["file_sha256"] == t.sha256(FILE).hex()
    assert m.chunk_count == 3 and m.to_bytes() == data
    assert m.verify_file(FILE) and not m.verify_file(FILE[:-1] + b"?")
    assert m.chunk_matches(2, FILE[32:]) and not m.chunk_matches(0, FILE[16:32])
    with pytest.raises(fleetwire.TransferError):
        t.decode_manifest(data, [bytes(32)])
    with pytest.raises(ValueError, match="trusted key must be 32 bytes"):
        t.decode_manifest(data, [b"short"])


@pytest.mark.parametrize("v", VECTORS["messages"], ids=lambda v: v["name"])
def test_message_vectors(v):
    data = bytes.fromhex(v["hex"])
    msg = t.Message.decode(data)
    assert repr(msg) == v["debug"]
    assert msg.encode() == data
    assert msg.kind == v["name"].split("_")[0]


def test_invalid_vectors():
    cases = {v["name"]: bytes.fromhex(v["hex"]) for v in VECTORS["invalid"]}
    with pytest.raises(fleetwire.TransferError):
        t.decode_manifest(cases["manifest_bad_signature"], [KEY])
    with pytest.raises(fleetwire.DecodeError):
        t.Message.decode(cases["message_bad_crc"])
    assert issubclass(fleetwire.TransferError, fleetwire.FleetwireError)
