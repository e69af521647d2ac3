"""Sensor record format and upload session (fleetwire-sensor). Time is integer ms (monotonic)."""

from typing import Final, Optional, Tuple, final

from fleetwire._fleetwire import FleetwireError

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

Mark = Tuple[int, int]
_Channel = Tuple[int, int, int]
_Alarm = Tuple[int, int, str, Optional[int]]
_Status = Tuple[int, int, int, Tuple[int, int, int]]
_EpochEnd = Tuple[int, int, bool]
_Threshold = Tuple[int, Optional[int], Optional[int]]

VERSION: Final[int]
PORT: Final[int]
MSG_UPLOAD: Final[int]
MSG_ACK: Final[int]
MSG_REJECT: Final[int]

class SensorError(FleetwireError):
    kind: str

@final
class Batch:
    logger: int
    epoch: int
    first_seq: int
    start: int
    interval_s: int
    channels: list[_Channel]
    values: list[Optional[int]]
    gaps: list[Tuple[int, int]]
    alarms: list[_Alarm]
    status: Optional[_Status]
    previous: Optional[_EpochEnd]
    def __new__(
        cls,
        logger: int,
        epoch: int,
        first_seq: int,
        start: int,
        interval_s: int,
        channels: list[_Channel],
        values: list[Optional[int]],
        gaps: list[Tuple[int, int]] = ...,
        alarms: list[_Alarm] = ...,
        status: Optional[_Status] = None,
        previous: Optional[_EpochEnd] = None,
    ) -> Batch: ...
    @staticmethod
    def empty(logger: int, epoch: int, next_seq: int, now_unix: int) -> Batch: ...
    def reading_count(self) -> int: ...
    def last(self) -> Optional[Mark]: ...
    def validate(self) -> None: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class Settings:
    version: int
    interval_s: int
    thresholds: list[_Threshold]
    def __new__(cls, version: int, interval_s: int, thresholds: list[_Threshold] = ...) -> Settings: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class Upload:
    @property
    def batch(self) -> Batch: ...
    @property
    def settings_version(self) -> int: ...
    @property
    def last(self) -> bool: ...
    @property
    def tag(self) -> bytes: ...

@final
class Ack:
    @property
    def batch_index(self) -> int: ...
    @property
    def stored(self) -> Optional[Mark]: ...
    @property
    def server_time(self) -> int: ...
    @property
    def settings(self) -> Optional[Settings]: ...
    @property
    def tag(self) -> bytes: ...

def derive_key(master: bytes, logger: int) -> bytes: ...
def encode_upload(key: bytes, batch: Batch, settings_version: int, last: bool) -> Tuple[bytes, bytes]: ...
def decode_upload(body: bytes, key: bytes) -> Upload: ...
def decode_upload_unverified(body: bytes) -> Upload: ...
def upload_logger(body: bytes) -> int: ...
def encode_ack(
    key: bytes,
    batch_tag: bytes,
    batch_index: int,
    stored: Optional[Mark],
    server_time: int,
    settings: Optional[Settings] = None,
) -> bytes: ...
def decode_ack_unverified(body: bytes) -> Ack: ...
def verify_ack(body: bytes, key: bytes, batch_tag: bytes) -> bool: ...
def encode_reject(code: int) -> bytes: ...
def decode_reject(body: bytes) -> str: ...

@final
class Event:
    @property
    def kind(self) -> str: ...
    @property
    def batch_index(self) -> Optional[int]: ...
    @property
    def stored(self) -> Optional[Mark]: ...
    @property
    def server_time(self) -> Optional[int]: ...
    @property
    def settings(self) -> Optional[Settings]: ...
    @property
    def reason(self) -> Optional[SensorError]: ...
    @property
    def logger(self) -> Optional[int]: ...
    @property
    def id(self) -> Optional[int]: ...
    @property
    def after(self) -> Optional[Mark]: ...
    @property
    def closes(self) -> Optional[_EpochEnd]: ...
    @property
    def batch(self) -> Optional[Batch]: ...
    @property
    def last(self) -> Optional[Mark]: ...
    @property
    def first(self) -> Optional[Mark]: ...
    @property
    def stamp(self) -> Optional[Tuple[int, int]]: ...
    @property
    def status(self) -> Optional[_Status]: ...

@final
class LoggerSession:
    def __new__(
        cls,
        logger: int,
        key: bytes,
        now_ms: int,
        batches: list[Batch],
        *,
        settings_version: int = 0,
        radio_deadline_ms: Optional[int] = None,
        max_frame_len: Optional[int] = None,
    ) -> LoggerSession: ...
    def handle_input(self, now_ms: int, data: bytes) -> None: ...
    def handle_timeout(self, now_ms: int) -> None: ...
    def handle_close(self, now_ms: int) -> None: ...
    def handle_peer_closed(self, now_ms: int) -> None:
        """Deprecated: the old name of `handle_close`."""
    def poll_transmit(self) -> Optional[bytes]: ...
    def poll_timeout(self) -> Optional[int]: ...
    def poll_event(self) -> Optional[Event]: ...
    @property
    def state(self) -> str: ...
    @property
    def stored(self) -> list[Mark]: ...
    @property
    def stats(self) -> Tuple[int, int, int, int, int]: ...

@final
class CloudSession:
    def __new__(
        cls,
        now_ms: int,
        *,
        deadline_ms: Optional[int] = None,
        max_frame_len: Optional[int] = None,
        max_buffered: Optional[int] = None,
        max_uploads: Optional[int] = None,
    ) -> CloudSession: ...
    def handle_input(self, now_ms: int, data: bytes) -> None: ...
    def handle_timeout(self, now_ms: int) -> None: ...
    def handle_close(self, now_ms: int) -> None: ...
    def handle_peer_closed(self, now_ms: int) -> None:
        """Deprecated: the old name of `handle_close`."""
    def provide_key(
        self,
        now_ms: int,
        logger: int,
        key: Optional[bytes],
        stored: Optional[Mark] = None,
        settings: Optional[Settings] = None,
        server_time: int = 0,
        closed: list[_EpochEnd] = ...,
        status: Optional[Tuple[int, int]] = None,
    ) -> None: ...
    def confirm_stored(self, now_ms: int, id: int) -> None: ...
    def storage_failed(self, now_ms: int, id: int) -> None: ...
    def poll_transmit(self) -> Optional[bytes]: ...
    def poll_timeout(self) -> Optional[int]: ...
    def poll_event(self) -> Optional[Event]: ...
    @property
    def state(self) -> str: ...
    @property
    def logger(self) -> Optional[int]: ...
    @property
    def stats(self) -> Tuple[int, int, int, int, int, int, int]: ...
