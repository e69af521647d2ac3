"""Sensor record format and upload session (fleetwire-sensor): LoggerSession, CloudSession, codec.

The data model crosses as plain tuples (see ``Batch``). A cloud driver answers two events::

    while (e := cloud.poll_event()) is not None:
        if e.kind == "key_needed":
            cloud.provide_key(now_ms(), e.logger, store.key(e.logger), stored=store.mark(e.logger))
        elif e.kind == "batch":
            store.write_if_mark(e.after, e.batch)    # durable, conditional on the mark
            cloud.confirm_stored(now_ms(), e.id)
"""

from typing import Tuple

from ._fleetwire import sensor as _native

SensorError = _native.SensorError
VERSION = _native.VERSION
PORT = _native.PORT
MSG_UPLOAD = _native.MSG_UPLOAD
MSG_ACK = _native.MSG_ACK
MSG_REJECT = _native.MSG_REJECT
Batch = _native.Batch
Settings = _native.Settings
Upload = _native.Upload
Ack = _native.Ack
Event = _native.Event
LoggerSession = _native.LoggerSession
CloudSession = _native.CloudSession
derive_key = _native.derive_key
encode_upload = _native.encode_upload
decode_upload = _native.decode_upload
decode_upload_unverified = _native.decode_upload_unverified
upload_logger = _native.upload_logger
encode_ack = _native.encode_ack
decode_ack_unverified = _native.decode_ack_unverified
verify_ack = _native.verify_ack
encode_reject = _native.encode_reject
decode_reject = _native.decode_reject

Mark = Tuple[int, int]

del _native

__all__ = [
    "Ack",
    "Batch",
    "CloudSession",
    "Event",
    "LoggerSession",
    "MSG_ACK",
    "MSG_REJECT",
    "MSG_UPLOAD",
    "Mark",
    "PORT",
    "SensorError",
    "Settings",
    "Upload",
    "VERSION",
    "decode_ack_unverified",
    "decode_reject",
    "decode_upload",
    "decode_upload_unverified",
    "derive_key",
    "encode_ack",
    "encode_reject",
    "encode_upload",
    "upload_logger",
    "verify_ack",
]
