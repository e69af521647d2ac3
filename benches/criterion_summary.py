#!/usr/bin/env python3
"""Summarises criterion-N/ directories written by benches/criterion.sh.

For every benchmark: the median over the runs of criterion's median time per iteration, the
min-max over the runs, the rate per second of its throughput unit (elements or bytes), and,
within each group, its time divided by the group's first benchmark's (in criterion's run order) computed
run by run, then summarised as median (min-max).
"""
import json
import pathlib
import re
import statistics
import sys


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_rate(per_s, unit):
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_s >= scale:
            return f"{per_s / scale:.3g} {suffix}{unit}/s"
    return f"{per_s:.3g} {unit}/s"


def order_from_log(log):
    """Benchmark ids in the order criterion ran them."""
    ids = []
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"^Benchmarking (.+): Analyzing$", line)
        if m and m.group(1) not in ids:
            ids.append(m.group(1))
    return ids


def load_run(home):
    results = {}
    for bj in home.glob("**/new/benchmark.json"):
        meta = json.loads(bj.read_text())
        est = json.loads((bj.parent / "estimates.json").read_text())
        results[meta["full_id"]] = {
            "group": meta["group_id"],
            "median_ns": est["median"]["point_estimate"],
            "throughput": meta.get("throughput"),
        }
    return results


def main():
    out = pathlib.Path(sys.argv[1])
    runs = int(sys.argv[2])
    per_run = [load_run(out / f"criterion-{i}") for i in range(1, runs + 1)]
    order = order_from_log(out / "run-1.log")
    ids = [i for i in order if i in per_run[0]] + sorted(set(per_run[0]) - set(order))
    first_of_group = {}
    for i in ids:
        first_of_group.setdefault(per_run[0][i]["group"], i)
    print(f"\n{runs} run(s); per benchmark: median of the runs' medians (min-max over runs)")
    group = None
    for i in ids:
        g = per_run[0][i]["group"]
        if g != group:
            group = g
            print(f"\n[{g}]  ratio: time of this / time of {first_of_group[g]!r}, within each run")
        times = [r[i]["median_ns"] for r in per_run if i in r]
        med = statistics.median(times)
        line = f"  {i}: {fmt_time(med)} ({fmt_time(min(times))}-{fmt_time(max(times))})"
        tp = per_run[0][i]["throughput"]
        if tp:
            kind, n = next(iter(tp.items()))
            unit = "B" if kind.startswith("Bytes") else " elem"
            line += f" = {fmt_rate(n / med * 1e9, unit)}"
            if kind == "Elements" and n > 1:
                line += f" ({fmt_time(med / n)} per element)"
        ref = first_of_group[g]
        if ref != i:
            ratios = [r[i]["median_ns"] / r[ref]["median_ns"] for r in per_run if i in r and ref in r]
            line += (f"; ratio {statistics.median(ratios):.2f}x"
                     f" ({min(ratios):.2f}-{max(ratios):.2f})")
        print(line)


if __name__ == "__main__":
    main()
