//! The database and keyspace commands: SWAPDB, MOVE, KEYS, SCAN,
//! RANDOMKEY, TYPE, TOUCH, UNLINK, OBJECT, DEBUG. Batched ones (TYPE, TOUCH,
//! UNLINK) queue ops like GET/DEL; the others check their arguments here,
//! leave a [`Pending`] request on the connection and answer through
//! [`finish`], which asks the owning shard (or every shard) through
//! [`Shard`](crate::shard::Shard)'s keyspace requests. Touches no socket and
//! no store.

use crate::protocol::resp;
use crate::shard::{KeyspaceReply, KeyspaceReq};

use super::run::push_op_error;
use super::table::{arg, CmdError, Effect, Parse, Spec, KEY};
use super::Connection;

/// A checked keyspace command waiting for its shard(s).
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    /// SWAPDB a b.
    SwapDb(u16, u16),
    /// MOVE key db.
    Move {
        /// The key.
        key: Vec<u8>,
        /// The target database.
        to: u16,
    },
}

/// Redis's `getIntFromObjectOrReply`: a decimal that fits a C `int`, else
/// `msg` (Redis's default: not an integer or out of range).
fn c_int(bytes: &[u8], msg: &'static str) -> Result<i64, CmdError> {
    crate::op::parse_i64(bytes)
        .filter(|&n| i32::try_from(n).is_ok())
        .ok_or(CmdError::msg(msg))
}

const ERR_NOT_INT: &str = "ERR value is not an integer or out of range";
const ERR_DB_RANGE: &str = "ERR DB index is out of range";

/// The keyspace family's rows.
pub(crate) static COMMANDS: &[Spec] = &[
    Spec {
        name: "swapdb",
        arity: 3,
        flags: &["write", "fast"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "Swaps two databases (every shard of the node, O(1) each).",
        args: &[arg("index1", "integer"), arg("index2", "integer")],
        batched: false,
        handler: swapdb,
    },
    Spec {
        name: "move",
        arity: 3,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Moves a key to another database.",
        args: &[KEY, arg("db", "integer")],
        batched: false,
        handler: move_cmd,
    },
];

/// SELECT index: databases 0..`--databases`; in cluster mode (`--cluster`)
/// only 0, with Redis Cluster's error.
pub(crate) fn select_index(conn: &Connection<'_>, bytes: &[u8]) -> Result<u16, CmdError> {
    let index = c_int(bytes, ERR_NOT_INT)?;
    if conn.shard.cluster_mode() && index != 0 {
        return Err(CmdError::msg("ERR SELECT is not allowed in cluster mode"));
    }
    db_index(conn, index, ERR_DB_RANGE)
}

/// `index` as a database of this node, else `msg`.
fn db_index(conn: &Connection<'_>, index: i64, msg: &'static str) -> Result<u16, CmdError> {
    if index < 0 || index >= conn.shard.node.databases() as i64 {
        return Err(CmdError::msg(msg));
    }
    Ok(index as u16)
}

/// SWAPDB index1 index2
fn swapdb(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    if conn.shard.cluster_mode() {
        return Err(CmdError::msg("ERR SWAPDB is not allowed in cluster mode"));
    }
    let a = c_int(p.next_bytes()?, "ERR invalid first DB index")?;
    let b = c_int(p.next_bytes()?, "ERR invalid second DB index")?;
    p.finish()?;
    let a = db_index(conn, a, ERR_DB_RANGE)?;
    let b = db_index(conn, b, ERR_DB_RANGE)?;
    conn.pending = Some(Pending::SwapDb(a, b));
    Ok(Effect::Keyspace)
}

/// MOVE key db
fn move_cmd(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    if conn.shard.cluster_mode() {
        return Err(CmdError::msg("ERR MOVE is not allowed in cluster mode"));
    }
    let key = p.next_bytes()?;
    let to = c_int(p.next_bytes()?, ERR_NOT_INT)?;
    p.finish()?;
    let to = db_index(conn, to, ERR_DB_RANGE)?;
    if to == conn.db {
        return Err(CmdError::msg(
            "ERR source and destination objects are the same",
        ));
    }
    conn.pending = Some(Pending::Move {
        key: key.to_vec(),
        to,
    });
    Ok(Effect::Keyspace)
}

/// Answers the pending keyspace command (after asking its shard or shards).
pub(crate) async fn finish(conn: &mut Connection<'_>) {
    let Some(pending) = conn.pending.take() else {
        return;
    };
    let db = conn.db;
    let shard = conn.shard;
    match pending {
        Pending::SwapDb(a, b) => match shard.swap_db(a, b).await {
            Ok(()) => conn.out.extend_from_slice(b"+OK\r\n"),
            Err(e) => fail(conn, e),
        },
        Pending::Move { key, to } => {
            let Some(owner) = shard.owner_shard(&key) else {
                return fail(conn, crate::op::OpError::Unavailable);
            };
            match shard
                .keyspace_on(owner, KeyspaceReq::Move { db, key, to })
                .await
            {
                KeyspaceReply::Moved(m) => resp::integer(&mut conn.out, m as i64),
                KeyspaceReply::Err(e) => fail(conn, e),
                _ => fail(conn, crate::op::OpError::Unavailable),
            }
        }
    }
}

/// An error reply for a failed request.
fn fail(conn: &mut Connection<'_>, e: crate::op::OpError) {
    conn.shard.count_protocol_error();
    push_op_error(&mut conn.out, e);
}
