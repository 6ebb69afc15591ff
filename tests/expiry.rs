//! Expiry and eviction end to end over loopback RESP, and differential
//! tests against a real `redis-server` (Redis 7): the same scripted commands
//! go to both, and the replies are compared byte for byte — errors and edge
//! values included. Replies that depend on the clock (TTL, PTTL after a
//! relative expiry) are compared as integers within a tolerance; absolute
//! expiries (EXAT/PXAT, EXPIRETIME) are compared exactly.
//!
//! The corekv node has two shards and the script talks to its node-level
//! port, so about half of the keys are forwarded to the other shard: a TTL
//! travels in the forwarded batch.
//!
//! The script runs in RESP2 and again in RESP3 (after HELLO 3). The
//! redis-server launcher and raw connection are the shared harness
//! (`tests/common/redis.rs`).
//!
//! Without `redis-server` the differential test is skipped with a loud
//! message, unless `CI` is set, in which case it fails.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::redis::{assert_no_diffs, diff_calls, redis_server, show, Cmp, Conn};
use corekv::config::{allowed_cpus, ServerConfig};
use corekv::server::{run, ServerHandle};
use corekv::store::Policy;

const TIMEOUT: Duration = Duration::from_secs(10);

fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> ServerHandle {
    let cpus: Vec<usize> = allowed_cpus().into_iter().take(2).collect();
    let mut cfg = ServerConfig::ephemeral(cpus);
    tweak(&mut cfg);
    run(&cfg).expect("server starts")
}

/// `field:value` of an INFO reply.
fn info_field(info: &str, field: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
}

use Cmp::{Exact, Near};

/// 2100-01-01T00:00:00Z, a fixed future for EXAT / PXAT.
const Y2100_S: &str = "4102444800";
const Y2100_MS: &str = "4102444800123";

/// The script, for a key `k` and a second key `n`.
fn script(k: &str, n: &str) -> Vec<(Vec<String>, Cmp)> {
    let lines: Vec<(String, Cmp)> = vec![
        // SET with expiry options.
        (format!("SET {k} v EX 100"), Exact),
        (format!("TTL {k}"), Near(1)),
        (format!("PTTL {k}"), Near(1500)),
        (format!("SET {k} v PXAT {Y2100_MS}"), Exact),
        (format!("PEXPIRETIME {k}"), Exact),
        (format!("EXPIRETIME {k}"), Exact),
        (format!("SET {k} v EXAT {Y2100_S}"), Exact),
        (format!("PEXPIRETIME {k}"), Exact),
        (format!("SET {k} v2 KEEPTTL"), Exact),
        (format!("EXPIRETIME {k}"), Exact),
        (format!("GET {k}"), Exact),
        (format!("SET {k} v3"), Exact),
        (format!("TTL {k}"), Exact),
        (format!("EXPIRETIME {k}"), Exact),
        (format!("TTL {n}"), Exact),
        (format!("PTTL {n}"), Exact),
        (format!("EXPIRETIME {n}"), Exact),
        (format!("PEXPIRETIME {n}"), Exact),
        (format!("SET {k} v EX 10 EX 20"), Exact),
        (format!("TTL {k}"), Near(1)),
        // SET's errors.
        (format!("SET {k} v EX 0"), Exact),
        (format!("SET {k} v EX -1"), Exact),
        (format!("SET {k} v PX 0"), Exact),
        (format!("SET {k} v EX abc"), Exact),
        (format!("SET {k} v EX 9223372036854776"), Exact),
        (format!("SET {k} v EX 9223372036854775"), Exact),
        (format!("SET {k} v PX 9223372036854775807"), Exact),
        (format!("SET {k} v EXAT 0"), Exact),
        (format!("SET {k} v EX"), Exact),
        (format!("SET {k} v EX 10 PX 10"), Exact),
        (format!("SET {k} v KEEPTTL EX 10"), Exact),
        (format!("SET {k} v EX 10 KEEPTTL"), Exact),
        (format!("SET {k} v NX XX"), Exact),
        (format!("SET {k} v PERSIST"), Exact),
        // SET ... GET with NX / XX.
        (format!("SET {k} old"), Exact),
        (format!("SET {k} v4 XX GET"), Exact),
        (format!("SET {k} v5 NX GET"), Exact),
        (format!("GET {k}"), Exact),
        (format!("SET {n} v NX GET EXAT {Y2100_S}"), Exact),
        (format!("EXPIRETIME {n}"), Exact),
        (format!("DEL {n}"), Exact),
        (format!("SET {n} v XX GET"), Exact),
        (format!("EXISTS {n}"), Exact),
        // A past absolute time: the key is gone.
        (format!("SET {k} v EXAT 1"), Exact),
        (format!("GET {k}"), Exact),
        (format!("EXISTS {k}"), Exact),
        // SETEX / PSETEX.
        (format!("SETEX {k} 100 v"), Exact),
        (format!("TTL {k}"), Near(1)),
        (format!("SETEX {k} 0 v"), Exact),
        (format!("SETEX {k} -5 v"), Exact),
        (format!("SETEX {k} abc v"), Exact),
        (format!("PSETEX {k} 100000 v"), Exact),
        (format!("PTTL {k}"), Near(1500)),
        (format!("PSETEX {k} 0 v"), Exact),
        (format!("PSETEX {k} 9223372036854775807 v"), Exact),
        (format!("SETEX {k} 10"), Exact),
        // GETEX.
        (format!("GETEX {k} PERSIST"), Exact),
        (format!("TTL {k}"), Exact),
        (format!("GETEX {k} EX 100"), Exact),
        (format!("TTL {k}"), Near(1)),
        (format!("GETEX {k}"), Exact),
        (format!("TTL {k}"), Near(1)),
        (format!("GETEX {k} PXAT {Y2100_MS}"), Exact),
        (format!("PEXPIRETIME {k}"), Exact),
        (format!("GETEX {k} EX 0"), Exact),
        (format!("GETEX {k} NX"), Exact),
        (format!("GETEX {k} PERSIST EX 10"), Exact),
        (format!("GETEX {k} EX"), Exact),
        (format!("GETEX {k} EXAT 1"), Exact),
        (format!("EXISTS {k}"), Exact),
        (format!("GETEX {k}"), Exact),
        (format!("GETEX {k} PERSIST"), Exact),
        // EXPIRE and friends.
        (format!("EXPIRE {k} 10"), Exact),
        (format!("SET {k} v"), Exact),
        (format!("EXPIRE {k} 100"), Exact),
        (format!("TTL {k}"), Near(1)),
        (format!("PEXPIRE {k} 100000"), Exact),
        (format!("PTTL {k}"), Near(1500)),
        (format!("EXPIREAT {k} {Y2100_S}"), Exact),
        (format!("PEXPIRETIME {k}"), Exact),
        (format!("PEXPIREAT {k} {Y2100_MS}"), Exact),
        (format!("EXPIRETIME {k}"), Exact),
        (format!("PERSIST {k}"), Exact),
        (format!("PERSIST {k}"), Exact),
        (format!("PEXPIREAT {k} {Y2100_MS} XX"), Exact),
        (format!("PEXPIREAT {k} {Y2100_MS} GT"), Exact),
        (format!("PEXPIREAT {k} {Y2100_MS} LT"), Exact),
        (format!("PEXPIRETIME {k}"), Exact),
        (format!("PEXPIREAT {k} 4102444800000 NX"), Exact),
        (format!("PEXPIREAT {k} 4102444800000 XX"), Exact),
        (format!("PEXPIREAT {k} 4102444800000 GT"), Exact),
        (format!("PEXPIREAT {k} 4102444900000 GT"), Exact),
        (format!("PEXPIREAT {k} 4102444999999 LT"), Exact),
        (format!("PEXPIREAT {k} 4102444800000 lt"), Exact),
        (format!("PEXPIRETIME {k}"), Exact),
        (format!("EXPIRE {k} 10 NX XX"), Exact),
        (format!("EXPIRE {k} 10 GT LT"), Exact),
        (format!("EXPIRE {k} 10 NX GT"), Exact),
        (format!("EXPIRE {k} 10 foo"), Exact),
        (format!("EXPIRE {k} abc FoO"), Exact),
        (format!("EXPIRE {k} abc"), Exact),
        (format!("EXPIRE {k} 9223372036854776"), Exact),
        (format!("EXPIRE {k} -9223372036854776"), Exact),
        (format!("EXPIREAT {k} 9223372036854775"), Exact),
        (format!("PEXPIRE {k} 9223372036854775807"), Exact),
        (format!("PEXPIREAT {k} 9223372036854775807"), Exact),
        (format!("PEXPIRETIME {k}"), Exact),
        (format!("PERSIST {k}"), Exact),
        // Negative and zero delete (and answer 1); a missing key answers 0.
        (format!("EXPIRE {k} 0"), Exact),
        (format!("EXISTS {k}"), Exact),
        (format!("SET {k} v"), Exact),
        (format!("PEXPIRE {k} -1"), Exact),
        (format!("GET {k}"), Exact),
        (format!("SET {k} v"), Exact),
        (format!("EXPIREAT {k} -5 LT"), Exact),
        (format!("EXISTS {k}"), Exact),
        (format!("EXPIRE {k} 10"), Exact),
        (format!("PERSIST {k}"), Exact),
        (format!("TTL {k}"), Exact),
        // INCR keeps the TTL; GETSET and MSET clear it.
        (format!("SET {n} 1 EXAT {Y2100_S}"), Exact),
        (format!("INCR {n}"), Exact),
        (format!("INCRBY {n} 40"), Exact),
        (format!("EXPIRETIME {n}"), Exact),
        (format!("GETSET {n} 7"), Exact),
        (format!("EXPIRETIME {n}"), Exact),
        (format!("SET {n} 1 EXAT {Y2100_S}"), Exact),
        (format!("MSET {n} 2"), Exact),
        (format!("TTL {n}"), Exact),
        (format!("SET {n} 1 EXAT {Y2100_S}"), Exact),
        (format!("SET {n} 2 XX"), Exact),
        (format!("TTL {n}"), Exact),
        // Arity.
        ("TTL".to_string(), Exact),
        (format!("TTL {k} {n}"), Exact),
        (format!("EXPIRE {k}"), Exact),
        (format!("PERSIST {k} {n}"), Exact),
        ("GETEX".to_string(), Exact),
        (format!("PEXPIRETIME {k} x"), Exact),
        (format!("DEL {k} {n}"), Exact),
    ];
    lines
        .into_iter()
        .map(|(l, c)| (l.split(' ').map(String::from).collect(), c))
        .collect()
}

/// The CONFIG part of the script: every Redis policy name, maxmemory values
/// and their errors.
fn config_script() -> Vec<(Vec<String>, Cmp)> {
    let mut lines: Vec<String> = Vec::new();
    for p in [
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "noeviction",
    ] {
        lines.push(format!("CONFIG SET maxmemory-policy {p}"));
        lines.push("CONFIG GET maxmemory-policy".into());
        lines.push(format!("CONFIG SET maxmemory-policy {}", p.to_uppercase()));
        lines.push("CONFIG GET maxmemory-policy".into());
    }
    for l in [
        "CONFIG SET maxmemory 10mb",
        "CONFIG GET maxmemory",
        "CONFIG SET maxmemory 3GB maxmemory-policy allkeys-lru",
        "CONFIG GET maxmemory",
        "CONFIG GET maxmemory-policy",
        "CONFIG GET maxmemory-samples",
        "CONFIG SET maxmemory 1k",
        "CONFIG GET maxmemory",
        "CONFIG SET maxmemory abc",
        "CONFIG SET maxmemory -1",
        "CONFIG SET maxmemory 1.5gb",
        "CONFIG SET maxmemory",
        "CONFIG SET foo bar",
        "CONFIG SET maxmemory 0",
        "CONFIG SET maxmemory-policy noeviction",
        "CONFIG GET maxmemory",
    ] {
        lines.push(l.into());
    }
    lines
        .into_iter()
        .map(|l| (l.split(' ').map(String::from).collect(), Exact))
        .collect()
}

/// The script's steps as the harness takes them.
fn steps(script: &[(Vec<String>, Cmp)]) -> Vec<(Vec<Vec<u8>>, Cmp)> {
    script
        .iter()
        .map(|(args, cmp)| (args.iter().map(|a| a.as_bytes().to_vec()).collect(), *cmp))
        .collect()
}

/// The script against both servers, after HELLO `proto` when given.
fn differential(proto: Option<u8>) {
    let Some(redis) = redis_server() else {
        return;
    };
    let node = start_with(|_| {});
    let mut ours = Conn::connect(node.resp_addr.unwrap());
    let mut theirs = Conn::connect(redis.addr);
    let mut diffs = Vec::new();
    if let Some(v) = proto {
        let hello = format!("HELLO {v}");
        assert_eq!(ours.line(&hello)[..4], theirs.line(&hello)[..4]);
    }
    // Several key pairs, so some live on the connection's shard and some
    // are forwarded to the other one.
    for (k, n) in [
        ("k", "n"),
        ("alpha", "beta"),
        ("key:1", "key:2"),
        ("x", "y"),
    ] {
        diffs.extend(diff_calls(&mut ours, &mut theirs, &steps(&script(k, n))));
    }
    diffs.extend(diff_calls(&mut ours, &mut theirs, &steps(&config_script())));
    assert_no_diffs(&diffs);
}

#[test]
fn expiry_commands_match_redis_byte_for_byte() {
    differential(None);
}

/// The same script in RESP3 (nulls are `_`, CONFIG GET a map).
#[test]
fn expiry_commands_match_redis_in_resp3() {
    differential(Some(3));
}

#[test]
fn sieve_is_an_extra_policy_name() {
    let node = start_with(|_| {});
    let mut c = Conn::connect(node.resp_addr.unwrap());
    assert_eq!(
        c.strs(&["CONFIG", "SET", "maxmemory-policy", "sieve"]),
        b"+OK\r\n"
    );
    assert_eq!(
        c.strs(&["CONFIG", "GET", "maxmemory-policy"]),
        b"*2\r\n$16\r\nmaxmemory-policy\r\n$5\r\nsieve\r\n"
    );
    let err = c.strs(&["CONFIG", "SET", "maxmemory-policy", "lru"]);
    assert!(
        String::from_utf8_lossy(&err).starts_with("-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: volatile-lru,"),
        "{}",
        show(&err)
    );
    let info = c.text(&["INFO", "memory"]);
    assert!(info.contains("maxmemory_policy:sieve\r\n"), "{info}");
}

/// Keys nobody touches again are reclaimed by active expiry, on both shards.
#[test]
fn active_expiry_reclaims_untouched_keys() {
    let node = start_with(|_| {});
    let mut c = Conn::connect(node.resp_addr.unwrap());
    for i in 0..2000 {
        let k = format!("t{i}");
        assert_eq!(c.strs(&["SET", &k, "v", "PX", "100"]), b"+OK\r\n");
    }
    for i in 0..100 {
        assert_eq!(c.strs(&["SET", &format!("p{i}"), "v"]), b"+OK\r\n");
    }
    // Bounded wait: the keys expire after 100 ms and active expiry runs
    // every 10 ms per shard; allow up to 20 s on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let keys = c.int(&["DBSIZE"]);
        if keys == 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{keys} keys left; expected the 100 without TTL"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let info = c.text(&["INFO", "all"]);
    assert_eq!(info_field(&info, "expired_keys"), Some(2000), "{info}");
    assert!(
        info.contains("db0:keys=100,expires=0,avg_ttl=0\r\n"),
        "{info}"
    );
    let stats = node.stats().total();
    // What is left is the 100 keys without TTL: per shard (two), the two
    // arena pages holding its share of them ("p0".."p9" and "p10".."p99"
    // are 8 and 12-byte entries: two size classes) and a slot array at its
    // minimum (active expiry shrinks it once it is mostly empty) — the
    // pages of the 2000 expired keys (16 and 20-byte entries) are back.
    let empty = corekv::store::Store::new(corekv::store::StoreLimits {
        max_key_len: 1,
        max_value_len: 1,
        max_memory: usize::MAX,
    })
    .used_bytes() as u64;
    let page = corekv::store::PAGE_BYTES as u64;
    assert!(
        stats.memory_used == 2 * (empty + 2 * page),
        "memory of expired keys is back: used_memory {} (an empty shard {empty}, a page {page})",
        stats.memory_used
    );
}

/// Under `--max-memory` with an evicting policy, writes keep succeeding,
/// memory stays within the limit and INFO counts the evictions; CONFIG SET
/// switches policy and limit at run time.
#[test]
fn eviction_under_max_memory_and_config_set() {
    let node = start_with(|c| {
        c.max_memory = Some(200 * 1024);
        c.maxmemory_policy = Policy::AllKeysLru;
    });
    let mut c = Conn::connect(node.resp_addr.unwrap());
    let value = "x".repeat(200);
    for i in 0..5000 {
        let r = c.strs(&["SET", &format!("key:{i}"), &value]);
        assert_eq!(r, b"+OK\r\n", "write {i}: {}", show(&r));
    }
    let info = c.text(&["INFO", "all"]);
    let used = info_field(&info, "used_memory").unwrap();
    let evicted = info_field(&info, "evicted_keys").unwrap();
    assert!(used <= 200 * 1024, "{used}");
    assert!(evicted > 3000, "{evicted}");
    assert!(info.contains("maxmemory_policy:allkeys-lru\r\n"));
    // Each policy keeps writes going (volatile-* with keys that have a TTL).
    for p in [
        "allkeys-lfu",
        "allkeys-random",
        "sieve",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        assert_eq!(
            c.strs(&["CONFIG", "SET", "maxmemory-policy", p]),
            b"+OK\r\n"
        );
        for i in 0..2000 {
            let r = c.strs(&["SET", &format!("{p}:{i}"), &value, "EX", "1000"]);
            assert_eq!(r, b"+OK\r\n", "{p} write {i}: {}", show(&r));
        }
    }
    // Back to noeviction: a full node refuses writes with Redis's OOM error.
    assert_eq!(
        c.strs(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]),
        b"+OK\r\n"
    );
    let mut oom = false;
    for i in 0..100 {
        let r = c.strs(&["SET", &format!("new:{i}"), &value]);
        if r.starts_with(b"-OOM") {
            oom = true;
            break;
        }
    }
    assert!(oom, "noeviction refuses writes at the limit");
    // Lowering the limit evicts in the background down to it.
    assert_eq!(
        c.strs(&[
            "CONFIG",
            "SET",
            "maxmemory",
            "50kb",
            "maxmemory-policy",
            "allkeys-random"
        ]),
        b"+OK\r\n"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = c.text(&["INFO", "memory"]);
        let used = info_field(&info, "used_memory").unwrap();
        if used <= 50 * 1024 {
            break;
        }
        assert!(Instant::now() < deadline, "still {used} B used");
        std::thread::sleep(Duration::from_millis(20));
    }
    let info = c.text(&["INFO", "memory"]);
    assert_eq!(info_field(&info, "maxmemory"), Some(50 * 1024));
}

/// The native protocol carries a TTL on PUT and reads it back, through a
/// client pinned to shard 0 (so most keys are forwarded with their TTL).
#[test]
fn native_put_with_ttl_and_pttl_across_shards() {
    use corekv::client::blocking::BlockingClient;
    use corekv::client::{ClientOptions, OwnedResult};
    let node = start_with(|_| {});
    for pin in [None, Some(0)] {
        let client = BlockingClient::connect(
            &[node.addr().to_string()],
            ClientOptions {
                timeout: TIMEOUT,
                pin_shard: pin,
                ..Default::default()
            },
        )
        .unwrap();
        for i in 0..200 {
            let k = format!("n{i}");
            let r = client
                .put_ttl(k.as_bytes(), b"v", Duration::from_secs(60))
                .unwrap();
            assert_eq!(r, OwnedResult::Ok);
            match client.pttl(k.as_bytes()).unwrap() {
                OwnedResult::Int(ms) => assert!((50_000..=60_000).contains(&ms), "{ms}"),
                other => panic!("{other:?}"),
            }
        }
        client.put(b"plain", b"v").unwrap();
        assert_eq!(client.pttl(b"plain").unwrap(), OwnedResult::Int(-1));
        assert_eq!(client.pttl(b"absent").unwrap(), OwnedResult::Int(-2));
        // A short TTL: gone within a bounded wait.
        for i in 0..50 {
            let k = format!("short{i}");
            client
                .put_ttl(k.as_bytes(), b"v", Duration::from_millis(30))
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for i in 0..50 {
            let k = format!("short{i}");
            while client.get(k.as_bytes()).unwrap() != OwnedResult::NotFound {
                assert!(Instant::now() < deadline, "{k} did not expire");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let mut b = corekv::protocol::native::Batch::default();
        b.expire(b"plain", 60_000);
        b.pttl(b"plain");
        b.persist(b"plain");
        b.pttl(b"plain");
        b.expire(b"absent", 1000);
        let r = client.execute(&b).unwrap();
        assert_eq!(r[0], OwnedResult::Int(1));
        assert!(matches!(r[1], OwnedResult::Int(ms) if ms > 50_000));
        assert_eq!(
            r[2..],
            [
                OwnedResult::Int(1),
                OwnedResult::Int(-1),
                OwnedResult::Int(0)
            ]
        );
    }
}

/// `corekv put --ttl` and `corekv ttl`, as a user runs them.
#[test]
fn cli_put_with_ttl() {
    let node = start_with(|_| {});
    let bin = env!("CARGO_BIN_EXE_corekv");
    let hosts = node.addr().to_string();
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .args(["--hosts", &hosts])
            .output()
            .expect("run corekv");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    assert_eq!(
        run(&["put", "session:42", "data", "--ttl", "10s"]),
        (Some(0), "OK".into())
    );
    let (code, ms) = run(&["ttl", "session:42"]);
    assert_eq!(code, Some(0));
    let ms: i64 = ms.parse().unwrap();
    assert!((5_000..=10_000).contains(&ms), "{ms}");
    assert_eq!(run(&["put", "p", "v"]), (Some(0), "OK".into()));
    assert_eq!(run(&["ttl", "p"]), (Some(0), "-1".into()));
    assert_eq!(run(&["ttl", "nope"]).0, Some(1));
    let bad = Command::new(bin)
        .args(["put", "k", "v", "--ttl", "10x", "--hosts", &hosts])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("10x"));
}

/// `corekv bench --ttl`: the writes set expiring keys.
#[test]
fn bench_writes_expiring_keys() {
    use corekv::bench::driver::{self, DriverConfig};
    use corekv::bench::workload::WorkloadConfig;
    let node = start_with(|_| {});
    let bench_cpu = *allowed_cpus().last().unwrap();
    let mut cfg = DriverConfig::new(vec![node.addr().to_string()], vec![bench_cpu]);
    cfg.workload = WorkloadConfig {
        records: 2_000,
        ..WorkloadConfig::default()
    };
    cfg.batch = 128;
    cfg.sessions_per_worker = 1;
    cfg.secs = 1.0;
    cfg.warmup_secs = 0.2;
    cfg.base_seed = 7;
    cfg.ttl = Some(Duration::from_secs(600));
    cfg.progress = false;
    let r = driver::run(&cfg).unwrap();
    assert!(r.totals.puts > 0);
    assert_eq!(r.totals.errors, 0);
    let mut c = Conn::connect(node.resp_addr.unwrap());
    let info = c.text(&["INFO", "keyspace"]);
    let db0 = info
        .replace("db0:", "")
        .replace(',', "\n")
        .replace('=', ":");
    let keys = info_field(&db0, "keys").unwrap();
    let expires = info_field(&db0, "expires").unwrap();
    assert!(keys > 0 && expires == keys, "{info}");
}
