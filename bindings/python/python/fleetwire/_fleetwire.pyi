# The private native module. Import from `fleetwire` and `fleetwire.session` instead.
from fleetwire import auth as auth
from fleetwire import codes as codes
from fleetwire import sensor as sensor
from fleetwire import session as session
from fleetwire import transfer as transfer

__all__ = ["FleetwireError", "DecodeError", "ApiMisuse", "ParseError", "auth", "codes", "sensor", "session", "transfer"]

class FleetwireError(Exception):
    """The root of every exception raised by fleetwire."""

class DecodeError(FleetwireError):
    """Bytes were wrong: truncated, too long, or holding a value the format does not allow."""

class ApiMisuse(FleetwireError):
    """The caller used the API wrongly; nothing was sent and the machine is unchanged."""

class ParseError(FleetwireError):
    """A printable identifier, secret or verifier did not parse."""
