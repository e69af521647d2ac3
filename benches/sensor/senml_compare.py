#!/usr/bin/env python3
"""SenML-JSON and SenML-CBOR (RFC 8428) sizes for the readings fleetwire's size example measured.

Run from the repository root, after the example wrote the readings:

    cargo run -p fleetwire-sensor --example sensor_size
    pip install cbor2
    python3 benches/sensor/senml_compare.py [benches/sensor/readings.json]

Two SenML forms are printed for each case:

- "compact" (the one to quote): SenML's most compact legal form (RFC 8428). Records are grouped
  by channel; the first record of each group sets the base name (the device URN followed by a
  one-letter channel name, so the resolved names stay unique), the base time and the base unit
  (base fields apply to every later record until redefined, section 4.1), and every other record
  carries only its value and its time relative to the base time. The group's first record also
  sets a base value (the channel's median), so each value is a small difference from it. In
  CBOR, values are decimal fractions (tag 4, which section 6 allows when they convert to the
  same double as the JSON number: 4 or 5 bytes for 0.3 or 2.7 where a 64-bit float takes 9) or
  integers when whole.
- "names in records": the base fields once, in the first record, and every record of a
  multi-channel pack naming its channel ("temperature", "humidity") and its unit where it
  differs from the base unit: what an encoder that keeps readings in time order produces.

Both use compact JSON separators and CBOR integer labels; the "names in records" form uses the
shortest float encoding (cbor2 canonical). No MAC, no framing and no envelope is counted
for SenML, while the fleetwire numbers include the frame header, the envelope and the 16-byte
MAC.
"""
import json
import sys
from decimal import Decimal

import cbor2

# RFC 8428 CBOR labels
BN, BT, BU, BV, N, U, V, T = -2, -3, -4, -5, 0, 1, 2, 6


def senml_records(case, start, interval, text_labels):
    names, units, scale = case["channels"], case["units"], case["scale"]
    width = len(names)
    values = case["values"]
    records = []
    for i in range(case["readings"]):
        t = i * interval
        for c in range(width):
            raw = values[i * width + c]
            rec = {}
            if not records:
                # One channel: its name goes into the base name and its unit into the base unit,
                # so the records carry only value and time.
                rec["bn"] = "urn:dev:id:100234:" + (names[0] if width == 1 else "")
                rec["bt"] = start
                rec["bu"] = units[0]
            if width > 1:
                rec["n"] = names[c]
                if units[c] != units[0]:
                    rec["u"] = units[c]
            rec["v"] = round(raw * scale, 1)
            if t:
                rec["t"] = t
            records.append(rec)
    if text_labels:
        return records
    keymap = {"bn": BN, "bt": BT, "bu": BU, "n": N, "u": U, "v": V, "t": T}
    return [{keymap[k]: v for k, v in rec.items()} for rec in records]


def senml_compact(case, start, interval, text_labels):
    """Grouped by channel, base fields at each group's start, then only value and time."""
    names, units, scale = case["channels"], case["units"], case["scale"]
    width = len(names)
    values = case["values"]
    short = [n[0] for n in names]
    assert len(set(short)) == width, "one-letter channel names must differ"
    records = []
    for c in range(width):
        series = [values[i * width + c] for i in range(case["readings"])]
        base = sorted(series)[len(series) // 2]  # the median: most values land near it
        for i in range(case["readings"]):
            rec = {}
            if i == 0:
                rec["bn"] = "urn:dev:id:100234:" + short[c]
                rec["bt"] = start
                rec["bu"] = units[c]
                rec["bv"] = round(base * scale, 1) if text_labels else Decimal(base) * Decimal(str(scale))
            raw = series[i] - base
            if text_labels:
                rec["v"] = round(raw * scale, 1)
            else:
                # RFC 8428 section 6 allows CBOR decimal fractions (tag 4) for values when they
                # convert to the same double as the JSON number: [-1, 213] is 5 bytes where the
                # 64-bit float 21.3 is 9; whole numbers go as integers.
                d = Decimal(raw) * Decimal(str(scale))
                rec["v"] = int(d) if d == d.to_integral_value() else d
            if i:
                rec["t"] = i * interval
            records.append(rec)
    if text_labels:
        return records
    keymap = {"bn": BN, "bt": BT, "bu": BU, "bv": BV, "v": V, "t": T}
    return [{keymap[k]: v for k, v in rec.items()} for rec in records]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "benches/sensor/readings.json"
    with open(path) as f:
        data = json.load(f)
    start, interval = data["start"], data["interval_s"]
    print("| channels | readings | fleetwire all-in | SenML form | SenML-JSON | SenML-CBOR | JSON/fleetwire | CBOR/fleetwire |")
    print("|---|---|---|---|---|---|---|---|")
    for case in data["cases"]:
        n = case["readings"]
        ours = case["fleetwire_uplink_bytes"]
        for form, build in (("compact", senml_compact), ("names in records", senml_records)):
            sj = len(json.dumps(build(case, start, interval, True), separators=(",", ":")).encode())
            sc = len(cbor2.dumps(build(case, start, interval, False), canonical=True))
            print(
                f"| {len(case['channels'])} | {n} | {ours} B = {ours / n:.2f} B/reading | {form} "
                f"| {sj} B = {sj / n:.2f} B/reading | {sc} B = {sc / n:.2f} B/reading "
                f"| {sj / ours:.1f}x | {sc / ours:.1f}x |"
            )

if __name__ == "__main__":
    main()
