"""fleetwire.auth through the Python bindings: policy, Argon2id with argon2-cffi both ways, TOTP, lockout."""

from __future__ import annotations

import json
import pathlib

import argon2
import pytest

import fleetwire
from fleetwire import auth as a

VECTORS = json.loads(
    (pathlib.Path(__file__).resolve().parents[3] / "test-vectors" / "auth.json").read_text()
)
NOW = 1_700_000_000_000  # wall-clock unix ms
CHEAP = a.HashParams.danger_insecure_for_tests()


# --- policy ---------------------------------------------------------------------------------


def kinds(vs: list[a.Violation]) -> list[str]:
    return [v.kind for v in vs]


def test_seed_policy_verdicts():
    p = a.PasswordPolicy.seed()
    assert (p.min_chars, p.max_chars, p.require_digit, p.require_upper) == (8, 128, True, True)
    assert p.check("Tulip-Harbour-7") == []
    [short] = p.check("Ab1")
    assert (short.kind, short.min, short.actual) == ("too_short", 8, 3)
    assert short.message == "use at least 8 characters (this one has 3)"
    assert kinds(p.check("alllowercase")) == ["missing_digit", "missing_upper_case"]
    assert kinds(p.check("x" * 129 + "A1")) == ["too_long"]
    assert p.check("x" * 129 + "A1")[0].max == 128
    assert kinds(p.check("Line\nBreak1")) == ["control_character"]
    # The seed preset has no blocklist: a common password with a digit and capital passes.
    assert p.check("Password1") == []
    assert p.accept("Ｔulip-Harbour-7") == "Tulip-Harbour-7"  # NFKC (full-width T)


def test_nist_policy_verdicts():
    p = a.PasswordPolicy.nist()
    assert p.min_chars == 15 and p.min_chars_with_mfa == 8 and p.use_blocklist
    assert p.check("correct horse battery staple") == []
    assert kinds(p.check("short")) == ["too_short"]
    # With MFA the minimum drops to 8.
    assert p.check("tulipharbour", has_mfa=True) == []
    assert p.check("tulipharbour")[0].min == 15
    assert "common" in kinds(p.check("password", has_mfa=True))
    [ctx] = p.check("alice-likes-long-passwords", words=["Alice"])
    assert (ctx.kind, ctx.word) == ("contains_context_word", "alice")
    with pytest.raises(a.PolicyRejected) as info:
        p.accept("alice-likes-long-passwords", words=["alice"])
    assert isinstance(info.value, fleetwire.AuthError)
    assert [v.kind for v in info.value.violations] == ["contains_context_word"]
    assert str(info.value) == 'do not use "alice" in the password'


def test_policy_construction_is_validated():
    with pytest.raises(fleetwire.ApiMisuse, match="minimum length 20 exceeds maximum length 10"):
        a.PasswordPolicy(min_chars=20, min_chars_with_mfa=8, max_chars=10)
    p = a.PasswordPolicy(min_chars=10, min_chars_with_mfa=8, max_chars=64, require_symbol=True)
    assert kinds(p.check("abcdefghijk")) == ["missing_symbol"]
    p.min_chars = 0
    with pytest.raises(fleetwire.ApiMisuse, match="at least 1"):
        p.validate()


# --- Argon2id -------------------------------------------------------------------------------


def test_hash_made_by_fleetwire_verifies_in_argon2_cffi():
    hasher = a.PasswordHasher(a.HashParams(256, 2, 1))
    for password in ["password", "correct horse battery staple", "Tulip-Harbour-7"]:
        phc = hasher.hash(password, bytes(range(16)))
        assert phc.startswith("$argon2id$v=19$m=256,t=2,p=1$")
        assert argon2.PasswordHasher().verify(phc, password) is True
        with pytest.raises(argon2.exceptions.VerifyMismatchError):
            argon2.PasswordHasher().verify(phc, password + "x")
        assert hasher.verify(password, phc) is False  # no rehash needed


def test_hash_made_by_argon2_cffi_verifies_in_fleetwire():
    ph = argon2.PasswordHasher(time_cost=2, memory_cost=512, parallelism=2)
    hasher = a.PasswordHasher(a.HashParams(512, 2, 2))
    for password in ["password", "hunter2-but-longer", "Tulip-Harbour-7"]:
        phc = ph.hash(password)
        assert hasher.verify(password, phc) is False
        with pytest.raises(a.PasswordMismatch, match="invalid user name or password"):
            hasher.verify("wrong", phc)
    # Same parameters on both sides: neither asks for a rehash.
    phc = ph.hash("x")
    assert not hasher.needs_rehash(phc) and not ph.check_needs_rehash(phc)


@pytest.mark.parametrize(
    "v", VECTORS["argon2id_phc"], ids=lambda v: f'{v["made_by"]}:{v["phc"].split("$")[3]}'
)
def test_auth_vectors(v):
    hasher = a.PasswordHasher(CHEAP)
    cheap = v["phc"].split("$")[3] == "m=64,t=1,p=1"
    assert hasher.verify(v["password"], v["phc"]) is (not cheap)  # needs_rehash
    assert hasher.needs_rehash(v["phc"]) is (not cheap)
    with pytest.raises(a.PasswordMismatch):
        hasher.verify(VECTORS["wrong_password"], v["phc"])
    # argon2-cffi agrees on every vector (it hashes the same NFKC UTF-8 bytes).
    assert argon2.PasswordHasher().verify(v["phc"], v["password"])


def test_needs_rehash_and_errors():
    old = a.PasswordHasher(CHEAP)
    new = a.PasswordHasher(a.HashParams(128, 1, 1))
    phc = old.hash("pw-1", b"\x11" * 16)
    assert not old.needs_rehash(phc)
    assert new.needs_rehash(phc)
    assert new.verify("pw-1", phc) is True
    assert new.needs_rehash("not a hash")
    with pytest.raises(a.HashError, match="malformed PHC string"):
        new.verify("pw-1", "not a hash")
    argon2i = "$argon2i$v=19$m=64,t=1,p=1$EREREREREREREREREREREQ$C0bQIQCVmTItWhparH/D/jq8oDzQXZj1EoH+v3pvXKA"
    with pytest.raises(a.HashError, match="only argon2id"):
        new.verify("pw-1", argon2i)
    with pytest.raises(a.PasswordMismatch):
        new.verify_unknown_user("anything")
    with pytest.raises(a.HashError, match="out of range"):
        a.PasswordHasher(a.HashParams(1, 1, 1))
    with pytest.raises(a.HashError, match="out of range"):
        old.hash("pw", b"short")
    assert a.PasswordHasher().params == a.HashParams.owasp() == a.HashParams(19 * 1024, 2, 1)


def test_pepper():
    peppered = a.PasswordHasher(CHEAP, pepper=b"pepper!!")
    phc = peppered.hash("pw", b"\x01" * 16)
    assert peppered.verify("pw", phc) is False
    with pytest.raises(a.PasswordMismatch):
        a.PasswordHasher(CHEAP).verify("pw", phc)
    with pytest.raises(argon2.exceptions.VerifyMismatchError):
        argon2.PasswordHasher().verify(phc, "pw")


# --- TOTP -----------------------------------------------------------------------------------

RFC6238_TIMES = [59, 1_111_111_109, 1_111_111_111, 1_234_567_890, 2_000_000_000, 20_000_000_000]
RFC6238 = [
    ("sha1", b"12345678901234567890", ["94287082", "07081804", "14050471", "89005924", "69279037", "65353130"]),
    (
        "sha256",
        b"12345678901234567890123456789012",
        ["46119246", "68084774", "67062674", "91819424", "90698825", "77737706"],
    ),
    (
        "sha512",
        b"1234567890123456789012345678901234567890123456789012345678901234",
        ["90693936", "25091201", "99943326", "93441116", "38618901", "47863826"],
    ),
]


@pytest.mark.parametrize("alg,secret,codes", RFC6238, ids=[r[0] for r in RFC6238])
def test_totp_rfc6238(alg, secret, codes):
    totp = a.Totp(secret, alg, 8, 30)
    assert totp.algorithm == alg and totp.digits == 8
    for t, code in zip(RFC6238_TIMES, codes):
        assert totp.code_at(t * 1000) == code
        assert totp.verify(code, t * 1000) == t // 30


def test_totp_skew_replay_and_parameters():
    totp = a.Totp(b"12345678901234567890")
    now = 1_234_567_890_000
    code = totp.code_at(now)
    step = totp.verify(code, now + 30_000)  # one step late is within the default skew
    assert step == totp.step_at(now)
    with pytest.raises(a.TotpReplayed, match="already used"):
        totp.verify(code, now, last_used_step=step)
    with pytest.raises(a.TotpRejected):
        totp.verify(code, now + 90_000)
    totp.skew_steps = 0
    with pytest.raises(a.TotpRejected):
        totp.verify(code, now + 30_000)
    assert totp.secret_base32() == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    assert totp.provisioning_uri("fleet wire", "alice").startswith("otpauth://totp/fleet%20wire:alice?")
    with pytest.raises(ValueError, match="out of range"):
        a.Totp(b"short")
    with pytest.raises(ValueError, match="unknown TOTP algorithm"):
        a.Totp(bytes(20), "md5")


# --- lockout --------------------------------------------------------------------------------


def fail(engine: a.LockoutEngine, now: int, subject: bytes = b"alice") -> a.AttemptTicket:
    ticket = engine.begin_attempt("player-login", subject, now)
    engine.finish(ticket, False, now)
    return ticket


def test_lockout_blocks_after_n_failures_and_grows():
    config = a.LockoutConfig.web_cms()
    assert (config.max_failures, config.base_block_secs, config.growth) == (5, 60, "exponential")
    engine = a.LockoutEngine(config, bytes(16))
    now = NOW
    for i in range(5):
        assert engine.status("player-login", b"alice", now).remaining == 5 - i
        assert fail(engine, now).failures == i + 1
    with pytest.raises(a.Locked) as info:
        engine.begin_attempt("player-login", b"alice", now)
    assert isinstance(info.value, fleetwire.AuthError)
    assert info.value.until_ms == now + 60_000
    assert engine.status("player-login", b"alice", now) == engine.status("player-login", b"alice", now + 59_000)
    assert engine.status("player-login", b"alice", now).locked
    # Other subjects and known devices are not affected.
    engine.begin_attempt("player-login", b"bob", now)
    device = engine.begin_attempt("player-login", b"alice", now, device=bytes([9]) * 16)
    engine.finish(device, True, now)

    # After the block each further failure blocks again, for twice as long.
    blocks = []
    for _ in range(4):
        status = engine.status("player-login", b"alice", now)
        assert status.locked and status.until_ms is not None
        blocks.append((status.until_ms - now) // 1000)
        now = status.until_ms
        assert not engine.status("player-login", b"alice", now).locked
        fail(engine, now)
    assert blocks == [60, 120, 240, 480]
    assert engine.failures("player-login", b"alice", now) == 9

    # A success ends the streak; clear() forgets everything.
    now = engine.status("player-login", b"alice", now).until_ms or now
    ticket = engine.begin_attempt("player-login", b"alice", now)
    engine.finish(ticket, True, now)
    assert engine.failures("player-login", b"alice", now) == 0
    fail(engine, now)
    engine.clear("player-login", b"alice")
    assert engine.failures("player-login", b"alice", now) == 0


def test_lockout_config_validation():
    config = a.LockoutConfig.keycloak()
    assert config.quick_failure == (1000, 60) and config.growth == "linear"
    config.hard_limit = 101
    with pytest.raises(fleetwire.ApiMisuse, match="hard_limit 101"):
        a.LockoutEngine(config, bytes(16))
    config.hard_limit = 100
    config.growth = "sideways"
    with pytest.raises(ValueError, match="growth"):
        config.validate()
    with pytest.raises(ValueError, match="secret must be 16 bytes"):
        a.LockoutEngine(a.LockoutConfig.web_cms(), b"")


def test_exception_tree():
    for cls in [a.PolicyRejected, a.HashError, a.TotpRejected, a.Locked]:
        assert issubclass(cls, fleetwire.AuthError)
        assert cls.__module__ == "fleetwire"
    assert issubclass(a.PasswordMismatch, a.HashError)
    assert issubclass(a.TotpReplayed, a.TotpRejected)
    assert issubclass(fleetwire.AuthError, fleetwire.FleetwireError)
    assert a.normalize("ﬁ") == "fi"
