//! Multi-key commands that stay atomic across shards: MSETNX, RENAME,
//! RENAMENX and COPY (rows here), MOVE (its row in `keyspace`, which hands
//! it over through [`move_key`]), and the cross-shard form of MSET, MGET,
//! DEL/UNLINK and EXISTS/TOUCH (rows in `strings` and `keys`, which call
//! [`spans_shards`] and hand over to [`queue`] when their keys live on more
//! than one shard).
//!
//! A handler here parses and checks every argument, then leaves an
//! [`Atomic`] in the connection and returns [`Effect::Atomic`]; the
//! connection flushes its queued run and calls [`execute`], which runs the
//! command as one transaction of the shard ([`crate::shard::Shard::transact`]:
//! ordered intents, see `shard::txn`) and writes Redis's reply. MSET, MGET,
//! DEL and EXISTS whose keys are all on one shard never come here: queued
//! as plain ops into the run, they execute as one batch on that shard, which
//! is atomic already and pays nothing for the mechanism.
//!
//! Replies and error texts are Redis 7.0's (tests/multikey.rs compares them
//! with a real redis-server). Touches no socket and no store.

use std::ops::Range;

use crate::op::{ExpiryArg, OpError, OpKind};
use crate::protocol::resp;
use crate::routing::key_slot;
use crate::shard::txn::{Read, TxnKey, TxnWrite, Want, WriteResult};

use super::run::{push_op_error, REPLY_TOO_LARGE};
use super::table::{
    is_word, opt, token, CmdError, Effect, Parse, Spec, ERR_NOT_INTEGER, ERR_SYNTAX, KEY,
};
use super::Connection;

/// Which command an [`Atomic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// MSET k v [k v ...]: `+OK`.
    Mset,
    /// MSETNX k v [k v ...]: `:1` if no key existed (all set), else `:0`.
    Msetnx,
    /// MGET k [k ...]: an array.
    Mget,
    /// DEL k [k ...]: keys removed.
    Del,
    /// EXISTS k [k ...]: keys present (a repeated key counts each time).
    Exists,
    /// RENAME / RENAMENX src dst.
    Rename {
        /// RENAMENX.
        nx: bool,
    },
    /// MOVE key db: RENAMENX into another database, `:0` when the key is
    /// absent.
    Move,
    /// COPY src dst [REPLACE].
    Copy {
        /// REPLACE.
        replace: bool,
    },
}

/// A multi-key command waiting for the connection to run it: its keys (in
/// the command's order) and, for MSET/MSETNX, one value per key.
pub(crate) struct Atomic {
    kind: Kind,
    keys: Vec<TxnKey>,
    values: Vec<Vec<u8>>,
}

/// A row of this family.
#[allow(clippy::too_many_arguments)]
const fn row(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: (i32, i32, i32),
    group: &'static str,
    summary: &'static str,
    args: &'static [super::table::Arg],
    handler: super::table::Handler,
) -> Spec {
    Spec::new(
        name, arity, flags, keys, group, summary, args, false, handler,
    )
}

/// The family's rows.
pub(crate) static COMMANDS: &[Spec] = &[
    row(
        "msetnx",
        -3,
        &["write", "denyoom"],
        (1, -1, 2),
        "string",
        "Atomically modifies the string values of one or more keys only when all keys don't exist.",
        &[super::table::many(super::table::oneof(
            "data",
            &[KEY, super::table::VALUE],
        ))],
        msetnx,
    ),
    row(
        "rename",
        3,
        &["write"],
        (1, 2, 1),
        "generic",
        "Renames a key and overwrites the destination.",
        &[KEY, super::table::arg("newkey", "key")],
        rename,
    ),
    row(
        "renamenx",
        3,
        &["write", "fast"],
        (1, 2, 1),
        "generic",
        "Renames a key only when the target key name doesn't exist.",
        &[KEY, super::table::arg("newkey", "key")],
        renamenx,
    ),
    row(
        "copy",
        -3,
        &["write", "denyoom"],
        (1, 2, 1),
        "generic",
        "Copies the value of a key to a new key.",
        &[
            super::table::arg("source", "key"),
            super::table::arg("destination", "key"),
            opt(super::table::arg("destination-db", "integer")),
            opt(token("replace", "REPLACE")),
        ],
        copy,
    ),
];

/// Do the keys at `ranges` (every `step`-th one) live on more than one
/// shard of this node? Answered without hashing on a one-shard node.
pub(crate) fn spans_shards(
    conn: &Connection<'_>,
    p: &Parse<'_>,
    ranges: &[Range<usize>],
    step: usize,
) -> bool {
    let shard = conn.shard;
    if shard.nr_shards < 2 || ranges.len() <= step {
        return false;
    }
    let owner = |r: &Range<usize>| shard.cluster.owner(key_slot(p.bytes_of(r)));
    let first = owner(&ranges[0]);
    ranges
        .iter()
        .step_by(step)
        .skip(1)
        .any(|r| owner(r) != first)
}

/// Leaves `kind` over `keys` (every `step`-th range, with the value after
/// each when `step` is 2) for the connection to run as a transaction.
pub(crate) fn queue(
    conn: &mut Connection<'_>,
    p: &Parse<'_>,
    kind: Kind,
    ranges: &[Range<usize>],
    step: usize,
) -> Result<Effect, CmdError> {
    let (exclusive, want) = match kind {
        Kind::Mset | Kind::Del => (true, Want::Nothing),
        Kind::Msetnx => (true, Want::Exists),
        Kind::Mget => (false, Want::Value),
        Kind::Exists | Kind::Rename { .. } | Kind::Copy { .. } | Kind::Move => {
            (false, Want::Exists)
        }
    };
    let mut keys = Vec::with_capacity(ranges.len() / step);
    let mut values = Vec::new();
    for chunk in ranges.chunks(step) {
        keys.push(TxnKey {
            db: conn.db,
            key: p.bytes_of(&chunk[0]).to_vec(),
            exclusive,
            want,
        });
        if step == 2 {
            values.push(p.bytes_of(&chunk[1]).to_vec());
        }
    }
    conn.atomic = Some(Atomic { kind, keys, values });
    Ok(Effect::Atomic)
}

/// MSETNX key value [key value ...]
fn msetnx(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let pairs = p.rest();
    if pairs.is_empty() || pairs.len() % 2 != 0 {
        return Err(p.wrong_arity());
    }
    queue(conn, p, Kind::Msetnx, pairs, 2)
}

/// RENAME / RENAMENX / COPY over `src` (in the connection's database) and
/// `dst` (in `dst_db`): the source (its state read; exclusive unless COPY
/// only reads it) and, unless it is the same key, the destination
/// (exclusive, its existence read).
fn two_keys(conn: &mut Connection<'_>, kind: Kind, src: &[u8], dst: &[u8], dst_db: u16) -> Effect {
    let mut keys = vec![TxnKey {
        db: conn.db,
        key: src.to_vec(),
        exclusive: !matches!(kind, Kind::Copy { .. }),
        want: Want::State,
    }];
    if src != dst || conn.db != dst_db {
        keys.push(TxnKey {
            db: dst_db,
            key: dst.to_vec(),
            exclusive: true,
            want: Want::Exists,
        });
    }
    conn.atomic = Some(Atomic {
        kind,
        keys,
        values: Vec::new(),
    });
    Effect::Atomic
}

/// MOVE key db (checked by `keyspace`): `key` of the connection's
/// database moved to database `to` with its TTL, unless it is absent or
/// `to` has it.
pub(crate) fn move_key(conn: &mut Connection<'_>, key: &[u8], to: u16) -> Effect {
    two_keys(conn, Kind::Move, key, key, to)
}

/// RENAME / RENAMENX key newkey
fn rename_like(
    conn: &mut Connection<'_>,
    p: &mut Parse<'_>,
    kind: Kind,
) -> Result<Effect, CmdError> {
    let src = p.next_bytes()?;
    let dst = p.next_bytes()?;
    p.finish()?;
    let db = conn.db;
    Ok(two_keys(conn, kind, src, dst, db))
}

/// RENAME key newkey
fn rename(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    rename_like(conn, p, Kind::Rename { nx: false })
}

/// RENAMENX key newkey
fn renamenx(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    rename_like(conn, p, Kind::Rename { nx: true })
}

/// COPY source destination [DB destination-db] [REPLACE]: options checked
/// in Redis's order (syntax, DB index, then same key).
fn copy(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let src = p.next_bytes()?;
    let dst = p.next_bytes()?;
    let mut replace = false;
    let mut dst_db = conn.db;
    while let Some(option) = p.try_next_bytes() {
        if is_word(option, "replace") {
            replace = true;
        } else if is_word(option, "db") && p.remaining() >= 1 {
            // Redis reads the index as a C int.
            let db = p
                .next_int()
                .ok()
                .filter(|&n| i32::try_from(n).is_ok())
                .ok_or(CmdError::msg(ERR_NOT_INTEGER))?;
            // A cluster node has database 0 only, but Redis Cluster still
            // counts 16 before refusing another one (below).
            let databases = if conn.shard.cluster_mode() {
                crate::store::DEFAULT_DATABASES
            } else {
                conn.shard.node.databases()
            };
            if db < 0 || db >= databases as i64 {
                return Err(CmdError::msg("ERR DB index is out of range"));
            }
            dst_db = db as u16;
        } else {
            return Err(CmdError::msg(ERR_SYNTAX));
        }
    }
    if conn.shard.cluster_mode() && (conn.db != 0 || dst_db != 0) {
        return Err(CmdError::msg(
            "ERR Copying to another database is not allowed in cluster mode",
        ));
    }
    if src == dst && conn.db == dst_db {
        return Err(CmdError::msg(
            "ERR source and destination objects are the same",
        ));
    }
    Ok(two_keys(conn, Kind::Copy { replace }, src, dst, dst_db))
}

/// Runs the connection's pending [`Atomic`] (one transaction) and writes
/// its reply; an error reply comes back as `Err` (counted by the caller).
pub(crate) async fn execute(conn: &mut Connection<'_>) -> Result<(), CmdError> {
    let Some(Atomic { kind, keys, values }) = conn.atomic.take() else {
        return Ok(());
    };
    let shard = conn.shard;
    let log_mark = shard.log_mark();
    let max_values = conn
        .limits
        .max_reply_bytes
        .min(shard.conn_memory_left() / 2);
    let values = &values;
    let nkeys = keys.len();
    // MSET, DEL, MGET and EXISTS write what they write whatever they read.
    let blind = matches!(kind, Kind::Mset | Kind::Del | Kind::Mget | Kind::Exists);
    let outcome = shard
        .transact(&keys, max_values, blind, |reads| {
            decide(kind, reads, values, nkeys)
        })
        .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return Err(op_error(e)),
    };
    if let Err(e) = shard.before_reply(log_mark).await {
        return Err(op_error(e));
    }
    if let Some(e) = outcome.writes.iter().find_map(|w| match w {
        WriteResult::Err(e) => Some(*e),
        _ => None,
    }) {
        return Err(op_error(e));
    }
    let proto = conn.proto;
    let out = &mut conn.out;
    let reads = &outcome.reads;
    match kind {
        Kind::Mset => out.extend_from_slice(b"+OK\r\n"),
        Kind::Msetnx => resp::integer(out, !outcome.writes.is_empty() as i64),
        Kind::Mget => {
            if reads.contains(&Read::TooLarge) {
                let text = std::str::from_utf8(&REPLY_TOO_LARGE[1..REPLY_TOO_LARGE.len() - 2])
                    .unwrap_or("ERR reply too large");
                return Err(CmdError::from(text.to_string()));
            }
            resp::array_header(out, reads.len());
            for r in reads {
                match r {
                    Read::Value(Some(v)) => resp::bulk(out, v),
                    _ => resp::null(out, proto),
                }
            }
        }
        Kind::Exists => {
            let n = reads.iter().filter(|r| **r == Read::Exists(true)).count();
            resp::integer(out, n as i64);
        }
        Kind::Del => {
            let n = outcome
                .writes
                .iter()
                .filter(|w| **w == WriteResult::Ok)
                .count();
            resp::integer(out, n as i64);
        }
        Kind::Rename { nx } => {
            if matches!(reads.first(), Some(Read::State(None))) {
                return Err(CmdError::msg("ERR no such key"));
            }
            match (nx, outcome.writes.is_empty()) {
                (false, _) => out.extend_from_slice(b"+OK\r\n"),
                (true, wrote_none) => resp::integer(out, !wrote_none as i64),
            }
        }
        Kind::Copy { .. } | Kind::Move => resp::integer(out, !outcome.writes.is_empty() as i64),
    }
    Ok(())
}

/// The writes of `kind` over `nkeys` keys given what was read (every
/// intent held; MSET, DEL, MGET and EXISTS read nothing to decide).
fn decide(kind: Kind, reads: &[Read], values: &[Vec<u8>], nkeys: usize) -> Vec<TxnWrite> {
    let write = |key, kind, value: Vec<u8>| TxnWrite { key, kind, value };
    match kind {
        Kind::Mget | Kind::Exists => Vec::new(),
        Kind::Mset => (0..values.len())
            .map(|i| write(i, OpKind::Put, values[i].clone()))
            .collect(),
        Kind::Msetnx => {
            if reads.contains(&Read::Exists(true)) {
                return Vec::new();
            }
            (0..values.len())
                .map(|i| write(i, OpKind::Put, values[i].clone()))
                .collect()
        }
        Kind::Del => (0..nkeys)
            .map(|i| write(i, OpKind::Del, Vec::new()))
            .collect(),
        Kind::Move => {
            let Some(Read::State(Some((value, at)))) = reads.first() else {
                return Vec::new();
            };
            if reads.get(1) != Some(&Read::Exists(false)) {
                return Vec::new();
            }
            vec![
                write(1, OpKind::Set, with_expiry(value, *at)),
                write(0, OpKind::Del, Vec::new()),
            ]
        }
        Kind::Rename { nx } => {
            let Some(Read::State(Some((value, at)))) = reads.first() else {
                return Vec::new(); // no such key
            };
            let Some(dst) = reads.get(1) else {
                return Vec::new(); // renamed onto itself: nothing changes
            };
            if nx && *dst == Read::Exists(true) {
                return Vec::new();
            }
            vec![
                write(1, OpKind::Set, with_expiry(value, *at)),
                write(0, OpKind::Del, Vec::new()),
            ]
        }
        Kind::Copy { replace } => {
            let Some(Read::State(Some((value, at)))) = reads.first() else {
                return Vec::new();
            };
            if !replace && reads.get(1) == Some(&Read::Exists(true)) {
                return Vec::new();
            }
            vec![write(1, OpKind::Set, with_expiry(value, *at))]
        }
    }
}

/// A SET op's value: `value` expiring at `at` (Unix ms, 0: never).
fn with_expiry(value: &[u8], at: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(ExpiryArg::LEN + value.len());
    ExpiryArg {
        flags: 0,
        when: at.min(i64::MAX as u64) as i64,
    }
    .encode(&mut v);
    v.extend_from_slice(value);
    v
}

/// The reply text of a per-op error (without `-` and CRLF).
fn op_error(e: OpError) -> CmdError {
    let mut line = Vec::new();
    push_op_error(&mut line, e);
    let text = String::from_utf8_lossy(&line[1..line.len().saturating_sub(2)]).into_owned();
    CmdError::from(text)
}
