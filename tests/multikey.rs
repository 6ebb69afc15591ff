//! Multi-key commands over a two-shard node: MSET, MSETNX, MGET, DEL,
//! EXISTS, RENAME, RENAMENX and COPY, with keys on different shards (the
//! cross-shard transaction of `shard::txn`) and on the same shard, compared
//! byte for byte with a real redis-server in RESP2 and RESP3; and a concurrent history of
//! multi-key commands over keys of both shards, checked linearizable by the
//! multi-key checker (tests/support/multikey.rs, whose unit tests show it
//! rejects the torn MSET a store without the mechanism lets a reader see).

mod common;
#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use common::redis::{redis_server, run_diff, Cmp, Conn};
use corekv::cluster::ClusterMap;
use corekv::config::{allowed_cpus, ServerConfig};
use corekv::routing::key_slot;
use corekv::server::{run, ServerHandle};
use support::multikey::{check_multikey, MInput, MOp, MOutput, MVerdict};

/// A node of two shards (distinct CPUs when there are two), RESP on.
fn start() -> ServerHandle {
    let cpus: Vec<usize> = allowed_cpus().into_iter().take(2).collect();
    assert_eq!(cpus.len(), 2, "these tests need a node of two shards");
    run(&ServerConfig::ephemeral(cpus)).expect("server starts")
}

/// `n` key names of the form `{prefix}N` owned by shard `shard` of a
/// two-shard node.
fn keys_on(shard: u16, prefix: &str, n: usize) -> Vec<String> {
    let map = ClusterMap::single("127.0.0.1:0".into(), 2);
    (0..10_000)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| map.owner(key_slot(k.as_bytes())).shard_id == shard)
        .take(n)
        .collect()
}

/// The script, over keys `a b c d e` (`a`, `c`, `e` on one shard, `b`, `d`
/// on the other, or all on one).
fn script(k: &[String]) -> Vec<(String, Cmp)> {
    let (a, b, c, d, e) = (&k[0], &k[1], &k[2], &k[3], &k[4]);
    let ex = Cmp::Exact;
    let near = Cmp::Near(1);
    let near_ms = Cmp::Near(2000);
    let l = |s: String, c: Cmp| (s, c);
    vec![
        l("FLUSHALL".into(), ex),
        // MSET / MGET
        l(format!("MSET {a} 1 {b} 2"), ex),
        l(format!("MGET {a} {b} {c}"), ex),
        l(format!("MSET {a} x {b} y {a} z"), ex),
        l(format!("MGET {a} {b} {a}"), ex),
        l(format!("MSET {a} 1 {b}"), ex),
        l("MSET".into(), ex),
        l(format!("MGET {c} {d}"), ex),
        // MSETNX
        l(format!("MSETNX {a} 1 {c} 2"), ex),
        l(format!("MGET {a} {c}"), ex),
        l(format!("MSETNX {c} 1 {d} 2"), ex),
        l(format!("MGET {c} {d}"), ex),
        l(format!("MSETNX {c} 9"), ex),
        l(format!("MSETNX {e} 1 {e} 2"), ex),
        l(format!("GET {e}"), ex),
        l(format!("MSETNX {a} 1 {b}"), ex),
        l(format!("MSETNX {a}"), ex),
        l("MSETNX".into(), ex),
        // EXISTS / DEL
        l(format!("EXISTS {a} {b} {b} nokey"), ex),
        l(format!("DEL {a} {b} {a} nokey"), ex),
        l(format!("EXISTS {a} {b}"), ex),
        l(format!("DEL {a} {b}"), ex),
        // RENAME / RENAMENX
        l(format!("RENAME {a} {b}"), ex),
        l(format!("RENAMENX {a} {b}"), ex),
        l(format!("RENAME {a} {a}"), ex),
        l(format!("RENAMENX {a} {a}"), ex),
        l(format!("SET {a} v EX 100"), ex),
        l(format!("RENAME {a} {b}"), ex),
        l(format!("EXISTS {a}"), ex),
        l(format!("GET {b}"), ex),
        l(format!("TTL {b}"), near),
        l(format!("RENAME {b} {b}"), ex),
        l(format!("RENAMENX {b} {b}"), ex),
        l(format!("TTL {b}"), near),
        l(format!("SET {a} w"), ex),
        l(format!("RENAMENX {b} {a}"), ex),
        l(format!("RENAMENX {b} {d}"), ex),
        l(format!("RENAMENX {c} {d}"), ex),
        l(format!("MGET {a} {b} {c} {d}"), ex),
        l(format!("TTL {d}"), near),
        // RENAME onto a key with a TTL: the TTL goes with the value.
        l(format!("SET {e} old EX 500"), ex),
        l(format!("RENAME {a} {e}"), ex),
        l(format!("TTL {e}"), ex),
        l(format!("GET {e}"), ex),
        l(format!("RENAME {a}"), ex),
        l(format!("RENAME {a} {b} {c}"), ex),
        l(format!("RENAMENX {a}"), ex),
        // COPY
        l(format!("COPY {e} {a}"), ex),
        l(format!("COPY {e} {a}"), ex),
        l(format!("SET {e} new PX 100000"), ex),
        l(format!("COPY {e} {a} REPLACE"), ex),
        l(format!("GET {a}"), ex),
        l(format!("PTTL {a}"), near_ms),
        l(format!("GET {e}"), ex),
        l(format!("COPY {e} {e}"), ex),
        l(format!("COPY nokey {a}"), ex),
        l(format!("COPY {e} {a} foo"), ex),
        l(format!("COPY {e} {a} DB x"), ex),
        l(format!("COPY {e} {a} DB 99"), ex),
        l(format!("COPY {e} {a} DB -1"), ex),
        l(format!("COPY {e} {a} DB 0 REPLACE"), ex),
        l(format!("COPY {e} {a} DB"), ex),
        l(format!("COPY {e} {a} REPLACE REPLACE"), ex),
        l(format!("COPY {e} {e} foo"), ex),
        l(format!("COPY {e}"), ex),
        l(format!("COPY {e} {d}"), ex),
        l(format!("MGET {a} {b} {c} {d} {e}"), ex),
        // UNLINK and TOUCH (DEL and EXISTS by other names).
        l(format!("TOUCH {a} {b} {c} {d} {e} nokey"), ex),
        l(format!("UNLINK {a} {b} nokey"), ex),
        l(format!("TOUCH {a} {b} {c}"), ex),
        // Databases: the commands run in the selected one; COPY ... DB n.
        l(format!("COPY {e} {a} DB 1"), ex),
        l(format!("COPY {e} {a} DB 1"), ex),
        l(format!("COPY {e} {e} DB 1"), ex),
        l("SELECT 1".into(), ex),
        l(format!("MGET {a} {b} {e}"), ex),
        l(format!("PTTL {a}"), near_ms),
        l(format!("MSET {b} 1 {c} 2"), ex),
        l(format!("MSETNX {c} 1 {d} 2"), ex),
        l(format!("RENAME {a} {d}"), ex),
        l(format!("RENAMENX {d} {c}"), ex),
        l(format!("EXISTS {a} {b} {c} {d} {e}"), ex),
        l(format!("COPY {d} {d} DB 0"), ex),
        l(format!("COPY {d} {d} DB 0 REPLACE"), ex),
        l(format!("COPY {d} {d}"), ex),
        // MOVE: a transaction over the key in two databases.
        l(format!("SET {e} m EX 300"), ex),
        l(format!("MOVE {e} 0"), ex),
        l(format!("MOVE {d} 0"), ex),
        l(format!("MOVE {c} 0"), ex),
        l("MOVE nokey 0".into(), ex),
        l(format!("MOVE {c} 1"), ex),
        l(format!("MOVE {c} 99"), ex),
        l(format!("MOVE {c} x"), ex),
        l(format!("EXISTS {c} {d} {e}"), ex),
        l("DBSIZE".into(), ex),
        l(format!("DEL {a} {b} {c} {d} {e}"), ex),
        l("SELECT 0".into(), ex),
        l(format!("MGET {a} {b} {c} {d} {e}"), ex),
        l(format!("TTL {e}"), near),
        l(format!("DEL {a} {b} {c} {d} {e}"), ex),
        l("DBSIZE".into(), ex),
    ]
}

fn differential(keys: &[String]) {
    let Some(redis) = redis_server() else { return };
    let node = start();
    for resp3 in [false, true] {
        let mut ours = Conn::connect(node.resp_addr.expect("RESP is on"));
        let mut theirs = Conn::connect(redis.addr);
        if resp3 {
            // HELLO's own reply names each server: not compared.
            ours.line("HELLO 3");
            theirs.line("HELLO 3");
        }
        let bad = run_diff(&mut ours, &mut theirs, &script(keys));
        assert!(
            bad.is_empty(),
            "replies differ (RESP{}):\n{}",
            if resp3 { 3 } else { 2 },
            bad.join("\n")
        );
    }
}

#[test]
fn differential_keys_on_different_shards() {
    let s0 = keys_on(0, "x", 3);
    let s1 = keys_on(1, "y", 2);
    differential(&[
        s0[0].clone(),
        s1[0].clone(),
        s0[1].clone(),
        s1[1].clone(),
        s0[2].clone(),
    ]);
}

#[test]
fn differential_keys_on_one_shard() {
    // Shard 1: a connection on the node port lands on either shard, so
    // one of the two runs forwards; both must agree with Redis.
    differential(&keys_on(1, "z", 5));
    differential(&keys_on(0, "w", 5));
}

/// Reads one reply as an [`MOutput`].
fn output(reply: &[u8]) -> MOutput {
    match reply.first() {
        Some(b'+') => MOutput::Ok,
        Some(b'-') => MOutput::Err,
        Some(b':') => MOutput::Int(
            std::str::from_utf8(&reply[1..reply.len() - 2])
                .unwrap()
                .parse()
                .unwrap(),
        ),
        Some(b'*') => {
            let mut vals = Vec::new();
            let mut pos = reply.iter().position(|&b| b == b'\n').unwrap() + 1;
            while pos < reply.len() {
                let nl = pos + reply[pos..].iter().position(|&b| b == b'\n').unwrap();
                let len: i64 = std::str::from_utf8(&reply[pos + 1..nl - 1])
                    .unwrap()
                    .parse()
                    .unwrap();
                if len < 0 {
                    vals.push(None);
                    pos = nl + 1;
                } else {
                    let start = nl + 1;
                    vals.push(Some(reply[start..start + len as usize].to_vec()));
                    pos = start + len as usize + 2;
                }
            }
            MOutput::Values(vals)
        }
        _ => panic!("unexpected reply {:?}", String::from_utf8_lossy(reply)),
    }
}

/// Several clients, each on its own connection (landing on either shard),
/// run random MSET / MSETNX / MGET / DEL / RENAME (and now and then
/// FLUSHALL, a node-wide barrier) over four keys, two per shard, bounded in operations and time; the whole history must be
/// linearizable against one model of all four keys.
#[test]
fn concurrent_multikey_history_is_linearizable() {
    let node = start();
    let addr = node.resp_addr.expect("RESP is on");
    let mut names = keys_on(0, "lin", 2);
    names.extend(keys_on(1, "lin", 2));
    let clients = 4;
    let ops_per_client = 300;
    let deadline = Instant::now() + Duration::from_secs(60);
    let base = Instant::now();
    let barrier = std::sync::Barrier::new(clients);
    let names = &names;
    let (barrier, base) = (&barrier, &base);
    let history: Vec<MOp> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                scope.spawn(move || {
                    let mut conn = Conn::connect(addr);
                    let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ ((client as u64 + 1) * 0x9E37_79B9);
                    let mut next = move || {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng
                    };
                    let mut ops = Vec::new();
                    barrier.wait();
                    for seq in 0..ops_per_client {
                        if Instant::now() > deadline {
                            break;
                        }
                        let r = next();
                        let k1 = (r % 4) as usize;
                        let k2 = (k1 + 1 + (r >> 8) as usize % 3) % 4;
                        let val = |i: usize| format!("c{client}-{seq}-{i}").into_bytes();
                        let input = match (r >> 16) % 6 {
                            _ if (r >> 24) % 50 == 0 => MInput::FlushAll,
                            0 | 1 => MInput::Mset(vec![(k1, val(0)), (k2, val(1))]),
                            2 => MInput::Msetnx(vec![(k1, val(0)), (k2, val(1))]),
                            3 => MInput::Mget(vec![0, 1, 2, 3]),
                            4 => MInput::Rename(k1, k2),
                            _ => MInput::Del(vec![k1, k2]),
                        };
                        let mut args: Vec<Vec<u8>> = Vec::new();
                        let name = |k: &usize| names[*k].as_bytes().to_vec();
                        match &input {
                            MInput::Mset(p) | MInput::Msetnx(p) => {
                                let cmd = if matches!(input, MInput::Mset(_)) {
                                    "MSET"
                                } else {
                                    "MSETNX"
                                };
                                args.push(cmd.into());
                                for (k, v) in p {
                                    args.push(name(k));
                                    args.push(v.clone());
                                }
                            }
                            MInput::Mget(ks) | MInput::Del(ks) => {
                                let cmd = if matches!(input, MInput::Mget(_)) {
                                    "MGET"
                                } else {
                                    "DEL"
                                };
                                args.push(cmd.into());
                                args.extend(ks.iter().map(name));
                            }
                            MInput::Rename(s, d) => {
                                args.push("RENAME".into());
                                args.push(name(s));
                                args.push(name(d));
                            }
                            MInput::FlushAll => args.push("FLUSHALL".into()),
                        }
                        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
                        let call = base.elapsed().as_nanos() as u64;
                        let reply = conn.call(&argv);
                        let ret = base.elapsed().as_nanos() as u64;
                        ops.push(MOp {
                            client,
                            input,
                            output: output(&reply),
                            call,
                            ret,
                        });
                    }
                    ops
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(history.len() >= clients * 20, "the clients ran");
    let renames_ok = history
        .iter()
        .filter(|o| matches!(o.input, MInput::Rename(..)) && o.output == MOutput::Ok)
        .count();
    assert!(renames_ok > 0, "some RENAME moved a key");
    assert_eq!(
        check_multikey(&history, 4, 50_000_000),
        MVerdict::Linearizable,
        "history of {} operations",
        history.len()
    );
}

/// A transaction's writes are logged like ordinary writes: after a restart
/// from the append-only logs (`appendfsync always`), a cross-shard RENAME
/// (value and TTL moved), MSET, MSETNX, COPY and DEL are all there.
#[test]
fn transactions_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("corekv-test-multikey-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let start_logged = || {
        let cpus: Vec<usize> = allowed_cpus().into_iter().take(2).collect();
        let mut cfg = ServerConfig::ephemeral(cpus);
        cfg.persist.appendonly = true;
        cfg.persist.fsync = corekv::persist::Fsync::Always;
        cfg.persist.dir = dir.clone();
        run(&cfg).expect("server starts")
    };
    let s0 = keys_on(0, "p", 3);
    let s1 = keys_on(1, "q", 3);
    let node = start_logged();
    let mut c = Conn::connect(node.resp_addr.unwrap());
    let cmd = |c: &mut Conn, line: String| String::from_utf8(c.line(&line)).unwrap();
    assert_eq!(
        cmd(&mut c, format!("SET {} moved EX 1000", s0[0])),
        "+OK\r\n"
    );
    assert_eq!(
        cmd(&mut c, format!("RENAME {} {}", s0[0], s1[0])),
        "+OK\r\n"
    );
    assert_eq!(
        cmd(&mut c, format!("MSET {} a {} b", s0[1], s1[1])),
        "+OK\r\n"
    );
    assert_eq!(
        cmd(&mut c, format!("MSETNX {} c {} d", s0[2], s1[2])),
        ":1\r\n"
    );
    assert_eq!(cmd(&mut c, format!("COPY {} {}", s1[0], s0[0])), ":1\r\n");
    assert_eq!(cmd(&mut c, format!("DEL {} {}", s0[2], s1[2])), ":2\r\n");
    drop(c);
    node.shutdown();
    let node = start_logged();
    let mut c = Conn::connect(node.resp_addr.unwrap());
    let got = cmd(
        &mut c,
        format!(
            "MGET {} {} {} {} {} {}",
            s0[0], s1[0], s0[1], s1[1], s0[2], s1[2]
        ),
    );
    assert_eq!(
        got,
        "*6\r\n$5\r\nmoved\r\n$5\r\nmoved\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n$-1\r\n"
    );
    for k in [&s0[0], &s1[0]] {
        let ttl = cmd(&mut c, format!("TTL {k}"));
        let ttl: i64 = ttl[1..ttl.len() - 2].parse().unwrap();
        assert!((990..=1000).contains(&ttl), "TTL kept: {ttl}");
    }
    drop(c);
    node.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// An MGET across shards is bounded by the connection's reply limit like a
/// co-located one: past `--max-reply-bytes` both get the same error, and
/// nothing else changes.
#[test]
fn cross_shard_mget_is_bounded_like_a_local_one() {
    let cpus: Vec<usize> = allowed_cpus().into_iter().take(2).collect();
    let mut cfg = ServerConfig::ephemeral(cpus);
    cfg.limits.max_reply_bytes = 1000;
    let node = run(&cfg).expect("server starts");
    let mut c = Conn::connect(node.resp_addr.unwrap());
    let s0 = keys_on(0, "big", 2);
    let s1 = keys_on(1, "big", 1);
    let v = vec![b'v'; 600];
    for k in [&s0[0], &s0[1], &s1[0]] {
        assert_eq!(c.call(&[b"SET", k.as_bytes(), &v]), b"+OK\r\n");
    }
    let local = c.call(&[b"MGET", s0[0].as_bytes(), s0[1].as_bytes()]);
    let cross = c.call(&[b"MGET", s0[0].as_bytes(), s1[0].as_bytes()]);
    assert!(local.starts_with(b"-ERR reply too large"), "{local:?}");
    assert_eq!(cross, local);
    // One value fits.
    let one = c.call(&[b"MGET", s1[0].as_bytes(), b"nokey"]);
    assert!(one.starts_with(b"*2\r\n$600\r\n"));
}

/// In a cluster of two nodes × two shards: a multi-key command whose keys
/// are all on the receiving node is served (across its shards, atomically);
/// one spanning nodes gets `-CROSSSLOT`, one whose keys are all in one slot
/// of another node `-MOVED`, as for every key command; COPY into another
/// database is refused as Redis Cluster refuses it.
#[test]
fn cluster_mode_keeps_the_crossslot_rule() {
    let nodes = common::start_cluster(2, 2);
    let mut c = Conn::connect(nodes[0].resp_addr.unwrap());
    // Node 0 owns slots 0..8192 (shard 0 below 4096), node 1 the rest.
    let key = |lo: u16, hi: u16, prefix: &str| {
        (0..100_000)
            .map(|i| format!("{prefix}{i}"))
            .find(|k| (lo..hi).contains(&key_slot(k.as_bytes())))
            .unwrap()
    };
    let (a, b, far) = (
        key(0, 4096, "a"),
        key(4096, 8192, "b"),
        key(8192, 16384, "f"),
    );
    let far2 = key(8192, 16384, "g");
    let mut cmd = |line: String| String::from_utf8(c.line(&line)).unwrap();
    assert_eq!(cmd(format!("MSET {a} 1 {b} 2")), "+OK\r\n");
    assert_eq!(cmd(format!("MSETNX {a} 1 {b} 2")), ":0\r\n");
    assert_eq!(cmd(format!("RENAME {a} {b}")), "+OK\r\n");
    assert_eq!(cmd(format!("MGET {a} {b}")), "*2\r\n$-1\r\n$1\r\n1\r\n");
    let crossslot = "-CROSSSLOT Keys in request don't hash to the same slot\r\n";
    assert_eq!(cmd(format!("RENAME {b} {far}")), crossslot);
    assert_eq!(cmd(format!("MSETNX {a} 1 {far} 2")), crossslot);
    assert_eq!(cmd(format!("COPY {b} {far}")), crossslot);
    if key_slot(far.as_bytes()) != key_slot(far2.as_bytes()) {
        assert_eq!(cmd(format!("RENAME {far} {far2}")), crossslot);
    }
    let tagged = format!("{{{far}}}x");
    assert!(cmd(format!("RENAME {far} {tagged}")).starts_with("-MOVED "));
    assert_eq!(
        cmd(format!("COPY {b} {a} DB 1")),
        "-ERR Copying to another database is not allowed in cluster mode\r\n"
    );
    assert_eq!(cmd(format!("COPY {b} {a}")), ":1\r\n");
}
