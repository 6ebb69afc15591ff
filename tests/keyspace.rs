//! Databases and the keyspace commands, end to end over real sockets:
//! differential scripts against a real redis-server (same commands, replies
//! compared byte for byte, or as sets where the order is the table's), on a
//! 2-shard corekv so keys live on both shards; SCAN's guarantee under
//! concurrent writes; databases surviving a restart with `--appendonly yes`.
//!
//! redis-server missing: the differential tests skip loudly, unless `CI` is
//! set (then they fail). Nothing asserts on time; loops are bounded.

mod common;

use common::redis::{lines, redis_server, run_diff, Cmp, Conn};
use corekv::server::ServerHandle;

/// A 2-shard corekv (keys on both shards), with `tweak` applied.
fn corekv_with(tweak: impl FnOnce(&mut corekv::config::ServerConfig)) -> ServerHandle {
    common::start_with(0, 2, tweak)
}

fn corekv() -> ServerHandle {
    corekv_with(|_| {})
}

/// Runs `script` against both servers on fresh connections, after FLUSHALL
/// on both, and fails listing every difference.
fn diff(node: &ServerHandle, redis_addr: std::net::SocketAddr, script: &[(String, Cmp)]) {
    let mut ours = Conn::connect(node.resp_addr.unwrap());
    let mut theirs = Conn::connect(redis_addr);
    ours.line("FLUSHALL");
    theirs.line("FLUSHALL");
    let bad = run_diff(&mut ours, &mut theirs, script);
    assert!(bad.is_empty(), "differences:\n{}", bad.join("\n"));
}

#[test]
fn select_dbsize_flushdb_swapdb_move_match_redis() {
    let Some(redis) = redis_server() else { return };
    let node = corekv();
    let mut script = lines(
        Cmp::Exact,
        &[
            "SELECT 0",
            "SET a 0",
            "SET b 0",
            "SELECT 3",
            "DBSIZE",
            "GET a",
            "SET a 3",
            "SET c 3",
            "SET d 3",
            "DBSIZE",
            "SELECT 0",
            "DBSIZE",
            "GET a",
            "SELECT 16",
            "SELECT -1",
            "SELECT abc",
            "SELECT 1 2",
            "SELECT",
            "SELECT 15",
            "DBSIZE",
            "SELECT 0",
            // FLUSHDB empties this database only.
            "SELECT 3",
            "FLUSHDB",
            "DBSIZE",
            "SELECT 0",
            "DBSIZE",
            "FLUSHDB ASYNC",
            "FLUSHDB SYNC",
            "FLUSHDB foo",
            "FLUSHDB SYNC ASYNC",
            // SWAPDB
            "SET a 0",
            "SELECT 5",
            "SET five 5",
            "SWAPDB 0 5",
            "GET a",
            "GET five",
            "DBSIZE",
            "SELECT 0",
            "GET five",
            "SWAPDB 0 0",
            "GET five",
            "SWAPDB 0 16",
            "SWAPDB -1 0",
            "SWAPDB x 0",
            "SWAPDB 0 y",
            "SWAPDB 0",
            // MOVE
            "SET m v",
            "EXPIRE m 100",
            "MOVE m 7",
            "EXISTS m",
            "MOVE m 7",
            "MOVE nope 7",
            "MOVE five 0",
            "SET m here",
            "MOVE m 7",
            "GET m",
            "SELECT 7",
            "GET m",
            "TTL m",
            "MOVE m 16",
            "MOVE m -1",
            "MOVE m x",
            "SELECT 0",
            "FLUSHALL",
            "DBSIZE",
            "SELECT 7",
            "DBSIZE",
        ],
    );
    // TTL after MOVE is about 100 either way.
    for (line, cmp) in script.iter_mut() {
        if line == "TTL m" {
            *cmp = Cmp::Near(1);
        }
    }
    diff(&node, redis.addr, &script);
    node.shutdown();
}

#[test]
fn info_keyspace_lists_non_empty_databases() {
    let node = corekv();
    let mut c = Conn::connect(node.resp_addr.unwrap());
    for (db, n) in [(0, 3), (2, 5), (9, 1)] {
        c.line(&format!("SELECT {db}"));
        for i in 0..n {
            c.line(&format!("SET k{i} v"));
        }
    }
    c.line("SELECT 2");
    c.line("EXPIRE k0 1000");
    let info = String::from_utf8(c.line("INFO keyspace")).unwrap();
    let dbs: Vec<&str> = info.lines().filter(|l| l.starts_with("db")).collect();
    assert_eq!(dbs.len(), 3, "{info}");
    assert_eq!(dbs[0], "db0:keys=3,expires=0,avg_ttl=0");
    assert!(
        dbs[1].starts_with("db2:keys=5,expires=1,avg_ttl="),
        "{info}"
    );
    assert_eq!(dbs[2], "db9:keys=1,expires=0,avg_ttl=0");
    node.shutdown();
}

#[test]
fn cluster_mode_has_database_zero_only() {
    let node = common::start_cluster(1, 1).pop().unwrap();
    let mut c = Conn::connect(node.resp_addr.unwrap());
    assert_eq!(c.line("SELECT 0"), b"+OK\r\n");
    assert_eq!(
        c.line("SELECT 1"),
        b"-ERR SELECT is not allowed in cluster mode\r\n"
    );
    assert_eq!(
        c.line("SWAPDB 0 1"),
        b"-ERR SWAPDB is not allowed in cluster mode\r\n"
    );
    assert_eq!(
        c.line("MOVE k 1"),
        b"-ERR MOVE is not allowed in cluster mode\r\n"
    );
    node.shutdown();
}

#[test]
fn databases_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("corekv-keyspace-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let with_aof = |c: &mut corekv::config::ServerConfig| {
        c.persist.appendonly = true;
        c.persist.dir = dir.clone();
    };
    let node = corekv_with(with_aof);
    let mut c = Conn::connect(node.resp_addr.unwrap());
    c.line("SET zero 0");
    c.line("SELECT 3");
    for i in 0..50 {
        c.line(&format!("SET three{i} {i}"));
    }
    c.line("SELECT 4");
    c.line("SET four 4");
    c.line("SELECT 5");
    c.line("SET five 5");
    c.line("SWAPDB 4 5");
    c.line("SELECT 6");
    c.line("SET gone x");
    c.line("FLUSHDB");
    c.line("SELECT 3");
    c.line("SET moved m");
    c.line("MOVE moved 8");
    drop(c);
    node.shutdown();

    let check = |node: &ServerHandle| {
        let mut c = Conn::connect(node.resp_addr.unwrap());
        assert_eq!(c.line("GET zero"), b"$1\r\n0\r\n");
        assert_eq!(c.line("GET three0"), b"$-1\r\n", "not in db 0");
        c.line("SELECT 3");
        assert_eq!(c.line("DBSIZE"), b":50\r\n");
        assert_eq!(c.line("GET three7"), b"$1\r\n7\r\n");
        c.line("SELECT 4");
        assert_eq!(c.line("GET five"), b"$1\r\n5\r\n", "swapped");
        c.line("SELECT 5");
        assert_eq!(c.line("GET four"), b"$1\r\n4\r\n", "swapped");
        c.line("SELECT 6");
        assert_eq!(c.line("DBSIZE"), b":0\r\n");
        c.line("SELECT 8");
        assert_eq!(c.line("GET moved"), b"$1\r\nm\r\n");
    };
    // From the logs.
    let node = corekv_with(with_aof);
    check(&node);
    // From a snapshot (and the log after it).
    let mut c = Conn::connect(node.resp_addr.unwrap());
    assert_eq!(c.line("SAVE"), b"+OK\r\n");
    drop(c);
    node.shutdown();
    let node = corekv_with(with_aof);
    check(&node);
    node.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
