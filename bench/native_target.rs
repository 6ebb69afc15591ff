//! The native target of `corekv bench` (`--target corekv`): sessions that
//! send batches through the shard-aware client ([`Cluster`]), and the
//! once-a-second STATS monitor that gives the server-side figures. Uses the
//! session machinery ([`super::session`]); knows nothing of the driver or
//! the RESP target. Must not touch the workload's arithmetic or report
//! formatting.

use std::rc::Rc;
use std::time::Instant;

use super::report::{ServerNodeReport, ShardTotals};
use super::session::{sleep_until, Pacer, WorkerCtx};
use super::workload::{key_bytes, Generator, OpKind, MAX_KEY_LEN};
use crate::client::{BatchResults, Cluster, Splitter};
use crate::op::OpResult;
use crate::protocol::native::{Batch, NodeStats};

/// One session: generate a batch, wait for its send slot, execute it,
/// record it; until the run is over or fails.
pub(crate) async fn session(
    ctx: Rc<WorkerCtx>,
    cluster: Rc<Cluster>,
    mut gen: Generator,
    mut pacer: Pacer,
) {
    let mut batch = Batch::default();
    let mut splitter = Splitter::default();
    let mut results = BatchResults::default();
    // Cache-aside: the key of each op of the batch, and the keys to fill.
    let mut keys: Vec<u64> = Vec::new();
    let mut fills: Vec<u64> = Vec::new();
    let mut key_buf = [0u8; MAX_KEY_LEN];
    let n = ctx.batch;
    while !pacer.done(&ctx) {
        batch.clear();
        let mut gets = 0u64;
        let value = &ctx.value[..];
        if ctx.cache_aside {
            keys.clear();
            for &k in &fills {
                keys.push(k);
                let key = key_bytes(k, &mut key_buf);
                match &ctx.ttl_value {
                    None => batch.put(key, value),
                    Some(v) => batch.push(crate::op::OpKind::Set, key, v),
                }
            }
            gen.fill_gets(n, &mut |k, key| {
                keys.push(k);
                batch.get(key);
            });
            gets = n as u64;
        } else {
            gen.fill_batch(n, &mut |kind, key| match kind {
                OpKind::Read => {
                    gets += 1;
                    batch.get(key);
                }
                OpKind::Write => match &ctx.ttl_value {
                    None => batch.put(key, value),
                    Some(v) => batch.push(crate::op::OpKind::Set, key, v),
                },
            });
        }
        let ops = n + if ctx.cache_aside { fills.len() } else { 0 };
        let Some(sent) = pacer.next(&ctx).await else {
            break;
        };
        if pacer.is_open() {
            ctx.record_send_lag(sent, Instant::now());
        }
        if let Err(e) = cluster.execute(&batch, &mut splitter, &mut results).await {
            ctx.fail(e.to_string());
            return;
        }
        let done = Instant::now();
        let (mut errors, mut misses) = (0u64, 0u64);
        fills.clear();
        results.for_each(|i, r| match r {
            OpResult::Err(_) => errors += 1,
            // Only a GET answers NotFound here (PUTs answer Ok).
            OpResult::NotFound => {
                misses += 1;
                if ctx.cache_aside {
                    fills.push(keys[i]);
                }
            }
            _ => {}
        });
        ctx.record(sent, done, ops as u64, gets, errors, misses);
    }
}

/// One STATS snapshot: per node `(uptime, stats)`.
type Snapshot = Vec<NodeStats>;

fn shard_deltas(first: &NodeStats, last: &NodeStats) -> Vec<ShardTotals> {
    last.shards
        .iter()
        .map(|s| {
            let f = first
                .shards
                .iter()
                .find(|x| x.shard_id == s.shard_id)
                .cloned()
                .unwrap_or_default();
            ShardTotals {
                shard_id: s.shard_id,
                ops: s.ops.saturating_sub(f.ops),
                gets: s.gets.saturating_sub(f.gets),
                puts: s.puts.saturating_sub(f.puts),
                dels: s.dels.saturating_sub(f.dels),
                keys: s.keys,
                memory_bytes: s.memory_used,
                connections: s.connections,
                errors: s.errors.saturating_sub(f.errors),
            }
        })
        .collect()
}

/// Polls STATS at the start of the window and after each measured second.
pub(crate) async fn monitor(
    ctx: Rc<WorkerCtx>,
    cluster: Rc<Cluster>,
) -> Result<Vec<ServerNodeReport>, String> {
    let t = ctx.timing;
    sleep_until(t.start).await;
    let first: Snapshot = cluster.stats().await.map_err(|e| e.to_string())?;
    // Each node's durability mode, asked over its RESP port off the executor.
    let asked: Vec<_> = cluster
        .nodes()
        .iter()
        .map(
            |node| match (node.addr.rsplit_once(':'), node.hello.resp_port) {
                (Some((host, _)), p) if p != 0 => {
                    Some(super::resp_target::durability_later(format!("{host}:{p}")))
                }
                _ => None,
            },
        )
        .collect();
    let mut prev = first.clone();
    let mut per_second: Vec<Vec<f64>> = vec![Vec::new(); first.len()];
    for k in 0..t.seconds {
        sleep_until(t.second_end(k)).await;
        if ctx.stopped() && Instant::now() < t.end {
            break;
        }
        let now = cluster.stats().await.map_err(|e| e.to_string())?;
        for (i, (a, b)) in prev.iter().zip(&now).enumerate() {
            let dt = b.uptime_secs - a.uptime_secs;
            if dt > 0.0 {
                let ops = b.total().ops.saturating_sub(a.total().ops);
                per_second[i].push(ops as f64 / dt);
            }
        }
        prev = now;
    }
    let mut modes = Vec::new();
    for rx in asked {
        modes.push(match rx {
            Some(rx) => rx.recv_async().await.unwrap_or_default(),
            None => String::new(),
        });
    }
    Ok(cluster
        .nodes()
        .iter()
        .filter(|n| n.down.is_none())
        .zip(first.iter().zip(&prev))
        .zip(per_second)
        .zip(modes)
        .map(|(((node, (f, l)), ps), durability)| ServerNodeReport {
            node_id: node.hello.node_id,
            address: node.addr.clone(),
            per_second_ops: ps,
            shards: shard_deltas(f, l),
            durability,
        })
        .collect())
}
