"""Thing codes and thing access (fleetwire-codes): CodeSpec, Code, CodeGenerator, ThingAccess.

Parse what people type with ``CodeSpec.parse`` (typos raise ``fleetwire.ParseError`` before any
lookup); generate codes from a seed you draw (``secrets.token_bytes(32)``). Times are unix ms.
"""

from ._fleetwire import codes as _native

CodesError = _native.CodesError
AccessDenied = _native.AccessDenied
CodeSpec = _native.CodeSpec
Code = _native.Code
CodeGenerator = _native.CodeGenerator
AuditEvent = _native.AuditEvent
ThingAccess = _native.ThingAccess

del _native

__all__ = ["AccessDenied", "AuditEvent", "Code", "CodeGenerator", "CodeSpec", "CodesError", "ThingAccess"]
