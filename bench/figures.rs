//! Which figures a run gets and what is in them: turning reports, `corekv
//! monitor` samples and sweep CSVs into named series, titles and axes, then
//! handing them to [`super::plot`] to draw. Owns figure shaping; it draws
//! nothing itself, measures nothing and computes no report figure (those are
//! `super::report`'s methods).

use std::path::Path;

use anyhow::{bail, Context as _, Result};

use super::plot;
use super::report::{self, BenchReport};
use super::sysstat::{NodeUtilization, UtilizationSample};

/// Two footer lines for a report's plots: what built and ran it, where and
/// when, and the command line.
pub fn footer(r: &BenchReport) -> String {
    let m = &r.meta;
    let mut first = Vec::new();
    if !m.corekv_commit.is_empty() {
        first.push(format!(
            "corekv {} (git {})",
            m.tool_version, m.corekv_commit
        ));
    }
    if !m.date.is_empty() {
        first.push(m.date.clone());
    }
    let mach = &m.machine;
    if mach.cores > 0 {
        let model = if mach.cpu_model.is_empty() {
            "unknown CPU"
        } else {
            &mach.cpu_model
        };
        first.push(format!("{} × {model}, Linux {}", mach.cores, mach.kernel));
    }
    if !m.hostname.is_empty() {
        first.push(format!("host {}", m.hostname));
    }
    let mut out = first.join(" · ");
    if !m.command_line.is_empty() {
        out.push('\n');
        out.push_str(&m.command_line.join(" "));
    }
    out
}

/// A run's two figures in `dir`: `latency.png` (percentile curve of the
/// batch latency; at batch 1, GET and SET apart) and `throughput.png`
/// (client-measured and per-node server throughput over time), both with
/// the [`footer`]. (Every op's latency is its batch's, so a per-op curve
/// would lie on the batch curve.)
pub fn plot_run(r: &BenchReport, dir: &Path) -> Result<()> {
    let target = &r.meta.target;
    let foot = footer(r);
    let mut curves = vec![("per batch (send → last reply)", &r.batch_latency)];
    if r.meta.batch == 1 {
        // At batch 1 a batch is one operation: GET and SET apart.
        curves = vec![("GET", &r.get_latency), ("SET", &r.set_latency)];
    }
    curves.retain(|(_, h)| !h.is_empty());
    plot::plot_latency_percentiles_footed(
        &curves,
        dir.join("latency.png"),
        &format!("{target} latency — {}", r.describe()),
        &foot,
    )?;
    let client = r.client_mops_series();
    let mut names = vec![format!(
        "client-measured ({} process{})",
        r.meta.client_processes,
        if r.meta.client_processes == 1 {
            ""
        } else {
            "es"
        }
    )];
    let mut lines = vec![client];
    for s in &r.servers {
        names.push(format!("server node {} ({})", s.node_id, s.address));
        lines.push(s.mops_series());
    }
    let series: Vec<(&str, &[(f64, f64)])> = names
        .iter()
        .map(|n| n.as_str())
        .zip(lines.iter().map(|l| l.as_slice()))
        .collect();
    plot::plot_timeline_footed(
        &series,
        dir.join("throughput.png"),
        &format!("{target} throughput — {}", r.describe()),
        "Throughput (million op/s)",
        &foot,
    )?;
    Ok(())
}

/// The title of a run's utilization figure.
pub fn utilization_title(r: &BenchReport) -> String {
    format!("{} utilization — {}", r.meta.target, r.describe())
}

/// One PNG: node CPU busy %, process CPU %, process RSS and network rx+tx
/// over time, one line per node, time aligned across nodes by the samples'
/// wall clock (0 = start of the earliest sample interval).
pub fn plot_utilization(
    nodes: &[NodeUtilization],
    path: impl AsRef<Path>,
    title: &str,
) -> Result<()> {
    let t0 = nodes
        .iter()
        .flat_map(|n| n.samples.iter().map(|s| s.unix_secs - s.interval_secs))
        .fold(f64::INFINITY, f64::min);
    let series = |f: &dyn Fn(&UtilizationSample) -> Option<f64>| -> Vec<Vec<(f64, f64)>> {
        nodes
            .iter()
            .map(|n| {
                n.samples
                    .iter()
                    .filter_map(|s| f(s).map(|y| (s.unix_secs - t0, y)))
                    .collect()
            })
            .collect()
    };
    let cpu = series(&|s| Some(s.node_cpu_pct));
    let proc_cpu = series(&|s| s.proc_cpu_pct);
    let rss = series(&|s| s.proc_rss_bytes.map(|b| b as f64 / 1e6));
    let net = series(&|s| Some((s.net_rx_bytes_per_sec + s.net_tx_bytes_per_sec) / 1e6));
    fn named<'a>(
        nodes: &'a [NodeUtilization],
        lines: &'a [Vec<(f64, f64)>],
    ) -> Vec<(&'a str, &'a [(f64, f64)])> {
        nodes
            .iter()
            .zip(lines)
            .filter(|(_, l)| !l.is_empty())
            .map(|(n, l)| (n.name.as_str(), l.as_slice()))
            .collect()
    }
    let mut panels = vec![plot::TimelinePanel {
        title: "Node CPU busy",
        y_label: "CPU busy (% of all the node's CPUs)",
        series: named(nodes, &cpu),
    }];
    let proc_series = named(nodes, &proc_cpu);
    if !proc_series.is_empty() {
        panels.push(plot::TimelinePanel {
            title: "corekv process CPU",
            y_label: "CPU (% of one CPU)",
            series: proc_series,
        });
    }
    let rss_series = named(nodes, &rss);
    if !rss_series.is_empty() {
        panels.push(plot::TimelinePanel {
            title: "corekv process RSS",
            y_label: "Resident set size (MB)",
            series: rss_series,
        });
    }
    panels.push(plot::TimelinePanel {
        title: "Network, rx + tx of the counted interfaces",
        y_label: "Network (MB/s)",
        series: named(nodes, &net),
    });
    plot::plot_timeline_panels(&panels, path, title)
}

/// One row of a sweep CSV.
#[derive(Debug, Clone, PartialEq)]
struct SweepRow {
    param: String,
    value: f64,
    servers: String,
    clients: String,
    ops_per_sec: Option<f64>,
    seed_style: Option<f64>,
    p99_us: Option<f64>,
}

/// Groups repeated measurements of one x into its median, min and max
/// (points in x order).
fn spread(points: impl IntoIterator<Item = (f64, f64)>) -> Vec<plot::SweepPoint> {
    let mut by_x: Vec<(f64, Vec<f64>)> = Vec::new();
    for (x, y) in points {
        match by_x.iter_mut().find(|(x0, _)| *x0 == x) {
            Some((_, ys)) => ys.push(y),
            None => by_x.push((x, vec![y])),
        }
    }
    by_x.sort_by(|a, b| a.0.total_cmp(&b.0));
    by_x.into_iter()
        .map(|(x, mut ys)| {
            ys.sort_by(|a, b| a.total_cmp(b));
            plot::SweepPoint {
                x,
                median: report::median(&ys),
                min: ys[0],
                max: ys[ys.len() - 1],
            }
        })
        .collect()
}

/// Parses a sweep CSV (`cloudlab/sweep.sh`, `bench/sweep.sh`):
/// `param,value,servers,clients,ops_per_sec[,seed_style_ops_per_sec][,p99_batch_us]`,
/// one row per run (a point may repeat).
fn parse_sweep_csv(text: &str) -> Result<Vec<SweepRow>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .context("empty CSV")?
        .split(',')
        .map(str::trim)
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("CSV has no {name:?} column (header: {})", header.join(",")))
    };
    let (ip, iv, is, ic, io) = (
        col("param")?,
        col("value")?,
        col("servers")?,
        col("clients")?,
        col("ops_per_sec")?,
    );
    let iseed = col("seed_style_ops_per_sec").ok();
    let ip99 = col("p99_batch_us").ok();
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize| f.get(i).copied().unwrap_or("");
        let num = |i: usize| get(i).parse::<f64>().ok().filter(|x| x.is_finite());
        let Some(value) = num(iv) else {
            bail!("line {}: value {:?} is not a number", n + 2, get(iv));
        };
        rows.push(SweepRow {
            param: get(ip).to_string(),
            value,
            servers: get(is).to_string(),
            clients: get(ic).to_string(),
            ops_per_sec: num(io),
            seed_style: iseed.and_then(num),
            p99_us: ip99.and_then(num),
        });
    }
    Ok(rows)
}

/// One throughput-vs-parameter PNG per swept parameter of a sweep CSV
/// (the first at `out`, the others beside it), each point the median of its
/// repeats with a min–max bar, and beside each a p99-batch-latency PNG
/// (`<stem>-p99.png`) when the CSV has latencies. Its length is the series
/// shaping of three kinds of sweep, kept in one place on purpose.
pub fn plot_sweep(csv: &Path, out: &Path, title: Option<&str>) -> Result<()> {
    let text =
        std::fs::read_to_string(csv).with_context(|| format!("reading {}", csv.display()))?;
    let rows = parse_sweep_csv(&text).with_context(|| format!("parsing {}", csv.display()))?;
    let mut params: Vec<String> = Vec::new();
    for r in &rows {
        if !params.contains(&r.param) {
            params.push(r.param.clone());
        }
    }
    if params.is_empty() {
        bail!("{}: no data rows", csv.display());
    }
    let prefix = title.unwrap_or("corekv");
    for (i, param) in params.iter().enumerate() {
        let path = if i == 0 {
            out.to_path_buf()
        } else {
            let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("sweep");
            out.with_file_name(format!("{stem}-{param}.png"))
        };
        let mut combos: Vec<(String, String)> = Vec::new();
        for r in rows.iter().filter(|r| &r.param == param) {
            let c = (r.servers.clone(), r.clients.clone());
            if !combos.contains(&c) {
                combos.push(c);
            }
        }
        let plural = |n: &str, w: &str| {
            if n == "1" {
                format!("{n} {w}")
            } else {
                format!("{n} {w}s")
            }
        };
        let mut names = Vec::new();
        let mut lines = Vec::new();
        let mut p99_names = Vec::new();
        let mut p99_lines = Vec::new();
        let of_param = || rows.iter().filter(|r| &r.param == param);
        if param == "nodes" {
            // The seed's 1+1, 2+2, 4+4 table: one line per way of counting.
            names.push("client-measured".to_string());
            lines.push(spread(
                of_param().filter_map(|r| r.ops_per_sec.map(|y| (r.value, y / 1e6))),
            ));
            names.push("seed-style (sum of per-server-node medians)".to_string());
            lines.push(spread(
                of_param().filter_map(|r| r.seed_style.map(|y| (r.value, y / 1e6))),
            ));
            p99_names.push("p99 batch latency".to_string());
            p99_lines.push(spread(
                of_param().filter_map(|r| r.p99_us.map(|y| (r.value, y / 1e3))),
            ));
        } else {
            for (s, c) in &combos {
                let name = format!("{}, {}", plural(s, "server node"), plural(c, "client node"));
                let combo = || of_param().filter(|r| &r.servers == s && &r.clients == c);
                lines.push(spread(combo().filter_map(|r| {
                    r.ops_per_sec.or(r.seed_style).map(|y| (r.value, y / 1e6))
                })));
                p99_lines.push(spread(
                    combo().filter_map(|r| r.p99_us.map(|y| (r.value, y / 1e3))),
                ));
                names.push(name.clone());
                p99_names.push(name);
            }
        }
        let repeated = lines.iter().flatten().any(|p| p.max > p.min);
        let series: Vec<(&str, &[plot::SweepPoint])> = names
            .iter()
            .map(|n| n.as_str())
            .zip(lines.iter().map(|l| l.as_slice()))
            .collect();
        // Powers of two (batch 512..16384, sessions 16..256, nodes 1, 2, 4)
        // get a log2 axis with a tick at each.
        let pow2 = of_param().all(|r| {
            r.value >= 1.0 && r.value.fract() == 0.0 && (r.value as u64).is_power_of_two()
        });
        let x_label = match (param.as_str(), pow2) {
            ("batch", true) => "Batch size (operations per batch, log2 scale)",
            ("batch", false) => "Batch size (operations per batch)",
            ("sessions", true) => "Sessions per client node (log2 scale)",
            ("sessions", false) => "Sessions per client node",
            ("nodes", true) => "Server nodes = client nodes (log2 scale)",
            ("nodes", false) => "Server nodes = client nodes",
            (other, _) => other,
        };
        let y_label = if param == "nodes" {
            "Throughput (million op/s)"
        } else {
            "Throughput (million op/s, client-measured)"
        };
        let note = if repeated {
            " (median, bars: min–max)"
        } else {
            ""
        };
        plot::plot_sweep_ranges(
            &series,
            &path,
            &format!("{prefix}: throughput vs {param}{note}"),
            x_label,
            y_label,
            pow2,
        )?;
        println!("{}", path.display());
        // p99 batch latency against the same parameter, when the CSV has it.
        if p99_lines.iter().any(|l| !l.is_empty()) {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("sweep");
            let p99_path = path.with_file_name(format!("{stem}-p99.png"));
            let p99_series: Vec<(&str, &[plot::SweepPoint])> = p99_names
                .iter()
                .map(|n| n.as_str())
                .zip(p99_lines.iter().map(|l| l.as_slice()))
                .collect();
            plot::plot_sweep_ranges(
                &p99_series,
                &p99_path,
                &format!("{prefix}: p99 batch latency vs {param}{note}"),
                x_label,
                "p99 batch latency (ms)",
                pow2,
            )?;
            println!("{}", p99_path.display());
        }
    }
    Ok(())
}

/// The batch latency curves of several reports in one figure. Every run
/// has the same work (`report compare` refuses others), so the title says
/// the batch once and the legend names the runs; the footer is the first
/// run's.
pub fn plot_comparison(rows: &[(&str, &BenchReport)], path: &Path) -> Result<()> {
    let series: Vec<_> = rows.iter().map(|(n, r)| (*n, &r.batch_latency)).collect();
    let title = match rows.first() {
        Some((_, r)) => format!("Batch latency — {}", r.describe()),
        None => "Batch latency".to_string(),
    };
    let foot = rows.first().map(|(_, r)| footer(r)).unwrap_or_default();
    plot::plot_latency_percentiles_footed(&series, path, &title, &foot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_plot_repeats_and_p99() {
        let pts = spread([(2.0, 5.0), (1.0, 1.0), (2.0, 3.0), (2.0, 4.0)]);
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[0].x, 1.0);
        assert_eq!((pts[1].min, pts[1].median, pts[1].max), (3.0, 4.0, 5.0));

        let dir = std::env::temp_dir().join(format!("corekv-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("sweep.csv");
        let mut text =
            "param,value,servers,clients,ops_per_sec,seed_style_ops_per_sec,p99_batch_us\n"
                .to_string();
        for rep in 0..3 {
            for b in [1, 2, 4, 8] {
                text.push_str(&format!(
                    "batch,{b},1,1,{},,{}\n",
                    1e5 * b as f64 + 1e4 * rep as f64,
                    100.0 * b as f64 + rep as f64
                ));
            }
            text.push_str(&format!("sessions,4,1,1,{},,\n", 5e5 + rep as f64));
        }
        std::fs::write(&csv, text).unwrap();
        let out = dir.join("sweep.png");
        plot_sweep(&csv, &out, Some("test")).unwrap();
        for f in ["sweep.png", "sweep-p99.png", "sweep-sessions.png"] {
            let len = std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
            assert!(len > 1000, "{f} missing");
        }
        // No p99 data for sessions: no p99 plot for it.
        assert!(!dir.join("sweep-sessions-p99.png").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn sweep_csv_is_parsed() {
        let rows = parse_sweep_csv(
            "param,value,servers,clients,ops_per_sec,seed_style_ops_per_sec,p99_batch_us\n\
             batch,1,1,1,1000.0,,5.0\nbatch,2,1,1,,1500.0,\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].ops_per_sec, Some(1000.0));
        assert_eq!(rows[1].ops_per_sec, None);
        assert_eq!(rows[1].seed_style, Some(1500.0));
        assert!(parse_sweep_csv("a,b\n1,2\n").is_err());
    }
}
