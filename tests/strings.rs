//! The string commands (GETDEL, GETRANGE, SUBSTR, SETRANGE, APPEND,
//! INCRBYFLOAT, LCS, SET's option combinations) against a real
//! `redis-server` (Redis 7), byte for byte, in RESP2 and in RESP3 (HELLO 3
//! first): the same scripted commands go to both servers, errors and edge
//! values included.
//!
//! The corekv node has two shards and the script talks to its node-level
//! port with several key pairs, so some keys are forwarded to the other
//! shard: the read-modify-write ops run on their owner. redis-server is
//! started with `--proto-max-bulk-len` equal to corekv's value-size limit
//! (`--max-value-len`, 1 MiB), the bound SETRANGE/APPEND and LCS's table
//! are checked against; SETRANGE at offset 512 MB − 1 is refused by both
//! without allocating anything.
//!
//! Without `redis-server` the tests are skipped with a loud message, unless
//! `CI` is set, in which case they fail.

mod common;

use common::redis::{assert_no_diffs, diff_calls, redis_server_with, Cmp, Conn};
use corekv::config::DEFAULT_MAX_VALUE_LEN;

use Cmp::{Exact, Near};

/// One scripted command: its arguments (binary-safe) and the comparison.
type Step = (Vec<Vec<u8>>, Cmp);

/// A command line split on spaces; `""` stands for an empty argument.
fn cmd(line: &str, cmp: Cmp) -> Step {
    let args = line
        .split(' ')
        .map(|w| {
            if w == "\"\"" {
                Vec::new()
            } else {
                w.as_bytes().to_vec()
            }
        })
        .collect();
    (args, cmp)
}

/// A command from explicit arguments (spaces, binary bytes).
fn call(args: &[&[u8]], cmp: Cmp) -> Step {
    (args.iter().map(|a| a.to_vec()).collect(), cmp)
}

/// The script for a key `k` and a second key `n`.
fn script(k: &str, n: &str) -> Vec<Step> {
    let mut s: Vec<Step> = [
        // GETDEL
        format!("DEL {k} {n}"),
        format!("GETDEL {k}"),
        format!("SET {k} hello"),
        format!("GETDEL {k}"),
        format!("GETDEL {k}"),
        format!("EXISTS {k}"),
        "GETDEL".to_string(),
        format!("GETDEL {k} {n}"),
        // GETRANGE / SUBSTR
        format!("SET {k} HelloWorld"),
        format!("GETRANGE {k} 0 3"),
        format!("GETRANGE {k} -3 -1"),
        format!("GETRANGE {k} 0 -1"),
        format!("GETRANGE {k} 10 100"),
        format!("GETRANGE {k} 9 100"),
        format!("GETRANGE {k} -100 -50"),
        format!("GETRANGE {k} -100 2"),
        format!("GETRANGE {k} -1 -5"),
        format!("GETRANGE {k} 5 3"),
        format!("GETRANGE {k} -9223372036854775808 9223372036854775807"),
        format!("GETRANGE {k} 0 9223372036854775808"),
        format!("GETRANGE {k} 0 x"),
        format!("GETRANGE {k} 01 2"),
        format!("GETRANGE {k} +1 2"),
        format!("GETRANGE {n} 0 -1"),
        format!("GETRANGE {n} x 1"),
        format!("GETRANGE {k} 0"),
        format!("SUBSTR {k} 1 3"),
        format!("SUBSTR {k} -2 -1"),
        format!("SUBSTR {k} 1"),
        format!("SET {k} \"\""),
        format!("GETRANGE {k} 0 -1"),
        format!("GETRANGE {k} 0 0"),
        // SETRANGE
        format!("SETRANGE {n} 0 \"\""),
        format!("SETRANGE {n} 5 \"\""),
        format!("EXISTS {n}"),
        format!("SETRANGE {n} 5 abc"),
        format!("GET {n}"),
        format!("SETRANGE {n} 0 XY"),
        format!("SETRANGE {n} 7 long-tail"),
        format!("GET {n}"),
        format!("SETRANGE {n} 1 \"\""),
        format!("SETRANGE {n} -1 x"),
        format!("SETRANGE {n} x x"),
        format!("SETRANGE {n} 536870911 x"),
        format!("SETRANGE {n} 536870911 \"\""),
        format!("SETRANGE {n} 9223372036854775807 x"),
        format!("SETRANGE {n} 9223372036854775808 x"),
        format!("SETRANGE {n} 1048576 x"),
        format!("SETRANGE {n} 1048575 xy"),
        format!("SETRANGE {n} 1048575 x"),
        format!("STRLEN {n}"),
        format!("GETRANGE {n} 1048570 -1"),
        format!("SETRANGE {n} 1048575 \"\""),
        format!("APPEND {n} z"),
        format!("DEL {n}"),
        format!("SETRANGE {n} 0"),
        format!("SETRANGE {n} 0 a b"),
        // APPEND
        format!("APPEND {n} x"),
        format!("APPEND {n} yz"),
        format!("APPEND {n} \"\""),
        format!("GET {n}"),
        format!("APPEND {n}"),
        format!("SET {n} 12"),
        format!("APPEND {n} 34"),
        format!("INCR {n}"),
        // TTL is kept by SETRANGE, APPEND and INCRBYFLOAT.
        format!("SET {k} abc EX 100"),
        format!("SETRANGE {k} 1 z"),
        format!("TTL {k}"),
        format!("APPEND {k} def"),
        format!("TTL {k}"),
        format!("GET {k}"),
        format!("SET {k} 5 EX 100"),
        format!("INCRBYFLOAT {k} 1.5"),
        format!("TTL {k}"),
        format!("DEL {k} {n}"),
        // INCRBYFLOAT: Redis's long double digits and its errors.
        format!("SET {k} 10.50"),
        format!("INCRBYFLOAT {k} 0.1"),
        format!("INCRBYFLOAT {k} -5"),
        format!("INCRBYFLOAT {k} 5.0e3"),
        format!("INCRBYFLOAT {k} 2.0e2"),
        format!("INCRBYFLOAT {k} -5205.6"),
        format!("GET {k}"),
        format!("INCRBYFLOAT {n} 3.0e3"),
        format!("INCRBYFLOAT {n} 0.1"),
        format!("INCRBYFLOAT {n} -3000.1"),
        format!("INCRBYFLOAT {n} inf"),
        format!("INCRBYFLOAT {n} -inf"),
        format!("INCRBYFLOAT {n} +inf"),
        format!("INCRBYFLOAT {n} infinity"),
        format!("INCRBYFLOAT {n} nan"),
        format!("INCRBYFLOAT {n} -nan"),
        format!("INCRBYFLOAT {n} abc"),
        format!("INCRBYFLOAT {n} \"\""),
        format!("INCRBYFLOAT {n} 1e5000"),
        format!("INCRBYFLOAT {n} 1e-5000"),
        format!("INCRBYFLOAT {n} 0x1p3"),
        format!("INCRBYFLOAT {n} 1.7976931348623157e308"),
        format!("INCRBYFLOAT {n} 1e4000"),
        format!("INCRBYFLOAT {n} 1.18e4932"),
        format!("INCRBYFLOAT {n} 1.18e4932"),
        format!("GET {n}"),
        format!("SET {n} 1e-300"),
        format!("INCRBYFLOAT {n} 1e-300"),
        format!("INCRBYFLOAT {n} +1"),
        format!("INCRBYFLOAT {n} 1."),
        format!("INCRBYFLOAT {n} .5"),
        format!("INCRBYFLOAT {n} 1,5"),
        format!("INCRBYFLOAT {n} 1_0"),
        format!("SET {n} inf"),
        format!("INCRBYFLOAT {n} 1"),
        format!("SET {n} nan"),
        format!("INCRBYFLOAT {n} 1"),
        format!("SET {n} 9223372036854775807"),
        format!("INCRBYFLOAT {n} 1"),
        format!("INCRBYFLOAT {n} -0.5"),
        format!("SET {n} -0"),
        format!("INCRBYFLOAT {n} -0"),
        format!("SET {n} 3"),
        format!("INCRBYFLOAT {n} -3"),
        format!("INCRBYFLOAT {n}"),
        format!("INCRBYFLOAT {n} 1 2"),
        // LCS
        format!("SET {k} ohmytext"),
        format!("SET {n} mynewtext"),
        format!("LCS {k} {n}"),
        format!("LCS {k} {n} LEN"),
        format!("LCS {k} {n} IDX"),
        format!("LCS {k} {n} IDX MINMATCHLEN 4 WITHMATCHLEN"),
        format!("LCS {k} {n} idx withmatchlen"),
        format!("LCS {k} {n} IDX MINMATCHLEN -5"),
        format!("LCS {k} {n} IDX MINMATCHLEN 99999999999"),
        format!("LCS {k} {n} LEN IDX"),
        format!("LCS {k} {n} LEN LEN"),
        format!("LCS {k} {n} FOO"),
        format!("LCS {k} {n} MINMATCHLEN"),
        format!("LCS {k} {n} MINMATCHLEN x"),
        format!("LCS {k} {n} LEN MINMATCHLEN 2"),
        format!("LCS {k} {k}"),
        format!("LCS {k} {k} IDX"),
        format!("LCS {k} missing:{k}"),
        format!("LCS missing:{k} missing:{n} IDX"),
        format!("LCS missing:{k} missing:{n} LEN"),
        format!("LCS {k}"),
        format!("SET {k} a"),
        format!("SET {n} a"),
        format!("LCS {k} {n} IDX WITHMATCHLEN"),
        format!("SET {k} abcXdefYghi"),
        format!("SET {n} ZabcdefWghiQ"),
        format!("LCS {k} {n} IDX WITHMATCHLEN"),
        format!("LCS {k} {n} IDX MINMATCHLEN 3"),
        // SET option combinations (Redis 7 accepts GET with NX / XX).
        format!("DEL {k} {n}"),
        format!("SET {k} v XX GET"),
        format!("SET {k} v NX GET"),
        format!("SET {k} w NX GET"),
        format!("SET {k} x XX GET"),
        format!("SET {k} y GET XX"),
        format!("SET {k} y GET NX"),
        format!("SET {k} z GET KEEPTTL"),
        format!("SET {k} z GET EX 100"),
        format!("TTL {k}"),
        format!("SET {k} z KEEPTTL GET XX"),
        format!("TTL {k}"),
        format!("SET {k} z PX 100000 GET NX"),
        format!("SET {k} z NX XX GET"),
        format!("SET {k} z GET GET"),
        format!("SET {k} z NX NX"),
        format!("SET {k} z XX XX"),
        format!("SET {k} z KEEPTTL KEEPTTL"),
        format!("SET {k} z KEEPTTL PERSIST"),
        format!("SET {k} z EX 10 GET PX 5"),
        format!("SET {n} z XX"),
        format!("SET {n} z NX"),
        format!("SET {n} z NX"),
        format!("GET {k}"),
        format!("DEL {k} {n}"),
    ]
    .iter()
    .map(|l| {
        let near = l.starts_with("TTL");
        cmd(l, if near { Near(1) } else { Exact })
    })
    .collect();
    // Arguments with spaces and binary bytes.
    let (kb, nb) = (k.as_bytes(), n.as_bytes());
    s.extend([
        call(&[b"SET", kb, b"a\x00b\r\nc"], Exact),
        call(&[b"APPEND", kb, b"\x00\xff"], Exact),
        call(&[b"GETRANGE", kb, b"1", b"-2"], Exact),
        call(&[b"SETRANGE", kb, b"2", b"\x01 \x02"], Exact),
        call(&[b"GETDEL", kb], Exact),
        call(&[b"SET", nb, b"1"], Exact),
        call(&[b"INCRBYFLOAT", nb, b"  1"], Exact),
        call(&[b"INCRBYFLOAT", nb, b"1 "], Exact),
        call(&[b"INCRBYFLOAT", nb, b"\t1"], Exact),
        call(&[b"INCRBYFLOAT", nb, b"1\x00junk"], Exact),
        call(&[b"INCRBYFLOAT", nb, b"5.0e3"], Exact),
        call(&[b"SET", nb, b" 1"], Exact),
        call(&[b"INCRBYFLOAT", nb, b"1"], Exact),
        call(&[b"SET", nb, b"1 "], Exact),
        call(&[b"INCRBYFLOAT", nb, b"1"], Exact),
        call(&[b"DEL", kb, nb], Exact),
    ]);
    // LCS at the edge of its table bound: 512 × 512 cells of 4 bytes are
    // exactly 1 MiB (allowed), 513 × 513 are over it (refused).
    for len in [511usize, 512, 600] {
        let a: Vec<u8> = (0..len).map(|i| b"abcde"[i * 7 % 5]).collect();
        let b: Vec<u8> = (0..len).map(|i| b"abcdef"[i * 5 % 6]).collect();
        s.extend([
            call(&[b"SET", kb, &a], Exact),
            call(&[b"SET", nb, &b], Exact),
            call(&[b"LCS", kb, nb, b"LEN"], Exact),
            call(&[b"LCS", kb, nb], Exact),
            call(
                &[
                    b"LCS",
                    kb,
                    nb,
                    b"IDX",
                    b"MINMATCHLEN",
                    b"2",
                    b"WITHMATCHLEN",
                ],
                Exact,
            ),
        ]);
    }
    s.push(cmd(&format!("DEL {k} {n}"), Exact));
    s
}

/// Key pairs: some on the connection's shard, some forwarded.
const PAIRS: [(&str, &str); 3] = [("k", "n"), ("alpha", "beta"), ("key:1", "key:2")];

fn redis() -> Option<common::redis::Redis> {
    let max = DEFAULT_MAX_VALUE_LEN.to_string();
    redis_server_with(&["--proto-max-bulk-len", &max])
}

fn run_script(hello3: bool, db: Option<u8>) {
    let Some(redis) = redis() else {
        return;
    };
    let node = common::start(0, 2);
    let mut ours = Conn::connect(node.resp_addr.unwrap());
    let mut theirs = Conn::connect(redis.addr);
    if let Some(db) = db {
        let select = format!("SELECT {db}");
        assert_eq!(ours.line(&select), b"+OK\r\n");
        assert_eq!(theirs.line(&select), b"+OK\r\n");
    }
    if hello3 {
        // The maps differ in version and id; their shape is compared in
        // tests/resp3.rs. Both must now speak RESP3.
        assert!(ours.line("HELLO 3").starts_with(b"%7\r\n"));
        assert!(theirs.line("HELLO 3").starts_with(b"%7\r\n"));
    }
    let mut diffs = Vec::new();
    for (k, n) in PAIRS {
        diffs.extend(diff_calls(&mut ours, &mut theirs, &script(k, n)));
    }
    assert_no_diffs(&diffs);
    if db.is_some() {
        // The keys were written in that database, not in 0.
        ours.line("SET marker x");
        assert_eq!(ours.line("DBSIZE"), b":1\r\n");
        ours.line("SELECT 0");
        assert_eq!(ours.line("DBSIZE"), b":0\r\n");
    }
}

#[test]
fn string_commands_match_redis_resp2() {
    run_script(false, None);
}

#[test]
fn string_commands_match_redis_resp3() {
    run_script(true, None);
}

/// The same script in database 5 (the ops run in the connection's
/// database, also when forwarded to the other shard).
#[test]
fn string_commands_match_redis_in_another_database() {
    run_script(false, Some(5));
}

/// Read-modify-write ops are atomic per key: many clients appending and
/// incrementing the same keys (on both shards) lose no update.
#[test]
fn read_modify_write_ops_lose_no_update() {
    let node = common::start(0, 2);
    let addr = node.resp_addr.unwrap();
    let (clients, rounds) = (4, 200);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Conn::connect(addr);
                for _ in 0..rounds {
                    for key in ["k", "n"] {
                        c.line(&format!("APPEND log:{key} x"));
                        c.line(&format!("INCRBYFLOAT f:{key} 0.5"));
                        c.line(&format!("SETRANGE r:{key} 0 y"));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut c = Conn::connect(addr);
    let total = clients * rounds;
    for key in ["k", "n"] {
        assert_eq!(
            c.line(&format!("STRLEN log:{key}")),
            format!(":{total}\r\n").as_bytes()
        );
        let sum = format!("{}", total / 2);
        assert_eq!(
            c.line(&format!("GET f:{key}")),
            format!("${}\r\n{sum}\r\n", sum.len()).as_bytes()
        );
        assert_eq!(c.line(&format!("GET r:{key}")), b"$1\r\ny\r\n");
    }
}
