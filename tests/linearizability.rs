//! Linearizability over the native path: concurrent clients doing random
//! GET/PUT on a small key set against 2 nodes x 2 shards, some shard-aware and
//! some sending everything to shard 0 (so forwarding is on the path); the
//! recorded history is checked per key with the WGL checker.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Instant;

use common::{client_with, start};
use corekv::client::OwnedResult;
use corekv::linearizability::{check, History, Input, Operation, Output, Verdict};

#[test]
fn concurrent_history_is_linearizable() {
    let a = start(0, 2);
    let b = start(1, 2);
    let clients = 6;
    let ops_per_client = 250;
    let keys: Vec<Vec<u8>> = (0..5).map(|i| format!("lin-{i}").into_bytes()).collect();
    let base = Instant::now();
    let barrier = Arc::new(Barrier::new(clients));
    let parts: Vec<Vec<Operation>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let pin = if client % 2 == 0 { None } else { Some(0) };
                let c = client_with(&[&a, &b], pin);
                let keys = keys.clone();
                let barrier = barrier.clone();
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
                        let is_put = (rng >> 32) % 2 == 0;
                        let call = base.elapsed().as_nanos() as u64;
                        let (input, output) = if is_put {
                            let v = format!("{client}-{seq}").into_bytes();
                            let out = match c.put(&key, &v) {
                                Ok(OwnedResult::Ok) => Output::Ok,
                                _ => Output::Unknown,
                            };
                            (Input::Put(v), out)
                        } else {
                            let out = match c.get(&key) {
                                Ok(OwnedResult::Value(v)) => Output::Value(Some(v)),
                                Ok(OwnedResult::NotFound) => Output::Value(None),
                                _ => Output::Unknown,
                            };
                            (Input::Get, out)
                        };
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
    let history = History::from_parts(parts);
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
