//! Key routing: THE function that maps a key to its owner, `key → slot →
//! (node, shard)`, and the store's own key hash.
//!
//! Nothing else in corekv hashes keys. Placement is Redis Cluster's:
//!
//! * the **slot** of a key is `CRC16(key) mod 16384` ([`key_slot`]), CRC16
//!   being the XMODEM variant Redis uses (polynomial 0x1021, init 0), and a
//!   key containing a non-empty `{hash tag}` (the bytes between the first
//!   `{` and the next `}`) is hashed on its tag only, exactly as Redis does —
//!   so every Redis Cluster client computes the same slot corekv does;
//! * a [`SlotTable`] maps the slot to its owner `(node, shard)`: the 16384
//!   slots are split evenly over the nodes ([`node_slots`]) and each node's
//!   range evenly over its shards ([`shard_slots`]), contiguous ranges, as
//!   `redis-cli --cluster create` splits them over masters.
//!
//! Clients, the benchmark and servers all call [`route`] (or, on a server's
//! hot path, [`key_slot`] plus one [`SlotTable::owner`] lookup: no
//! allocation, no division).
//!
//! The store does **not** use the slot: 14 bits are far too few to index a
//! hash table. It keeps its own 64-bit hash, [`key_hash`] (XXH3-64, seed 0,
//! the `xxhash-rust` crate). A server therefore computes two functions of
//! each key, each exactly once per operation (the shard's prefetch pipeline
//! keeps both): the slot decides the owner, the hash places the key in the
//! owner's table. Both are stable across processes, machines and releases;
//! the tests pin known values (Redis's published CLUSTER KEYSLOT answers for
//! the slot) so a change cannot slip in. Rust's `DefaultHasher` (randomly
//! keyed) must never be used for placement.

use xxhash_rust::xxh3::xxh3_64;

/// Number of hash slots, as in Redis Cluster.
pub const NR_SLOTS: usize = 16384;

/// The store's 64-bit hash of a key (XXH3-64, seed 0): where the key sits
/// in its owner shard's table. Not used for placement.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// CRC16 lookup table (XMODEM: polynomial 0x1021, MSB first), built at
/// compile time.
static CRC16_TABLE: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut b = 0;
        while b < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            b += 1;
        }
        t[i] = crc;
        i += 1;
    }
    t
};

/// CRC16-XMODEM of `data`, the checksum Redis Cluster hashes keys with.
#[inline]
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in data {
        crc = (crc << 8) ^ CRC16_TABLE[((crc >> 8) as u8 ^ b) as usize];
    }
    crc
}

/// The part of a key that is hashed: the first `{…}` if it is non-empty,
/// otherwise the whole key (Redis's `keyHashSlot`).
#[inline]
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The hash slot of a key, `0..16384`, as Redis's CLUSTER KEYSLOT.
#[inline]
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (NR_SLOTS as u16 - 1)
}

/// The slots of node `node_id` among `nr_nodes`: an even, contiguous split.
pub fn node_slots(node_id: usize, nr_nodes: usize) -> std::ops::Range<usize> {
    split(0..NR_SLOTS, node_id, nr_nodes)
}

/// The slots of shard `shard_id` among `nr_shards` inside a node owning
/// `node_range`: the node's range split the same way.
pub fn shard_slots(
    node_range: std::ops::Range<usize>,
    shard_id: usize,
    nr_shards: usize,
) -> std::ops::Range<usize> {
    split(node_range, shard_id, nr_shards)
}

/// Part `i` of `n` of `range`, contiguous, sizes differing by at most one.
fn split(range: std::ops::Range<usize>, i: usize, n: usize) -> std::ops::Range<usize> {
    let len = range.len();
    let n = n.max(1);
    range.start + i * len / n..range.start + (i + 1) * len / n
}

/// Who owns a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Owner {
    /// Index of the owning node (position in the cluster's node list).
    pub node_id: u16,
    /// Index of the owning shard on that node.
    pub shard_id: u16,
}

/// Slot → owner, for a whole cluster: 16384 entries of 4 bytes (64 KiB),
/// one indexed load per lookup.
#[derive(Clone, PartialEq, Eq)]
pub struct SlotTable {
    owners: Box<[Owner]>,
    shards_per_node: Vec<usize>,
}

impl std::fmt::Debug for SlotTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotTable")
            .field("shards_per_node", &self.shards_per_node)
            .finish()
    }
}

impl SlotTable {
    /// The even split for nodes with these shard counts (node `i` has
    /// `shards_per_node[i]` shards; a count of 0 is taken as 1).
    pub fn new(shards_per_node: &[usize]) -> SlotTable {
        let nr_nodes = shards_per_node.len().max(1);
        let mut owners = vec![Owner::default(); NR_SLOTS].into_boxed_slice();
        for (node_id, &count) in shards_per_node.iter().enumerate() {
            let nr_shards = count.max(1);
            let range = node_slots(node_id, nr_nodes);
            for shard_id in 0..nr_shards {
                for slot in shard_slots(range.clone(), shard_id, nr_shards) {
                    owners[slot] = Owner {
                        node_id: node_id as u16,
                        shard_id: shard_id as u16,
                    };
                }
            }
        }
        SlotTable {
            owners,
            shards_per_node: shards_per_node.iter().map(|&n| n.max(1)).collect(),
        }
    }

    /// A table whose slot `s` is owned by node `nodes[s]` (one shard per
    /// node): a Redis Cluster's masters as CLUSTER SLOTS describes them.
    /// `None` unless there are exactly [`NR_SLOTS`] entries.
    pub fn from_slot_nodes(nodes: &[u16]) -> Option<SlotTable> {
        if nodes.len() != NR_SLOTS {
            return None;
        }
        let nr_nodes = nodes.iter().map(|&n| n as usize + 1).max().unwrap_or(1);
        Some(SlotTable {
            owners: nodes
                .iter()
                .map(|&node_id| Owner {
                    node_id,
                    shard_id: 0,
                })
                .collect(),
            shards_per_node: vec![1; nr_nodes],
        })
    }

    /// The owner of `slot` (`slot < NR_SLOTS`; larger values wrap).
    #[inline]
    pub fn owner(&self, slot: u16) -> Owner {
        self.owners[slot as usize & (NR_SLOTS - 1)]
    }

    /// Number of nodes.
    pub fn nr_nodes(&self) -> usize {
        self.shards_per_node.len()
    }

    /// Shards of node `node_id`.
    pub fn nr_shards(&self, node_id: usize) -> usize {
        self.shards_per_node[node_id]
    }

    /// The slot range of `(node_id, shard_id)`.
    pub fn slots_of(&self, node_id: usize, shard_id: usize) -> std::ops::Range<usize> {
        shard_slots(
            node_slots(node_id, self.nr_nodes()),
            shard_id,
            self.nr_shards(node_id),
        )
    }
}

/// Where a key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// The key's hash slot ([`key_slot`]).
    pub slot: u16,
    /// Index of the owning node (position in the cluster's node list).
    pub node_id: usize,
    /// Index of the owning shard on that node.
    pub shard_id: usize,
}

/// Routes a key: its slot, then the slot's owner in `table`.
#[inline]
pub fn route(key: &[u8], table: &SlotTable) -> Route {
    let slot = key_slot(key);
    let o = table.owner(slot);
    Route {
        slot,
        node_id: o.node_id as usize,
        shard_id: o.shard_id as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_is_xmodem() {
        // The check value of CRC-16/XMODEM, as in Redis's crc16.c.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    /// Values from Redis's documentation and `CLUSTER KEYSLOT` on Redis 7.
    #[test]
    fn keyslot_matches_redis() {
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{user1000}.following"), 3443);
        assert_eq!(key_slot(b"foo{{bar}}zap"), 4015);
        // Only the first `{` counts; an empty tag hashes the whole key.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") & 16383);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"{"), crc16(b"{") & 16383);
        assert_eq!(key_slot(b"a}b{c"), crc16(b"a}b{c") & 16383);
    }

    #[test]
    fn store_hash_is_stable() {
        // Pinned: if this changes, every table layout changes with it.
        assert_eq!(key_hash(b""), 0x2d06800538d394c2);
    }

    #[test]
    fn slot_split_is_even_and_contiguous() {
        assert_eq!(node_slots(0, 1), 0..16384);
        assert_eq!(node_slots(0, 3), 0..5461);
        assert_eq!(node_slots(1, 3), 5461..10922);
        assert_eq!(node_slots(2, 3), 10922..16384);
        let t = SlotTable::new(&[2, 3]);
        assert_eq!(t.slots_of(0, 0), 0..4096);
        assert_eq!(t.slots_of(0, 1), 4096..8192);
        assert_eq!(t.slots_of(1, 2), 13653..16384);
        for node in 0..2 {
            for shard in 0..t.nr_shards(node) {
                for s in t.slots_of(node, shard) {
                    assert_eq!(
                        t.owner(s as u16),
                        Owner {
                            node_id: node as u16,
                            shard_id: shard as u16
                        }
                    );
                }
            }
        }
        let one = SlotTable::new(&[1]);
        for k in [b"a".as_slice(), b"", b"zzzz"] {
            let r = route(k, &one);
            assert_eq!((r.node_id, r.shard_id), (0, 0));
        }
    }

    #[test]
    fn seed_keys_spread_evenly_over_4_nodes_x_16_shards() {
        let (nodes, shards) = (4usize, 16usize);
        let table = SlotTable::new(&[shards; 4]);
        let mut per_node = vec![0u64; nodes];
        let mut per_cell = vec![0u64; nodes * shards];
        for i in 0..1_000_000u64 {
            let k = i.to_string();
            let r = route(k.as_bytes(), &table);
            per_node[r.node_id] += 1;
            per_cell[r.node_id * shards + r.shard_id] += 1;
        }
        let node_mean = 1_000_000.0 / nodes as f64;
        for &c in &per_node {
            let dev = (c as f64 - node_mean).abs() / node_mean;
            assert!(
                dev < 0.02,
                "node count {c} deviates {dev:.4} from {node_mean}"
            );
        }
        let cell_mean = 1_000_000.0 / (nodes * shards) as f64;
        for &c in &per_cell {
            let dev = (c as f64 - cell_mean).abs() / cell_mean;
            assert!(
                dev < 0.05,
                "shard count {c} deviates {dev:.4} from {cell_mean}"
            );
        }
    }
}
