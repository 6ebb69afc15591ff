//! Key routing: THE function that maps a key to its owner `(node, shard)`.
//!
//! Nothing else in corekv hashes keys. Clients and the benchmark call
//! [`route`] once per operation; a server, which knows only its own node,
//! calls [`key_hash`] once per operation and [`shard_of`] on the result (the
//! same second hop). Every placement decision derives from that one 64-bit
//! value:
//!
//! * the **node** from the low 32 bits, `node = (lo32 * nr_nodes) >> 32`
//!   (Lemire's multiply-shift range reduction: uniform, no division);
//! * the **shard** inside the node from the high 32 bits, the same way.
//!
//! Because the two halves are independent, a shard's placement does not depend
//! on how many nodes there are: a server needs to know only its own shard
//! count to forward a misrouted key to its owner core.
//!
//! The hash is XXH3-64 with seed 0 (the `xxhash-rust` crate), a fixed and
//! specified function. It is stable across processes, machines and releases;
//! the test `hash_is_stable` pins known values so a change cannot slip in.
//! Rust's `DefaultHasher` (randomly keyed) must never be used for placement.

use xxhash_rust::xxh3::xxh3_64;

/// The 64-bit placement hash of a key (XXH3-64, seed 0).
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// Maps a 32-bit value uniformly onto `0..n` (multiply-shift).
#[inline]
fn reduce(x: u32, n: usize) -> usize {
    ((x as u64 * n as u64) >> 32) as usize
}

/// The node that owns a key with placement hash `hash`, among `nr_nodes`.
#[inline]
fn node_of(hash: u64, nr_nodes: usize) -> usize {
    reduce(hash as u32, nr_nodes)
}

/// The shard (core) inside its node that owns a key with placement hash
/// `hash`: the second hop, which a server takes for keys that reach it.
#[inline]
pub fn shard_of(hash: u64, nr_shards: usize) -> usize {
    reduce((hash >> 32) as u32, nr_shards)
}

/// Where a key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// The key's placement hash ([`key_hash`]), which the owner's store uses too.
    pub hash: u64,
    /// Index of the owning node (position in the cluster's node list).
    pub node_id: usize,
    /// Index of the owning shard on that node.
    pub shard_id: usize,
}

/// Routes a key in a cluster of `nr_nodes` nodes, node `i` having
/// `nr_shards(i)` shards: both hops from one hash.
#[inline]
pub fn route(key: &[u8], nr_nodes: usize, nr_shards: impl FnOnce(usize) -> usize) -> Route {
    let hash = key_hash(key);
    let node_id = node_of(hash, nr_nodes);
    Route {
        hash,
        node_id,
        shard_id: shard_of(hash, nr_shards(node_id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable() {
        // Pinned values: if these change, every deployed cluster re-shards.
        assert_eq!(key_hash(b""), 0x2d06800538d394c2);
        assert_eq!(key_hash(b"0"), key_hash(b"0"));
        let pinned: Vec<(usize, usize)> = [b"0".as_slice(), b"1", b"42", b"999999"]
            .iter()
            .map(|k| {
                let r = route(k, 4, |_| 16);
                (r.node_id, r.shard_id)
            })
            .collect();
        assert_eq!(pinned, PINNED_ROUTES.to_vec());
    }

    const PINNED_ROUTES: [(usize, usize); 4] = [(2, 1), (2, 6), (3, 1), (0, 3)];

    #[test]
    fn single_node_single_shard() {
        for k in [b"a".as_slice(), b"", b"zzzz"] {
            let r = route(k, 1, |_| 1);
            assert_eq!((r.node_id, r.shard_id), (0, 0));
        }
    }

    #[test]
    fn seed_keys_spread_evenly_over_4_nodes_x_16_shards() {
        let (nodes, shards) = (4usize, 16usize);
        let mut per_node = vec![0u64; nodes];
        let mut per_cell = vec![0u64; nodes * shards];
        let mut buf = itoa_buf();
        for i in 0..1_000_000u64 {
            let k = decimal(i, &mut buf);
            let r = route(k, nodes, |_| shards);
            per_node[r.node_id] += 1;
            per_cell[r.node_id * shards + r.shard_id] += 1;
        }
        let node_mean = 1_000_000.0 / nodes as f64;
        for &c in &per_node {
            let dev = (c as f64 - node_mean).abs() / node_mean;
            assert!(
                dev < 0.01,
                "node count {c} deviates {dev:.4} from {node_mean}"
            );
        }
        let cell_mean = 1_000_000.0 / (nodes * shards) as f64;
        for &c in &per_cell {
            let dev = (c as f64 - cell_mean).abs() / cell_mean;
            assert!(
                dev < 0.03,
                "shard count {c} deviates {dev:.4} from {cell_mean}"
            );
        }
    }

    #[test]
    fn shard_does_not_depend_on_node_count() {
        for i in 0..1000u64 {
            let k = i.to_string();
            let h = key_hash(k.as_bytes());
            let k = k.as_bytes();
            assert_eq!(route(k, 1, |_| 8).shard_id, route(k, 7, |_| 8).shard_id);
            assert_eq!(route(k, 7, |_| 8).shard_id, shard_of(h, 8));
        }
    }

    fn itoa_buf() -> [u8; 20] {
        [0; 20]
    }

    fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        &buf[i..]
    }
}
