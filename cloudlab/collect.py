#!/usr/bin/env python3
"""Summarize one run-cluster.sh run directory (stdlib only).

Usage: collect.py RUN_DIR [--servers S] [--clients C]

Reads what the corekv binary writes, by its exact keys:
  RUN_DIR/merged/merged.json   `corekv report merge --out RUN_DIR/merged
                               --monitor ...`: top-level ops_per_sec,
                               seed_style_ops_per_sec, p99_batch_us,
                               batch_latency_us {p50,p90,p99,p999,p9999,max,mean},
                               totals.errors, servers[] {node_id, address,
                               per_second_ops}, extra.utilization[] (one
                               `corekv monitor` summary per node, plus "node")
  RUN_DIR/clientJ/report.json  `corekv bench --out RUN_DIR/clientJ`: ops_per_sec,
                               p99_batch_us, totals.errors
  RUN_DIR/serverI.out          `corekv server` lines `stats node=N t=Ts ... ops/s=X ...`

Prints the totals both ways (client-measured; the seed's sum over server nodes
of each node's median per-second ops/s), per-node throughput, merged latency
percentiles and per-node utilization, and writes RUN_DIR/summary.json (the
fields sweep.sh puts in its CSV, and more). Exit status 1 if merged.json is
missing or malformed or no operation completed.
"""

import argparse
import glob
import json
import os
import re
import statistics
import sys


class BadRun(Exception):
    pass


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise BadRun(f"cannot read {path}: {e}")
    except ValueError as e:
        raise BadRun(f"{path} is not JSON: {e}")


def need(obj, key, path):
    if not isinstance(obj, dict) or key not in obj:
        raise BadRun(f"{path}: no '{key}' key")
    return obj[key]


def median(values):
    """Same definition as the binary's report::median (0 for no values)."""
    return statistics.median(values) if values else 0.0


def server_log_median(path):
    """Median of the `ops/s=` values of the seconds with traffic in a
    `corekv server` stdout, and how many such seconds there were."""
    vals = []
    with open(path, errors="replace") as f:
        for line in f:
            if not line.startswith("stats "):
                continue
            m = re.search(r"(?:^|\s)ops/s=(\d+(?:\.\d+)?)(?:\s|$)", line)
            if m is None:
                raise BadRun(f"{path}: stats line without ops/s=: {line.strip()}")
            vals.append(float(m.group(1)))
    busy = [v for v in vals if v > 0]
    return median(busy), len(busy)


def natural(path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def ops(x):
    return f"{x:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--servers", type=int, default=None)
    ap.add_argument("--clients", type=int, default=None)
    a = ap.parse_args()
    d = a.run_dir

    merged_path = os.path.join(d, "merged", "merged.json")
    merged = load(merged_path)
    total = float(need(merged, "ops_per_sec", merged_path))
    seed = float(need(merged, "seed_style_ops_per_sec", merged_path))
    p99 = float(need(merged, "p99_batch_us", merged_path))
    lat = need(merged, "batch_latency_us", merged_path)
    errors = int(need(need(merged, "totals", merged_path), "errors", merged_path))
    servers = need(merged, "servers", merged_path)
    util = merged.get("extra", {}).get("utilization", [])

    reports = sorted(glob.glob(os.path.join(d, "client*", "report.json")), key=natural)
    server_outs = sorted((p for p in glob.glob(os.path.join(d, "server*.out"))
                          if re.fullmatch(r"server\d+\.out", os.path.basename(p))), key=natural)

    print("== totals ==")
    print(f"  client-measured:                              {ops(total):>14} ops/s")
    print(f"  seed-style (sum of per-node median ops/s):    {ops(seed):>14} ops/s")

    print("== per-node throughput ==")
    per_node = []
    log_sum = 0.0
    for s in servers:
        node_id = need(s, "node_id", merged_path)
        med = median([float(v) for v in need(s, "per_second_ops", merged_path)])
        name = f"server{node_id}"
        out = os.path.join(d, f"{name}.out")
        log_med, busy = server_log_median(out) if os.path.exists(out) else (0.0, 0)
        log_sum += log_med
        print(f"  {name:<9} {s['address']:<22} median {ops(med):>12} ops/s "
              f"(server log: {ops(log_med)} over {busy} busy s)")
        per_node.append({"node": name, "address": s["address"], "median_ops_per_sec": med,
                         "server_log_median_ops_per_sec": log_med})
    for p in reports:
        r = load(p)
        name = os.path.basename(os.path.dirname(p))
        c_ops = float(need(r, "ops_per_sec", p))
        c_err = int(need(need(r, "totals", p), "errors", p))
        c_p99 = float(need(r, "p99_batch_us", p))
        print(f"  {name:<9} {'client':<22} {ops(c_ops):>19} ops/s  p99 batch {c_p99:,.1f} µs"
              f"{f'  ERRORS {c_err}' if c_err else ''}")
        per_node.append({"node": name, "ops_per_sec": c_ops, "p99_batch_us": c_p99,
                         "errors": c_err})
    if server_outs:
        print(f"  (seed-style from the servers' own stats lines: {ops(log_sum)} ops/s)")

    print("== merged latency per batch (µs) ==")
    keys = ["p50", "p90", "p99", "p999", "p9999", "max", "mean"]
    print("  " + " ".join(f"{k:>10}" for k in ["count"] + keys))
    print("  " + f"{int(need(lat, 'count', merged_path)):>10} "
          + " ".join(f"{float(need(lat, k, merged_path)):>10,.1f}" for k in keys))

    if util:
        print("== utilization (corekv monitor, mean over the run) ==")
        for u in util:
            proc = u.get("mean_proc_cpu_pct")
            rss = u.get("max_rss_bytes")
            print(f"  {u['node']:<9} node cpu {u['mean_node_cpu_pct']:5.1f}% "
                  f"(max {u['max_node_cpu_pct']:5.1f}%) | corekv cpu "
                  f"{'-' if proc is None else f'{proc:.0f}%':>5} | rss max "
                  f"{'-' if rss is None else f'{rss / 1e6:.1f} MB':>9} | net rx "
                  f"{u['mean_rx_bytes_per_sec'] / 1e6:,.1f} tx {u['mean_tx_bytes_per_sec'] / 1e6:,.1f} MB/s "
                  f"({u['mean_total_gbit_per_sec']:.2f} Gbit/s)")

    warnings = []
    if a.servers is not None and len(servers) != a.servers:
        warnings.append(f"merged.json has {len(servers)} server nodes, expected {a.servers}")
    if a.clients is not None and len(reports) != a.clients:
        warnings.append(f"{len(reports)} client reports, expected {a.clients}")
    if errors:
        warnings.append(f"{errors} operations failed (totals.errors)")
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)

    summary = {
        "servers": a.servers,
        "clients": a.clients,
        "ops_per_sec": total,
        "seed_style_ops_per_sec": seed,
        "seed_style_from_server_logs_ops_per_sec": log_sum,
        "p99_batch_us": p99,
        "batch_latency_us": lat,
        "errors": errors,
        "server_nodes": len(servers),
        "nodes": per_node,
        "utilization": util,
        "warnings": warnings,
    }
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    if total <= 0:
        raise BadRun("no operation completed (ops_per_sec is 0)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BadRun as e:
        print(f"collect.py: {e}", file=sys.stderr)
        sys.exit(1)
