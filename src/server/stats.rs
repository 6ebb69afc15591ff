//! The per-second stats line, in the seed's terms (get/s, put/s, ops/s for
//! the node, and per shard with `--verbose`), computed from two snapshots of
//! the shards' published counters. Pure formatting: no I/O, no clocks.

use crate::protocol::native::NodeStats;
use crate::units::human_bytes;

/// Turns successive snapshots into rate lines.
#[derive(Default)]
pub struct StatsLine {
    prev: Option<NodeStats>,
}

impl StatsLine {
    /// A fresh reporter.
    pub fn new() -> StatsLine {
        StatsLine::default()
    }

    /// Lines for `now` (the node line, then one per shard when `verbose`).
    /// Rates are over the time since the previous call; the first call
    /// reports since start.
    pub fn lines(&mut self, now: &NodeStats, verbose: bool) -> Vec<String> {
        let prev = self.prev.take().unwrap_or_else(|| NodeStats {
            node_id: now.node_id,
            uptime_secs: 0.0,
            shards: vec![Default::default(); now.shards.len()],
        });
        let dt = (now.uptime_secs - prev.uptime_secs).max(1e-9);
        let (t, p) = (now.total(), prev.total());
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt;
        let mut out = vec![format!(
            "stats node={} t={:.0}s get/s={:.0} put/s={:.0} ops/s={:.0} keys={} mem={} conns={} errors={} fwd/s={:.0}",
            now.node_id,
            now.uptime_secs,
            rate(t.gets, p.gets),
            rate(t.puts, p.puts),
            rate(t.ops, p.ops),
            t.keys,
            human_bytes(t.memory_used),
            t.connections,
            t.errors,
            rate(t.forwarded_out, p.forwarded_out),
        )];
        if verbose {
            for (s, q) in now.shards.iter().zip(prev.shards.iter()) {
                out.push(format!(
                    "  shard={} get/s={:.0} put/s={:.0} ops/s={:.0} keys={} mem={} conns={} fwd_in/s={:.0}",
                    s.shard_id,
                    rate(s.gets, q.gets),
                    rate(s.puts, q.puts),
                    rate(s.ops, q.ops),
                    s.keys,
                    human_bytes(s.memory_used),
                    s.connections,
                    rate(s.forwarded_in, q.forwarded_in),
                ));
            }
        }
        self.prev = Some(now.clone());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::native::ShardStats;

    #[test]
    fn rates_from_deltas() {
        let snap = |t: f64, gets: u64, puts: u64| NodeStats {
            node_id: 2,
            uptime_secs: t,
            shards: vec![ShardStats {
                shard_id: 0,
                gets,
                puts,
                ops: gets + puts,
                ..Default::default()
            }],
        };
        let mut s = StatsLine::new();
        s.lines(&snap(1.0, 100, 10), false);
        let l = s.lines(&snap(3.0, 2100, 210), true);
        assert!(l[0].contains("node=2"), "{}", l[0]);
        assert!(l[0].contains("get/s=1000 put/s=100 ops/s=1100"), "{}", l[0]);
        assert_eq!(l.len(), 2);
        assert!(l[1].contains("shard=0"));
    }
}
