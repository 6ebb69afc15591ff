//! RESP3 end to end: HELLO (protocol versions, AUTH, SETNAME) and the
//! replies Redis 7 types differently in RESP3 — nulls, maps (HELLO, CONFIG
//! GET, COMMAND DOCS, LATENCY HISTOGRAM, LCS IDX, CLUSTER SHARDS), sets
//! (COMMAND INFO's flags), verbatim strings (INFO, CLIENT INFO / LIST,
//! CLUSTER INFO / NODES) — compared with a real `redis-server` byte for
//! byte where the two servers' contents agree, and by shape where they
//! cannot (server version, client ids, INFO's fields). Every script runs
//! in RESP2 too, which must stay as it was.
//!
//! Without `redis-server` the differential tests are skipped with a loud
//! message, unless `CI` is set, in which case they fail.

mod common;

use common::redis::{agree, assert_no_diffs, frame_len, redis_server_with, show, Cmp, Conn};
use corekv::server::ServerHandle;

use Cmp::{Exact, SameType};

/// HELLO's reply with the fields that differ between two servers (server
/// version, client id, mode) replaced by placeholders.
fn mask_hello(r: &[u8]) -> String {
    let text = String::from_utf8_lossy(r).into_owned();
    let mut out = Vec::new();
    let mut lines = text.split("\r\n").peekable();
    while let Some(l) = lines.next() {
        out.push(l.to_string());
        if l == "version" || l == "id" {
            // `$n` + value, or `:n`.
            let v = lines.next().unwrap_or_default();
            if v.starts_with('$') {
                lines.next();
                out.push("$?".into());
            }
            out.push("?".into());
        }
    }
    out.join("\r\n")
}

/// Sends `line` to both; an error line when the replies disagree.
fn check(ours: &mut Conn, theirs: &mut Conn, line: &str, cmp: Cmp) -> Option<String> {
    let a = ours.line(line);
    let b = theirs.line(line);
    let same = if line.to_ascii_uppercase().starts_with("HELLO") {
        mask_hello(&a) == mask_hello(&b)
    } else {
        agree(cmp, &a, &b)
    };
    (!same).then(|| format!("{line}\n  corekv: {}\n  redis:  {}", show(&a), show(&b)))
}

/// The script for keys `k` and `n` (a node's two shards between them).
fn script(k: &str, n: &str) -> Vec<(String, Cmp)> {
    let exact = [
        format!("DEL {k} {n}"),
        format!("GET {k}"),
        format!("SET {k} v"),
        format!("GET {k}"),
        format!("MGET {k} {n} {k}"),
        format!("MSET {k} 1 {n} 2"),
        format!("MGET {k} {n}"),
        format!("SET {n} v NX"),
        format!("SET {n} v XX"),
        format!("SET {n} w GET"),
        format!("SET missing:{n} w XX GET"),
        format!("SET missing:{n} w NX GET"),
        format!("GETSET missing:{k} x"),
        format!("SETNX {k} x"),
        format!("INCR {k}"),
        format!("INCRBY {k} 5"),
        format!("DECRBY {k} 2"),
        format!("INCRBYFLOAT {k} 1.5"),
        format!("STRLEN {k}"),
        format!("EXISTS {k} {n} nope"),
        format!("GETEX missing:{k}"),
        format!("GETEX {k} PERSIST"),
        format!("GETDEL missing:{k}"),
        format!("GETRANGE missing:{k} 0 -1"),
        format!("TTL {k}"),
        format!("PTTL missing:{k}"),
        format!("EXPIRETIME {k}"),
        format!("EXPIRE {k} 100"),
        format!("PERSIST {k}"),
        format!("SET {k} ohmytext"),
        format!("SET {n} mynewtext"),
        format!("LCS {k} {n} IDX MINMATCHLEN 4 WITHMATCHLEN"),
        format!("LCS {k} missing:{n} IDX"),
        format!("DEL {k} {n} missing:{k}"),
        "CLIENT GETNAME".into(),
        "CLIENT SETNAME me".into(),
        "CLIENT GETNAME".into(),
        "CONFIG GET maxmemory".into(),
        "CONFIG GET maxmemory-policy".into(),
        "CONFIG GET nosuch".into(),
        "CONFIG GET appendonly".into(),
        "CONFIG GET save".into(),
        "COMMAND INFO nosuch".into(),
        "LATENCY HISTOGRAM nosuch".into(),
        "PING".into(),
        "PING hi".into(),
        "ECHO x".into(),
        "SELECT 0".into(),
        "HELLO 4".into(),
        "HELLO x".into(),
        "HELLO 3 FOO".into(),
        "HELLO 3 SETNAME".into(),
        "HELLO 3 SETNAME a\u{1}b".into(),
        "HELLO 3 AUTH default".into(),
        "GETRANGE".into(),
        "NOSUCHCOMMAND a".into(),
        // The keyspace commands' nulls and types.
        "SELECT 9".into(),
        "RANDOMKEY".into(),
        format!("SET {k} 12345"),
        format!("OBJECT ENCODING {k}"),
        format!("OBJECT ENCODING missing:{k}"),
        format!("TYPE {k}"),
        format!("TYPE missing:{k}"),
        format!("KEYS {k}"),
        "SCAN 0 MATCH nomatch*".into(),
        format!("DEL {k}"),
        "SELECT 0".into(),
    ];
    let mut s: Vec<(String, Cmp)> = exact.into_iter().map(|l| (l, Exact)).collect();
    // Same type where the contents differ (INFO's fields, client ids,
    // timings).
    for l in [
        "INFO server",
        "INFO",
        "CLIENT INFO",
        "CLIENT LIST",
        "COMMAND DOCS get",
        "SLOWLOG GET",
        "LASTSAVE",
        "DBSIZE",
    ] {
        s.push((l.into(), SameType));
    }
    s
}

/// Runs the script against a 2-shard corekv and redis-server, after HELLO
/// `proto` (none: RESP2 without a HELLO).
fn differential(proto: Option<u8>) {
    let Some(redis) = redis_server_with(&[]) else {
        return;
    };
    let node = common::start(0, 2);
    let mut ours = Conn::connect(node.resp_addr.unwrap());
    let mut theirs = Conn::connect(redis.addr);
    let mut diffs = Vec::new();
    if let Some(v) = proto {
        diffs.extend(check(&mut ours, &mut theirs, &format!("HELLO {v}"), Exact));
    }
    for (k, n) in [("k", "n"), ("alpha", "beta"), ("key:1", "key:2")] {
        for (line, cmp) in script(k, n) {
            diffs.extend(check(&mut ours, &mut theirs, &line, cmp));
        }
    }
    diffs.extend(check(&mut ours, &mut theirs, "HELLO", Exact));
    assert_no_diffs(&diffs);
}

#[test]
fn resp3_replies_match_redis() {
    differential(Some(3));
}

#[test]
fn resp2_replies_still_match_redis() {
    differential(None);
    differential(Some(2));
}

/// HELLO with AUTH and SETNAME against a password, as Redis answers it;
/// the protocol changes only once the handshake passed.
#[test]
fn hello_auth_and_setname_match_redis() {
    let Some(redis) = redis_server_with(&["--requirepass", "secret"]) else {
        return;
    };
    let node = common::start_with(0, 2, |c| c.security.requirepass = Some("secret".into()));
    let mut ours = Conn::connect(node.resp_addr.unwrap());
    let mut theirs = Conn::connect(redis.addr);
    let mut diffs = Vec::new();
    for line in [
        "GET k",
        "HELLO",
        "HELLO 3",
        "HELLO 3 SETNAME me",
        "HELLO 3 AUTH default wrong",
        "HELLO 3 AUTH nobody secret",
        "GET k",
        "HELLO 3 AUTH default secret SETNAME bad\u{7f}",
        "GET k",
        "HELLO 3 AUTH default secret SETNAME me",
        "CLIENT GETNAME",
        "GET k",
        "HELLO",
        "HELLO 4 AUTH default secret",
        "GET k",
        "HELLO 2",
        "GET k",
        "HELLO 3 AUTH default wrong",
        "GET k",
        "AUTH wrong",
        "GET k",
    ] {
        diffs.extend(check(&mut ours, &mut theirs, line, Exact));
    }
    assert_no_diffs(&diffs);
}

/// Replies whose contents are corekv's own, checked by their RESP3 types:
/// verbatim text, maps and sets where Redis 7 uses them, and the same
/// replies' RESP2 shapes.
#[test]
fn resp3_types_of_corekv_only_replies() {
    let node: ServerHandle = common::start(0, 2);
    let mut c = Conn::connect(node.resp_addr.unwrap());
    // RESP2 first: the shapes that must not change.
    assert!(c.line("INFO server").starts_with(b"$"));
    assert!(c.line("CLIENT INFO").starts_with(b"$"));
    assert!(c.line("CONFIG GET maxmemory").starts_with(b"*2\r\n"));
    assert!(c
        .line("COMMAND INFO get")
        .starts_with(b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n"));
    assert!(c.line("CLIENT LIST").windows(7).any(|w| w == b"resp=2\n"));
    assert!(c.line("HELLO 3").starts_with(b"%7\r\n"));
    let text = |r: Vec<u8>| {
        let s = String::from_utf8(r).unwrap();
        assert!(s.starts_with('='), "verbatim: {s:?}");
        let (len, rest) = s[1..].split_once("\r\n").unwrap();
        assert_eq!(len.parse::<usize>().unwrap() + 2, rest.len(), "{s:?}");
        assert!(rest.starts_with("txt:"), "{s:?}");
        rest[4..rest.len() - 2].to_string()
    };
    assert!(text(c.line("INFO server")).starts_with("# Server\r\n"));
    let me = text(c.line("CLIENT INFO"));
    assert!(
        me.contains(" resp=3\n") && me.contains("cmd=client|info"),
        "{me}"
    );
    assert!(text(c.line("CLIENT LIST")).contains(" resp=3\n"));
    assert!(text(c.line("CLUSTER INFO")).starts_with("cluster_state:ok\r\n"));
    assert!(text(c.line("CLUSTER NODES")).contains("myself,master"));
    let slots = c.line("CLUSTER SLOTS");
    assert!(slots.ends_with(b"%0\r\n"), "{}", show(&slots));
    let shards = c.line("CLUSTER SHARDS");
    assert!(
        shards.starts_with(b"*") && shards[4..].starts_with(b"%2\r\n$5\r\nslots\r\n"),
        "{}",
        show(&shards)
    );
    assert!(c
        .line("CONFIG GET maxmemory")
        .starts_with(b"%1\r\n$9\r\nmaxmemory\r\n"));
    assert!(c
        .line("COMMAND INFO get")
        .starts_with(b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n"));
    let docs = c.line("COMMAND DOCS getex");
    assert!(
        docs.starts_with(b"%1\r\n$5\r\ngetex\r\n%5\r\n"),
        "{}",
        show(&docs)
    );
    assert!(
        docs.windows(13).any(|w| w == b"~1\r\n+optional"),
        "{}",
        show(&docs)
    );
    c.line("SET k v");
    let hist = c.line("LATENCY HISTOGRAM set");
    assert!(
        hist.starts_with(b"%1\r\n$3\r\nset\r\n%2\r\n$5\r\ncalls\r\n"),
        "{}",
        show(&hist)
    );
    assert_eq!(frame_len(&hist), Some(hist.len()));
    // HELLO 2 switches back: the RESP2 shapes again.
    assert!(c.line("HELLO 2").starts_with(b"*14\r\n"));
    assert_eq!(c.line("GET nope"), b"$-1\r\n");
    assert!(c.line("CLIENT INFO").starts_with(b"$"));
}
