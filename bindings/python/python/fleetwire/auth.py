"""Account security (fleetwire-auth): PasswordPolicy, PasswordHasher (Argon2id PHC), Totp, LockoutEngine.

Wall-clock time is integer unix milliseconds (``time.time_ns() // 1_000_000``); randomness is
bytes you draw yourself (``secrets.token_bytes``)::

    hasher = PasswordHasher(HashParams.owasp())
    stored = hasher.hash(password, secrets.token_bytes(16))
    needs_rehash = hasher.verify(password, stored)   # raises PasswordMismatch
"""

from ._fleetwire import auth as _native

AuthError = _native.AuthError
PolicyRejected = _native.PolicyRejected
HashError = _native.HashError
PasswordMismatch = _native.PasswordMismatch
TotpRejected = _native.TotpRejected
TotpReplayed = _native.TotpReplayed
Locked = _native.Locked
NIST_MAX_CONSECUTIVE_FAILURES = _native.NIST_MAX_CONSECUTIVE_FAILURES
Violation = _native.Violation
PasswordPolicy = _native.PasswordPolicy
HashParams = _native.HashParams
PasswordHasher = _native.PasswordHasher
Totp = _native.Totp
LockoutConfig = _native.LockoutConfig
LockoutEngine = _native.LockoutEngine
AttemptTicket = _native.AttemptTicket
LockStatus = _native.LockStatus
normalize = _native.normalize

del _native

__all__ = [
    "AttemptTicket",
    "AuthError",
    "HashError",
    "HashParams",
    "LockStatus",
    "Locked",
    "LockoutConfig",
    "LockoutEngine",
    "NIST_MAX_CONSECUTIVE_FAILURES",
    "PasswordHasher",
    "PasswordMismatch",
    "PasswordPolicy",
    "PolicyRejected",
    "Totp",
    "TotpRejected",
    "TotpReplayed",
    "Violation",
    "normalize",
]
