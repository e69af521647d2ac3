"""Chunked transfer (fleetwire-transfer): signed manifests and wire messages.

The Sender and Receiver machines are not bound yet.
"""

from ._fleetwire import transfer as _native

TransferError = _native.TransferError
PROTOCOL_VERSION = _native.PROTOCOL_VERSION
DEFAULT_MAX_CHUNKS = _native.DEFAULT_MAX_CHUNKS
Manifest = _native.Manifest
Message = _native.Message
sha256 = _native.sha256
decode_manifest = _native.decode_manifest

del _native

__all__ = [
    "DEFAULT_MAX_CHUNKS",
    "Manifest",
    "Message",
    "PROTOCOL_VERSION",
    "TransferError",
    "decode_manifest",
    "sha256",
]
