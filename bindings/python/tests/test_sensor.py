"""fleetwire.sensor through the Python bindings: sensor.json vectors, logger <-> cloud uploads."""

from __future__ import annotations

import json
import pathlib

import pytest

import fleetwire
from fleetwire import sensor as s

VECTORS = json.loads(
    (pathlib.Path(__file__).resolve().parents[3] / "test-vectors" / "sensor.json").read_text()
)
HEADER = 6  # version:u8 type:u8 length:u32be
MASTER = bytes.fromhex(VECTORS["master_key"])
LOGGER = VECTORS["logger"]
KEY = bytes.fromhex(VECTORS["logger_key"])
T0 = 7_000_000


def tup(x):
    """JSON lists to the tuples the binding uses."""
    return tuple(tup(i) for i in x) if isinstance(x, list) else x


def batch_from_fields(f: dict) -> s.Batch:
    return s.Batch(
        f["logger"],
        f["epoch"],
        f["first_seq"],
        f["start"],
        f["interval_s"],
        [tup(c) for c in f["channels"]],
        f["values"],
        [tup(g) for g in f["gaps"]],
        [tup(a) for a in f["alarms"]],
        None
        if (st := f["status"]) is None
        else (st["counter"], st["battery_mv"], st["battery_percent"], tup(st["firmware"])),
        None if (p := f["previous"]) is None else (p["epoch"], p["next_seq"], p["abandoned"]),
    )


def untup(x):
    return [untup(i) for i in x] if isinstance(x, tuple) else x


def fields_of(u: s.Upload) -> dict:
    b = u.batch
    return {
        "alarms": [untup(a) for a in b.alarms],
        "channels": [untup(c) for c in b.channels],
        "epoch": b.epoch,
        "first_seq": b.first_seq,
        "gaps": [untup(g) for g in b.gaps],
        "interval_s": b.interval_s,
        "last": u.last,
        "logger": b.logger,
        "settings_version": u.settings_version,
        "start": b.start,
        "status": None
        if b.status is None
        else {
            "counter": b.status[0],
            "battery_mv": b.status[1],
            "battery_percent": b.status[2],
            "firmware": untup(b.status[3]),
        },
        "previous": None
        if b.previous is None
        else {"epoch": b.previous[0], "next_seq": b.previous[1], "abandoned": b.previous[2]},
        "values": b.values,
    }


def test_key_derivation():
    assert s.derive_key(MASTER, LOGGER) == KEY


@pytest.mark.parametrize("v", VECTORS["uploads"], ids=lambda v: v["name"])
def test_upload_encodes_from_fields(v):
    f = v["fields"]
    frame, tag = s.encode_upload(KEY, batch_from_fields(f), f["settings_version"], f["last"])
    assert frame.hex() == v["frame"]
    assert tag.hex() == v["tag"]


@pytest.mark.parametrize("v", VECTORS["uploads"], ids=lambda v: v["name"])
def test_upload_decodes_to_fields(v):
    frame = bytes.fromhex(v["frame"])
    assert frame[0] == s.VERSION and frame[1] == s.MSG_UPLOAD
    assert int.from_bytes(frame[2:HEADER], "big") == len(frame) - HEADER
    body = frame[HEADER:]
    assert s.upload_logger(body) == LOGGER
    u = s.decode_upload(body, KEY)
    assert fields_of(u) == v["fields"]
    assert u.tag.hex() == v["tag"]
    assert u.batch == batch_from_fields(v["fields"])
    assert fields_of(s.decode_upload_unverified(body)) == v["fields"]


@pytest.mark.parametrize("v", VECTORS["acks"], ids=lambda v: v["name"])
def test_ack_vectors(v):
    f = v["fields"]
    st = f["settings"]
    settings = s.Settings(st["version"], st["interval_s"], [tup(t) for t in st["thresholds"]])
    tag = bytes.fromhex(v["answers_tag"])
    frame = s.encode_ack(KEY, tag, f["batch_index"], tup(f["stored"]), f["server_time"], settings)
    assert frame.hex() == v["frame"]
    assert frame[1] == s.MSG_ACK
    ack = s.decode_ack_unverified(frame[HEADER:])
    assert (ack.batch_index, ack.stored, ack.server_time) == (0, (0, 4), f["server_time"])
    assert ack.settings == settings
    assert s.verify_ack(frame[HEADER:], KEY, tag)
    assert not s.verify_ack(frame[HEADER:], KEY, bytes(16))
    assert not s.verify_ack(frame[HEADER:], bytes(32), tag)


@pytest.mark.parametrize("v", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_uploads_are_refused_with_the_stated_error(v):
    body = bytes.fromhex(v["frame"])[HEADER:]
    key = bytes.fromhex(v["key"])
    with pytest.raises(fleetwire.SensorError) as info:
        s.decode_upload(body, key)
    assert info.value.kind == v["error"]
    assert "failed authentication" in str(info.value)
    # The same through the cloud machine: the upload is rejected and the session closes.
    cloud = s.CloudSession(T0)
    cloud.handle_input(T0, bytes.fromhex(v["frame"]))
    [needed] = drain(cloud)
    assert needed.kind == "key_needed" and needed.logger == LOGGER
    cloud.provide_key(T0, LOGGER, key)
    [closed] = drain(cloud)
    assert closed.kind == "closed" and closed.reason is not None
    assert closed.reason.kind == v["error"]
    reject = cloud.poll_transmit()
    assert reject is not None and s.decode_reject(reject[HEADER:]) == "bad_mac"


def test_decode_errors():
    with pytest.raises(fleetwire.SensorError) as info:
        s.decode_upload_unverified(b"\x01")
    assert info.value.kind == "decode"
    assert s.decode_reject(s.encode_reject(2)[HEADER:]) == "bad_mac"
    assert s.decode_reject(s.encode_reject(200)[HEADER:]) == "other_200"
    with pytest.raises(ValueError, match="key must be 32 bytes"):
        s.decode_upload(b"", b"short")


# --- machines -------------------------------------------------------------------------------


def drain(machine) -> list:
    out = []
    while (e := machine.poll_event()) is not None:
        out.append(e)
    return out


def upload(now, logger_s: s.LoggerSession, cloud: s.CloudSession, store: dict, key=KEY):
    """Drives both machines until idle: the cloud's store is `store` (mark and rows)."""
    lev: list = []
    cev: list = []
    for _ in range(20):
        moved = False
        while (data := logger_s.poll_transmit()) is not None:
            moved = True
            try:
                cloud.handle_input(now, data)
            except fleetwire.SensorError:
                pass  # also the cloud's closed event
        for e in drain(cloud):
            cev.append(e)
            if e.kind == "key_needed":
                cloud.provide_key(now, e.logger, key, stored=store.get("mark"), server_time=1_767_230_000)
            elif e.kind == "batch":
                assert e.after == store.get("mark")  # conditional write
                store.setdefault("rows", []).extend(e.batch.values)
                store["mark"] = e.batch.last()
                cloud.confirm_stored(now, e.id)
        while (data := cloud.poll_transmit()) is not None:
            moved = True
            try:
                logger_s.handle_input(now, data)
            except fleetwire.SensorError:
                pass
        lev.extend(drain(logger_s))
        if not moved:
            return lev, cev
    raise AssertionError("did not settle")


def day(first_seq: int, n: int) -> s.Batch:
    return s.Batch(LOGGER, 0, first_seq, 1_767_225_600 + 300 * first_seq, 300, [(1, 1, -1)], [200 + i % 5 for i in range(n)])


def test_logger_cloud_upload_with_virtual_time():
    store: dict = {}
    logger_s = s.LoggerSession(LOGGER, KEY, T0, [day(0, 10), day(10, 5)])
    cloud = s.CloudSession(T0)
    assert logger_s.poll_timeout() == T0 + 20_000  # the radio deadline
    assert cloud.poll_timeout() == T0 + 30_000
    lev, cev = upload(T0 + 5, logger_s, cloud, store)
    assert [e.kind for e in cev] == ["key_needed", "batch", "batch", "closed"]
    assert cev[-1].reason is None  # finished
    assert [e.kind for e in lev] == ["acked", "acked", "closed"]
    assert lev[1].stored == (0, 14) and lev[1].server_time == 1_767_230_000
    assert lev[-1].reason is None
    assert logger_s.stored == [(0, 14)] and logger_s.state == "closed" and cloud.state == "closed"
    assert len(store["rows"]) == 15 and store["mark"] == (0, 14)
    assert cloud.stats[3:5] == (2, 15)

    # Next wake: the same batch again (ack lost) is acknowledged and ignored; new data stored.
    logger2 = s.LoggerSession(LOGGER, KEY, T0 + 300_000, [day(10, 5), day(15, 3)])
    cloud2 = s.CloudSession(T0 + 300_000)
    lev, cev = upload(T0 + 300_000, logger2, cloud2, store)
    assert [e.kind for e in cev] == ["key_needed", "duplicate", "batch", "closed"]
    assert cev[1].last == (0, 14)
    assert len(store["rows"]) == 18 and store["mark"] == (0, 17)
    assert logger2.stored == [(0, 17)]


def test_wrong_key_is_rejected():
    store: dict = {}
    logger_s = s.LoggerSession(LOGGER, KEY, T0, [day(0, 3)])
    cloud = s.CloudSession(T0)
    lev, cev = upload(T0, logger_s, cloud, store, key=s.derive_key(bytes(32), LOGGER))
    assert [e.kind for e in cev] == ["key_needed", "closed"]
    assert isinstance(cev[-1].reason, fleetwire.SensorError) and cev[-1].reason.kind == "bad_mac"
    [closed] = lev
    assert closed.reason is not None and closed.reason.kind == "rejected"
    assert "rejected" in str(closed.reason)
    assert "rows" not in store and logger_s.stored == []


def test_unknown_logger_deadline_and_misuse():
    logger_s = s.LoggerSession(LOGGER, KEY, T0, [s.Batch.empty(LOGGER, 0, 0, 1_767_225_600)])
    cloud = s.CloudSession(T0)
    data = logger_s.poll_transmit()
    assert data is not None
    cloud.handle_input(T0, data)
    [needed] = drain(cloud)
    with pytest.raises(fleetwire.ApiMisuse, match="no key lookup is pending for logger 5"):
        cloud.provide_key(T0, 5, KEY)
    cloud.provide_key(T0, LOGGER, None)
    [closed] = drain(cloud)
    assert closed.reason is not None and closed.reason.kind == "unknown_logger"

    # The logger never hears back: the radio deadline closes it at exactly 20 s.
    logger_s.handle_timeout(T0 + 19_999)
    assert logger_s.state == "awaiting_acks"
    logger_s.handle_timeout(T0 + 20_000)
    [closed] = drain(logger_s)
    assert closed.reason is not None and closed.reason.kind == "radio_deadline"

    with pytest.raises(fleetwire.ApiMisuse, match="at least one batch"):
        s.LoggerSession(LOGGER, KEY, T0, [])
    with pytest.raises(fleetwire.ApiMisuse, match="logger 1"):
        s.LoggerSession(LOGGER, KEY, T0, [s.Batch.empty(1, 0, 0, 1_767_225_600)])
    with pytest.raises(ValueError, match="unknown alarm kind"):
        s.Batch(LOGGER, 0, 0, 0, 1, [], [], alarms=[(0, 0, "hot", 1)]).validate()


def test_handle_close_ends_both_sides_once_and_the_old_name_still_works():
    logger_s = s.LoggerSession(LOGGER, KEY, T0, [day(0, 3)])
    cloud = s.CloudSession(T0)
    data = logger_s.poll_transmit()
    assert data is not None
    cloud.handle_input(T0, data)
    [needed] = drain(cloud)
    assert needed.kind == "key_needed"
    # The connection breaks before the cloud answers: nothing was acknowledged.
    logger_s.handle_close(T0 + 1)
    cloud.handle_close(T0 + 1)
    for machine in (logger_s, cloud):
        [closed] = drain(machine)
        assert closed.kind == "closed" and closed.reason.kind == "peer_closed"
        assert machine.state == "closed" and machine.poll_timeout() is None
        machine.handle_close(T0 + 2)
        assert drain(machine) == []
    assert logger_s.stored == []
    # `handle_peer_closed` is the deprecated name of the same input.
    old = s.LoggerSession(LOGGER, KEY, T0, [day(0, 3)])
    old.handle_peer_closed(T0)
    [closed] = drain(old)
    assert closed.reason.kind == "peer_closed"


def test_exception_tree():
    assert issubclass(fleetwire.SensorError, fleetwire.FleetwireError)
    assert fleetwire.SensorError.__module__ == "fleetwire"


def test_an_epoch_opens_only_with_the_exact_end_and_acks_cover_their_own_epoch():
    """Epoch 0 holds 0..9; the logger sends its epoch-0 tail and opens epoch 1 stating that
    epoch 0 ended before seq 15. Replayed alone first, the opener is not stored (the store does
    not hold 0..14 yet) and its ack covers nothing; in the logger's own flight it is."""
    store: dict = {"mark": (0, 9)}
    tail = s.Batch(LOGGER, 0, 10, 1_767_228_600, 300, [(1, 1, -1)], [200] * 5)
    opener = s.Batch(LOGGER, 1, 0, 1_767_300_000, 300, [(1, 1, -1)], [210, 211], previous=(0, 15, False))
    logger_s = s.LoggerSession(LOGGER, KEY, T0, [tail, opener])
    flight = logger_s.poll_transmit()
    assert flight is not None
    # The attacker's connection: only the opener (the second frame of the flight).
    first_len = HEADER + int.from_bytes(flight[2:HEADER], "big")
    opener_frame = flight[first_len:]
    replay = s.CloudSession(T0)
    replay.handle_input(T0, opener_frame)
    events = drain(replay)
    assert [e.kind for e in events] == ["key_needed"]
    replay.provide_key(T0, LOGGER, KEY, stored=store["mark"])
    events = drain(replay)
    assert [e.kind for e in events] == ["out_of_order", "closed"]
    # The logger's own flight: the tail is stored, then the opener closes epoch 0 at 15.
    cloud = s.CloudSession(T0)
    cloud.handle_input(T0, flight)
    acks = b""
    for _ in range(3):
        for e in drain(cloud):
            if e.kind == "key_needed":
                cloud.provide_key(T0, LOGGER, KEY, stored=store["mark"])
            elif e.kind == "batch":
                assert e.after == store["mark"]
                if e.closes is not None:
                    assert e.closes == (0, 15, False)
                store["mark"] = e.batch.last()
                cloud.confirm_stored(T0, e.id)
        while (data := cloud.poll_transmit()) is not None:
            acks += data
    logger_s.handle_input(T0, acks)
    stored = [e.stored for e in drain(logger_s) if e.kind == "acked"]
    assert stored == [(0, 14), (1, 1)]
    assert logger_s.stored == [(0, 14), (1, 1)]
    assert store["mark"] == (1, 1)


def test_a_replayed_older_status_is_not_reported():
    cloud = s.CloudSession(T0)
    old = s.Batch.empty(LOGGER, 0, 0, 1_767_225_600)
    old.status = (3, 3000, 80, (1, 0, 0))
    frame, _ = s.encode_upload(KEY, old, 0, True)
    cloud.handle_input(T0, frame)
    drain(cloud)
    cloud.provide_key(T0, LOGGER, KEY, status=(0, 4))
    assert [e.kind for e in drain(cloud)] == ["closed"], "status 3 is older than the stored 4"
    cloud = s.CloudSession(T0)
    old.status = (5, 2990, 79, (1, 0, 0))
    frame, _ = s.encode_upload(KEY, old, 0, True)
    cloud.handle_input(T0, frame)
    drain(cloud)
    cloud.provide_key(T0, LOGGER, KEY, status=(0, 4))
    [status, closed] = drain(cloud)
    assert status.kind == "status" and status.stamp == (0, 5) and status.status == (5, 2990, 79, (1, 0, 0))
    assert closed.kind == "closed"
