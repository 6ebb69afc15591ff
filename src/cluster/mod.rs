//! The cluster map: membership from configuration, the slot table, and what
//! HELLO, MOVED and the CLUSTER commands report. Data, not I/O loops: the
//! start-up greeting that fills in the peers lives in the server
//! (`server::greet`), the RESP encoding in `server::resp::cluster`.
//!
//! # Membership
//!
//! A cluster is the list given to every node with `corekv server --cluster
//! h0:7000,h1:7000,…` (native port of each node's shard 0); a node's id is
//! its position in the list. The same list on every node gives the same
//! [`SlotTable`] everywhere (slots split evenly over nodes, each node's range
//! over its shards, see [`crate::routing`]); the list's [`digest`] lets nodes
//! and clients check that they agree. A node started without `--cluster` is a
//! one-node cluster owning every slot. Membership changes by restarting with
//! a new list; there is no gossip and no consensus.
//!
//! A node knows its own shards at start; a peer's shard count and ports are
//! learned by greeting it (HELLO) and kept in a [`PeerLayout`] set once
//! ([`OnceLock`], lock-free to read). Until then the peer's slots are still
//! known to be the peer's (the node split needs only the node count), so a
//! key is never served by the wrong node; only the exact shard port a MOVED
//! or CLUSTER SLOTS names waits for the greeting.
//!
//! # Identity
//!
//! Every shard is presented to Redis Cluster clients as a master with a
//! stable 40-hex-digit node id ([`shard_node_id`]), derived from the cluster
//! digest, node id and shard id: the same after a restart with the same list.
//!
//! This module touches no socket and no store.

use std::sync::OnceLock;

use crate::error::ConfigError;
use crate::routing::{node_slots, shard_slots, Owner, SlotTable};

/// The layout of one node as its HELLO reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLayout {
    /// Native port of each shard.
    pub shard_ports: Vec<u16>,
    /// Node-level RESP port (0: none).
    pub resp_port: u16,
    /// RESP port of each shard (empty: none).
    pub resp_shard_ports: Vec<u16>,
}

impl PeerLayout {
    /// Number of shards.
    pub fn nr_shards(&self) -> usize {
        self.shard_ports.len().max(1)
    }

    /// The RESP port that serves `shard_id` (its own, else the node's).
    pub fn resp_port_of(&self, shard_id: usize) -> u16 {
        self.resp_shard_ports
            .get(shard_id)
            .copied()
            .unwrap_or(self.resp_port)
    }
}

/// Parses a `--cluster` list: `host:port,host:port,…` (IPv6 as `[::1]:7000`).
pub fn parse_list(s: &str) -> Result<Vec<String>, ConfigError> {
    let bad = |why: &str| ConfigError::Cluster(format!("--cluster {s:?}: {why}"));
    let nodes: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    if nodes.is_empty() {
        return Err(bad("no nodes"));
    }
    for n in &nodes {
        let Some((host, port)) = n.rsplit_once(':') else {
            return Err(bad(&format!("{n:?} is not host:port")));
        };
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad(&format!("{n:?} is not host:port")));
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        if nodes[..i].contains(n) {
            return Err(bad(&format!("{n} is listed twice")));
        }
    }
    if nodes.len() > u16::MAX as usize {
        return Err(bad("too many nodes"));
    }
    Ok(nodes)
}

/// The host part of `host:port` (brackets of an IPv6 address removed).
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The port part of `host:port`.
pub fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// The cluster's digest: a stable hash of the node list, equal on every
/// node started with the same list.
pub fn digest(nodes: &[String]) -> u64 {
    crate::routing::key_hash(nodes.join(",").as_bytes())
}

/// The 40-hex-digit Redis Cluster node id of shard `shard_id` of node
/// `node_id` in the cluster with `digest`.
pub fn shard_node_id(digest: u64, node_id: usize, shard_id: usize) -> String {
    let seed = format!("corekv:{digest:016x}:{node_id}:{shard_id}");
    let a = xxhash_rust::xxh3::xxh3_128(seed.as_bytes());
    let b = crate::routing::key_hash(seed.as_bytes()) as u32;
    format!("{a:032x}{b:08x}")
}

/// Which entry of `nodes` is this node: the explicit `--node-id`, else the
/// one entry whose port is `port` and whose host is `bind` (or, binding
/// every address, the only entry with that port).
pub fn find_self(
    nodes: &[String],
    explicit: Option<u32>,
    bind: std::net::IpAddr,
    port: u16,
) -> Result<usize, ConfigError> {
    if let Some(id) = explicit {
        if id as usize >= nodes.len() {
            return Err(ConfigError::Cluster(format!(
                "--node-id {id} is outside the --cluster list of {} nodes",
                nodes.len()
            )));
        }
        return Ok(id as usize);
    }
    let same_port: Vec<usize> = (0..nodes.len())
        .filter(|&i| port_of(&nodes[i]) == Some(port))
        .collect();
    let same_host: Vec<usize> = same_port
        .iter()
        .copied()
        .filter(|&i| host_of(&nodes[i]).parse::<std::net::IpAddr>().ok() == Some(bind))
        .collect();
    match (same_host.as_slice(), same_port.as_slice()) {
        ([i], _) => Ok(*i),
        (_, [i]) if bind.is_unspecified() || same_host.is_empty() => Ok(*i),
        _ => Err(ConfigError::Cluster(format!(
            "cannot tell which --cluster entry is this node (bind {bind}, port {port}): pass --node-id"
        ))),
    }
}

/// A node's view of its cluster, shared by its shards (`Send + Sync`,
/// immutable but for peers' layouts, each set once).
pub struct ClusterMap {
    /// Every node's address (`host:native port of shard 0`), by node id.
    pub nodes: Vec<String>,
    /// This node's id (position in `nodes`).
    pub node_id: usize,
    /// [`digest`] of `nodes`.
    pub digest: u64,
    /// Slot → owner. Exact for this node's shards; a peer's slots carry the
    /// right node and shard 0 until its layout is known (see [`Self::owner`]).
    table: SlotTable,
    /// Each node's layout, once known (this node's at start-up, peers' by
    /// greeting).
    layouts: Vec<OnceLock<PeerLayout>>,
}

impl std::fmt::Debug for ClusterMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterMap")
            .field("nodes", &self.nodes)
            .field("node_id", &self.node_id)
            .finish()
    }
}

impl ClusterMap {
    /// The map of node `node_id` (with `nr_shards` shards) in `nodes`.
    pub fn new(nodes: Vec<String>, node_id: usize, nr_shards: usize) -> ClusterMap {
        let mut counts = vec![1usize; nodes.len()];
        counts[node_id] = nr_shards;
        ClusterMap {
            digest: digest(&nodes),
            table: SlotTable::new(&counts),
            layouts: nodes.iter().map(|_| OnceLock::new()).collect(),
            nodes,
            node_id,
        }
    }

    /// A one-node cluster: the node answers to `addr` and owns every slot.
    pub fn single(addr: String, nr_shards: usize) -> ClusterMap {
        ClusterMap::new(vec![addr], 0, nr_shards)
    }

    /// Number of nodes.
    pub fn nr_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The owner node of `slot`, and the shard when it is this node's. The
    /// hot path's one lookup.
    #[inline]
    pub fn owner(&self, slot: u16) -> Owner {
        self.table.owner(slot)
    }

    /// Records a node's layout (this node's at start-up, a peer's when
    /// greeted). The first one stays; `false` if it differed.
    pub fn set_layout(&self, node_id: usize, layout: PeerLayout) -> bool {
        match self.layouts[node_id].set(layout.clone()) {
            Ok(()) => true,
            Err(_) => self.layouts[node_id].get() == Some(&layout),
        }
    }

    /// A node's layout, once known.
    pub fn layout(&self, node_id: usize) -> Option<&PeerLayout> {
        self.layouts.get(node_id).and_then(|l| l.get())
    }

    /// True when every node's layout is known.
    pub fn complete(&self) -> bool {
        self.layouts.iter().all(|l| l.get().is_some())
    }

    /// The host clients reach node `node_id` at.
    pub fn host(&self, node_id: usize) -> &str {
        host_of(&self.nodes[node_id])
    }

    /// Shard count of a node, once known.
    pub fn nr_shards(&self, node_id: usize) -> Option<usize> {
        self.layout(node_id).map(PeerLayout::nr_shards)
    }

    /// The slots of `(node_id, shard_id)` for a node of `nr_shards` shards.
    pub fn slots_of(
        &self,
        node_id: usize,
        shard_id: usize,
        nr_shards: usize,
    ) -> std::ops::Range<usize> {
        shard_slots(node_slots(node_id, self.nr_nodes()), shard_id, nr_shards)
    }

    /// The shard of node `node_id` owning `slot`, once the node's layout is known.
    pub fn shard_of_slot(&self, node_id: usize, slot: u16) -> Option<usize> {
        let n = self.nr_shards(node_id)?;
        let range = node_slots(node_id, self.nr_nodes());
        (0..n).find(|&s| shard_slots(range.clone(), s, n).contains(&(slot as usize)))
    }

    /// `host:port` of the RESP port serving `slot` (its owning shard's own
    /// port), once the owner's layout is known: the address of a MOVED.
    pub fn resp_addr_of_slot(&self, slot: u16) -> Option<String> {
        let node = self.owner(slot).node_id as usize;
        let shard = self.shard_of_slot(node, slot)?;
        let port = self.layout(node)?.resp_port_of(shard);
        Some(format_addr(self.host(node), port))
    }

    /// Every (node, shard) with its slot range, in node and shard order;
    /// nodes whose layout is unknown are listed as one shard serving the
    /// node's whole range on its node-level RESP port (`None` if unknown).
    pub fn masters(&self) -> Vec<Master> {
        let mut out = Vec::new();
        for node_id in 0..self.nr_nodes() {
            let layout = self.layout(node_id);
            let n = layout.map_or(1, PeerLayout::nr_shards);
            for shard_id in 0..n {
                out.push(Master {
                    node_id,
                    shard_id,
                    id: shard_node_id(self.digest, node_id, shard_id),
                    host: self.host(node_id).to_string(),
                    resp_port: layout.map(|l| l.resp_port_of(shard_id)),
                    native_port: layout.and_then(|l| l.shard_ports.get(shard_id).copied()),
                    slots: self.slots_of(node_id, shard_id, n),
                });
            }
        }
        out
    }
}

/// One shard as Redis Cluster clients see it: a master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    /// Its node.
    pub node_id: usize,
    /// Its shard in the node.
    pub shard_id: usize,
    /// Stable 40-hex id ([`shard_node_id`]).
    pub id: String,
    /// Host (from the cluster list).
    pub host: String,
    /// Its RESP port, if known.
    pub resp_port: Option<u16>,
    /// Its native port, if known.
    pub native_port: Option<u16>,
    /// The slots it serves.
    pub slots: std::ops::Range<usize>,
}

/// `host:port`, bracketing an IPv6 host.
pub fn format_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Vec<String> {
        parse_list("10.0.0.1:7000, 10.0.0.2:7000,10.0.0.3:7100").unwrap()
    }

    #[test]
    fn lists_and_self() {
        assert_eq!(list().len(), 3);
        assert!(parse_list("").is_err());
        assert!(parse_list("a:1,a:1").is_err());
        assert!(parse_list("a").is_err());
        assert!(parse_list("a:0").is_err());
        let any: std::net::IpAddr = "0.0.0.0".parse().unwrap();
        let ip2: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(find_self(&list(), Some(1), any, 1).unwrap(), 1);
        assert!(find_self(&list(), Some(3), any, 1).is_err());
        assert_eq!(find_self(&list(), None, any, 7100).unwrap(), 2);
        assert_eq!(find_self(&list(), None, ip2, 7000).unwrap(), 1);
        assert!(find_self(&list(), None, any, 7000).is_err());
        assert_eq!(host_of("[::1]:7000"), "::1");
        assert_eq!(format_addr("::1", 1), "[::1]:1");
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let d = digest(&list());
        let a = shard_node_id(d, 0, 0);
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, shard_node_id(d, 0, 0));
        assert_ne!(a, shard_node_id(d, 0, 1));
        assert_ne!(a, shard_node_id(d, 1, 0));
        assert_ne!(d, digest(&list()[..2]));
    }

    #[test]
    fn map_learns_peers() {
        let m = ClusterMap::new(list(), 1, 2);
        assert!(m.resp_addr_of_slot(0).is_none());
        m.set_layout(
            0,
            PeerLayout {
                shard_ports: vec![7000, 7001, 7002],
                resp_port: 6380,
                resp_shard_ports: vec![6381, 6382, 6383],
            },
        );
        assert_eq!(m.owner(0).node_id, 0);
        assert_eq!(m.resp_addr_of_slot(0).unwrap(), "10.0.0.1:6381");
        assert_eq!(m.resp_addr_of_slot(5460).unwrap(), "10.0.0.1:6383");
        assert_eq!(
            m.owner(5461),
            Owner {
                node_id: 1,
                shard_id: 0
            }
        );
        assert_eq!(
            m.owner(10921),
            Owner {
                node_id: 1,
                shard_id: 1
            }
        );
        let masters = m.masters();
        assert_eq!(masters.len(), 3 + 1 + 1);
        assert_eq!(masters.iter().map(|x| x.slots.len()).sum::<usize>(), 16384);
        assert!(!m.complete());
    }
}
