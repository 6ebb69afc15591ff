//! Shared helpers for the end-to-end tests: start real servers in-process on
//! loopback ephemeral ports, and connect clients to them.
#![allow(dead_code)]

pub mod redis;
pub mod reply;

use std::time::Duration;

use corekv::client::blocking::BlockingClient;
use corekv::client::ClientOptions;
use corekv::config::{allowed_cpus, ServerConfig};
use corekv::server::{run, ServerHandle};

/// CPUs for `n` shards: distinct CPUs of this machine, wrapping is not
/// allowed by the server, so `n` is capped by the machine.
pub fn cpus(n: usize) -> Vec<usize> {
    let all = allowed_cpus();
    assert!(
        all.len() >= n,
        "test needs {n} CPUs, machine has {}",
        all.len()
    );
    all[..n].to_vec()
}

/// Starts node `node_id` with `shards` shards on ephemeral ports.
pub fn start(node_id: u32, shards: usize) -> ServerHandle {
    start_with(node_id, shards, |_| {})
}

/// Starts a node after letting `tweak` adjust its configuration.
pub fn start_with(
    node_id: u32,
    shards: usize,
    tweak: impl FnOnce(&mut ServerConfig),
) -> ServerHandle {
    let mut cfg = ServerConfig::ephemeral(cpus(shards));
    cfg.node_id = node_id;
    tweak(&mut cfg);
    run(&cfg).expect("server starts")
}

/// Free base ports for `nodes` nodes of `shards` shards each: `shards`
/// consecutive free loopback ports per node (probed, then released: a
/// small race other tests' ephemeral binds could lose, retried by callers
/// only through a clear bind error).
pub fn free_bases(nodes: usize, shards: usize) -> Vec<u16> {
    use std::net::TcpListener;
    let mut bases = Vec::new();
    let mut held = Vec::new();
    // Below the ephemeral range (32768+), so ephemeral binds cannot take
    // them; a process-wide cursor, so parallel tests do not probe alike.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let mut p = loop {
        let step = NEXT.fetch_add(64, std::sync::atomic::Ordering::Relaxed);
        let p = 20000 + (std::process::id() % 100) * 120 + step % 12000;
        if p + 64 < 32768 {
            break p as u16;
        }
    };
    while bases.len() < nodes {
        let ls: Vec<_> = (0..shards)
            .map_while(|i| TcpListener::bind(("127.0.0.1", p + i as u16)).ok())
            .collect();
        if ls.len() == shards {
            bases.push(p);
            held.extend(ls);
        }
        p += shards as u16 + 3;
        assert!(p < 60000, "no free ports");
    }
    bases
}

/// Starts a cluster of `nodes` nodes × `shards` shards on loopback (native
/// ports probed free, RESP ports ephemeral), each started with the same
/// `--cluster` list, and waits until every node has greeted every peer.
pub fn start_cluster(nodes: usize, shards: usize) -> Vec<ServerHandle> {
    start_cluster_with(nodes, shards, |_, _| {})
}

/// [`start_cluster`] letting `tweak(node_id, config)` adjust each node.
pub fn start_cluster_with(
    nodes: usize,
    shards: usize,
    tweak: impl Fn(usize, &mut ServerConfig),
) -> Vec<ServerHandle> {
    let bases = free_bases(nodes, shards);
    let list: Vec<String> = bases.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let handles: Vec<ServerHandle> = (0..nodes)
        .map(|i| {
            let mut cfg = ServerConfig::ephemeral(cpus(shards));
            cfg.port = bases[i];
            cfg.node_id = i as u32;
            cfg.cluster = list.clone();
            tweak(i, &mut cfg);
            run(&cfg).expect("server starts")
        })
        .collect();
    for h in &handles {
        assert!(
            h.wait_for_peers(Duration::from_secs(20)),
            "node {} greeted its peers",
            h.node_id
        );
    }
    handles
}

/// The host list a client needs for these nodes.
pub fn hosts(nodes: &[&ServerHandle]) -> Vec<String> {
    nodes.iter().map(|n| n.addr().to_string()).collect()
}

/// A blocking client with a short timeout.
pub fn client(nodes: &[&ServerHandle]) -> BlockingClient {
    client_with(nodes, None)
}

/// A blocking client; `pin_shard` sends everything to that shard of each node.
pub fn client_with(nodes: &[&ServerHandle], pin_shard: Option<usize>) -> BlockingClient {
    let options = ClientOptions {
        timeout: Duration::from_secs(5),
        pin_shard,
        ..Default::default()
    };
    BlockingClient::connect(&hosts(nodes), options).expect("client connects")
}
