//! The string commands: GET, SET (its options are parsed in `expiry`), MGET, MSET, INCR/DECR/INCRBY/DECRBY,
//! STRLEN, SETNX, GETSET. MSET and MGET whose keys live on several shards
//! are handed to `multikey` (one transaction) instead of being queued.
//! Each is a table row and a handler that reads its
//! arguments and queues store ops into the connection's run (the batched
//! path in [`super`]); none writes a reply itself: the run's sink does, in the
//! [`Style`] queued here. Touches no socket and no store.

use crate::op::{parse_i64, OpKind};

use super::table::{
    arg, many, oneof, opt, token, CmdError, Effect, Parse, Spec, ERR_NOT_INTEGER, KEY, VALUE,
};
use super::{multikey, Connection, Style};

/// A row of this family: a batched key command with one key at position 1.
const fn key_cmd(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    summary: &'static str,
    args: &'static [super::table::Arg],
    handler: super::table::Handler,
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary,
        args,
        batched: true,
        handler,
    }
}

const WRITE_FAST: &[&str] = &["write", "denyoom", "fast"];

/// The string family's rows; GET and SET first (lookup is a linear scan).
pub(crate) static COMMANDS: &[Spec] = &[
    key_cmd(
        "get",
        2,
        &["readonly", "fast"],
        "Returns the string value of a key.",
        &[KEY],
        get,
    ),
    key_cmd(
        "set",
        -3,
        &["write", "denyoom"],
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
        &[
            KEY,
            VALUE,
            opt(oneof("condition", &[token("nx", "NX"), token("xx", "XX")])),
            opt(token("get", "GET")),
            super::expiry::SET_EXPIRATION,
        ],
        super::expiry::set,
    ),
    Spec {
        last_key: -1,
        ..key_cmd(
            "mget",
            -2,
            &["readonly", "fast"],
            "Atomically returns the string values of one or more keys.",
            &[many(KEY)],
            mget,
        )
    },
    Spec {
        last_key: -1,
        step: 2,
        ..key_cmd(
            "mset",
            -3,
            &["write", "denyoom"],
            "Atomically creates or modifies the string values of one or more keys.",
            &[many(oneof("data", &[KEY, VALUE]))],
            mset,
        )
    },
    key_cmd(
        "incr",
        2,
        WRITE_FAST,
        "Increments the integer value of a key by one.",
        &[KEY],
        incr,
    ),
    key_cmd(
        "decr",
        2,
        WRITE_FAST,
        "Decrements the integer value of a key by one.",
        &[KEY],
        decr,
    ),
    key_cmd(
        "incrby",
        3,
        WRITE_FAST,
        "Increments the integer value of a key by a number.",
        &[KEY, arg("increment", "integer")],
        incrby,
    ),
    key_cmd(
        "decrby",
        3,
        WRITE_FAST,
        "Decrements the integer value of a key by a number.",
        &[KEY, arg("decrement", "integer")],
        decrby,
    ),
    key_cmd(
        "strlen",
        2,
        &["readonly", "fast"],
        "Returns the length of a string value.",
        &[KEY],
        strlen,
    ),
    key_cmd(
        "setnx",
        3,
        WRITE_FAST,
        "Set the string value of a key only when the key doesn't exist.",
        &[KEY, VALUE],
        setnx,
    ),
    key_cmd(
        "getset",
        3,
        WRITE_FAST,
        "Returns the previous string value of a key after setting it to a new value.",
        &[KEY, VALUE],
        getset,
    ),
];

/// GET key
fn get(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    p.finish()?;
    conn.run.op(OpKind::Get, key, 0..0);
    conn.run.plan(Style::Bulk, 1);
    Ok(Effect::Continue)
}

/// MGET key [key ...]
fn mget(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let keys = p.rest();
    if keys.is_empty() {
        return Err(p.wrong_arity());
    }
    if multikey::spans_shards(conn, p, keys, 1) {
        return multikey::queue(conn, p, multikey::Kind::Mget, keys, 1);
    }
    for k in keys {
        conn.run.op(OpKind::Get, k.clone(), 0..0);
    }
    conn.run.plan(Style::Array, keys.len());
    Ok(Effect::Continue)
}

/// MSET key value [key value ...]
fn mset(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let pairs = p.rest();
    if pairs.is_empty() || pairs.len() % 2 != 0 {
        return Err(p.wrong_arity());
    }
    if multikey::spans_shards(conn, p, pairs, 2) {
        return multikey::queue(conn, p, multikey::Kind::Mset, pairs, 2);
    }
    for kv in pairs.chunks_exact(2) {
        conn.run.op(OpKind::Put, kv[0].clone(), kv[1].clone());
    }
    conn.run.plan(Style::AllOk, pairs.len() / 2);
    Ok(Effect::Continue)
}

/// Queues an INCRBY of `delta` on the next (and last) argument.
fn queue_incr(
    conn: &mut Connection<'_>,
    p: &mut Parse<'_>,
    delta: i64,
) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    p.finish()?;
    conn.run.incr_by(key, delta);
    conn.run.plan(Style::Int, 1);
    Ok(Effect::Continue)
}

/// INCR key
fn incr(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    queue_incr(conn, p, 1)
}

/// DECR key
fn decr(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    queue_incr(conn, p, -1)
}

/// INCRBY key increment
fn incrby(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let delta = p.next_bytes()?;
    p.finish()?;
    let delta = parse_i64(delta).ok_or(CmdError::msg(ERR_NOT_INTEGER))?;
    conn.run.incr_by(key, delta);
    conn.run.plan(Style::Int, 1);
    Ok(Effect::Continue)
}

/// DECRBY key decrement (Redis refuses to negate `i64::MIN`).
fn decrby(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let delta = p.next_bytes()?;
    p.finish()?;
    let delta = parse_i64(delta).ok_or(CmdError::msg(ERR_NOT_INTEGER))?;
    let delta = delta
        .checked_neg()
        .ok_or(CmdError::msg("ERR decrement would overflow"))?;
    conn.run.incr_by(key, delta);
    conn.run.plan(Style::Int, 1);
    Ok(Effect::Continue)
}

/// STRLEN key
fn strlen(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    p.finish()?;
    conn.run.op(OpKind::Strlen, key, 0..0);
    conn.run.plan(Style::Int, 1);
    Ok(Effect::Continue)
}

/// SETNX key value
fn setnx(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let value = p.next_range()?;
    p.finish()?;
    conn.run.op(OpKind::PutIfAbsent, key, value);
    conn.run.plan(Style::Flag, 1);
    Ok(Effect::Continue)
}

/// GETSET key value
fn getset(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let value = p.next_range()?;
    p.finish()?;
    conn.run.op(OpKind::GetSet, key, value);
    conn.run.plan(Style::Bulk, 1);
    Ok(Effect::Continue)
}
