//! Rendering reports for people and their tools: the fixed-width table of
//! one run, the side-by-side comparison of several, the one-line CSV summary
//! (redis-benchmark's `--csv` columns), the standard `.hgrm` percentile
//! output and the `.hlog` interval log. Reads reports; computes no figure a
//! report does not carry.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::{BenchReport, LatencyHistogram, LoadMode};
use crate::units::fmt_rate;

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn latency_row(out: &mut String, name: &str, h: &LatencyHistogram) {
    let _ = writeln!(
        out,
        "  {:<8} {:>12} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
        name,
        h.count(),
        us(h.p50()),
        us(h.p90()),
        us(h.p99()),
        us(h.p999()),
        us(h.p9999()),
        us(h.max()),
        h.mean() / 1000.0
    );
}

/// Human-readable fixed-width report of one run.
pub fn render_table(r: &BenchReport) -> String {
    let mut o = String::new();
    run_header(&mut o, r);
    let _ = writeln!(o);
    throughput_section(&mut o, r);
    let _ = writeln!(o);
    latency_section(&mut o, r);
    let _ = writeln!(o);
    client_section(&mut o, r);
    if !r.servers.is_empty() {
        let _ = writeln!(o);
        servers_section(&mut o, r);
    }
    o
}

/// What ran: tool, target, hosts, workload, load model.
fn run_header(o: &mut String, r: &BenchReport) {
    let m = &r.meta;
    let _ = writeln!(
        o,
        "corekv bench {} — target {} [{}] from {}",
        m.tool_version,
        m.target,
        m.hosts.join(", "),
        m.hostname
    );
    let mode = match m.mode {
        LoadMode::Closed => "closed loop".to_string(),
        LoadMode::Open { rate_ops_per_sec } => {
            format!("open loop @ {}op/s", fmt_rate(rate_ops_per_sec))
        }
    };
    let _ = writeln!(
        o,
        "workload {} (read {:.2}, {} theta {}, {} records, {} B values), batch {}, \
         {} sessions on cpus {:?}, {} s (+{} s warm-up), {}, seed {}, {} client process(es)",
        m.workload,
        m.read_ratio,
        m.distribution,
        m.theta,
        m.records,
        m.value_size,
        m.batch,
        if m.total_sessions == 0 {
            format!("{}/worker", m.sessions_per_worker)
        } else {
            m.total_sessions.to_string()
        },
        m.worker_cpus,
        m.secs,
        m.warmup_secs,
        mode,
        m.base_seed,
        m.client_processes
    );
}

/// Client-measured throughput, and the seed-style total when servers reported.
fn throughput_section(o: &mut String, r: &BenchReport) {
    let t = &r.totals;
    let _ = writeln!(
        o,
        "Throughput (client-measured over {:.2} s)",
        t.elapsed_secs
    );
    let _ = writeln!(
        o,
        "  ops     {:>14} {:>14}op/s",
        t.ops,
        fmt_rate(r.client_ops_per_sec())
    );
    let _ = writeln!(
        o,
        "  gets    {:>14} {:>14}op/s   hits {}, misses {}",
        t.gets,
        fmt_rate(per_sec(t.gets, t.elapsed_secs)),
        t.gets.saturating_sub(t.get_misses),
        t.get_misses
    );
    let _ = writeln!(
        o,
        "  puts    {:>14} {:>14}op/s",
        t.puts,
        fmt_rate(per_sec(t.puts, t.elapsed_secs))
    );
    let _ = writeln!(o, "  errors  {:>14}", t.errors);
    if r.meta.cache_aside {
        let _ = writeln!(
            o,
            "  cache-aside miss ratio {:.4} after warm-up, {:.4} over the whole run \
             (warm-up included); puts are the fills",
            r.miss_ratio(),
            r.miss_ratio_whole_run()
        );
    }
    if !r.servers.is_empty() {
        let _ = writeln!(
            o,
            "  seed-style total (sum of per-node median ops/s): {}op/s",
            fmt_rate(r.seed_style_total())
        );
    }
}

/// Batch latency percentiles; GET and SET apart at batch 1 (at larger
/// batches every op's latency is its batch's, so those rows would repeat the
/// batch row).
fn latency_section(o: &mut String, r: &BenchReport) {
    let _ = writeln!(o, "Latency (µs)");
    let _ = writeln!(
        o,
        "  {:<8} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "", "count", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"
    );
    latency_row(o, "batch", &r.batch_latency);
    if r.send_lag.count() > 0 {
        // Open loop: the part of a batch's latency before it left.
        latency_row(o, "send lag", &r.send_lag);
    }
    if r.meta.batch == 1 {
        latency_row(o, "GET", &r.get_latency);
        latency_row(o, "SET", &r.set_latency);
    } else {
        let _ = writeln!(
            o,
            "  (GET and SET ride in the same batches, so each op's latency is its batch's;\n   \
             report.json has them apart as get_latency and set_latency)"
        );
    }
}

/// The client's bytes, CPU and generator speed.
fn client_section(o: &mut String, r: &BenchReport) {
    let _ = writeln!(o, "Client");
    let _ = writeln!(
        o,
        "  bytes/op        sent {:.1}, received {:.1}",
        r.bytes_sent_per_op(),
        r.bytes_received_per_op()
    );
    if r.redirects > 0 {
        let _ = writeln!(
            o,
            "  redirects       {} ops re-sent after MOVED",
            r.redirects
        );
    }
    let _ = writeln!(
        o,
        "  client CPU      {:.2} s ({:.3} µs/op)",
        r.client_cpu_secs,
        r.client_cpu_us_per_op()
    );
    let _ = writeln!(
        o,
        "  generator rate  {}op/s per thread (pure generation)",
        fmt_rate(r.generation_rate_ops)
    );
}

/// Per-node throughput, then per-shard counters.
fn servers_section(o: &mut String, r: &BenchReport) {
    let _ = writeln!(o, "Servers");
    let _ = writeln!(
        o,
        "  {:<6} {:<24} {:>14} {:>14} {:>8}",
        "node", "address", "median op/s", "mean op/s", "samples"
    );
    for s in &r.servers {
        let mean = s.mean_ops_per_sec();
        let _ = writeln!(
            o,
            "  {:<6} {:<24} {:>14.0} {:>14.0} {:>8}",
            s.node_id,
            s.address,
            s.median_ops_per_sec(),
            mean,
            s.per_second_ops.len()
        );
        if !s.durability.is_empty() {
            let _ = writeln!(o, "         durability: {}", s.durability);
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "  {:<6} {:<6} {:>12} {:>12} {:>12} {:>10} {:>10} {:>12} {:>6} {:>8} {:>12}",
        "node",
        "shard",
        "ops",
        "gets",
        "puts",
        "dels",
        "keys",
        "mem MiB",
        "conns",
        "errors",
        "op/s"
    );
    for s in &r.servers {
        for sh in &s.shards {
            let _ = writeln!(
                o,
                "  {:<6} {:<6} {:>12} {:>12} {:>12} {:>10} {:>10} {:>12.1} {:>6} {:>8} {:>12.0}",
                s.node_id,
                sh.shard_id,
                sh.ops,
                sh.gets,
                sh.puts,
                sh.dels,
                sh.keys,
                sh.memory_bytes as f64 / (1024.0 * 1024.0),
                sh.connections,
                sh.errors,
                per_sec(sh.ops, r.totals.elapsed_secs)
            );
        }
    }
}

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// The CSV header of [`csv_summary`]: redis-benchmark's `--csv` columns.
pub const CSV_HEADER: &str = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\
\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"";

/// A one-line summary in redis-benchmark's `--csv` layout (header, then one
/// row): `test` names the run (`corekv YCSB-B batch 8192`), `rps` is the
/// client-measured op/s, and the latencies are the batch's (for batch 1, each
/// operation's), in milliseconds with three decimals, as redis-benchmark
/// prints them.
pub fn csv_summary(r: &BenchReport) -> String {
    let h = &r.batch_latency;
    let ms = |ns: u64| format!("{:.3}", ns as f64 / 1e6);
    let test = format!(
        "{} {} batch {}",
        r.meta.target, r.meta.workload, r.meta.batch
    );
    format!(
        "{CSV_HEADER}\n\"{}\",\"{:.2}\",\"{:.3}\",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\"\n",
        test.replace('"', "'"),
        r.client_ops_per_sec(),
        h.mean() / 1e6,
        ms(h.min()),
        ms(h.p50()),
        ms(h.percentile(95.0)),
        ms(h.p99()),
        ms(h.max()),
    )
}

/// Side-by-side comparison (e.g. corekv vs redis-server): client ops/s,
/// seed-style total, p50/p99 batch latency and throughput ratio to the
/// first row.
pub fn render_comparison(rows: &[(&str, &BenchReport)]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<20} {:>14} {:>16} {:>12} {:>12} {:>12} {:>9}",
        "run",
        "client op/s",
        "seed-style op/s",
        "p50 batch",
        "p99 batch",
        "p99.9 batch",
        "vs first"
    );
    let _ = writeln!(
        o,
        "{:<20} {:>14} {:>16} {:>12} {:>12} {:>12} {:>9}",
        "", "", "", "µs", "µs", "µs", ""
    );
    let base = rows
        .first()
        .map(|(_, r)| r.client_ops_per_sec())
        .unwrap_or(0.0);
    for (name, r) in rows {
        let ratio = if base > 0.0 {
            format!("{:.2}x", r.client_ops_per_sec() / base)
        } else {
            "-".to_string()
        };
        let seed = if r.servers.is_empty() {
            "-".to_string()
        } else {
            format!("{:.0}", r.seed_style_total())
        };
        let _ = writeln!(
            o,
            "{:<20} {:>14.0} {:>16} {:>12.1} {:>12.1} {:>12.1} {:>9}",
            name,
            r.client_ops_per_sec(),
            seed,
            us(r.batch_latency.p50()),
            us(r.batch_latency.p99()),
            us(r.batch_latency.p999()),
            ratio
        );
    }
    o
}

/// The HdrHistogram percentile distribution text (`.hgrm`), values in
/// microseconds, 5 ticks per half distance — the same layout as Java
/// HdrHistogram's `outputPercentileDistribution(out, 5, 1000.0)`, readable by
/// the standard HdrHistogram plotter.
pub fn hgrm_string(hist: &LatencyHistogram) -> String {
    const SCALE: f64 = 1000.0; // ns -> µs
    let h = hist.inner();
    let digits = h.sigfig() as usize;
    let mut o = String::new();
    let _ = write!(
        o,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / SCALE;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    o,
                    "{:>12.digits$} {:>2.12} {:>10} {:>14.2}",
                    value,
                    q,
                    total,
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(o, "{:>12.digits$} {:>2.12} {:>10}", value, q, total);
            }
        }
    }
    let _ = writeln!(
        o,
        "#[Mean    = {:>12.digits$}, StdDeviation   = {:>12.digits$}]",
        hist.mean() / SCALE,
        hist.stdev() / SCALE
    );
    let _ = writeln!(
        o,
        "#[Max     = {:>12.digits$}, Total count    = {:>12}]",
        h.max() as f64 / SCALE,
        h.len()
    );
    // counts_len = (buckets + 1) * sub_bucket_count / 2.
    let sub_buckets = 2 * h.distinct_values() / (h.buckets() as usize + 1);
    let _ = writeln!(
        o,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets
    );
    o
}

/// Writes [`hgrm_string`] to `path`.
pub fn write_hgrm(hist: &LatencyHistogram, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, hgrm_string(hist)).with_context(|| format!("writing {}", path.display()))
}

/// The throughput ratios of the first report to each other one, client-
/// measured and (when both have server figures) seed-style.
pub fn render_ratios(rows: &[(&str, &BenchReport)]) -> String {
    let mut o = String::new();
    let Some((first_name, first)) = rows.first() else {
        return o;
    };
    for (name, r) in &rows[1..] {
        let (a, b) = (first.client_ops_per_sec(), r.client_ops_per_sec());
        if b > 0.0 {
            let _ = writeln!(
                o,
                "{first_name} / {name}: {:.2}x throughput (client-measured)",
                a / b
            );
        }
        let (a, b) = (first.seed_style_total(), r.seed_style_total());
        if a > 0.0 && b > 0.0 {
            let _ = writeln!(
                o,
                "{first_name} / {name}: {:.2}x throughput (seed-style, from server counters)",
                a / b
            );
        }
    }
    o
}

/// Writes `r.intervals` as an HdrHistogram interval log (`.hlog`: the format
/// of Java HdrHistogram's `HistogramLogWriter`, compressed V2 histograms), so
/// HdrHistogram's own tools (`HistogramLogProcessor`, HdrHistogramVisualizer)
/// plot and merge them. Values are nanoseconds; the max column is in ms
/// (`--outputValueUnitRatio 1000000` turns the tools' values into ms). Tag
/// `batch`. Does nothing when there are no intervals.
pub fn write_hlog(r: &BenchReport, path: impl AsRef<Path>) -> Result<()> {
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    use hdrhistogram::serialization::V2DeflateSerializer;
    let Some(first) = r.intervals.first() else {
        return Ok(());
    };
    let path = path.as_ref();
    let base = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(first.start_unix_secs);
    let mut out = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    {
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "corekv bench {} (git {}): {} {}, batch {}; batch latency per second, values in ns",
                r.meta.tool_version,
                r.meta.corekv_commit,
                r.meta.target,
                r.meta.workload,
                r.meta.batch
            ))
            .with_base_time(base)
            .with_start_time(base)
            .with_max_value_divisor(1e6)
            .begin_log_with(&mut out, &mut ser)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        let tag = Tag::new("batch");
        for iv in &r.intervals {
            let offset = (iv.start_unix_secs - first.start_unix_secs).max(0.0);
            w.write_histogram(
                iv.batch_latency.inner(),
                std::time::Duration::from_secs_f64(offset),
                std::time::Duration::from_secs_f64(iv.secs.max(0.0)),
                tag,
            )
            .map_err(|e| anyhow::anyhow!("writing {}: {e:?}", path.display()))?;
        }
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}
