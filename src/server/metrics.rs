//! The Prometheus endpoint (`corekv server --metrics-port N`): a tiny
//! HTTP/1.1 server on a plain std thread answering `GET /metrics` with the
//! text exposition format (version 0.0.4).
//!
//! It reads only what the shards already publish — the node's counter slots
//! ([`NodeState`]) and the command statistics ([`Observe`]), relaxed atomic
//! loads — so scraping adds nothing to the data path: no message to a
//! shard, no lock a shard takes per operation. [`render`] is pure (state in,
//! text out); [`MetricsServer`] owns the socket and the thread. One request
//! per connection (`Connection: close`), requests bounded in size and time.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::shard::NodeState;

use super::observe::{self, count_below_pow2, Observe, ERROR_CODES};

/// Largest request accepted (headers included).
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Latency histogram buckets: `le` = 2^k ns for these k (≈1 µs … ≈1.07 s).
const BUCKET_POWS: std::ops::RangeInclusive<u32> = 10..=30;

/// A running metrics endpoint; stops when dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (port 0: an ephemeral port) and serves from a thread.
    pub fn start(
        addr: SocketAddr,
        node: Arc<NodeState>,
        obs: Arc<Observe>,
    ) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("corekv-metrics".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Relaxed) {
                        break;
                    }
                    if let Ok(stream) = conn {
                        let _ = answer(stream, &node, &obs);
                    }
                }
            })?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request and answers it.
fn answer(mut stream: TcpStream, node: &NodeState, obs: &Observe) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut req = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        if req.len() >= MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "",
                false,
            );
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        req.extend_from_slice(&chunk[..n]);
    }
    let line = req.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, path) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let head = method == b"HEAD";
    if method != b"GET" && !head {
        return respond(&mut stream, "405 Method Not Allowed", "GET only\n", head);
    }
    match path {
        b"/metrics" => respond(&mut stream, "200 OK", &render(node, obs), head),
        b"/" => respond(
            &mut stream,
            "200 OK",
            "corekv: Prometheus metrics at /metrics\n",
            head,
        ),
        _ => respond(
            &mut stream,
            "404 Not Found",
            "not found: try /metrics\n",
            head,
        ),
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &str, head: bool) -> std::io::Result<()> {
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    if !head {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

type KeyspaceField = fn(&crate::shard::Keyspace) -> u64;
type IoField = fn(&observe::ShardObserve) -> &observe::Counter;
/// A command's (calls, nanos, rejected, failed) to a sample value.
type CmdField = fn(&(u64, u64, u64, u64)) -> String;

/// Writes a metric family's HELP and TYPE lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The exposition text for a node.
pub fn render(node: &NodeState, obs: &Observe) -> String {
    let stats = node.stats();
    let keyspace = node.keyspace();
    let id = node.node_id;
    let mut out = String::with_capacity(16 * 1024);
    family(
        &mut out,
        "corekv_build_info",
        "gauge",
        "Version and git commit of the running corekv.",
    );
    let _ = writeln!(
        out,
        "corekv_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        crate::GIT_COMMIT
    );
    family(
        &mut out,
        "corekv_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
    );
    let _ = writeln!(
        out,
        "corekv_uptime_seconds{{node=\"{id}\"}} {:.3}",
        stats.uptime_secs
    );

    type Field = fn(&crate::protocol::native::ShardStats) -> u64;
    let per_shard: [(&str, &str, &str, Field); 11] = [
        (
            "corekv_ops_total",
            "counter",
            "Operations executed by the shard's store (local and forwarded in).",
            |s| s.ops,
        ),
        (
            "corekv_gets_total",
            "counter",
            "Reads executed (GET, EXISTS, STRLEN).",
            |s| s.gets,
        ),
        (
            "corekv_puts_total",
            "counter",
            "Writes executed (SET and the read-modify-write kinds).",
            |s| s.puts,
        ),
        (
            "corekv_deletes_total",
            "counter",
            "Deletes executed.",
            |s| s.dels,
        ),
        ("corekv_keys", "gauge", "Keys held.", |s| s.keys),
        (
            "corekv_memory_used_bytes",
            "gauge",
            "Bytes charged against the memory limit (keys, values, per-entry overhead).",
            |s| s.memory_used,
        ),
        (
            "corekv_memory_limit_bytes",
            "gauge",
            "The shard's share of --max-memory (absent: no limit).",
            |s| s.memory_limit,
        ),
        (
            "corekv_connections",
            "gauge",
            "Open client connections (native and RESP).",
            |s| s.connections,
        ),
        (
            "corekv_errors_total",
            "counter",
            "Per-operation errors plus rejected frames and commands.",
            |s| s.errors,
        ),
        (
            "corekv_forwarded_out_total",
            "counter",
            "Operations sent to their owner shard.",
            |s| s.forwarded_out,
        ),
        (
            "corekv_forwarded_in_total",
            "counter",
            "Operations received from other shards.",
            |s| s.forwarded_in,
        ),
    ];
    for (name, kind, help, field) in per_shard {
        family(&mut out, name, kind, help);
        for s in &stats.shards {
            let v = field(s);
            if name == "corekv_memory_limit_bytes" && v == u64::MAX {
                continue;
            }
            let _ = writeln!(out, "{name}{{node=\"{id}\",shard=\"{}\"}} {v}", s.shard_id);
        }
    }
    let cache: [(&str, &str, &str, KeyspaceField); 5] = [
        (
            "corekv_keyspace_hits_total",
            "counter",
            "GETs that found their key.",
            |k| k.hits,
        ),
        (
            "corekv_keyspace_misses_total",
            "counter",
            "GETs that did not find their key.",
            |k| k.misses,
        ),
        ("corekv_keys_with_ttl", "gauge", "Keys with a TTL.", |k| {
            k.expires
        }),
        (
            "corekv_expired_keys_total",
            "counter",
            "Keys removed because their TTL passed (lazily or actively).",
            |k| k.expired_keys,
        ),
        (
            "corekv_evicted_keys_total",
            "counter",
            "Keys evicted to make room (--maxmemory-policy).",
            |k| k.evicted_keys,
        ),
    ];
    for (name, kind, help, field) in cache {
        family(&mut out, name, kind, help);
        for (i, k) in keyspace.iter().enumerate() {
            let _ = writeln!(out, "{name}{{node=\"{id}\",shard=\"{i}\"}} {}", field(k));
        }
    }
    let io: [(&str, &str, IoField); 6] = [
        (
            "corekv_io_reads_total",
            "Read events on client sockets (Redis's total_reads_processed).",
            |o| &o.reads,
        ),
        (
            "corekv_io_writes_total",
            "Write events on client sockets (Redis's total_writes_processed).",
            |o| &o.writes,
        ),
        (
            "corekv_net_input_bytes_total",
            "Bytes read from client sockets.",
            |o| &o.net_in,
        ),
        (
            "corekv_net_output_bytes_total",
            "Bytes written to client sockets.",
            |o| &o.net_out,
        ),
        (
            "corekv_connections_received_total",
            "Connections accepted.",
            |o| &o.accepted,
        ),
        (
            "corekv_connections_rejected_total",
            "Connections refused at the per-shard limit.",
            |o| &o.rejected_conns,
        ),
    ];
    for (name, help, field) in io {
        family(&mut out, name, "counter", help);
        for (i, o) in obs.shards().enumerate() {
            let _ = writeln!(
                out,
                "{name}{{node=\"{id}\",shard=\"{i}\"}} {}",
                field(o).get()
            );
        }
    }

    // Per command (RESP), summed over shards; only commands seen.
    let slots: Vec<(usize, (u64, u64, u64, u64))> = (0..observe::nr_slots())
        .map(|s| (s, obs.cmd_totals(s)))
        .filter(|(_, t)| t.0 + t.2 + t.3 > 0)
        .collect();
    let per_cmd: [(&str, &str, CmdField); 4] = [
        (
            "corekv_commands_total",
            "RESP commands executed (INFO commandstats calls).",
            |t| t.0.to_string(),
        ),
        (
            "corekv_command_seconds_total",
            "Time spent in RESP commands (INFO commandstats usec).",
            |t| format!("{:.9}", t.1 as f64 / 1e9),
        ),
        (
            "corekv_command_rejected_calls_total",
            "Commands refused before running (wrong arity).",
            |t| t.2.to_string(),
        ),
        (
            "corekv_command_failed_calls_total",
            "Commands that ran and answered an error.",
            |t| t.3.to_string(),
        ),
    ];
    for (name, help, field) in per_cmd {
        family(&mut out, name, "counter", help);
        for (slot, t) in &slots {
            let cmd = observe::slot_name(*slot);
            let _ = writeln!(out, "{name}{{node=\"{id}\",cmd=\"{cmd}\"}} {}", field(t));
        }
    }
    let name = "corekv_command_latency_seconds";
    family(
        &mut out,
        name,
        "histogram",
        "Server-side latency of RESP commands (a pipelined run's time shared among its commands).",
    );
    for (slot, t) in &slots {
        let cmd = observe::slot_name(*slot);
        let counts = obs.cmd_hist(*slot);
        let total: u64 = counts.iter().sum();
        for pow in BUCKET_POWS {
            let le = (1u64 << pow) as f64 / 1e9;
            let _ = writeln!(
                out,
                "{name}_bucket{{node=\"{id}\",cmd=\"{cmd}\",le=\"{le}\"}} {}",
                count_below_pow2(&counts, pow)
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{node=\"{id}\",cmd=\"{cmd}\",le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(
            out,
            "{name}_sum{{node=\"{id}\",cmd=\"{cmd}\"}} {:.9}",
            t.1 as f64 / 1e9
        );
        let _ = writeln!(out, "{name}_count{{node=\"{id}\",cmd=\"{cmd}\"}} {total}");
    }
    let name = "corekv_error_replies_total";
    family(
        &mut out,
        name,
        "counter",
        "RESP error replies by code (INFO errorstats).",
    );
    for (code, n) in ERROR_CODES.iter().zip(obs.error_totals()) {
        if n > 0 {
            let _ = writeln!(out, "{name}{{node=\"{id}\",code=\"{code}\"}} {n}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_is_valid_exposition_text() {
        let node = NodeState::new(3, 2, usize::MAX, usize::MAX);
        let obs = Observe::new(2);
        obs.shard(1).record(0, 4, 8_000);
        obs.shard(0).count_error(b"ERR x");
        let text = render(&node, &obs);
        assert!(
            text.contains("corekv_ops_total{node=\"3\",shard=\"1\"} 0\n"),
            "{text}"
        );
        assert!(
            !text.contains("corekv_memory_limit_bytes{"),
            "no limit: no sample"
        );
        assert!(text.contains("corekv_commands_total{node=\"3\",cmd=\"get\"} 4\n"));
        assert!(text.contains(
            "corekv_command_latency_seconds_bucket{node=\"3\",cmd=\"get\",le=\"0.000001024\"} 0\n"
        ));
        assert!(text.contains(
            "corekv_command_latency_seconds_bucket{node=\"3\",cmd=\"get\",le=\"0.000002048\"} 4\n"
        ));
        assert!(text.contains("corekv_error_replies_total{node=\"3\",code=\"ERR\"} 1\n"));
        // Every sample line: name{labels} value, and its family was declared.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let name = series.split('{').next().unwrap();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {base} "))
                    || text.contains(&format!("# TYPE {name} ")),
                "{line}"
            );
        }
    }
}
