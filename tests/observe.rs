//! What an operator watches, end to end over loopback: INFO commandstats,
//! errorstats, latencystats, cpu and the I/O-event counters, CONFIG
//! RESETSTAT, LATENCY HISTOGRAM, SLOWLOG with CONFIG SET, CLIENT
//! LIST/INFO/KILL/HELP — each differential against a real `redis-server`
//! (same commands to both; exact where the reply does not depend on time,
//! shape and field names where it does) — and the Prometheus endpoint, read
//! over a real socket and parsed.
//!
//! Without `redis-server` the differential tests are skipped loudly, unless
//! the `CI` environment variable is set, in which case they fail.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::reply::{parsed, R};
use corekv::protocol::resp::encode_command;
use corekv::server::metrics::MetricsServer;
use corekv::server::ServerHandle;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A RESP connection (the shared harness's), its replies parsed.
struct Conn(common::redis::Conn);

impl Conn {
    fn connect(addr: SocketAddr) -> Conn {
        Conn(common::redis::Conn::connect(addr))
    }

    fn cmd(&mut self, args: &[&str]) -> R {
        parsed(&self.0.strs(args))
    }

    /// The next reply, or `None` when the server closed the connection.
    fn reply(&mut self) -> Option<R> {
        self.0.try_reply().map(|b| parsed(&b))
    }

    /// `INFO section` as `field → value`.
    fn info(&mut self, section: &str) -> BTreeMap<String, String> {
        self.cmd(&["INFO", section])
            .text()
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(':'))
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.to_string(), v.trim_end().to_string())
            })
            .collect()
    }
}

/// A redis-server on a free loopback port (the shared launcher).
fn redis() -> Option<common::redis::Redis> {
    common::redis::redis_server()
}

/// A corekv node of up to two shards.
fn corekv() -> ServerHandle {
    common::start(0, corekv::config::allowed_cpus().len().min(2))
}

/// `k=v,k=v` into pairs.
fn fields(v: &str) -> Vec<(String, String)> {
    v.split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The script both servers run for the statistics tests.
const SCRIPT: &[&[&str]] = &[
    &["SET", "a", "1"],
    &["GET", "a"],
    &["GET", "nokey"],
    &["INCR", "a"],
    &["SET", "a", "x"],
    &["INCR", "a"],
    &["SET", "a"],
    &["SET", "a", "b", "foo"],
    &["FOO", "bar"],
];

#[test]
fn info_statistics_match_redis() {
    let Some(redis) = redis() else { return };
    let node = corekv();
    let mut seen: Vec<BTreeMap<String, String>> = Vec::new();
    for addr in [redis.addr, node.resp_addr.unwrap()] {
        let mut c = Conn::connect(addr);
        assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]), R::Simple("OK".into()));
        let replies: Vec<R> = SCRIPT.iter().map(|cmd| c.cmd(cmd)).collect();
        let mut all = c.info("commandstats");
        all.extend(c.info("errorstats"));
        all.extend(c.info("latencystats"));
        all.extend(c.info("cpu").into_keys().map(|k| (k, String::new())));
        all.extend(
            c.info("stats")
                .into_iter()
                .filter(|(k, _)| k.starts_with("keyspace_") || k == "total_error_replies"),
        );
        all.insert("replies".into(), format!("{replies:?}"));
        seen.push(all);
    }
    let (r, k) = (&seen[0], &seen[1]);
    assert_eq!(r["replies"], k["replies"], "the script's replies");
    for cmd in ["get", "set", "incr"] {
        let key = format!("cmdstat_{cmd}");
        let (rf, kf) = (fields(&r[&key]), fields(&k[&key]));
        let names = |f: &[(String, String)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&rf), names(&kf), "{key}");
        for name in ["calls", "rejected_calls", "failed_calls"] {
            let v = |f: &[(String, String)]| f.iter().find(|(n, _)| n == name).unwrap().1.clone();
            assert_eq!(v(&rf), v(&kf), "{key} {name}");
        }
        let key = format!("latency_percentiles_usec_{cmd}");
        let (rf, kf) = (fields(&r[&key]), fields(&k[&key]));
        assert_eq!(names(&rf), names(&kf), "{key}");
        for (_, v) in &kf {
            let (_, decimals) = v.split_once('.').expect("µs with decimals");
            assert_eq!(decimals.len(), 3, "{key}: {v}");
        }
    }
    for exact in [
        "errorstat_ERR",
        "keyspace_hits",
        "keyspace_misses",
        "total_error_replies",
    ] {
        assert_eq!(r.get(exact), k.get(exact), "{exact}");
    }
    let cpu = |m: &BTreeMap<String, String>| {
        m.keys()
            .filter(|k| k.starts_with("used_cpu"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(cpu(r), cpu(k));
}

/// total_reads_processed / total_writes_processed count I/O events, as
/// Redis does: 100 pipelined GETs in one write are a handful of reads, 20
/// round trips are 20.
#[test]
fn reads_and_writes_processed_are_io_events() {
    let Some(redis) = redis() else { return };
    let node = corekv();
    for addr in [redis.addr, node.resp_addr.unwrap()] {
        let mut c = Conn::connect(addr);
        let count = |c: &mut Conn| {
            let s = c.info("stats");
            let n = |k: &str| s[k].parse::<u64>().unwrap();
            (
                n("total_reads_processed"),
                n("total_writes_processed"),
                n("total_commands_processed"),
            )
        };
        let before = count(&mut c);
        let mut pipeline = Vec::new();
        for _ in 0..100 {
            encode_command(&mut pipeline, &[b"GET", b"k"]);
        }
        c.0.write_raw(&pipeline);
        for _ in 0..100 {
            assert_eq!(c.reply(), Some(R::Bulk(None)));
        }
        let mid = count(&mut c);
        let reads = mid.0 - before.0;
        assert!(
            (1..=50).contains(&reads),
            "{addr}: {reads} reads for one pipeline"
        );
        assert!(
            mid.2 - before.2 >= 100,
            "{addr}: commands {before:?} {mid:?}"
        );
        for _ in 0..20 {
            assert_eq!(c.cmd(&["PING"]), R::Simple("PONG".into()));
        }
        let after = count(&mut c);
        assert!(after.0 - mid.0 >= 21, "{addr}: {mid:?} → {after:?}");
        assert!(after.1 - mid.1 >= 21, "{addr}: {mid:?} → {after:?}");
    }
}

#[test]
fn latency_histogram_matches_redis_shape() {
    let Some(redis) = redis() else { return };
    let node = corekv();
    let mut shapes = Vec::new();
    for addr in [redis.addr, node.resp_addr.unwrap()] {
        let mut c = Conn::connect(addr);
        c.cmd(&["CONFIG", "RESETSTAT"]);
        for i in 0..50 {
            c.cmd(&["SET", &format!("k{i}"), "v"]);
        }
        c.cmd(&["GET", "k1"]);
        let h = c.cmd(&["LATENCY", "HISTOGRAM", "set", "get", "nosuch"]);
        let map = h.arr();
        assert_eq!(map.len(), 4, "{addr}: {h:?}");
        let mut shape = BTreeMap::new();
        for pair in map.chunks(2) {
            let body = pair[1].arr();
            assert_eq!(body[0].text(), "calls");
            assert_eq!(body[2].text(), "histogram_usec");
            let calls = body[1].int();
            let points = body[3].arr();
            assert!(!points.is_empty() && points.len() % 2 == 0);
            let mut prev = (0, 0);
            for p in points.chunks(2) {
                let (usec, cum) = (p[0].int(), p[1].int());
                assert!(usec > prev.0 && cum > prev.1, "{addr}: {points:?}");
                assert!(
                    [1, 2, 4, 8, 16, 33, 66, 132, 264, 528, 1056, 2113, 4227, 8454, 16908]
                        .contains(&usec)
                        || usec > 16908,
                    "{addr}: bucket label {usec}"
                );
                prev = (usec, cum);
            }
            assert_eq!(prev.1, calls, "{addr}: the last point counts every call");
            shape.insert(pair[0].text(), calls);
        }
        shapes.push(shape);
        let all = c.cmd(&["LATENCY", "HISTOGRAM"]);
        assert!(all.arr().len() >= 4);
        for bad in [
            &["LATENCY", "FOO"][..],
            &["LATENCY", "HELP", "x"],
            &["LATENCY"],
        ] {
            shapes.push(BTreeMap::from([(format!("{:?}", c.cmd(bad)), 0)]));
        }
        let help = c.cmd(&["LATENCY", "HELP"]);
        shapes.push(BTreeMap::from([(help.arr()[0].text(), 0)]));
    }
    let half = shapes.len() / 2;
    assert_eq!(shapes[..half], shapes[half..]);
}

#[test]
fn slowlog_matches_redis() {
    let Some(redis) = redis() else { return };
    let node = corekv();
    let mut seen = Vec::new();
    for addr in [redis.addr, node.resp_addr.unwrap()] {
        let mut c = Conn::connect(addr);
        let mut out: Vec<R> = Vec::new();
        for cmd in [
            &[
                "CONFIG",
                "SET",
                "slowlog-log-slower-than",
                "0",
                "slowlog-max-len",
                "3",
            ][..],
            &["CONFIG", "SET", "maxmemory", "0", "slowlog-max-len", "3"],
            &["CONFIG", "SET", "slowlog-max-len", "-1"],
            &["CONFIG", "SET", "slowlog-log-slower-than", "-2"],
            &["CONFIG", "SET", "slowlog-max-len", "abc"],
            &["CONFIG", "SET", "nosuch-option", "1"],
            &["CONFIG", "SET", "slowlog-max-len"],
            &["SLOWLOG", "RESET"],
        ] {
            out.push(c.cmd(cmd));
        }
        // CONFIG GET's order is Redis's dict order: compare as pairs.
        let got = c.cmd(&["CONFIG", "GET", "slowlog*"]);
        let mut pairs: Vec<(String, String)> = got
            .arr()
            .chunks(2)
            .map(|p| (p[0].text(), p[1].text()))
            .collect();
        pairs.sort();
        out.push(R::Simple(format!("{pairs:?}")));
        c.cmd(&["SET", "slowkey", &"v".repeat(300)]);
        let many: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let mut mget = vec!["MGET"];
        mget.extend(many.iter().map(String::as_str));
        c.cmd(&mget);
        let entries = c.cmd(&["SLOWLOG", "GET", "2"]);
        let entries = entries.arr();
        assert_eq!(entries.len(), 2, "{addr}");
        let mut ids = Vec::new();
        for e in entries {
            let e = e.arr();
            assert_eq!(e.len(), 6, "{addr}: {e:?}");
            ids.push(e[0].int());
            assert!(e[1].int() > 1_600_000_000, "unix time");
            assert!(e[2].int() >= 0);
            out.push(e[3].clone());
            assert!(e[4].text().starts_with("127.0.0.1:"), "{addr}: {e:?}");
            out.push(e[5].clone());
        }
        assert!(ids[0] > ids[1], "newest first");
        let len = c.cmd(&["SLOWLOG", "LEN"]).int();
        assert_eq!(len, 3, "{addr}: slowlog-max-len 3");
        for cmd in [
            &["SLOWLOG", "GET", "-2"][..],
            &["SLOWLOG", "GET", "x"],
            &["SLOWLOG", "GET", "1", "2"],
            &["SLOWLOG", "LEN", "x"],
            &["SLOWLOG", "FOO"],
            &["SLOWLOG"],
        ] {
            out.push(c.cmd(cmd));
        }
        out.push(c.cmd(&["SLOWLOG", "HELP"]).arr()[0].clone());
        c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "-1"]);
        out.push(c.cmd(&["SLOWLOG", "RESET"]));
        out.push(c.cmd(&["SLOWLOG", "LEN"]));
        out.push(c.cmd(&["SLOWLOG", "GET"]));
        c.cmd(&[
            "CONFIG",
            "SET",
            "slowlog-log-slower-than",
            "10000",
            "slowlog-max-len",
            "128",
        ]);
        seen.push(out);
    }
    assert_eq!(seen[0], seen[1]);
}

/// The `key=value` names of a CLIENT LIST / INFO line.
fn line_fields(line: &str) -> Vec<String> {
    line.split_whitespace()
        .map(|kv| kv.split_once('=').unwrap().0.to_string())
        .collect()
}

#[test]
fn client_list_info_kill_help_match_redis() {
    let Some(redis) = redis() else { return };
    let node = corekv();
    // corekv: the victim on shard 1's own port when there is one, so the
    // kill crosses shards.
    let victim_addr = *node
        .resp_shard_addrs
        .last()
        .unwrap_or(&node.resp_addr.unwrap());
    let mut seen = Vec::new();
    for (addr, victim_at) in [
        (redis.addr, redis.addr),
        (node.resp_addr.unwrap(), victim_addr),
    ] {
        let mut out: Vec<String> = Vec::new();
        let mut me = Conn::connect(addr);
        let mut victim = Conn::connect(victim_at);
        assert_eq!(
            victim.cmd(&["CLIENT", "SETNAME", "victim"]),
            R::Simple("OK".into())
        );
        let victim_id = victim.cmd(&["CLIENT", "ID"]).int();
        let info = me.cmd(&["CLIENT", "INFO"]).text();
        assert!(info.ends_with('\n'), "{addr}: {info:?}");
        out.push(line_fields(&info).join(" "));
        assert!(info.contains(" cmd=client|info "), "{info}");
        let list = me.cmd(&["CLIENT", "LIST"]).text();
        let lines: Vec<&str> = list.lines().collect();
        assert!(lines.len() >= 2, "{addr}: {list}");
        let victim_line = lines
            .iter()
            .find(|l| l.starts_with(&format!("id={victim_id} ")))
            .unwrap_or_else(|| panic!("{addr}: victim not listed: {list}"));
        assert!(victim_line.contains(" name=victim "), "{victim_line}");
        assert!(victim_line.contains(" cmd=client|id "), "{victim_line}");
        out.push(line_fields(victim_line).join(" "));
        let by_id = me
            .cmd(&["CLIENT", "LIST", "ID", &victim_id.to_string()])
            .text();
        assert_eq!(by_id.lines().count(), 1, "{addr}: {by_id}");
        for cmd in [
            &["CLIENT", "KILL", "ID", "0"][..],
            &["CLIENT", "KILL", "ID", "abc"],
            &["CLIENT", "KILL", "1.2.3.4:5"],
            &["CLIENT", "KILL", "ADDR", "1.2.3.4:5"],
            &["CLIENT", "KILL", "LADDR", "1.2.3.4:5"],
            &["CLIENT", "KILL", "SKIPME", "maybe"],
            &["CLIENT", "KILL", "FOO", "bar"],
            &["CLIENT", "KILL", "1.2.3.4:5", "x"],
            &["CLIENT", "LIST", "FOO"],
            &["CLIENT", "INFO", "x"],
            &["CLIENT", "HELP", "x"],
            &["CLIENT", "NOSUCH"],
        ] {
            out.push(format!("{cmd:?} → {:?}", me.cmd(cmd)));
        }
        out.push(me.cmd(&["CLIENT", "HELP"]).arr()[0].text());
        // Kill by id: one killed, and the victim's connection ends.
        let killed = me.cmd(&["CLIENT", "KILL", "ID", &victim_id.to_string()]);
        out.push(format!("kill id → {killed:?}"));
        assert_eq!(victim.reply(), None, "{addr}: the victim is disconnected");
        if addr != redis.addr {
            // Redis frees a killed client asynchronously, so it may still
            // count it here; corekv unregisters it before closing.
            assert_eq!(
                me.cmd(&["CLIENT", "KILL", "ID", &victim_id.to_string()]),
                R::Int(0),
                "{addr}: already gone"
            );
        }
        // Kill by address (old form: +OK), then by ADDR.
        // (A PING first: the server has accepted and registered the client.)
        let mut v2 = Conn::connect(addr);
        v2.cmd(&["PING"]);
        let v2_addr = v2.0.local_addr().to_string();
        out.push(format!("{:?}", me.cmd(&["CLIENT", "KILL", &v2_addr])));
        assert_eq!(v2.reply(), None);
        let mut v3 = Conn::connect(addr);
        v3.cmd(&["PING"]);
        let v3_addr = v3.0.local_addr().to_string();
        out.push(format!(
            "{:?}",
            me.cmd(&["CLIENT", "KILL", "ADDR", &v3_addr])
        ));
        assert_eq!(v3.reply(), None);
        // LADDR: everyone on that local address but me (SKIPME yes).
        let mut v4 = Conn::connect(addr);
        v4.cmd(&["PING"]);
        let laddr = me.0.peer_addr().to_string();
        let n = me.cmd(&["CLIENT", "KILL", "LADDR", &laddr]).int();
        assert!(n >= 1, "{addr}: {n}");
        assert_eq!(
            me.cmd(&["PING"]),
            R::Simple("PONG".into()),
            "SKIPME yes spares me"
        );
        // Killing myself: the reply, then the connection closes.
        let my_id = me.cmd(&["CLIENT", "ID"]).int().to_string();
        out.push(format!(
            "{:?}",
            me.cmd(&["CLIENT", "KILL", "ID", &my_id, "SKIPME", "no"])
        ));
        assert_eq!(me.reply(), None, "{addr}: killed myself");
        seen.push(out);
    }
    for (r, k) in seen[0].iter().zip(&seen[1]) {
        assert_eq!(r, k);
    }
    assert_eq!(seen[0].len(), seen[1].len());
}

/// One HTTP GET over a real socket: (status line, body).
fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// Exposition text into `series → value` (series with its labels).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, v) = l.rsplit_once(' ').unwrap();
            (series.to_string(), v.parse::<f64>().unwrap())
        })
        .collect()
}

/// The sum of every series of `name` whose labels contain `label`.
fn total(s: &BTreeMap<String, f64>, name: &str, label: &str) -> f64 {
    s.iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")) && k.contains(label))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn metrics_endpoint_moves_with_traffic() {
    let node = corekv();
    let metrics = MetricsServer::start(
        "127.0.0.1:0".parse().unwrap(),
        node.node_state().clone(),
        node.observe().clone(),
    )
    .unwrap();
    let (status, body) = http_get(metrics.addr(), "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let before = samples(&body);
    for name in [
        "corekv_ops_total",
        "corekv_keys",
        "corekv_memory_used_bytes",
        "corekv_connections",
        "corekv_keyspace_hits_total",
        "corekv_io_reads_total",
        "corekv_keys_with_ttl",
        "corekv_expired_keys_total",
        "corekv_evicted_keys_total",
    ] {
        let shards = before
            .keys()
            .filter(|k| k.starts_with(&format!("{name}{{")))
            .count();
        assert_eq!(shards, node.shard_addrs.len(), "{name} per shard");
    }
    let mut c = Conn::connect(node.resp_addr.unwrap());
    for i in 0..30 {
        c.cmd(&["SET", &format!("m{i}"), "v"]);
    }
    for i in 0..20 {
        c.cmd(&["GET", &format!("m{i}")]);
    }
    c.cmd(&["GET", "absent"]);
    c.cmd(&["INCR", "m0"]);
    c.cmd(&["EXPIRE", "m1", "1000"]);
    let (_, body) = http_get(metrics.addr(), "/metrics");
    let after = samples(&body);
    assert_eq!(total(&after, "corekv_keys", ""), 30.0);
    assert_eq!(total(&after, "corekv_keys_with_ttl", ""), 1.0);
    assert_eq!(total(&after, "corekv_keyspace_hits_total", ""), 20.0);
    assert_eq!(total(&after, "corekv_keyspace_misses_total", ""), 1.0);
    assert_eq!(total(&after, "corekv_commands_total", "cmd=\"set\""), 30.0);
    assert_eq!(total(&after, "corekv_commands_total", "cmd=\"get\""), 21.0);
    assert_eq!(
        total(&after, "corekv_command_failed_calls_total", "cmd=\"incr\""),
        1.0
    );
    assert_eq!(
        total(&after, "corekv_error_replies_total", "code=\"ERR\""),
        1.0
    );
    assert_eq!(total(&after, "corekv_connections", ""), 1.0);
    assert!(total(&after, "corekv_ops_total", "") >= 52.0);
    assert!(total(&after, "corekv_memory_used_bytes", "") > 0.0);
    assert!(
        total(&after, "corekv_io_reads_total", "") - total(&before, "corekv_io_reads_total", "")
            >= 52.0
    );
    // The GET histogram: cumulative buckets ending in +Inf = _count = calls.
    let get = "node=\"0\",cmd=\"get\"";
    let count = after[&format!("corekv_command_latency_seconds_count{{{get}}}")];
    assert_eq!(count, 21.0);
    assert_eq!(
        after[&format!("corekv_command_latency_seconds_bucket{{{get},le=\"+Inf\"}}")],
        count
    );
    let buckets: Vec<f64> = after
        .iter()
        .filter(|(k, _)| k.starts_with("corekv_command_latency_seconds_bucket{") && k.contains(get))
        .map(|(_, v)| *v)
        .collect();
    assert!(buckets.len() > 10);
    assert!(after[&format!("corekv_command_latency_seconds_sum{{{get}}}")] > 0.0);
    let (status, _) = http_get(metrics.addr(), "/nope");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

/// `corekv server --metrics-port 0 -q`: the ready line names the metrics
/// port, the endpoint answers, and -q keeps stderr free of the banner.
#[test]
fn server_binary_serves_metrics() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corekv"))
        .args([
            "server",
            "--port",
            "0",
            "--resp-port",
            "0",
            "--metrics-port",
            "0",
            "-q",
        ])
        .args(["--cpus", &corekv::config::allowed_cpus()[0].to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let port: u16 = ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("metrics_port="))
        .unwrap_or_else(|| panic!("no metrics port in {ready:?}"))
        .parse()
        .unwrap();
    assert_ne!(port, 0);
    let (status, body) = http_get(format!("127.0.0.1:{port}").parse().unwrap(), "/metrics");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let _ = child.wait();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("corekv_build_info{"), "{body}");
    assert!(err.is_empty(), "-q: nothing on stderr, got {err:?}");
}
