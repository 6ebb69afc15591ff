//! Shared helpers for the end-to-end tests: start real servers in-process on
//! loopback ephemeral ports, and connect clients to them.
#![allow(dead_code)]

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
