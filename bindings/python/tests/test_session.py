"""fleetwire.session through the Python bindings: shared vectors, login, heartbeat, failures."""

from __future__ import annotations

import json
import pathlib

import pytest

import fleetwire
from fleetwire import session as s

VECTORS = json.loads(
    (pathlib.Path(__file__).resolve().parents[3] / "test-vectors" / "session.json").read_text()
)
HEADER = 6  # version:u8 type:u8 length:u32be

SECRET = s.PlayerSecret.from_bytes(bytes([7]) * 32)
PLAYER = s.PlayerId.from_bytes(bytes([1]) * 16)
T0 = 5_000_000  # an arbitrary monotonic origin, in ms


# --- helpers --------------------------------------------------------------------------------


def opt_hash(h: str | None) -> s.ConfigHash | None:
    return None if h is None else s.ConfigHash(bytes.fromhex(h))


def message_from_fields(name: str, f: dict) -> s.Message:
    if name == "hello":
        return s.Message.hello(s.PlayerId.parse(f["player_id"]), f["software"])
    if name == "challenge":
        return s.Message.challenge(bytes.fromhex(f["nonce"]))
    if name == "proof":
        return s.Message.proof(bytes.fromhex(f["signature"]))
    if name == "welcome":
        return s.Message.welcome(f["heartbeat_interval_ms"], opt_hash(f["config_hash"]))
    if name == "heartbeat":
        status = s.PlayerStatus(
            content=f["content"],
            free_storage_bytes=f["free_storage_bytes"],
            versions=f["versions"],
            config_hash=opt_hash(f["config_hash"]),
        )
        return s.Message.heartbeat(f["seq"], status)
    if name == "heartbeat_ack":
        return s.Message.heartbeat_ack(f["seq"], opt_hash(f["config_hash"]))
    if name == "close":
        return s.Message.close(f["code"], f["message"])
    raise AssertionError(f"unknown vector {name}")


def fields_of(m: s.Message) -> dict:
    def h(x: s.ConfigHash | None) -> str | None:
        return None if x is None else str(x)

    if m.kind == "hello":
        return {"player_id": str(m.player_id), "software": m.software}
    if m.kind == "challenge":
        assert m.nonce is not None
        return {"nonce": m.nonce.hex()}
    if m.kind == "proof":
        assert m.signature is not None
        return {"signature": m.signature.hex()}
    if m.kind == "welcome":
        return {"heartbeat_interval_ms": m.heartbeat_interval_ms, "config_hash": h(m.config_hash)}
    if m.kind == "heartbeat":
        st = m.status
        assert st is not None
        return {
            "seq": m.seq,
            "content": st.content,
            "free_storage_bytes": st.free_storage_bytes,
            "versions": st.versions,
            "config_hash": h(st.config_hash),
        }
    if m.kind == "heartbeat_ack":
        return {"seq": m.seq, "config_hash": h(m.config_hash)}
    if m.kind == "close":
        return {"code": m.code, "message": m.message}
    raise AssertionError(m.kind)


def drain(machine) -> list:
    out = []
    while (e := machine.poll_event()) is not None:
        out.append(e)
    return out


def pump(now: int, client: s.Client, server: s.ServerConnection, lookup=None) -> tuple[list, list]:
    """Moves bytes both ways until idle; answers lookups with `lookup(event)`. Returns events."""
    cev: list = []
    sev: list = []
    for _ in range(20):
        moved = False
        while (data := client.poll_transmit()) is not None:
            moved = True
            try:
                server.handle_input(now, data)
            except fleetwire.SessionError:
                pass  # also reported as the server's Closed event
        for e in drain(server):
            sev.append(e)
            if e.kind == "lookup_player" and lookup is not None:
                server.resolve_player(now, *lookup(e))
        while (data := server.poll_transmit()) is not None:
            moved = True
            try:
                client.handle_input(now, data)
            except fleetwire.SessionError:
                pass
        cev.extend(drain(client))
        if not moved:
            return cev, sev
    raise AssertionError("did not settle")


def known(verifier=None, approved=True, config_hash=None):
    return lambda _e: (verifier or SECRET.verifier(), approved, config_hash)


def new_pair(secret=SECRET, **server_kw) -> tuple[s.Client, s.ServerConnection]:
    client = s.Client(PLAYER, secret, "player/9.9", T0)
    server = s.ServerConnection(bytes([9]) * 32, T0, **server_kw)
    return client, server


# --- vectors --------------------------------------------------------------------------------


@pytest.mark.parametrize("v", VECTORS["messages"], ids=lambda v: v["name"])
def test_vector_encodes_to_frame(v):
    msg = message_from_fields(v["name"], v["fields"])
    assert msg.kind == v["name"]
    assert msg.msg_type == v["type"]
    assert msg.encode_frame().hex() == v["frame"]
    assert msg.encode_body().hex() == v["frame"][2 * HEADER :]


@pytest.mark.parametrize("v", VECTORS["messages"], ids=lambda v: v["name"])
def test_vector_frame_decodes_to_fields(v):
    frame = bytes.fromhex(v["frame"])
    assert frame[0] == s.PROTOCOL_VERSION
    assert frame[1] == v["type"]
    assert int.from_bytes(frame[2:HEADER], "big") == len(frame) - HEADER
    msg = s.Message.decode(frame[1], frame[HEADER:])
    assert fields_of(msg) == v["fields"]
    assert msg == message_from_fields(v["name"], v["fields"])


@pytest.mark.parametrize("v", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_frames_are_refused_with_the_stated_error(v):
    server = s.ServerConnection(bytes(32), T0)
    with pytest.raises(fleetwire.SessionError) as info:
        server.handle_input(T0, bytes.fromhex(v["frame"]))
    assert str(info.value).endswith(v["error"]), str(info.value)
    assert server.state == "closed"
    [closed] = drain(server)
    assert closed.kind == "closed"
    assert str(closed.reason) == str(info.value)
    assert type(closed.reason) is type(info.value)


def test_invalid_vectors_raise_specific_classes():
    cases = {v["name"]: bytes.fromhex(v["frame"]) for v in VECTORS["invalid"]}
    for name, cls in [
        ("frame length over the limit", fleetwire.BadFrame),
        ("unknown type", fleetwire.BadFrame),
        ("trailing byte", fleetwire.BadFrame),
        ("wrong version", fleetwire.VersionMismatch),
    ]:
        server = s.ServerConnection(bytes(32), T0)
        with pytest.raises(cls):
            server.handle_input(T0, cases[name])


def test_decode_error_for_a_bad_body():
    frame = bytes.fromhex(VECTORS["invalid"][3]["frame"])
    body = frame[HEADER : HEADER + int.from_bytes(frame[2:HEADER], "big")]
    with pytest.raises(fleetwire.DecodeError, match="1 unexpected trailing bytes"):
        s.Message.decode(2, body)
    with pytest.raises(fleetwire.DecodeError, match="unknown message type 0x7f"):
        s.Message.decode(0x7F, b"")


def test_login_vector_signature_and_verifier():
    login = VECTORS["login"]
    secret = s.PlayerSecret.parse(login["secret"])
    assert secret.hex() == login["secret"]
    assert str(secret.verifier()) == login["verifier"]
    player = s.PlayerId.parse(login["player_id"])
    client = s.Client(player, secret, "player/2.4.1", 0, bytes.fromhex(login["channel_binding"]))
    hello = client.poll_transmit()
    expected_hello = next(v for v in VECTORS["messages"] if v["name"] == "hello")
    assert hello is not None and hello.hex() == expected_hello["frame"]
    client.handle_input(0, s.Message.challenge(bytes.fromhex(login["nonce"])).encode_frame())
    proof = client.poll_transmit()
    expected = next(v for v in VECTORS["messages"] if v["name"] == "proof")
    assert proof is not None and proof.hex() == expected["frame"]


# --- identity -------------------------------------------------------------------------------


def test_identity_types():
    pid = s.PlayerId.from_bytes(bytes([0xAB]) * 16)
    assert str(pid) == "abababab-abababab-abababab-abababab"
    assert s.PlayerId.parse(str(pid).upper()) == pid
    assert hash(s.PlayerId.parse(str(pid))) == hash(pid)
    assert bytes(pid) == bytes([0xAB]) * 16 == pid.bytes
    with pytest.raises(fleetwire.ParseError, match="expected 32 hex digits, found 3"):
        s.PlayerId.parse("abc")
    with pytest.raises(ValueError, match="player_id must be 16 bytes, got 3"):
        s.PlayerId.from_bytes(b"abc")
    v = SECRET.verifier()
    assert s.PlayerVerifier.from_bytes(v.bytes) == v == s.PlayerVerifier.parse(str(v))
    assert "07" not in repr(SECRET)  # the secret is never printed
    assert s.PlayerSecret.from_bytes(SECRET.bytes) == SECRET
    h = s.ConfigHash(bytes(range(32)))
    assert bytes(h) == bytes(range(32)) and str(h) == bytes(range(32)).hex()


def test_exception_tree():
    for cls in [fleetwire.DecodeError, fleetwire.ApiMisuse, fleetwire.ParseError, fleetwire.SessionError]:
        assert issubclass(cls, fleetwire.FleetwireError)
    for cls in [
        fleetwire.BadFrame,
        fleetwire.ProtocolViolation,
        fleetwire.VersionMismatch,
        fleetwire.AuthFailed,
        fleetwire.NotApproved,
        fleetwire.LoginTimeout,
        fleetwire.PeerSilent,
        fleetwire.ConnectionLost,
        fleetwire.PeerClosed,
        fleetwire.LocalClose,
    ]:
        assert issubclass(cls, fleetwire.SessionError)
        assert cls.__module__ == "fleetwire"
    assert s.AuthFailed is fleetwire.AuthFailed


# --- login and heartbeat --------------------------------------------------------------------


def test_login_then_heartbeat_with_virtual_time():
    client, server = new_pair()
    assert client.state == "awaiting_challenge"
    config = s.ConfigHash(bytes([0x33]) * 32)
    cev, sev = pump(T0, client, server, known(config_hash=config))
    assert [e.kind for e in sev] == ["lookup_player", "player_logged_in"]
    assert sev[0].player_id == PLAYER and sev[0].software == "player/9.9"
    assert [e.kind for e in cev] == ["logged_in", "config_changed"]
    assert cev[0].heartbeat_interval_ms == 30_000
    assert cev[1].hash == config
    assert client.state == "online" and server.state == "online"
    assert server.is_authenticated and server.player_id == PLAYER

    # The player fetched the new configuration; its status says so.
    client.set_status(s.PlayerStatus("lobby", 123, "app 1", config))
    # Nothing is due before the deadline; the deadline is exactly one interval away.
    assert client.poll_timeout() == T0 + 30_000
    client.handle_timeout(T0 + 29_999)
    assert client.poll_transmit() is None
    now = client.poll_timeout()
    assert now is not None
    client.handle_timeout(now)
    cev, sev = pump(now, client, server)
    assert [e.kind for e in sev] == ["heartbeat"]
    assert sev[0].seq == 1 and sev[0].status == s.PlayerStatus("lobby", 123, "app 1", config)
    assert [(e.kind, e.seq, e.rtt_ms) for e in cev] == [("heartbeat_acked", 1, 0)]
    assert client.stats.heartbeats == 1 and server.stats.heartbeats == 1
    assert client.stats.last_rtt_ms == 0
    assert server.poll_timeout() == now + 50_000  # 1.5 x 30 s + 5 s grace

    # A new configuration is announced in the next acknowledgement.
    new = s.ConfigHash(bytes([0x44]) * 32)
    server.set_config_hash(new)
    client.heartbeat_now(now + 10)
    cev, _ = pump(now + 10, client, server)
    assert [e.kind for e in cev] == ["heartbeat_acked", "config_changed"]
    assert cev[1].hash == new

    # Orderly close: both sides end with exactly one Closed.
    client.close(now + 20, "shutting down")
    cev, sev = pump(now + 20, client, server)
    assert [e.kind for e in cev] == ["closed"]
    assert isinstance(cev[0].reason, fleetwire.LocalClose)
    assert cev[0].reason.code == s.CloseCode.NORMAL
    assert [e.kind for e in sev] == ["closed"]
    assert isinstance(sev[0].reason, fleetwire.PeerClosed)
    assert str(sev[0].reason) == 'peer closed the session (normal): "shutting down"'
    assert client.poll_timeout() is None and server.poll_timeout() is None
    with pytest.raises(fleetwire.ApiMisuse, match="the session is closed"):
        client.close(now + 30)


def test_wrong_secret_and_unknown_player_fail_alike():
    wrong = s.PlayerSecret.from_bytes(bytes([8]) * 32)
    client, server = new_pair(secret=wrong)
    cev, sev = pump(T0, client, server, known())
    [c_closed] = cev
    [_, s_closed] = sev
    assert isinstance(c_closed.reason, fleetwire.AuthFailed)
    assert isinstance(s_closed.reason, fleetwire.AuthFailed)
    msg = "authentication failed: unknown player id or wrong secret"
    assert str(c_closed.reason) == str(s_closed.reason) == msg

    client2, server2 = new_pair()
    cev2, sev2 = pump(T0, client2, server2, lambda _e: (None, False))
    assert isinstance(cev2[-1].reason, fleetwire.AuthFailed)
    assert str(cev2[-1].reason) == str(sev2[-1].reason) == msg
    assert client.state == client2.state == "closed"


def test_unapproved_player():
    client, server = new_pair()
    cev, _ = pump(T0, client, server, known(approved=False))
    assert isinstance(cev[-1].reason, fleetwire.NotApproved)
    assert str(PLAYER) in str(cev[-1].reason)


def test_silent_player_is_closed_and_goes_offline():
    client, server = new_pair()
    presence = s.Presence(50_000, T0)
    pump(T0, client, server, known())
    presence.seen(T0, PLAYER)
    assert [e.kind for e in drain(presence)] == ["online"]
    assert presence.is_online(PLAYER) and len(presence) == 1 and presence.online() == [PLAYER]

    # The player goes quiet (we never call its handle_timeout). The server gives up at 50 s.
    deadline = server.poll_timeout()
    assert deadline == T0 + 50_000
    server.handle_timeout(deadline - 1)
    assert server.state == "online"
    server.handle_timeout(deadline)
    [closed] = drain(server)
    assert isinstance(closed.reason, fleetwire.PeerSilent)
    assert str(closed.reason) == "peer silent for 50000 ms (limit exceeded)"
    bye = server.poll_transmit()
    assert bye is not None
    assert s.Message.decode(bye[1], bye[HEADER:]).code == s.CloseCode.SILENT

    # Presence notices on its own within one tick.
    p_deadline = presence.poll_timeout()
    assert p_deadline is not None
    while presence.is_online(PLAYER):
        presence.handle_timeout(p_deadline)
        p_deadline = presence.poll_timeout() or p_deadline
        assert p_deadline <= T0 + 50_250
    [offline] = drain(presence)
    assert offline.kind == "offline" and offline.player_id == PLAYER
    assert offline.last_seen_ms == T0
    assert presence.poll_timeout() is None


def test_client_gives_up_on_a_silent_server_and_login_timeout():
    client, server = new_pair()
    pump(T0, client, server, known())
    # The client sends heartbeats that are never answered.
    now = T0
    while client.state == "online":
        now = client.poll_timeout()
        assert now is not None
        client.handle_timeout(now)
        while client.poll_transmit() is not None:
            pass
    [*_, closed] = drain(client)
    assert isinstance(closed.reason, fleetwire.PeerSilent)
    assert now == T0 + 50_000

    lonely = s.Client(PLAYER, SECRET, "", T0, login_timeout_ms=2_000)
    assert lonely.poll_timeout() == T0 + 2_000
    lonely.handle_timeout(T0 + 2_000)
    [closed] = drain(lonely)
    assert isinstance(closed.reason, fleetwire.LoginTimeout)
    assert str(closed.reason) == "login did not complete within 2000 ms"


def test_handle_close_ends_both_sides_once_without_a_close_message():
    client, server = new_pair()
    pump(T0, client, server, known())
    drain(client), drain(server)
    # The TCP connection drops: each side's driver tells its machine, nothing is sent.
    client.handle_close(T0 + 10)
    server.handle_close(T0 + 10)
    for machine in (client, server):
        [closed] = drain(machine)
        assert closed.kind == "closed"
        assert isinstance(closed.reason, fleetwire.ConnectionLost)
        assert str(closed.reason) == "connection lost without a close message"
        assert machine.state == "closed"
        assert machine.poll_transmit() is None and machine.poll_timeout() is None
        machine.handle_close(T0 + 20)  # once only
        assert drain(machine) == []


def test_api_misuse_and_clock_clamp():
    client, server = new_pair()
    with pytest.raises(fleetwire.ApiMisuse, match="the session is not online"):
        client.heartbeat_now(T0)
    with pytest.raises(fleetwire.ApiMisuse, match="content is 65 bytes, the limit is 64"):
        client.set_status(s.PlayerStatus(content="x" * 65))
    with pytest.raises(fleetwire.ApiMisuse, match="no player lookup is pending"):
        server.resolve_player(T0, SECRET.verifier(), True)
    with pytest.raises(ValueError, match="nonce must be 32 bytes"):
        s.ServerConnection(b"short", T0)
    pump(T0, client, server, known())
    # A clock that steps backwards is clamped: nothing fires, nothing breaks.
    client.handle_timeout(T0 - 1_000_000)
    assert client.state == "online" and client.poll_transmit() is None
    assert client.poll_timeout() == T0 + 30_000


# --- backoff --------------------------------------------------------------------------------


def test_backoff_bounds():
    b = s.Backoff(1_000, 60_000)
    ceilings = []
    for _ in range(9):
        c = b.ceiling_ms()
        ceilings.append(c)
        assert 0 <= b.next_delay_ms(2**64 - 1) <= c
    assert ceilings == [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]
    assert b.attempts == 9
    assert b.next_delay_ms(0) == 0
    b.reset()
    assert b.ceiling_ms() == 1_000 and b.attempts == 0
    assert s.Backoff().ceiling_ms() == 1_000
    with pytest.raises(ValueError):
        s.Backoff(1_000)
    with pytest.raises(OverflowError):
        b.next_delay_ms(2**64)
