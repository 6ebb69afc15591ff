//! Deep pipelines over RESP against a real `redis-server` (Redis 7), byte
//! for byte: thousands of commands sent in one write, answered in order.
//!
//! The pipeline mixes what corekv's fast lane takes (plain `GET key` and
//! `SET key value` in multibulk form, in any case) with what it must leave
//! to the general path, frame by frame: SET with options, wrong arities,
//! unknown commands, inline commands, empty keys, MGET/DEL/INCR, values of
//! 0–3000 bytes, NOAUTH before an AUTH in the middle of the pipeline. It is
//! several times larger than the read buffer ever grows (64 KiB), so frames
//! straddle reads, and it runs in RESP2 and RESP3 and with a password.
//! corekv runs two shards, so some keys are forwarded.
//!
//! The pipeline is written from another thread while the replies are read,
//! so socket buffers cannot deadlock it. Bounded by the reply timeout; no
//! timing assertions. Without `redis-server` the tests are skipped with a
//! loud message, unless `CI` is set, in which case they fail.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::redis::{frame_len, redis_server_with, show, REPLY_TIMEOUT};

/// One multibulk frame.
fn frame(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A frame from a line split on single spaces.
fn line(l: &str) -> Vec<u8> {
    frame(&l.split(' ').map(str::as_bytes).collect::<Vec<_>>())
}

/// The pipeline: `n` commands, and how many replies they get.
fn script(n: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    for i in 0..n {
        let k = format!("key:{}", i % 97);
        let v = format!("{i}-{}", "v".repeat(i % 200));
        let f = match i % 20 {
            0 | 5 | 10 => frame(&[b"SET", k.as_bytes(), v.as_bytes()]),
            1 | 6 | 11 | 15 => frame(&[b"GET", k.as_bytes()]),
            2 => frame(&[b"set", k.as_bytes(), v.as_bytes()]),
            3 => frame(&[b"gEt", k.as_bytes()]),
            4 => line(&format!("GET nosuch:{i}")),
            7 => frame(&[b"GET", k.as_bytes(), b"extra"]),
            8 => frame(&[b"SET", k.as_bytes()]),
            9 => line(&format!("SET {k} x{i} XX GET")),
            12 => line(&format!("NOSUCHCMD {k} {i}")),
            13 => format!("GET {k}\r\n").into_bytes(),
            14 => line(&format!("MGET {k} key:{} nosuch", (i + 1) % 97)),
            16 => line(&format!("INCR counter:{}", i % 7)),
            17 => frame(&[b"SET", b"", &vec![b'z'; 3000]]),
            18 => frame(&[b"GET", b""]),
            _ => line(&format!("DEL key:{} nosuch", (i + 3) % 97)),
        };
        out.extend_from_slice(&f);
    }
    (out, n)
}

/// Sends `prelude` (one reply each, returned first) then `pipeline` in one
/// write from another thread, and reads `replies` replies: each reply's
/// bytes.
fn run(addr: SocketAddr, prelude: &[Vec<u8>], pipeline: Vec<u8>, replies: usize) -> Vec<Vec<u8>> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    let mut next = |s: &mut TcpStream, buf: &mut Vec<u8>| loop {
        if let Some(n) = frame_len(buf) {
            return buf.drain(..n).collect::<Vec<u8>>();
        }
        let n = s.read(&mut chunk).expect("reply within the timeout");
        assert!(n > 0, "connection closed after {} bytes", buf.len());
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut got = Vec::new();
    for p in prelude {
        s.write_all(p).unwrap();
        got.push(next(&mut s, &mut buf));
    }
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&pipeline).expect("send the pipeline"));
    for _ in 0..replies {
        got.push(next(&mut s, &mut buf));
    }
    writer.join().unwrap();
    got
}

/// Runs the pipeline against both servers; every reply must be identical
/// (HELLO's map names the server, so `skip` prelude replies are only
/// checked to be maps).
fn compare(password: Option<&str>, prelude: &[Vec<u8>], skip: usize, pipeline: (Vec<u8>, usize)) {
    let extra: Vec<&str> = password.map_or(vec![], |p| vec!["--requirepass", p]);
    let Some(redis) = redis_server_with(&extra) else {
        return;
    };
    let node = common::start_with(0, 2, |c| {
        c.security.requirepass = password.map(str::to_string);
    });
    let (bytes, n) = pipeline;
    let ours = run(node.resp_addr.unwrap(), prelude, bytes.clone(), n);
    let theirs = run(redis.addr, prelude, bytes, n);
    for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
        if i < skip {
            assert!(o.starts_with(b"%") && t.starts_with(b"%"), "{}", show(o));
            continue;
        }
        assert_eq!(
            show(o),
            show(t),
            "reply {i}: corekv (left) and redis-server (right) differ"
        );
    }
    assert_eq!(ours.len(), theirs.len());
}

#[test]
fn deep_pipeline_matches_redis_resp2() {
    compare(None, &[], 0, script(6000));
}

#[test]
fn deep_pipeline_matches_redis_resp3() {
    compare(None, &[line("HELLO 3")], 1, script(6000));
}

/// With a password: the pipeline's plain GETs and SETs are refused with
/// NOAUTH until the AUTH in its middle, then served.
#[test]
fn deep_pipeline_with_auth_in_the_middle_matches_redis() {
    let (first, n1) = script(300);
    let (second, n2) = script(3000);
    let mut bytes = first;
    bytes.extend_from_slice(&line("AUTH s3cret"));
    bytes.extend_from_slice(&second);
    compare(Some("s3cret"), &[], 0, (bytes, n1 + 1 + n2));
}
