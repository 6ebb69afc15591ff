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

/// The kind of operation a history recorder issues next.
pub enum Pick {
    /// A read.
    Get,
    /// A write of a value unique to the client and sequence number.
    Put,
    /// A delete.
    Del,
}

/// Records a history for the linearizability checker: one thread per client
/// in `clients`, released together, each issuing `ops_per_client` operations
/// on random keys from `keys` (xorshift64, seeded per client). `pick` chooses
/// the operation from the random draw, `exec` runs it on that thread's client
/// and returns its output; call and return times are taken around `exec`.
pub fn record_history<C: Send>(
    clients: Vec<C>,
    ops_per_client: usize,
    keys: &[Vec<u8>],
    pick: impl Fn(u64) -> Pick + Sync,
    exec: impl Fn(&mut C, &[u8], &corekv::linearizability::Input) -> corekv::linearizability::Output
        + Sync,
) -> corekv::linearizability::History {
    use corekv::linearizability::{History, Input, Operation};
    let base = std::time::Instant::now();
    let barrier = std::sync::Barrier::new(clients.len());
    let (pick, exec, barrier) = (&pick, &exec, &barrier);
    let parts = std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(client, mut c)| {
                scope.spawn(move || {
                    let mut rng =
                        0x9E37_79B9_7F4A_7C15u64 ^ ((client as u64 + 1) * 0x1234_5678_9ABC_DEF1);
                    let mut ops = Vec::with_capacity(ops_per_client);
                    barrier.wait();
                    for seq in 0..ops_per_client {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let key = keys[(rng % keys.len() as u64) as usize].clone();
                        let input = match pick(rng >> 32) {
                            Pick::Get => Input::Get,
                            Pick::Put => Input::Put(format!("{client}-{seq}").into_bytes()),
                            Pick::Del => Input::Del,
                        };
                        let call = base.elapsed().as_nanos() as u64;
                        let output = exec(&mut c, &key, &input);
                        let ret = base.elapsed().as_nanos() as u64;
                        ops.push(Operation {
                            client,
                            key,
                            input,
                            output,
                            call,
                            ret,
                        });
                    }
                    ops
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    History::from_parts(parts)
}
