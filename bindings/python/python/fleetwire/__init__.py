"""fleetwire: sans-IO protocol machines for a device cloud, from Rust.

The machines do no I/O: your code reads and writes the sockets, passes the bytes and the time
in, and drains bytes, deadlines and events out. One public module per protocol
(``fleetwire.session``, ``fleetwire.auth``, ``fleetwire.sensor``,
``fleetwire.codes``, ``fleetwire.transfer``). Every exception derives from :class:`FleetwireError`.

Time is integer milliseconds on a monotonic clock of your choice, for example
``time.monotonic_ns() // 1_000_000``. Each object keeps its own origin; values that go
backwards are clamped.
"""

from ._fleetwire import ApiMisuse, DecodeError, FleetwireError, ParseError
from . import auth, codes, sensor, session, transfer
from .auth import (
    AuthError,
    HashError,
    Locked,
    PasswordMismatch,
    PolicyRejected,
    TotpRejected,
    TotpReplayed,
)
from .codes import AccessDenied, CodesError
from .sensor import SensorError
from .transfer import TransferError
from .session import (
    AuthFailed,
    BadFrame,
    ConnectionLost,
    LocalClose,
    LoginTimeout,
    NotApproved,
    PeerClosed,
    PeerSilent,
    ProtocolViolation,
    SessionError,
    VersionMismatch,
)


__all__ = [
    "AccessDenied",
    "ApiMisuse",
    "AuthError",
    "AuthFailed",
    "BadFrame",
    "CodesError",
    "ConnectionLost",
    "DecodeError",
    "FleetwireError",
    "HashError",
    "Locked",
    "LocalClose",
    "LoginTimeout",
    "NotApproved",
    "ParseError",
    "PasswordMismatch",
    "PeerClosed",
    "PeerSilent",
    "PolicyRejected",
    "ProtocolViolation",
    "SensorError",
    "SessionError",
    "TotpRejected",
    "TransferError",
    "TotpReplayed",
    "VersionMismatch",
    "auth",
    "codes",
    "sensor",
    "session",
    "transfer",
]
