//! The generic key commands over any number of keys: DEL, UNLINK (DEL:
//! corekv frees a value at once either way), EXISTS, TOUCH (EXISTS: it
//! does not refresh the eviction policy's access data), and TYPE. Their
//! handlers queue one op per key into the connection's run and answer with
//! one count ([`Style::Count`]) or the type ([`Style::Type`]); keys of
//! several shards are handed to `multikey` (one transaction) instead.
//! Touches no socket and no store.

use crate::op::OpKind;

use super::table::{many, CmdError, Effect, Parse, Spec, KEY};
use super::{multikey, Connection, Style};

/// The key family's rows.
pub(crate) static COMMANDS: &[Spec] = &[
    Spec {
        name: "del",
        arity: -2,
        flags: &["write"],
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "generic",
        summary: "Deletes one or more keys.",
        args: &[many(KEY)],
        batched: true,
        handler: del,
    },
    Spec {
        name: "exists",
        arity: -2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "generic",
        summary: "Determines whether one or more keys exist.",
        args: &[many(KEY)],
        batched: true,
        handler: exists,
    },
    Spec {
        name: "unlink",
        arity: -2,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "generic",
        summary: "Deletes one or more keys (as DEL).",
        args: &[many(KEY)],
        batched: true,
        handler: del,
    },
    Spec {
        name: "touch",
        arity: -2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "generic",
        summary: "Returns the number of existing keys specified.",
        args: &[many(KEY)],
        batched: true,
        handler: exists,
    },
    Spec {
        name: "type",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Determines the type of value stored at a key (always string or none).",
        args: &[KEY],
        batched: true,
        handler: type_cmd,
    },
];

/// TYPE key
fn type_cmd(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    p.finish()?;
    conn.run.op(OpKind::Exists, key, 0..0);
    conn.run.plan(Style::Type, 1);
    Ok(Effect::Continue)
}

/// Queues `op` on every remaining argument, answered as one count.
fn count_keys(
    conn: &mut Connection<'_>,
    p: &mut Parse<'_>,
    op: OpKind,
) -> Result<Effect, CmdError> {
    let keys = p.rest();
    if keys.is_empty() {
        return Err(p.wrong_arity());
    }
    if multikey::spans_shards(conn, p, keys, 1) {
        let kind = if op == OpKind::Del {
            multikey::Kind::Del
        } else {
            multikey::Kind::Exists
        };
        return multikey::queue(conn, p, kind, keys, 1);
    }
    for k in keys {
        conn.run.op(op, k.clone(), 0..0);
    }
    conn.run.plan(Style::Count, keys.len());
    Ok(Effect::Continue)
}

/// DEL key [key ...]
fn del(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    count_keys(conn, p, OpKind::Del)
}

/// EXISTS key [key ...]
fn exists(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    count_keys(conn, p, OpKind::Exists)
}
