//! Linearizability over the native path: concurrent clients doing random
//! GET/PUT on a small key set against 2 nodes x 2 shards, some shard-aware and
//! some sending everything to shard 0 (so forwarding is on the path); the
//! recorded history is checked per key with the WGL checker.

mod common;
#[path = "support/mod.rs"]
mod support;

use common::{client_with, start_cluster};
use corekv::client::OwnedResult;
use support::history::{record_history, Pick};
use support::linearizability::{check, Input, Output, Verdict};

#[test]
fn concurrent_history_is_linearizable() {
    let nodes = start_cluster(2, 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    let clients = 6;
    let ops_per_client = 250;
    let keys: Vec<Vec<u8>> = (0..5).map(|i| format!("lin-{i}").into_bytes()).collect();
    // Half the clients are shard-aware, half send everything to shard 0.
    let conns = (0..clients)
        .map(|client| client_with(&[a, b], if client % 2 == 0 { None } else { Some(0) }))
        .collect();
    let pick = |r: u64| if r % 2 == 0 { Pick::Put } else { Pick::Get };
    let history = record_history(
        conns,
        ops_per_client,
        &keys,
        pick,
        |c, key, input| match input {
            Input::Put(v) => match c.put(key, v) {
                Ok(OwnedResult::Ok) => Output::Ok,
                _ => Output::Unknown,
            },
            _ => match c.get(key) {
                Ok(OwnedResult::Value(v)) => Output::Value(Some(v)),
                Ok(OwnedResult::NotFound) => Output::Value(None),
                _ => Output::Unknown,
            },
        },
    );
    assert_eq!(history.len(), clients * ops_per_client);
    let unknown = history
        .operations()
        .iter()
        .filter(|o| matches!(o.output, Output::Unknown))
        .count();
    assert_eq!(unknown, 0, "no request failed in a failure-free run");
    let result = check(&history);
    match &result.verdict {
        Verdict::Linearizable => {}
        other => panic!("not linearizable: {other:?}"),
    }
    assert_eq!(result.keys_checked, keys.len());
    // The forwarding path was exercised.
    let fwd: u64 = [&a, &b]
        .iter()
        .map(|n| n.stats().total().forwarded_out)
        .sum();
    assert!(fwd > 0, "pinned clients caused forwarding");
}
