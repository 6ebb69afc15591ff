//! The start-up greeting: a node asks each peer of its `--cluster` list for
//! its layout (a native HELLO), checks that the peer agrees on the cluster
//! (same list, same node id, same protocol), records the peer's layout in
//! the [`ClusterMap`], and says clearly on stderr when a peer is down or
//! disagrees — by node id and address.
//!
//! It never blocks start-up for long: [`greet_once`] tries every unknown
//! peer once with a short timeout, then [`spawn`] keeps retrying the missing
//! ones on a plain background thread (blocking sockets, off the shards'
//! executors) until all are known or the node stops. Peers are reported down
//! once, and again only after they came up. With `--requirepass`, the
//! HELLO carries the node's own password as its token (every node of a
//! cluster is started with the same one); a peer refusing it disagrees. This
//! module knows the native HELLO frame and the cluster map, not the shards
//! or the store.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::{ClusterMap, PeerLayout};
use crate::log::Level;
use crate::protocol::native::{
    decode_owned, encode_empty, encode_frame, ErrorFrame, FrameKind, FrameReader, Hello, NextFrame,
    RecvBuf, PROTOCOL_VERSION,
};

/// Longest a greeting of one peer may take.
const GREET_TIMEOUT: Duration = Duration::from_millis(1000);
/// Pause between rounds of greetings of the peers still unknown.
const RETRY_EVERY: Duration = Duration::from_millis(300);

/// Asks `addr` for its HELLO over a blocking connection, sending
/// `password` as the HELLO token when given.
pub fn hello_blocking(
    addr: &str,
    password: Option<&str>,
    timeout: Duration,
) -> Result<Hello, String> {
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "address resolves to nothing".to_string())?;
    let mut s = TcpStream::connect_timeout(&sock, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match password {
        Some(p) => {
            let _ = encode_frame::<()>(&mut out, FrameKind::Hello, 0, |o| {
                o.extend_from_slice(p.as_bytes());
                Ok(())
            });
        }
        None => encode_empty(&mut out, FrameKind::Hello, 0),
    }
    s.write_all(&out).map_err(|e| e.to_string())?;
    let mut reader = FrameReader::new(4096, 1 << 20);
    loop {
        match reader.next_frame() {
            Ok(NextFrame::Frame(h, range)) => {
                let mut payload = RecvBuf::new();
                payload.extend_from_slice(&reader.buf[range]);
                return match h.kind {
                    FrameKind::HelloReply => {
                        decode_owned::<Hello>(&payload).map_err(|e| e.to_string())
                    }
                    FrameKind::Error => Err(decode_owned::<ErrorFrame>(&payload)
                        .map(|e| e.message)
                        .unwrap_or_else(|e| e.to_string())),
                    k => Err(format!("expected a HELLO reply, got {k:?}")),
                };
            }
            Ok(NextFrame::NeedMore) => {}
            Err(e) => {
                return Err(format!(
                    "{e} (is this a corekv {PROTOCOL_VERSION} native port?)"
                ))
            }
        }
        let space = reader.read_space();
        match s.read(space) {
            Ok(0) => return Err("closed by peer".into()),
            Ok(n) => reader.filled(n),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// What greeting one peer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greeting {
    /// It agrees; its layout is recorded.
    Agrees,
    /// It could not be reached.
    Down(String),
    /// It answered but disagrees about the cluster (the reason).
    Disagrees(String),
}

/// Greets peer `node_id` once (with `password`, this node's
/// `--requirepass`, as the HELLO token) and records its layout when it
/// agrees.
pub fn greet(map: &ClusterMap, node_id: usize, password: Option<&str>) -> Greeting {
    let addr = &map.nodes[node_id];
    let h = match hello_blocking(addr, password, GREET_TIMEOUT) {
        Ok(h) => h,
        Err(e) if e.contains("protocol version") => {
            return Greeting::Disagrees(format!("it speaks another protocol version: {e}"))
        }
        Err(e) if e.starts_with("NOAUTH") || e.starts_with("WRONGPASS") => {
            return Greeting::Disagrees(format!(
                "it refused this node's HELLO token ({e}); start every node with the same --requirepass"
            ))
        }
        Err(e) => return Greeting::Down(e),
    };
    if h.cluster_digest != map.digest || h.cluster != map.nodes {
        return Greeting::Disagrees(format!(
            "it was started with --cluster {} (this node: {})",
            h.cluster.join(","),
            map.nodes.join(",")
        ));
    }
    if h.node_id as usize != node_id {
        return Greeting::Disagrees(format!(
            "it says it is node {} (its --node-id), the list says node {node_id}",
            h.node_id
        ));
    }
    let layout = PeerLayout {
        shard_ports: h.shard_ports,
        resp_port: h.resp_port,
        resp_shard_ports: h.resp_shard_ports,
    };
    if !map.set_layout(node_id, layout) {
        return Greeting::Disagrees(
            "its layout changed since it was first greeted (restarted?)".into(),
        );
    }
    Greeting::Agrees
}

/// Tries every peer whose layout is unknown once, printing what it finds;
/// `reported[i]` remembers what was said about peer `i`, so a state is
/// printed once. `password` is this node's `--requirepass`.
pub fn greet_once(map: &ClusterMap, password: Option<&str>, reported: &mut [Option<Greeting>]) {
    for (node_id, said) in reported.iter_mut().enumerate() {
        if node_id == map.node_id || map.layout(node_id).is_some() {
            continue;
        }
        let g = greet(map, node_id, password);
        let addr = &map.nodes[node_id];
        if said.as_ref() != Some(&g) {
            match &g {
                Greeting::Agrees => {
                    if let Some(l) = map.layout(node_id) {
                        crate::log!(
                            Level::Info,
                            "corekv: cluster peer node {node_id} ({addr}) is up: {} shards, resp port {}",
                            l.nr_shards(),
                            l.resp_port
                        );
                    }
                }
                Greeting::Down(why) => crate::log!(
                    Level::Warn,
                    "corekv: cluster peer node {node_id} ({addr}) is down: {why}; retrying in the background (its keys get errors naming it meanwhile)"
                ),
                Greeting::Disagrees(why) => crate::log!(
                    Level::Error,
                    "corekv: cluster views disagree: node {node_id} ({addr}): {why}; restart every node with the same --cluster list"
                ),
            }
        }
        *said = Some(g);
    }
}

/// Keeps greeting the peers still unknown every [`RETRY_EVERY`] until all
/// are known or `stop` is set.
pub fn spawn(
    map: Arc<ClusterMap>,
    password: Option<String>,
    stop: Arc<AtomicBool>,
    mut reported: Vec<Option<Greeting>>,
) {
    if map.complete() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("corekv-greet".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) && !map.complete() {
                std::thread::sleep(RETRY_EVERY);
                greet_once(&map, password.as_deref(), &mut reported);
            }
        });
}
