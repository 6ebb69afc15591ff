//! End-to-end tests of `corekv bench`'s driver against real servers on
//! loopback: a short closed-loop run (report contents, server counters,
//! JSON round trip, merging), an open-loop run, a server that dies mid-run,
//! a server that is not there, and (when `redis-server` is installed) the
//! Redis driver.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use corekv::bench::driver::{self, DriverConfig, Target};
use corekv::bench::report::{self, BenchReport, LoadMode};
use corekv::bench::workload::WorkloadConfig;
use corekv::config::{allowed_cpus, ServerConfig};

/// (server CPU, bench CPU): different CPUs when there are two.
fn cpus() -> (usize, usize) {
    let c = allowed_cpus();
    (c[0], *c.last().unwrap())
}

fn small_config(addr: String, bench_cpu: usize) -> DriverConfig {
    let mut cfg = DriverConfig::new(vec![addr], vec![bench_cpu]);
    cfg.workload = WorkloadConfig {
        records: 10_000,
        ..WorkloadConfig::default()
    };
    cfg.batch = 256;
    cfg.sessions_per_worker = 2;
    cfg.secs = 1.5;
    cfg.warmup_secs = 0.5;
    cfg.base_seed = 42;
    cfg.timeout = Duration::from_secs(5);
    cfg
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("corekv-bench-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn closed_loop_run_reports_consistent_figures() {
    let (server_cpu, bench_cpu) = cpus();
    let server = corekv::server::run(&ServerConfig::ephemeral(vec![server_cpu])).unwrap();
    let cfg = small_config(server.addr().to_string(), bench_cpu);
    let r = driver::run(&cfg).unwrap();

    let t = &r.totals;
    assert!(t.ops > 0, "no operations completed");
    assert_eq!(t.ops % cfg.batch as u64, 0, "only whole batches count");
    assert_eq!(t.gets + t.puts, t.ops);
    assert!(t.puts > 0 && t.gets > t.puts, "YCSB-B is 95% reads: {t:?}");
    assert_eq!(t.errors, 0);
    assert!((t.elapsed_secs - 1.5).abs() < 1e-6);
    assert!(t.ops_per_sec > 0.0);

    // Histograms: one batch value per batch, one op value per op.
    assert_eq!(r.batch_latency.count(), t.ops / cfg.batch as u64);
    assert_eq!(r.op_latency.count(), t.ops);
    assert!(r.batch_latency.p50() > 0 && r.batch_latency.max() >= r.batch_latency.p99());

    // The timeline adds up to the totals exactly.
    assert_eq!(r.timeline.len(), 2);
    assert_eq!(r.timeline.iter().map(|s| s.ops).sum::<u64>(), t.ops);
    assert_eq!(r.timeline.iter().map(|s| s.puts).sum::<u64>(), t.puts);

    // Server counters over the window match what the client sent, give or
    // take the batches in flight at either edge of the window.
    assert_eq!(r.servers.len(), 1);
    let shard_ops: u64 = r.servers[0].shards.iter().map(|s| s.ops).sum();
    let slack = 4 * (cfg.sessions_per_worker * cfg.batch) as u64;
    assert!(
        shard_ops.abs_diff(t.ops) <= slack,
        "server counted {shard_ops} ops, client {}",
        t.ops
    );
    assert!(!r.servers[0].per_second_ops.is_empty());
    assert!(r.seed_style_total() > 0.0);
    // The server's durability mode, asked over its RESP port.
    assert_eq!(r.servers[0].durability, "in-memory (appendonly no)");

    assert!(r.bytes_sent > 0 && r.bytes_received > 0);
    assert!(r.client_cpu_secs > 0.0);
    assert!(r.generation_rate_ops > 0.0);
    assert_eq!(r.meta.target, "corekv");
    assert_eq!(r.meta.batch, 256);

    // JSON round trip, with the headline keys scripts read.
    let json = r.to_json().unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for k in ["ops_per_sec", "seed_style_ops_per_sec", "p99_batch_us"] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k} missing or zero");
    }
    let back = BenchReport::from_json(&json).unwrap();
    assert!(back.meta == r.meta, "meta");
    assert!(back.totals == r.totals, "totals");
    assert!(back.timeline == r.timeline, "timeline");
    assert!(back.servers == r.servers, "servers");
    assert!(back.batch_latency == r.batch_latency, "batch hist");
    assert!(back.op_latency == r.op_latency, "op hist");
    assert!(back == r, "rest");
    // No send lag in closed loop: a batch leaves when the last is answered.
    assert_eq!(r.send_lag.count(), 0);
    assert!(v.get("send_lag_us").is_none());

    // Two clients' reports merge into their sum.
    let m = report::merge(&[r.clone(), r.clone()]).unwrap();
    assert_eq!(m.totals.ops, 2 * t.ops);
    assert_eq!(m.op_latency.count(), 2 * r.op_latency.count());
    assert_eq!(m.batch_latency.p99(), r.batch_latency.p99());
    assert_eq!(m.meta.client_processes, 2);

    // Result files.
    let dir = temp_dir("closed");
    corekv::bench::cli::write_outputs(&r, &dir, "report.json").unwrap();
    for f in [
        "report.json",
        "batch_latency.hgrm",
        "op_latency.hgrm",
        "latency.png",
        "throughput.png",
    ] {
        let len = std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 100, "{f} missing or empty");
    }
    let _ = std::fs::remove_dir_all(&dir);
    server.shutdown();
}

#[test]
fn open_loop_offers_the_requested_rate() {
    let (server_cpu, bench_cpu) = cpus();
    let server = corekv::server::run(&ServerConfig::ephemeral(vec![server_cpu])).unwrap();
    let mut cfg = small_config(server.addr().to_string(), bench_cpu);
    cfg.batch = 100;
    cfg.rate = Some(50_000.0);
    let r = driver::run(&cfg).unwrap();
    assert_eq!(
        r.meta.mode,
        LoadMode::Open {
            rate_ops_per_sec: 50_000.0
        }
    );
    // 50k op/s for 0.5 s of warm-up and 1.5 s measured = 100,000 ops = 1,000
    // batches. The schedule is a ceiling the pacer never exceeds, whatever
    // the machine's load. The measured window counts batches *completed* in
    // it, so a stall at the warm-up's end can move up to the warm-up's
    // batches into it: the ceiling is the whole schedule, not the window's
    // 75,000. How close a run comes to it depends on a shared, noisy
    // machine, so that is left to the benchmarks (no timed assertions here).
    let ops = r.totals.ops;
    assert!(ops > 0, "an open-loop run completed nothing");
    assert_eq!(ops % 100, 0, "only whole batches are sent");
    assert!(
        ops <= 100_000,
        "offered 100,000 ops in all, completed {ops}"
    );
    assert_eq!(r.totals.errors, 0);
    assert!(r.batch_latency.count() > 0);
    // Each batch sent in the window has its send lag (how late it left),
    // and it is part of the batch latencies, so never above their maximum
    // beyond one batch still in flight at the window's end.
    assert!(r.send_lag.count() > 0, "open loop records send lag");
    assert!(r.send_lag.count() <= r.batch_latency.count() + cfg.sessions_per_worker as u64 * 2);
    let v: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
    assert_eq!(v["send_lag_us"]["count"].as_u64(), Some(r.send_lag.count()));
    let text = corekv::bench::report::render::render_table(&r);
    assert!(text.contains("send lag"), "{text}");
    server.shutdown();
}

#[test]
fn a_server_that_dies_mid_run_is_an_error() {
    let (server_cpu, bench_cpu) = cpus();
    let server = corekv::server::run(&ServerConfig::ephemeral(vec![server_cpu])).unwrap();
    let mut cfg = small_config(server.addr().to_string(), bench_cpu);
    cfg.secs = 300.0;
    let bench = std::thread::spawn(move || driver::run(&cfg));
    // Kill the server mid-run: once the load generator's operations reach it
    // (a loaded machine can take seconds to get there; bounded by 30 s).
    let wait = Instant::now() + Duration::from_secs(30);
    while server.stats().total().ops == 0 && Instant::now() < wait {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        server.stats().total().ops > 0,
        "the run never reached the server"
    );
    std::thread::sleep(Duration::from_millis(200));
    let killed = Instant::now();
    server.shutdown();
    let r = bench.join().unwrap();
    let e = r.expect_err("the run must fail when its server goes away");
    // Not a speed check: the run must abort, not go on to its 300 s end.
    assert!(
        killed.elapsed() < Duration::from_secs(120),
        "took {:?}",
        killed.elapsed()
    );
    let msg = format!("{e:#}");
    assert!(msg.contains("aborted"), "{msg}");
}

#[test]
fn no_server_is_an_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_, bench_cpu) = cpus();
    let cfg = small_config(format!("127.0.0.1:{port}"), bench_cpu);
    let e = driver::run(&cfg).expect_err("nothing listens there");
    assert!(format!("{e:#}").contains("connect"), "{e:#}");
}

/// A server process (memcached), killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn redis_driver_runs_against_redis_server() {
    let Some((_redis, addr)) = start_redis() else {
        return;
    };
    let (_, bench_cpu) = cpus();
    let mut cfg = small_config(addr, bench_cpu);
    cfg.target = Target::Redis;
    let r = driver::run(&cfg).unwrap();
    assert!(r.totals.ops > 0);
    assert_eq!(r.totals.errors, 0);
    assert_eq!(r.meta.target, "redis");
    assert_eq!(r.servers.len(), 1, "INFO-based server figures");
    assert_eq!(r.servers[0].durability, "in-memory (appendonly no)");
    let server_ops = r.servers[0].shards[0].ops;
    let slack = 4 * (cfg.sessions_per_worker * cfg.batch) as u64;
    assert!(
        server_ops.abs_diff(r.totals.ops) <= slack,
        "redis counted {server_ops}, client {}",
        r.totals.ops
    );
    assert!(r.bytes_received > 0);
}

/// Starts `memcached -t 1` on a free loopback port (`None` when memcached is
/// not installed and CI is unset; with CI set its absence fails the test).
fn start_memcached() -> Option<(Server, String)> {
    if Command::new("memcached")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "memcached is not installed (CI must install it: .ci/run)"
        );
        eprintln!("memcached not installed: skipping");
        return None;
    }
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cmd = Command::new("memcached");
    cmd.args([
        "-p",
        &port.to_string(),
        "-l",
        "127.0.0.1",
        "-U",
        "0",
        "-t",
        "1",
        "-m",
        "64",
    ]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.args(["-u", "root"]); // memcached refuses root without it
    }
    let child = Server(cmd.stdout(Stdio::null()).spawn().unwrap());
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "memcached did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((child, addr))
}

#[test]
fn memcached_driver_runs_against_memcached() {
    let Some((_a, addr_a)) = start_memcached() else {
        return;
    };
    let Some((_b, addr_b)) = start_memcached() else {
        return;
    };
    let (_, bench_cpu) = cpus();
    let mut cfg = small_config(addr_a.clone(), bench_cpu);
    cfg.hosts = vec![addr_a, addr_b];
    cfg.target = Target::Memcached;
    cfg.batch = 200; // several multi-gets of at most 64 keys, sets between
    let r = driver::run(&cfg).unwrap();
    let t = &r.totals;
    assert!(t.ops > 0);
    assert_eq!(t.errors, 0, "{t:?}");
    assert_eq!(r.meta.target, "memcached");
    assert!(t.get_misses > 0 && t.get_misses < t.gets, "{t:?}");
    assert_eq!(r.get_latency.count(), t.gets);
    // Both servers got keys (node hash) and count what the client sent.
    assert_eq!(r.servers.len(), 2, "stats-based server figures");
    let slack = 4 * (cfg.sessions_per_worker * cfg.batch) as u64;
    let server_ops: u64 = r.servers.iter().map(|s| s.shards[0].ops).sum();
    assert!(
        server_ops.abs_diff(t.ops) <= slack,
        "memcached counted {server_ops}, client {}",
        t.ops
    );
    for s in &r.servers {
        assert!(s.shards[0].keys > 0, "{s:?}");
        assert!(!s.per_second_ops.is_empty());
    }
    assert!(r.bytes_received > 0 && r.bytes_sent > 0);

    // What is stored is what was sent: read one hot key back by hand.
    use std::io::{Read, Write};
    let mut found = 0;
    for addr in &cfg.hosts {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"get 0 1 2 3\r\n").unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.ends_with(b"END\r\n") {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&buf);
        for line in text.lines().filter(|l| l.starts_with("VALUE ")) {
            assert!(line.ends_with(" 0 128"), "{line}");
            found += 1;
        }
    }
    assert!(found > 0, "no hot key was written");
}

/// Starts `redis-server` on a free loopback port (the shared launcher:
/// `None` when it is not installed and CI is unset; with CI set its absence
/// fails the test).
fn start_redis() -> Option<(common::redis::Redis, String)> {
    let redis = common::redis::redis_server()?;
    let addr = redis.addr.to_string();
    Some((redis, addr))
}

/// Cache-aside against one target: over keys drawn from 2^62 (never twice)
/// every GET misses and every miss is filled by a SET in the next batch;
/// over 1000 zipfian keys the misses stop once the keys are written, so a
/// second run on the now-warm server misses less than the first.
fn cache_aside_against(target: Target, addr: String) {
    use corekv::bench::workload::Distribution;
    let (_, bench_cpu) = cpus();
    let mut cfg = small_config(addr, bench_cpu);
    cfg.target = target;
    cfg.cache_aside = true;
    cfg.secs = 1.0;
    cfg.warmup_secs = 0.3;
    cfg.workload.distribution = Distribution::Uniform;
    cfg.workload.records = 1 << 62;
    let r = driver::run(&cfg).unwrap();
    let t = &r.totals;
    assert!(r.meta.cache_aside && r.meta.read_ratio == 1.0);
    assert!(t.gets > 0 && t.errors == 0, "{t:?}");
    assert_eq!(t.gets % cfg.batch as u64, 0, "whole batches of GETs");
    assert_eq!(
        t.get_misses, t.gets,
        "{target:?}: a cold cache of unique keys"
    );
    assert_eq!((r.miss_ratio(), r.miss_ratio_whole_run()), (1.0, 1.0));
    // Every batch but each session's first fills the previous one's misses.
    let batches = t.gets / cfg.batch as u64;
    assert!(
        t.puts + (cfg.sessions_per_worker * cfg.batch) as u64 >= t.gets && t.puts <= t.gets,
        "{target:?}: {batches} batches, {t:?}"
    );
    let json = r.to_json().unwrap();
    assert!(json.contains("\"miss_ratio\": 1.0"), "{json}");
    assert!(report::render_table(&r).contains("cache-aside miss ratio 1.0000"));

    cfg.workload.distribution = Distribution::Zipfian;
    cfg.workload.records = 1000;
    let cold = driver::run(&cfg).unwrap();
    let t = &cold.totals;
    assert_eq!(t.errors, 0, "{t:?}");
    assert!(
        t.warmup_get_misses > 0,
        "{target:?}: the cold start misses: {t:?}"
    );
    assert!(
        cold.miss_ratio() < cold.miss_ratio_whole_run(),
        "{target:?}: misses drop once keys are written: {t:?}"
    );
    let warm = driver::run(&cfg).unwrap();
    assert!(
        warm.miss_ratio_whole_run() < cold.miss_ratio_whole_run(),
        "{target:?}: warm {} vs cold {}",
        warm.miss_ratio_whole_run(),
        cold.miss_ratio_whole_run()
    );
    assert!(warm.miss_ratio() < 0.01, "{target:?}: {:?}", warm.totals);
}

#[test]
fn cache_aside_fills_misses_on_every_target() {
    let (server_cpu, _) = cpus();
    let server = corekv::server::run(&ServerConfig::ephemeral(vec![server_cpu])).unwrap();
    cache_aside_against(Target::Corekv, server.addr().to_string());
    if let Some((_r, addr)) = start_redis() {
        cache_aside_against(Target::Redis, addr);
    }
    if let Some((_m, addr)) = start_memcached() {
        cache_aside_against(Target::Memcached, addr);
    }
}
