//! The cluster family: CLUSTER (SLOTS SHARDS NODES INFO MYID KEYSLOT
//! COUNTKEYSINSLOT GETKEYSINSLOT HELP), READONLY, READWRITE, ASKING — and
//! the redirect check every key command passes ([`check_keys`]).
//!
//! Every shard is presented as a Redis Cluster master with its own RESP port
//! and a stable 40-hex id, so a cluster client sends each key straight to
//! the core owning it. A key of another node gets Redis's `-MOVED <slot>
//! <host>:<port of the owning shard>`; a multi-key command whose keys are all
//! on this node is served even across slots (the flume mesh takes each key
//! to its shard), and one spanning nodes gets `-CROSSSLOT`. Replies follow
//! Redis 7.0 byte for byte (tests/cluster.rs compares them with a real
//! Redis Cluster). Reads the cluster map ([`crate::cluster`]); touches no
//! socket and no store (key scans go through the shard).

use std::fmt::Write as _;
use std::ops::Range;

use crate::cluster::{format_addr, Master};
use crate::protocol::resp;
use crate::routing::{key_slot, NR_SLOTS};

use super::table::{arg, is_word, opt, CmdError, Effect, Parse, Spec};
use super::Connection;

/// Redis's error for a multi-key command over slots of several nodes.
pub(crate) const ERR_CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

const fn cluster_cmd(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    summary: &'static str,
    args: &'static [super::table::Arg],
    handler: super::table::Handler,
) -> Spec {
    Spec::new(
        name,
        arity,
        flags,
        (0, 0, 0),
        "cluster",
        summary,
        args,
        false,
        handler,
    )
}

/// The cluster family's rows.
pub(crate) static COMMANDS: &[Spec] = &[
    cluster_cmd(
        "cluster",
        -2,
        &[],
        "A container for Redis Cluster commands (each corekv shard is a master).",
        &[arg("subcommand", "string"), opt(arg("args", "string"))],
        cluster,
    ),
    cluster_cmd(
        "readonly",
        1,
        &["loading", "stale", "fast"],
        "Enables read-only queries for a connection to a Redis Cluster replica node.",
        &[],
        ok,
    ),
    cluster_cmd(
        "readwrite",
        1,
        &["loading", "stale", "fast"],
        "Enables read-write queries for a connection to a Redis Cluster replica node.",
        &[],
        ok,
    ),
    cluster_cmd(
        "asking",
        1,
        &["fast"],
        "Signals that a cluster client is following an -ASK redirect.",
        &[],
        ok,
    ),
];

/// READONLY, READWRITE, ASKING: accepted (corekv has no replicas and no
/// slot migration, so they change nothing).
fn ok(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    p.finish()?;
    conn.out.extend_from_slice(b"+OK\r\n");
    Ok(Effect::Continue)
}

/// Checks that the keys of a key command are this node's. `Ok` when they
/// all are (whatever their slots); `-MOVED` when they are one slot of
/// another node; `-CROSSSLOT` otherwise; `-CLUSTERDOWN` when the owner has
/// not been greeted yet (its port is unknown). Only called on clusters of
/// more than one node.
pub(crate) fn check_keys(
    conn: &Connection<'_>,
    spec: &Spec,
    buf: &[u8],
    args: &[Range<usize>],
) -> Result<(), CmdError> {
    let map = &conn.shard.cluster;
    let me = conn.shard.me().node_id;
    let last = if spec.last_key < 0 {
        args.len() as i32 + spec.last_key
    } else {
        spec.last_key
    };
    let step = spec.step.max(1) as usize;
    let mut first_slot: Option<u16> = None;
    let mut same_slot = true;
    let mut all_mine = true;
    let mut i = spec.first_key.max(1) as usize;
    while i <= last.max(0) as usize && i < args.len() {
        let slot = key_slot(&buf[args[i].clone()]);
        all_mine &= map.owner(slot).node_id == me;
        match first_slot {
            None => first_slot = Some(slot),
            Some(s) => same_slot &= s == slot,
        }
        i += step;
    }
    match first_slot {
        _ if all_mine => Ok(()),
        Some(slot) if same_slot => match map.resp_addr_of_slot(slot) {
            Some(addr) => Err(CmdError::from(format!("MOVED {slot} {addr}"))),
            None => {
                let node = map.owner(slot).node_id as usize;
                Err(CmdError::from(format!(
                    "CLUSTERDOWN Hash slot not served (node {node} at {} has not answered this node)",
                    map.nodes[node]
                )))
            }
        },
        _ => Err(CmdError::msg(ERR_CROSSSLOT)),
    }
}

/// CLUSTER <subcommand> [args]
fn cluster(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let sub = p.next_bytes()?;
    let is = |w: &str| is_word(sub, w);
    let sub_arity = |p: &Parse<'_>, n: usize, name: &str| {
        if p.remaining() == n {
            Ok(())
        } else {
            Err(CmdError::from(format!(
                "ERR wrong number of arguments for 'cluster|{name}' command"
            )))
        }
    };
    let map = conn.shard.cluster.clone();
    let masters = map.masters();
    let me = conn.shard.me();
    let myself =
        |m: &Master| m.node_id == me.node_id as usize && m.shard_id == me.shard_id as usize;
    let proto = conn.proto;
    let out = &mut conn.out;
    if is("keyslot") {
        sub_arity(p, 1, "keyslot")?;
        resp::integer(out, key_slot(p.next_bytes()?) as i64);
    } else if is("myid") {
        sub_arity(p, 0, "myid")?;
        let id = masters.iter().find(|m| myself(m)).map(|m| m.id.clone());
        resp::bulk(out, id.unwrap_or_default().as_bytes());
    } else if is("slots") {
        sub_arity(p, 0, "slots")?;
        let served: Vec<&Master> = masters.iter().filter(|m| m.resp_port.is_some()).collect();
        resp::array_header(out, served.len());
        for m in served {
            resp::array_header(out, 3);
            resp::integer(out, m.slots.start as i64);
            resp::integer(out, m.slots.end as i64 - 1);
            resp::array_header(out, 4);
            resp::bulk(out, m.host.as_bytes());
            resp::integer(out, m.resp_port.unwrap_or(0) as i64);
            resp::bulk(out, m.id.as_bytes());
            // Networking metadata: a map, empty.
            resp::map_header(out, 0, proto);
        }
    } else if is("shards") {
        sub_arity(p, 0, "shards")?;
        let served: Vec<&Master> = masters.iter().filter(|m| m.resp_port.is_some()).collect();
        resp::array_header(out, served.len());
        for m in served {
            resp::map_header(out, 2, proto);
            resp::bulk(out, b"slots");
            resp::array_header(out, 2);
            resp::integer(out, m.slots.start as i64);
            resp::integer(out, m.slots.end as i64 - 1);
            resp::bulk(out, b"nodes");
            resp::array_header(out, 1);
            resp::map_header(out, 7, proto);
            resp::bulk(out, b"id");
            resp::bulk(out, m.id.as_bytes());
            resp::bulk(out, b"port");
            resp::integer(out, m.resp_port.unwrap_or(0) as i64);
            resp::bulk(out, b"ip");
            resp::bulk(out, m.host.as_bytes());
            resp::bulk(out, b"endpoint");
            resp::bulk(out, m.host.as_bytes());
            resp::bulk(out, b"role");
            resp::bulk(out, b"master");
            resp::bulk(out, b"replication-offset");
            resp::integer(out, 0);
            resp::bulk(out, b"health");
            resp::bulk(out, b"online");
        }
    } else if is("nodes") {
        sub_arity(p, 0, "nodes")?;
        let mut text = String::new();
        for m in &masters {
            let port = m.resp_port.unwrap_or(0);
            let flags = match (myself(m), m.resp_port.is_some()) {
                (true, _) => "myself,master",
                (false, true) => "master",
                (false, false) => "master,fail",
            };
            let link = if m.resp_port.is_some() {
                "connected"
            } else {
                "disconnected"
            };
            let epoch = masters.iter().position(|x| x.id == m.id).unwrap_or(0) + 1;
            let _ = writeln!(
                text,
                "{} {}@0 {flags} - 0 0 {epoch} {link} {}-{}",
                m.id,
                format_addr(&m.host, port),
                m.slots.start,
                m.slots.end - 1
            );
        }
        resp::verbatim(out, text.as_bytes(), proto);
    } else if is("info") {
        sub_arity(p, 0, "info")?;
        let ok: usize = masters
            .iter()
            .filter(|m| m.resp_port.is_some())
            .map(|m| m.slots.len())
            .sum();
        let my_epoch = masters.iter().position(myself).unwrap_or(0) + 1;
        let text = format!(
            "cluster_state:{}\r\ncluster_slots_assigned:{NR_SLOTS}\r\ncluster_slots_ok:{ok}\r\n\
             cluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\ncluster_known_nodes:{}\r\n\
             cluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{my_epoch}\r\n\
             cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
             total_cluster_links_buffer_limit_exceeded:0\r\n",
            if ok == NR_SLOTS { "ok" } else { "fail" },
            NR_SLOTS - ok,
            masters.len(),
            masters.len(),
            masters.len(),
        );
        resp::verbatim(out, text.as_bytes(), proto);
    } else if is("countkeysinslot") {
        sub_arity(p, 1, "countkeysinslot")?;
        let slot = p.next_int()?;
        if !(0..NR_SLOTS as i64).contains(&slot) {
            return Err(CmdError::msg("ERR Invalid slot"));
        }
        return Ok(Effect::SlotKeys {
            slot: slot as u16,
            limit: None,
        });
    } else if is("getkeysinslot") {
        sub_arity(p, 2, "getkeysinslot")?;
        let slot = p.next_int()?;
        let count = p.next_int()?;
        if !(0..NR_SLOTS as i64).contains(&slot) || count < 0 {
            return Err(CmdError::msg("ERR Invalid slot or number of keys"));
        }
        return Ok(Effect::SlotKeys {
            slot: slot as u16,
            limit: Some(count.min(u32::MAX as i64) as usize),
        });
    } else if is("help") {
        let lines = [
            "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "COUNTKEYSINSLOT <slot>",
            "GETKEYSINSLOT <slot> <count>",
            "INFO",
            "KEYSLOT <key>",
            "MYID",
            "NODES",
            "SHARDS",
            "SLOTS",
            "HELP",
        ];
        resp::array_header(out, lines.len());
        for l in lines {
            resp::simple(out, l);
        }
    } else {
        return Err(CmdError::unknown_subcommand(sub, "CLUSTER"));
    }
    Ok(Effect::Continue)
}

/// Writes the reply of CLUSTER COUNTKEYSINSLOT (`limit` None) or
/// GETKEYSINSLOT once the shard has counted.
pub(crate) fn slot_keys_reply(
    out: &mut Vec<u8>,
    limit: Option<usize>,
    count: usize,
    keys: &[Vec<u8>],
) {
    match limit {
        None => resp::integer(out, count as i64),
        Some(_) => {
            resp::array_header(out, keys.len());
            for k in keys {
                resp::bulk(out, k);
            }
        }
    }
}
