//! End-to-end tests of the native protocol over real sockets: topologies,
//! forwarding, bad input, limits.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{client, client_with, start, start_with};
use corekv::client::OwnedResult;
use corekv::op::OpError;
use corekv::protocol::native::{encode_archived, Batch, FrameKind, HEADER_LEN, PROTOCOL_VERSION};

fn key(i: usize) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i}-{}", "x".repeat(i % 200)).into_bytes()
}

/// Writes, reads back, deletes and checks not-found through `c`.
fn exercise(c: &corekv::client::blocking::BlockingClient, n: usize) {
    let mut b = Batch::default();
    for i in 0..n {
        b.put(&key(i), &value(i));
    }
    let r = c.execute(&b).unwrap();
    assert_eq!(r, vec![OwnedResult::Ok; n]);

    let mut b = Batch::default();
    for i in 0..n {
        b.get(&key(i));
    }
    b.get(b"never-written");
    let r = c.execute(&b).unwrap();
    for (i, got) in r.iter().take(n).enumerate() {
        assert_eq!(*got, OwnedResult::Value(value(i)), "key {i}");
    }
    assert_eq!(r[n], OwnedResult::NotFound);

    let mut b = Batch::default();
    for i in (0..n).step_by(2) {
        b.del(&key(i));
    }
    assert!(c.execute(&b).unwrap().iter().all(|r| *r == OwnedResult::Ok));
    for i in 0..n.min(20) {
        let want = if i % 2 == 0 {
            OwnedResult::NotFound
        } else {
            OwnedResult::Value(value(i))
        };
        assert_eq!(c.get(&key(i)).unwrap(), want);
    }
    assert_eq!(
        c.del(&key(0)).unwrap(),
        OwnedResult::NotFound,
        "second delete"
    );
}

fn total_keys(c: &corekv::client::blocking::BlockingClient) -> u64 {
    c.stats().unwrap().iter().map(|n| n.total().keys).sum()
}

#[test]
fn one_node_one_shard() {
    let s = start(0, 1);
    let c = client(&[&s]);
    exercise(&c, 500);
    assert_eq!(total_keys(&c), 250);
}

#[test]
fn one_node_two_shards() {
    let s = start(0, 2);
    let c = client(&[&s]);
    exercise(&c, 1000);
    let st = c.stats().unwrap();
    assert_eq!(st[0].shards.len(), 2);
    // Both shards own keys, and a shard-aware client never needs forwarding.
    assert!(st[0].shards.iter().all(|s| s.keys > 100), "{st:?}");
    assert_eq!(st[0].total().forwarded_out, 0);
    assert_eq!(st[0].total().keys, 500);
}

#[test]
fn two_nodes_two_shards() {
    let nodes = common::start_cluster(2, 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    let c = client(&[a, b]);
    exercise(&c, 2000);
    let st = c.stats().unwrap();
    assert_eq!(st.len(), 2);
    for n in &st {
        assert!(n.total().keys > 300, "every node owns a share: {st:?}");
    }
    assert_eq!(st.iter().map(|n| n.total().keys).sum::<u64>(), 1000);
    // Node order given to the client does not matter: ids decide; and one
    // node is enough: its HELLO names the whole cluster.
    let c2 = client(&[b, a]);
    assert_eq!(c2.get(&key(1)).unwrap(), OwnedResult::Value(value(1)));
    let c3 = client(&[b]);
    assert_eq!(c3.nodes().len(), 2);
    for i in 0..200 {
        assert_eq!(c3.get(&key(i)).unwrap(), c.get(&key(i)).unwrap());
    }
}

#[test]
fn separate_clusters_are_rejected() {
    let a = start(0, 1);
    let b = start(0, 1);
    let err = corekv::client::blocking::BlockingClient::connect(
        &common::hosts(&[&a, &b]),
        Default::default(),
    )
    .err()
    .expect("two one-node clusters are not one cluster");
    assert!(err.to_string().contains("same cluster"), "{err}");
}

#[test]
fn forwarding_answers_keys_owned_by_other_shards() {
    let s = start(0, 2);
    // Every op goes to shard 0's port; the server forwards half of them.
    let c = client_with(&[&s], Some(0));
    exercise(&c, 1000);
    let st = c.stats().unwrap();
    let t = st[0].total();
    assert!(
        t.forwarded_out > 0 && t.forwarded_in == t.forwarded_out,
        "{t:?}"
    );
    assert!(st[0].shards[1].keys > 100, "shard 1 owns its keys: {st:?}");
    // A shard-aware client sees the same data.
    let aware = client(&[&s]);
    for i in (1..1000).step_by(2).take(50) {
        assert_eq!(aware.get(&key(i)).unwrap(), OwnedResult::Value(value(i)));
    }
}

/// The string read-modify-write ops by their native op codes (14-18), from
/// a client pinned to shard 0 (so half the keys are forwarded).
#[test]
fn string_ops_by_op_code() {
    use corekv::op::OpKind;
    let s = start(0, 2);
    let c = client_with(&[&s], Some(0));
    let range = |a: i64, b: i64| [a.to_le_bytes(), b.to_le_bytes()].concat();
    for i in 0..20 {
        let k = key(i);
        let mut b = Batch::default();
        b.push(OpKind::Append, &k, b"Hello");
        b.push(OpKind::Append, &k, b" World");
        b.push(
            OpKind::SetRange,
            &k,
            &[&6u64.to_le_bytes()[..], b"Redis"].concat(),
        );
        b.push(OpKind::GetRange, &k, &range(-5, -1));
        b.push(OpKind::GetDel, &k, b"");
        b.push(OpKind::IncrByFloat, &k, b"0.1");
        b.push(OpKind::IncrByFloat, &k, b"5.0e3");
        b.push(OpKind::IncrByFloat, &k, b"inf");
        b.push(
            OpKind::SetRange,
            &k,
            &[&(1u64 << 40).to_le_bytes()[..], b"x"].concat(),
        );
        let r = c.execute(&b).unwrap();
        assert_eq!(
            r,
            [
                OwnedResult::Int(5),
                OwnedResult::Int(11),
                OwnedResult::Int(11),
                OwnedResult::Value(b"Redis".to_vec()),
                OwnedResult::Value(b"Hello Redis".to_vec()),
                OwnedResult::Value(b"0.1".to_vec()),
                OwnedResult::Value(b"5000.10000000000000009".to_vec()),
                OwnedResult::Err(OpError::NanOrInfinity),
                OwnedResult::Err(OpError::StringTooLong),
            ],
            "key {i}"
        );
    }
    let t = c.stats().unwrap()[0].total();
    assert!(t.forwarded_out > 0, "{t:?}");
}

#[test]
fn hello_reports_layout_from_any_shard() {
    let nodes = common::start_cluster(2, 2);
    for addr in &nodes[1].shard_addrs {
        let c = corekv::client::blocking::BlockingClient::connect(
            &[addr.to_string()],
            Default::default(),
        )
        .unwrap();
        let ids: Vec<u32> = c.nodes().iter().map(|n| n.hello.node_id).collect();
        assert_eq!(ids, vec![0, 1]);
        assert_eq!(c.nodes()[1].hello.shard_ports.len(), 2);
    }
}

/// Sends raw bytes and returns what the server says before closing.
fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn header(version: u8, kind: u8, len: u32) -> Vec<u8> {
    let mut h = b"CK".to_vec();
    h.push(version);
    h.push(kind);
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(&7u64.to_le_bytes());
    h
}

/// The server answered with an error frame carrying `needle`.
fn assert_error_frame(reply: &[u8], needle: &str) {
    assert!(
        reply.len() >= HEADER_LEN,
        "no error frame, got {} bytes",
        reply.len()
    );
    assert_eq!(&reply[0..2], b"CK");
    assert_eq!(reply[3], FrameKind::Error as u8);
    let text = String::from_utf8_lossy(reply);
    assert!(
        text.contains(needle),
        "error frame lacks {needle:?}: {text:?}"
    );
}

#[test]
fn bad_input_gets_an_error_and_the_server_goes_on() {
    let s = start_with(0, 1, |c| {
        c.limits.max_key_len = 64;
        c.limits.max_value_len = 1024;
        c.limits.max_frame_bytes = 1 << 20;
    });
    let addr = s.addr();
    let healthy = client(&[&s]);
    healthy.put(b"before", b"1").unwrap();

    // Random bytes: bad magic.
    let mut x = 0x9E3779B97F4A7C15u64;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    assert_error_frame(&raw_exchange(addr, &junk), "magic");
    // Wrong version.
    assert_error_frame(
        &raw_exchange(addr, &header(PROTOCOL_VERSION + 1, 1, 0)),
        "version",
    );
    // Unknown kind.
    assert_error_frame(
        &raw_exchange(addr, &header(PROTOCOL_VERSION, 0x42, 0)),
        "kind",
    );
    // Huge declared length: rejected from the header, before any body.
    assert_error_frame(
        &raw_exchange(addr, &header(PROTOCOL_VERSION, 1, u32::MAX)),
        "exceeds",
    );
    // Truncated frame: the peer half-closes mid-frame; the server just closes.
    let mut good = Vec::new();
    let mut b = Batch::default();
    b.put(b"k", b"v");
    encode_archived(&mut good, FrameKind::Batch, 1, &b).unwrap();
    assert!(raw_exchange(addr, &good[..good.len() - 5]).is_empty());
    // A well-framed payload that fails validation.
    let mut evil = header(PROTOCOL_VERSION, 1, 32);
    evil.extend_from_slice(&[0xFF; 32]);
    assert_error_frame(&raw_exchange(addr, &evil), "malformed");
    // A valid frame then garbage: the first is answered, then the error.
    let mut mixed = good.clone();
    mixed.extend_from_slice(b"garbage!garbage!");
    let reply = raw_exchange(addr, &mixed);
    assert_eq!(reply[3], FrameKind::BatchReply as u8);

    // Oversized key and value: per-op errors, neighbours unaffected.
    let mut b = Batch::default();
    b.put(&[b'k'; 65], b"v");
    b.put(b"ok", &vec![b'v'; 1025]);
    b.put(b"fine", b"yes");
    b.get(&[b'k'; 65]);
    let r = healthy.execute(&b).unwrap();
    assert_eq!(
        r,
        vec![
            OwnedResult::Err(OpError::KeyTooLarge),
            OwnedResult::Err(OpError::ValueTooLarge),
            OwnedResult::Ok,
            OwnedResult::Err(OpError::KeyTooLarge),
        ]
    );
    // The same server still answers, on the old connection and a new one.
    assert_eq!(
        healthy.get(b"before").unwrap(),
        OwnedResult::Value(b"1".to_vec())
    );
    assert_eq!(
        client(&[&s]).get(b"fine").unwrap(),
        OwnedResult::Value(b"yes".to_vec())
    );
    let errors = healthy.stats().unwrap()[0].total().errors;
    assert!(
        errors >= 9,
        "rejected frames and per-op errors are counted: {errors}"
    );
}

#[test]
fn too_many_ops_in_a_batch_is_rejected() {
    let s = start_with(0, 1, |c| c.limits.max_batch_ops = 10);
    let c = client(&[&s]);
    let mut b = Batch::default();
    for i in 0..11 {
        b.get(&key(i));
    }
    let e = c.execute(&b).unwrap_err().to_string();
    assert!(e.contains("exceeds the limit of 10"), "{e}");
    assert_eq!(client(&[&s]).get(b"x").unwrap(), OwnedResult::NotFound);
}

#[test]
fn memory_limit_stops_writes_not_reads() {
    let s = start_with(0, 1, |c| c.max_memory = Some(256 * 1024));
    let c = client(&[&s]);
    let v = vec![b'v'; 1000];
    let mut written = 0;
    let mut first_oom = None;
    for i in 0..1000 {
        match c.put(&key(i), &v).unwrap() {
            OwnedResult::Ok => written += 1,
            OwnedResult::Err(OpError::OutOfMemory) => {
                first_oom = Some(i);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let oom_at = first_oom.expect("the limit is reached");
    assert!(written > 150 && written < 260, "wrote {written}");
    // Every acknowledged write is still there; reads work at the limit.
    for i in 0..written {
        assert_eq!(c.get(&key(i)).unwrap(), OwnedResult::Value(v.clone()));
    }
    assert_eq!(
        c.put(&key(oom_at), &v).unwrap(),
        OwnedResult::Err(OpError::OutOfMemory)
    );
    // Overwriting in place does not grow; deleting frees room.
    assert_eq!(c.put(&key(0), &vec![b'w'; 1000]).unwrap(), OwnedResult::Ok);
    assert_eq!(c.del(&key(1)).unwrap(), OwnedResult::Ok);
    assert_eq!(c.put(&key(oom_at), &v).unwrap(), OwnedResult::Ok);
    let st = c.stats().unwrap()[0].total();
    assert!(
        st.memory_used <= 256 * 1024 && st.memory_used > 200 * 1024,
        "{st:?}"
    );
}

#[test]
fn dead_server_gives_a_typed_error() {
    let s = start(0, 1);
    let c = client(&[&s]);
    c.put(b"a", b"1").unwrap();
    drop(s);
    let e = c.get(b"a").unwrap_err();
    assert!(
        matches!(
            e,
            corekv::error::ClientError::ConnectionLost { .. } | corekv::error::ClientError::Closed
        ),
        "{e:?}"
    );
    let e = corekv::client::blocking::BlockingClient::connect(
        &["127.0.0.1:1".to_string()],
        Default::default(),
    );
    assert!(matches!(e, Err(corekv::error::ClientError::Connect { .. })));
}

/// Waits (bounded) until the node reports `n` open connections.
fn wait_connections(s: &corekv::server::ServerHandle, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while s.stats().total().connections != n {
        assert!(
            std::time::Instant::now() < deadline,
            "connections stuck at {}",
            s.stats().total().connections
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn connection_limit_is_enforced() {
    let s = start_with(0, 1, |c| c.limits.max_connections_per_shard = 1);
    let first = TcpStream::connect(s.addr()).unwrap();
    wait_connections(&s, 1);
    let reply = raw_exchange(s.addr(), &header(PROTOCOL_VERSION, 2, 0));
    assert_error_frame(&reply, "connection limit of 1");
    drop(first);
    wait_connections(&s, 0);
    let reply = raw_exchange(s.addr(), &header(PROTOCOL_VERSION, 2, 0));
    assert_eq!(
        reply[3],
        FrameKind::HelloReply as u8,
        "a slot is free again"
    );
}
