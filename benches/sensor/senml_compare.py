#!/usr/bin/env python3
"""SenML-JSON and SenML-CBOR (RFC 8428) sizes for the readings fleetwire's size example measured.

Run from the repository root, after the example wrote the readings:

    cargo run -p fleetwire-sensor --example sensor_size
    pip install cbor2
    python3 benches/sensor/senml_compare.py [benches/sensor/readings.json]

SenML gets every benefit of the doubt: base name, base time and base unit in the first record
only (with one channel, records carry only value and time), times relative to the base time, compact JSON separators, CBOR integer labels and the
shortest float encoding (cbor2 canonical). No MAC, no framing and no envelope is counted for
SenML, while the fleetwire numbers include the frame header, the envelope and the 16-byte MAC.
"""
import json
import sys

import cbor2

# RFC 8428 CBOR labels
BN, BT, BU, N, U, V, T = -2, -3, -4, 0, 1, 2, 6


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


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "benches/sensor/readings.json"
    with open(path) as f:
        data = json.load(f)
    start, interval = data["start"], data["interval_s"]
    print("| channels | readings | fleetwire all-in | SenML-JSON | SenML-CBOR | JSON/fleetwire | CBOR/fleetwire |")
    print("|---|---|---|---|---|---|---|")
    for case in data["cases"]:
        n = case["readings"]
        ours = case["fleetwire_uplink_bytes"]
        sj = len(json.dumps(senml_records(case, start, interval, True), separators=(",", ":")).encode())
        sc = len(cbor2.dumps(senml_records(case, start, interval, False), canonical=True))
        print(
            f"| {len(case['channels'])} | {n} | {ours} B = {ours / n:.2f} B/reading "
            f"| {sj} B = {sj / n:.2f} B/reading | {sc} B = {sc / n:.2f} B/reading "
            f"| {sj / ours:.1f}x | {sc / ours:.1f}x |"
        )


if __name__ == "__main__":
    main()
