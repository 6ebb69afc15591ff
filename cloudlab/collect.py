#!/usr/bin/env python3
"""Summarize one run-cluster.sh run directory (stdlib only).

Usage: collect.py RUN_DIR [--servers S] [--clients C]

Reads, all optional and tolerant of missing files:
  RUN_DIR/merged/merged.json        from `corekv report merge`
  RUN_DIR/client*/report.json       from `corekv bench --out RUN_DIR/clientJ`
  RUN_DIR/server*.out               `stats node=N ... ops/s=X ...` lines
  RUN_DIR/*.monitor.json            from `corekv monitor` ({"samples", "summary"})
Prints totals both ways (client-measured, and the seed's: sum over server
nodes of the median per-second ops/s), per-node throughput, latency
percentiles and utilization, and writes RUN_DIR/summary.json with the fields
sweep.sh puts in its CSV.
"""

import argparse
import glob
import json
import math
import os
import re
import statistics
import sys

OPS_KEYS = ["ops_per_sec", "total_ops_per_sec", "throughput_ops_per_sec", "throughput"]
SEED_KEYS = ["seed_style_ops_per_sec", "seed_ops_per_sec", "server_median_sum_ops_per_sec"]
STATS_OPS_KEYS = ["ops/s", "ops_per_sec", "ops_s", "ops"]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        if os.path.exists(path):
            print(f"warning: cannot read {path}: {e}", file=sys.stderr)
        return None


def flatten(obj, prefix=""):
    """Yield (dotted.path, value) for every number in a JSON tree."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from flatten(v, f"{prefix}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield prefix, float(obj)


def find_num(obj, keys):
    """First number whose last path component is one of keys, shallowest first
    (skipping per-node / per-second arrays)."""
    best = None
    for path, val in flatten(obj):
        if "[" in path:
            continue
        last = path.rsplit(".", 1)[-1]
        if last in keys:
            depth = path.count(".")
            rank = (depth, keys.index(last))
            if best is None or rank < best[0]:
                best = (rank, val)
    return None if best is None else best[1]


def find_p99_batch_us(obj):
    flat = [(p, v) for p, v in flatten(obj) if "[" not in p]
    rules = [
        lambda p: p.endswith("p99_batch_us"),
        lambda p: "batch" in p and re.search(r"(^|[._])p99(_us)?$", p),
        lambda p: re.search(r"(^|[._])p99_us$", p),
    ]
    for rule in rules:
        for p, v in flat:
            if rule(p):
                return v
    return None


def parse_stats_line(line):
    """`stats node=0 get/s=1 put/s=2 ops/s=3 ...` -> {key: value}."""
    out = {}
    for tok in line.split()[1:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            try:
                out[k] = float(v.replace(",", ""))
            except ValueError:
                out[k] = v
    return out


def server_median(path):
    """Median per-second ops/s over the seconds with traffic, or None."""
    vals = []
    node = None
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if not line.startswith("stats "):
                    continue
                kv = parse_stats_line(line)
                node = kv.get("node", node)
                for k in STATS_OPS_KEYS:
                    if isinstance(kv.get(k), float):
                        vals.append(kv[k])
                        break
    except OSError:
        return None, None, 0
    busy = [v for v in vals if v > 0]
    return (statistics.median(busy) if busy else None), node, len(busy)


def fmt_ops(x):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.0f}"


def natural(path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--servers", type=int, default=None)
    ap.add_argument("--clients", type=int, default=None)
    a = ap.parse_args()
    d = a.run_dir

    merged = load(os.path.join(d, "merged", "merged.json"))
    reports = sorted(glob.glob(os.path.join(d, "client*", "report.json")), key=natural)
    server_outs = sorted((p for p in glob.glob(os.path.join(d, "server*.out"))
                          if re.fullmatch(r"server\d+\.out", os.path.basename(p))), key=natural)
    monitors = sorted(glob.glob(os.path.join(d, "*.monitor.json")), key=natural)

    print("== per-node throughput ==")
    seed_sum, seed_nodes = 0.0, 0
    for p in server_outs:
        med, node, n = server_median(p)
        name = os.path.basename(p)[: -len(".out")]
        print(f"  {name:<10} median {fmt_ops(med):>14} ops/s over {n} busy seconds")
        if med is not None:
            seed_sum += med
            seed_nodes += 1
    client_sum, client_n = 0.0, 0
    for p in reports:
        r = load(p)
        ops = find_num(r, OPS_KEYS) if r is not None else None
        name = os.path.basename(os.path.dirname(p))
        print(f"  {name:<10} client  {fmt_ops(ops):>14} ops/s")
        if ops is not None:
            client_sum += ops
            client_n += 1

    ops = find_num(merged, OPS_KEYS) if merged is not None else None
    seed = find_num(merged, SEED_KEYS) if merged is not None else None
    p99 = find_p99_batch_us(merged) if merged is not None else None
    ops_src = "merged.json"
    seed_src = "merged.json"
    if ops is None and client_n:
        ops, ops_src = client_sum, f"sum of {client_n} client reports"
    if seed is None and seed_nodes:
        seed, seed_src = seed_sum, f"server logs ({seed_nodes} nodes)"
    if p99 is None and reports:
        vals = [find_p99_batch_us(load(p) or {}) for p in reports]
        vals = [v for v in vals if v is not None]
        if vals:
            p99 = max(vals)  # conservative without the merged histogram

    print("== totals ==")
    print(f"  client-measured: {fmt_ops(ops)} ops/s  [{ops_src if ops is not None else 'n/a'}]")
    print(f"  seed-style (sum of per-server median ops/s): {fmt_ops(seed)} ops/s  "
          f"[{seed_src if seed is not None else 'n/a'}]")
    if seed_nodes and merged is not None and find_num(merged, SEED_KEYS) is not None:
        print(f"  seed-style from server logs: {fmt_ops(seed_sum)} ops/s")

    if merged is not None:
        lat = [(p, v) for p, v in flatten(merged)
               if "[" not in p and re.search(r"(^|[._])(p50|p90|p99|p999|p99_9|max|mean)(_us)?$", p)
               and ("lat" in p or "batch" in p or p.endswith("_us"))]
        if lat:
            print("== merged latency ==")
            for p, v in lat[:16]:
                print(f"  {p:<40} {v:>12,.1f}")

    if monitors:
        print("== utilization (corekv monitor) ==")
        for p in monitors:
            m = load(p) or {}
            s = m.get("summary") or {}
            name = os.path.basename(p)[: -len(".monitor.json")]
            if not s or not s.get("samples"):
                print(f"  {name:<10} no samples")
                continue
            rss = s.get("max_rss_bytes")
            rss_txt = f" rss max {rss / 1e9:.2f} GB |" if rss else ""
            print(f"  {name:<10} cpu mean {s.get('mean_node_cpu_pct', 0):5.1f}% "
                  f"max {s.get('max_node_cpu_pct', 0):5.1f}% |{rss_txt} "
                  f"mem used max {s.get('max_mem_used_bytes', 0) / 1e9:.2f} GB | "
                  f"net rx {s.get('mean_rx_gbit_per_sec', 0):.2f} tx {s.get('mean_tx_gbit_per_sec', 0):.2f} "
                  f"Gbit/s ({s.get('samples')} samples)")

    summary = {
        "servers": a.servers,
        "clients": a.clients,
        "ops_per_sec": ops,
        "seed_style_ops_per_sec": seed,
        "p99_batch_us": p99,
        "ops_source": ops_src if ops is not None else None,
        "seed_style_source": seed_src if seed is not None else None,
    }
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return 0 if ops is not None or seed is not None else 1


if __name__ == "__main__":
    sys.exit(main())
