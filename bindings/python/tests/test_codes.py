"""fleetwire.codes through the Python bindings: codes.json vectors, generation, typos, access."""

from __future__ import annotations

import json
import pathlib

import pytest

import fleetwire
from fleetwire import codes as c

VECTORS = json.loads(
    (pathlib.Path(__file__).resolve().parents[3] / "test-vectors" / "codes.json").read_text()
)
SPECS = {name: c.CodeSpec(s["alphabet"], s["length"], s["check"]) for name, s in VECTORS["specs"].items()}
NOW = 1_700_000_000_000


def test_specs():
    for name, s in VECTORS["specs"].items():
        spec = SPECS[name]
        assert spec.alphabet == s["alphabet"] and spec.length == s["length"] and spec.has_check == s["check"]
        assert spec.code_len == s["length"] + int(s["check"])
        assert spec.combinations == len(s["alphabet"]) ** s["length"]
    default = c.CodeSpec()
    assert (default.alphabet, default.length, default.has_check) == (SPECS["alnum10_check"].alphabet, 10, True)
    with pytest.raises(fleetwire.ApiMisuse, match="no check character for an alphabet of 2"):
        c.CodeSpec("01", 8, True)
    with pytest.raises(fleetwire.ApiMisuse, match="code length 5"):
        c.CodeSpec(length=5)


@pytest.mark.parametrize("v", VECTORS["check"], ids=lambda v: f'{v["spec"]}:{v["body"]}')
def test_check_vectors(v):
    spec = SPECS[v["spec"]]
    assert spec.check_character(v["body"]) == v["check"]
    code = spec.parse(v["code"])
    assert code.canonical == v["code"] and str(code) == v["display"] and len(code) == len(v["code"])


@pytest.mark.parametrize("v", VECTORS["parse"], ids=lambda v: f'{v["spec"]}:{v["input"]!r}')
def test_parse_vectors(v):
    code = SPECS[v["spec"]].parse(v["input"])
    assert code.canonical == v["canonical"]
    assert str(code) == v["display"]
    assert SPECS[v["spec"]].parse(v["display"]) == code


@pytest.mark.parametrize("v", VECTORS["invalid"], ids=lambda v: f'{v["spec"]}:{v["input"][:20]!r}')
def test_invalid_vectors(v):
    with pytest.raises(fleetwire.ParseError) as info:
        SPECS[v["spec"]].parse(v["input"])
    e = info.value
    assert e.kind == v["error"]  # type: ignore[attr-defined]
    for field in ["position", "expected", "found"]:
        if field in v:
            assert getattr(e, field) == v[field]


def test_generate_with_a_fixed_seed_round_trips_and_catches_typos():
    spec = c.CodeSpec()
    gen = c.CodeGenerator(spec, bytes([7]) * 32)
    codes = [gen.generate() for _ in range(200)]
    again = c.CodeGenerator(spec, bytes([7]) * 32)
    assert [again.generate() for _ in range(200)] == codes  # the seed replays
    assert len(set(codes)) == 200
    alphabet = spec.alphabet
    for code in codes:
        assert spec.parse(str(code)) == code
        assert spec.parse(str(code).lower().replace("-", " ")) == code
        s = code.canonical
        # One substitution.
        sub = s[:3] + alphabet[(alphabet.index(s[3]) + 1) % len(alphabet)] + s[4:]
        with pytest.raises(fleetwire.ParseError, match="typo"):
            spec.parse(sub)
        # One adjacent swap (of two different symbols).
        i = next(i for i in range(len(s) - 1) if s[i] != s[i + 1])
        swapped = s[:i] + s[i + 1] + s[i] + s[i + 2 :]
        with pytest.raises(fleetwire.ParseError, match="typo"):
            spec.parse(swapped)
    with pytest.raises(ValueError, match="seed must be 32 bytes"):
        c.CodeGenerator(spec, b"")


def test_thing_access_first_connect_admin_then_revoke():
    spec = c.CodeSpec()
    gen = c.CodeGenerator(spec, bytes(32))
    code = gen.generate()
    thing = c.ThingAccess(code, "admin_confirm")
    assert not thing.is_claimed and thing.mode == "admin_confirm"
    typed = spec.parse(str(code).lower())
    assert thing.connect(NOW, 1, typed) == "became_administrator"
    assert thing.is_administrator(1) and thing.role(1) == "administrator"
    assert thing.connect(NOW + 1, 2, typed) == "request_pending"
    assert thing.pending_requests() == [(2, NOW + 1)]
    thing.approve(NOW + 2, 1, 2)
    assert thing.has_access(2) and thing.role(2) == "member"
    thing.grant_admin(NOW + 3, 1, 2)
    assert thing.members() == [(1, "administrator"), (2, "administrator")]
    thing.revoke_admin(NOW + 4, 2, 1)
    assert thing.role(1) == "member" and thing.members() == [(1, "member"), (2, "administrator")]
    with pytest.raises(fleetwire.AccessDenied) as info:
        thing.revoke_admin(NOW + 5, 2, 2)
    assert info.value.kind == "last_administrator"  # type: ignore[attr-defined]
    with pytest.raises(fleetwire.AccessDenied, match="not an administrator"):
        thing.approve(NOW + 6, 1, 3)

    # Removing blocks; rotating the code locks out the old one.
    thing.remove(NOW + 7, 2, 1)
    assert not thing.has_access(1) and thing.is_blocked(1)
    with pytest.raises(fleetwire.AccessDenied, match="removed"):
        thing.connect(NOW + 8, 1, code)
    new = gen.generate()
    thing.rotate_code(NOW + 9, 2, new)
    with pytest.raises(fleetwire.AccessDenied) as info:
        thing.connect(NOW + 10, 3, code)
    assert info.value.kind == "wrong_code"  # type: ignore[attr-defined]
    assert thing.connect(NOW + 11, 3, new) == "request_pending"

    events = []
    while (e := thing.poll_event()) is not None:
        events.append(e)
    kinds = [e.kind for e in events]
    assert kinds[:4] == ["Claimed", "Requested", "Approved", "AdministratorGranted"]
    assert "Denied" in kinds and "Removed" in kinds and "CodeRotated" in kinds
    assert events[0].at_ms == NOW and events[0].actor == 1
    assert str(code) not in "".join(e.description for e in events)  # codes are never logged


def test_open_and_invite_only_modes():
    code = c.CodeSpec().parse("K7Q2-M9XW-4PC")
    thing = c.ThingAccess(code, "open")
    assert thing.connect(NOW, 1, code) == "became_administrator"
    assert thing.connect(NOW, 2, code) == "joined"
    assert thing.connect(NOW, 2, code) == "already_member"
    thing.set_mode(NOW, 1, "invite_only")
    with pytest.raises(fleetwire.AccessDenied, match="invite-only"):
        thing.connect(NOW, 3, code)
    thing.invite(NOW, 1, 3, expires_at_ms=NOW + 1000)
    with pytest.raises(fleetwire.AccessDenied, match="expired"):
        thing.connect(NOW + 2000, 3, code)
    with pytest.raises(ValueError, match="mode must be"):
        c.ThingAccess(code, "closed")


def test_exception_tree():
    assert issubclass(fleetwire.AccessDenied, fleetwire.CodesError)
    assert issubclass(fleetwire.CodesError, fleetwire.FleetwireError)
    assert fleetwire.AccessDenied.__module__ == "fleetwire"
