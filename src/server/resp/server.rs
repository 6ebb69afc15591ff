//! The server (admin) commands: DBSIZE, FLUSHDB, FLUSHALL, INFO, COMMAND,
//! CONFIG, and persistence: SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE. They report on the node (its shards' published counters, its
//! limits) and on the command table itself; replies are written straight into
//! the connection's output (the run was flushed before). Touches no socket;
//! the store only through [`Shard`].

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use crate::config::Limits;
use crate::protocol::resp::{self, Proto};
use crate::server::observe::{self, NodeBase, Observe, ERROR_CODES};
use crate::shard::Shard;
use crate::store::Policy;
use crate::units::human_bytes;

use super::table::{
    self, arg, is_word, many, oneof, opt, token, Arg, CmdError, Effect, Parse, Spec, ERR_SYNTAX,
};
use super::{Connection, REDIS_COMPAT_VERSION};

/// A row of this family (no keys, group "server").
const fn server_cmd(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    summary: &'static str,
    args: &'static [Arg],
    handler: table::Handler,
) -> Spec {
    Spec::new(
        name,
        arity,
        flags,
        (0, 0, 0),
        "server",
        summary,
        args,
        false,
        handler,
    )
}

const SYNC_MODE: Arg = opt(oneof(
    "flush-type",
    &[token("async", "ASYNC"), token("sync", "SYNC")],
));

/// The server family's rows.
pub(crate) static COMMANDS: &[Spec] = &[
    server_cmd(
        "dbsize",
        1,
        &["readonly", "fast"],
        "Returns the number of keys in the database (the whole node).",
        &[],
        dbsize,
    ),
    server_cmd(
        "flushdb",
        -1,
        &["write"],
        "Removes all keys from the database (the whole node).",
        &[SYNC_MODE],
        flush,
    ),
    server_cmd(
        "flushall",
        -1,
        &["write"],
        "Removes all keys from the node.",
        &[SYNC_MODE],
        flush,
    ),
    server_cmd(
        "info",
        -1,
        &["loading", "stale"],
        "Returns information and statistics about the server.",
        &[opt(many(arg("section", "string")))],
        info_cmd,
    ),
    server_cmd(
        "command",
        -1,
        &["loading", "stale"],
        "Returns detailed information about all commands (COUNT, DOCS, INFO, LIST).",
        &[],
        command,
    ),
    server_cmd(
        "config",
        -2,
        &[],
        "CONFIG GET parameter [...] | SET parameter value [...] (maxmemory, maxmemory-policy, slowlog-*) | RESETSTAT.",
        &[],
        config,
    ),
    server_cmd(
        "save",
        1,
        &["admin", "noscript"],
        "Snapshots every shard (in slices, without fork) and starts new logs; answers when done.",
        &[],
        save,
    ),
    server_cmd(
        "bgsave",
        -1,
        &["admin", "noscript"],
        "Starts a snapshot of every shard in the background.",
        &[opt(token("schedule", "SCHEDULE"))],
        bgsave,
    ),
    server_cmd(
        "bgrewriteaof",
        1,
        &["admin", "noscript"],
        "Rewrites every shard's append-only log (a snapshot plus a new log) in the background.",
        &[],
        bgrewriteaof,
    ),
    server_cmd(
        "lastsave",
        1,
        &["fast"],
        "Returns the Unix time of the last successful snapshot of every shard.",
        &[],
        lastsave,
    ),
];

/// The error for snapshot commands when persistence is off.
const ERR_PERSIST_OFF: &str =
    "ERR persistence is off: start corekv with --appendonly yes to use snapshots";

/// SAVE: snapshot every shard and wait ([`Effect::Save`]).
fn save(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    p.finish()?;
    match conn.shard.log() {
        None => Err(CmdError::msg(ERR_PERSIST_OFF)),
        Some(l) if l.rewrite.running.get() => {
            Err(CmdError::msg("ERR Background save already in progress"))
        }
        Some(_) => Ok(Effect::Save),
    }
}

/// BGSAVE [SCHEDULE]: start a snapshot of every shard.
fn bgsave(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    if let Some(w) = p.try_next_bytes() {
        if !is_word(w, "schedule") {
            return Err(CmdError::msg(ERR_SYNTAX));
        }
    }
    p.finish()?;
    if conn.shard.log().is_none() {
        return Err(CmdError::msg(ERR_PERSIST_OFF));
    }
    if !conn.shard.start_rewrite_all() {
        return Err(CmdError::msg("ERR Background save already in progress"));
    }
    conn.out
        .extend_from_slice(b"+Background saving started\r\n");
    Ok(Effect::Continue)
}

/// BGREWRITEAOF: the same snapshot (a rewritten log is a snapshot plus a
/// new log here).
fn bgrewriteaof(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    p.finish()?;
    if conn.shard.log().is_none() {
        return Err(CmdError::msg(ERR_PERSIST_OFF));
    }
    if !conn.shard.start_rewrite_all() {
        return Err(CmdError::msg(
            "ERR Background append only file rewriting already in progress",
        ));
    }
    conn.out
        .extend_from_slice(b"+Background append only file rewriting started\r\n");
    Ok(Effect::Continue)
}

/// LASTSAVE: Unix time by which every shard had its last snapshot.
fn lastsave(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    p.finish()?;
    conn.shard.publish();
    let p = conn.shard.node.persist_stats();
    let t = if p.enabled {
        p.last_save
    } else {
        conn.shard.node.started_unix()
    };
    resp::integer(&mut conn.out, t as i64);
    Ok(Effect::Continue)
}

/// DBSIZE: keys of the connection's database over the whole node (as
/// every shard last published them, which each does before replying).
fn dbsize(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    p.finish()?;
    conn.shard.publish();
    let keys = conn.shard.node.db_stats(conn.db as usize).keys;
    resp::integer(&mut conn.out, keys as i64);
    Ok(Effect::Continue)
}

/// FLUSHDB / FLUSHALL [ASYNC|SYNC]: the connection empties its database
/// ([`Effect::FlushDb`]) or every database ([`Effect::FlushAll`]) on every
/// shard and answers `+OK`. Both are synchronous (ASYNC is accepted).
fn flush(_conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let all = p.name() == "flushall";
    let effect = if all {
        Effect::FlushAll
    } else {
        Effect::FlushDb
    };
    match p.try_next_bytes() {
        None => Ok(effect),
        Some(mode) if p.remaining() == 0 && (is_word(mode, "async") || is_word(mode, "sync")) => {
            Ok(effect)
        }
        Some(_) => Err(CmdError::msg(ERR_SYNTAX)),
    }
}

/// INFO [section ...]
fn info_cmd(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let sections: Vec<String> = p
        .rest_bytes()
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    let text = info(conn.shard, conn.limits, conn.obs, &sections);
    resp::verbatim(&mut conn.out, text.as_bytes(), conn.proto);
    Ok(Effect::Continue)
}

/// COMMAND [COUNT | LIST | INFO name... | DOCS [name...]]
fn command(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    command_reply(&mut conn.out, &p.rest_bytes(), conn.proto);
    Ok(Effect::Continue)
}

/// CONFIG GET pattern... | RESETSTAT | SET (refused)
fn config(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let sub = p.next_bytes()?;
    if is_word(sub, "get") {
        let patterns = p.rest_bytes();
        if patterns.is_empty() {
            return Err(CmdError::wrong_arity("config|get"));
        }
        config_get(conn, &patterns);
    } else if is_word(sub, "resetstat") {
        p.finish()
            .map_err(|_| CmdError::wrong_arity("config|resetstat"))?;
        reset_stats(conn.shard, conn.obs);
        conn.out.extend_from_slice(b"+OK\r\n");
    } else if is_word(sub, "set") {
        if let Some((max_memory, policy)) = config_set(conn, p)? {
            let node = &conn.shard.node;
            return Ok(Effect::Configure {
                max_memory: max_memory.unwrap_or_else(|| node.max_memory()),
                policy: policy.unwrap_or_else(|| node.policy()),
            });
        }
    } else {
        return Err(CmdError::unknown_subcommand(sub, "CONFIG"));
    }
    Ok(Effect::Continue)
}

/// The slow log's parameters CONFIG SET changes at run time.
const SLOWLOG_SETTABLE: &[&str] = &["slowlog-log-slower-than", "slowlog-max-len"];

/// CONFIG SET parameter value [parameter value ...]: maxmemory,
/// maxmemory-policy, slowlog-log-slower-than and slowlog-max-len, with
/// Redis's texts for unknown names and bad values; every pair is checked
/// before any is applied, as Redis does. The slowlog settings apply here
/// (node-wide atomics) and the reply is written; a new memory limit or policy
/// is returned, validated, for the connection to hand to every shard
/// ([`Effect::Configure`], which answers `+OK`).
#[allow(clippy::type_complexity)]
fn config_set(
    conn: &mut Connection<'_>,
    p: &mut Parse<'_>,
) -> Result<Option<(Option<u64>, Option<Policy>)>, CmdError> {
    let pairs = p.rest_bytes();
    if pairs.is_empty() || pairs.len() % 2 != 0 {
        return Err(CmdError::wrong_arity("config|set"));
    }
    let (mut max_memory, mut policy) = (None, None);
    let mut slowlog = Vec::new();
    for kv in pairs.chunks_exact(2) {
        let value = String::from_utf8_lossy(kv[1]);
        if is_word(kv[0], "maxmemory") {
            max_memory = Some(parse_memory(&value).ok_or(CmdError::msg(
                "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value",
            ))?);
            continue;
        } else if is_word(kv[0], "maxmemory-policy") {
            policy = Some(Policy::parse(&value).ok_or(CmdError::msg(
                "ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction, sieve",
            ))?);
            continue;
        }
        let name = String::from_utf8_lossy(kv[0]).to_ascii_lowercase();
        let Some(&param) = SLOWLOG_SETTABLE.iter().find(|s| **s == name) else {
            if config_params(conn.shard, conn.limits)
                .iter()
                .any(|(n, _)| *n == name)
            {
                return Err(CmdError::from(format!(
                    "ERR CONFIG SET '{name}' is not supported by corekv: restart it with the option instead"
                )));
            }
            return Err(CmdError::from(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                String::from_utf8_lossy(kv[0])
            )));
        };
        let failed = |why: &str| {
            CmdError::from(format!(
                "ERR CONFIG SET failed (possibly related to argument '{param}') - {why}"
            ))
        };
        let v = crate::op::parse_i64(kv[1])
            .ok_or_else(|| failed("argument couldn't be parsed into an integer"))?;
        let min = if param == "slowlog-max-len" { 0 } else { -1 };
        if v < min {
            return Err(failed(&format!(
                "argument must be between {min} and 9223372036854775807 inclusive"
            )));
        }
        slowlog.push((param, v));
    }
    for (param, v) in slowlog {
        match param {
            "slowlog-max-len" => conn.obs.slowlog_max_len.store(v as u64, Relaxed),
            _ => conn.obs.slowlog_slower_than.store(v, Relaxed),
        }
    }
    if max_memory.is_some() || policy.is_some() {
        return Ok(Some((max_memory, policy)));
    }
    conn.out.extend_from_slice(b"+OK\r\n");
    Ok(None)
}

/// CONFIG RESETSTAT: command, error, latency and I/O statistics, and the
/// node's command, error and hit/miss counters, from zero (as Redis does;
/// the slow log is kept).
fn reset_stats(shard: &Shard, obs: &Observe) {
    obs.reset_stats();
    shard.publish();
    let t = shard.node.stats().total();
    let (hits, misses) = shard
        .node
        .keyspace()
        .iter()
        .fold((0, 0), |(h, m), k| (h + k.hits, m + k.misses));
    obs.set_node_base(NodeBase {
        ops: t.ops,
        errors: t.errors,
        hits,
        misses,
    });
}

/// Redis's memtoull: digits with an optional unit (b, k, kb, m, mb, g, gb;
/// k = 1000, kb = 1024, ...), case-insensitive; no sign, no fraction.
pub(crate) fn parse_memory(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    if num.is_empty() {
        return None;
    }
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

/// The node-wide figures INFO and CONFIG GET both report, computed in one
/// place so they cannot disagree.
struct NodeFigures {
    /// The node's memory limit in bytes, 0 for none (Redis's convention).
    maxmemory: u64,
    /// The eviction policy.
    policy: Policy,
    /// Connections the node accepts.
    maxclients: usize,
    /// The node-level RESP port.
    port: u16,
}

impl NodeFigures {
    fn of(shard: &Shard, limits: &Limits) -> NodeFigures {
        let node = &shard.node;
        NodeFigures {
            maxmemory: node.max_memory(),
            policy: node.policy(),
            maxclients: limits.max_connections_per_shard * node.nr_shards(),
            port: node.layout().map_or(0, |l| l.resp_port),
        }
    }
}

/// CONFIG GET: real values for what clients and redis-benchmark ask (a
/// map; a flat array in RESP2).
fn config_get(conn: &mut Connection<'_>, patterns: &[&[u8]]) {
    let (shard, limits, obs, out) = (conn.shard, conn.limits, conn.obs, &mut conn.out);
    let mut params = config_params(shard, limits);
    params.push((
        "slowlog-log-slower-than",
        obs.slowlog_slower_than.load(Relaxed).to_string(),
    ));
    params.push((
        "slowlog-max-len",
        obs.slowlog_max_len.load(Relaxed).to_string(),
    ));
    let matched: Vec<&(&str, String)> = params
        .iter()
        .filter(|(name, _)| patterns.iter().any(|p| glob_match(p, name.as_bytes())))
        .collect();
    resp::map_header(out, matched.len(), conn.proto);
    for (name, value) in matched {
        resp::bulk(out, name.as_bytes());
        resp::bulk(out, value.as_bytes());
    }
}

/// The fixed parameters CONFIG GET reports (set by the command line).
fn config_params(shard: &Shard, limits: &Limits) -> Vec<(&'static str, String)> {
    let figures = NodeFigures::of(shard, limits);
    let persist = shard.node.persist_stats();
    vec![
        ("save", String::new()),
        ("appendfsync", persist.fsync.into()),
        (
            "appendonly",
            if persist.enabled { "yes" } else { "no" }.into(),
        ),
        ("maxmemory", figures.maxmemory.to_string()),
        ("maxmemory-policy", figures.policy.name().into()),
        ("maxmemory-samples", "5".into()),
        ("maxclients", figures.maxclients.to_string()),
        ("databases", shard.node.databases().to_string()),
        ("port", figures.port.to_string()),
        (
            "timeout",
            limits.idle_timeout.map_or(0, |d| d.as_secs()).to_string(),
        ),
        ("tcp-keepalive", "0".into()),
        (
            "proto-max-bulk-len",
            super::parse_limits(limits).max_bulk_len.to_string(),
        ),
        (
            "client-query-buffer-limit",
            limits.max_frame_bytes.to_string(),
        ),
        ("io-threads", "1".into()),
        ("cluster-enabled", "yes".into()),
    ]
}

/// COMMAND [COUNT | LIST | INFO name... | DOCS [name...]]
pub(crate) fn command_reply(out: &mut Vec<u8>, args: &[&[u8]], proto: Proto) {
    let sub = args.first().map(|s| s.to_ascii_lowercase());
    match sub.as_deref() {
        None => {
            resp::array_header(out, table::count());
            table::all().for_each(|s| command_info(out, s, proto));
        }
        Some(b"count") if args.len() == 1 => resp::integer(out, table::count() as i64),
        Some(b"list") if args.len() == 1 => {
            resp::array_header(out, table::count());
            table::all().for_each(|s| resp::bulk(out, s.name.as_bytes()));
        }
        Some(b"info") => {
            resp::array_header(out, args.len() - 1);
            for name in &args[1..] {
                match table::lookup(name) {
                    Some(s) => command_info(out, s, proto),
                    None => resp::null(out, proto),
                }
            }
        }
        Some(b"docs") => {
            let specs: Vec<&Spec> = if args.len() == 1 {
                table::all().collect()
            } else {
                args[1..].iter().filter_map(|n| table::lookup(n)).collect()
            };
            resp::map_header(out, specs.len(), proto);
            for s in specs {
                resp::bulk(out, s.name.as_bytes());
                command_docs(out, s, proto);
            }
        }
        Some(b"count" | b"list") => resp::error(
            out,
            &CmdError::wrong_arity(&format!(
                "command|{}",
                String::from_utf8_lossy(sub.as_deref().unwrap_or_default())
            ))
            .0,
        ),
        Some(other) => resp::error(
            out,
            &format!(
                "ERR unknown subcommand '{}'. Try COMMAND HELP.",
                String::from_utf8_lossy(other)
            ),
        ),
    }
}

/// One COMMAND entry, Redis 7 layout (10 fields; flags, ACL categories,
/// tips, key specs and subcommands are sets in RESP3).
fn command_info(out: &mut Vec<u8>, s: &Spec, proto: Proto) {
    resp::array_header(out, 10);
    resp::bulk(out, s.name.as_bytes());
    resp::integer(out, s.arity as i64);
    resp::set_header(out, s.flags.len(), proto);
    for f in s.flags {
        resp::simple(out, f);
    }
    resp::integer(out, s.first_key as i64);
    resp::integer(out, s.last_key as i64);
    resp::integer(out, s.step as i64);
    // ACL categories, tips, key specs, subcommands.
    for _ in 0..4 {
        resp::set_header(out, 0, proto);
    }
}

/// One COMMAND DOCS entry (a map; a flat array in RESP2).
fn command_docs(out: &mut Vec<u8>, s: &Spec, proto: Proto) {
    let with_args = !s.args.is_empty();
    resp::map_header(out, if with_args { 5 } else { 4 }, proto);
    for (k, v) in [
        ("summary", s.summary),
        ("since", "1.0.0"),
        ("group", s.group),
        ("complexity", "O(1) per key"),
    ] {
        resp::bulk(out, k.as_bytes());
        resp::bulk(out, v.as_bytes());
    }
    if with_args {
        resp::bulk(out, b"arguments");
        doc_args(out, s.args, proto);
    }
}

/// COMMAND DOCS arguments: an array of maps, their flags a set.
fn doc_args(out: &mut Vec<u8>, args: &[Arg], proto: Proto) {
    resp::array_header(out, args.len());
    for a in args {
        let flags: Vec<&str> = [(a.optional, "optional"), (a.multiple, "multiple")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|&(_, f)| f)
            .collect();
        let fields = 2
            + a.token.is_some() as usize
            + !flags.is_empty() as usize
            + !a.sub.is_empty() as usize;
        resp::map_header(out, fields, proto);
        resp::bulk(out, b"name");
        resp::bulk(out, a.name.as_bytes());
        resp::bulk(out, b"type");
        resp::bulk(out, a.kind.as_bytes());
        if let Some(t) = a.token {
            resp::bulk(out, b"token");
            resp::bulk(out, t.as_bytes());
        }
        if !flags.is_empty() {
            resp::bulk(out, b"flags");
            resp::set_header(out, flags.len(), proto);
            flags.iter().for_each(|f| resp::simple(out, f));
        }
        if !a.sub.is_empty() {
            resp::bulk(out, b"arguments");
            doc_args(out, a.sub, proto);
        }
    }
}

/// Glob match with `*` and `?`, ASCII case-insensitive (CONFIG GET patterns).
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p].eq_ignore_ascii_case(&text[t])) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

thread_local! {
    /// The last INFO sample on this shard's thread: (time, total ops), for
    /// instantaneous_ops_per_sec (the rate since the previous INFO).
    static LAST_INFO: std::cell::Cell<Option<(std::time::Instant, u64)>> =
        const { std::cell::Cell::new(None) };
}

/// The sections `all` and `everything` add to the default ones.
const NOT_DEFAULT: &[&str] = &["commandstats", "latencystats"];

/// INFO's text for the requested sections: none or `default` (Redis's
/// default set), `all` or `everything` (every section), or named ones.
pub fn info(shard: &Shard, limits: &Limits, obs: &Observe, sections: &[String]) -> String {
    shard.publish();
    let stats = shard.node.stats();
    let mut t = stats.total();
    let base = obs.node_base();
    let (hits, misses) = shard
        .node
        .keyspace()
        .iter()
        .fold((0u64, 0u64), |(h, m), k| (h + k.hits, m + k.misses));
    let (hits, misses) = (
        hits.saturating_sub(base.hits),
        misses.saturating_sub(base.misses),
    );
    let all = sections.iter().any(|s| s == "all" || s == "everything");
    let default = sections.is_empty() || sections.iter().any(|s| s == "default");
    let want = |name: &str| {
        all || (default && !NOT_DEFAULT.contains(&name)) || sections.iter().any(|s| s == name)
    };
    let now = std::time::Instant::now();
    let ops_per_sec = LAST_INFO.with(|c| {
        let rate = match c.get() {
            Some((then, ops)) => {
                let dt = now.duration_since(then).as_secs_f64();
                if dt > 0.0 {
                    (t.ops.saturating_sub(ops) as f64 / dt) as u64
                } else {
                    0
                }
            }
            None => 0,
        };
        c.set(Some((now, t.ops)));
        rate
    });
    let node = &shard.node;
    let NodeFigures {
        maxmemory,
        policy,
        maxclients,
        port,
    } = NodeFigures::of(shard, limits);
    let cache = node.cache_stats();
    let uptime = stats.uptime_secs as u64;
    let mut s = String::with_capacity(2048);
    let section = |s: &mut String, name: &str| {
        if !s.is_empty() {
            s.push_str("\r\n");
        }
        let _ = write!(s, "# {name}\r\n");
    };
    if want("server") {
        section(&mut s, "Server");
        let _ = write!(
            s,
            "redis_version:{REDIS_COMPAT_VERSION}\r\ncorekv_version:{}\r\nredis_mode:cluster\r\n\
             os:{} {}\r\narch_bits:64\r\nmultiplexing_api:io_uring\r\nprocess_id:{}\r\n\
             tcp_port:{port}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n\
             corekv_node_id:{}\r\ncorekv_shards:{}\r\ncorekv_shard_id:{}\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            uptime / 86400,
            node.node_id,
            node.nr_shards(),
            shard.shard_id,
        );
    }
    if want("clients") {
        section(&mut s, "Clients");
        let _ = write!(
            s,
            "connected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n",
            t.connections, maxclients
        );
    }
    if want("memory") {
        section(&mut s, "Memory");
        let _ = write!(
            s,
            "used_memory:{}\r\nused_memory_human:{}\r\nmaxmemory:{maxmemory}\r\n\
             maxmemory_human:{}\r\nmaxmemory_policy:{}\r\n\
             corekv_conn_memory:{}\r\ncorekv_max_conn_memory:{}\r\n",
            t.memory_used,
            human_bytes(t.memory_used),
            human_bytes(maxmemory),
            policy.name(),
            t.conn_memory_used,
            t.conn_memory_limit,
        );
    }
    if want("persistence") {
        section(&mut s, "Persistence");
        let p = node.persist_stats();
        let status = |failed: bool| if failed { "err" } else { "ok" };
        let last_save = if p.enabled {
            p.last_save
        } else {
            node.started_unix()
        };
        let _ = write!(
            s,
            "loading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:0\r\n\
             rdb_bgsave_in_progress:{running}\r\nrdb_last_save_time:{last_save}\r\n\
             rdb_last_bgsave_status:{rstatus}\r\nrdb_saves:{saves}\r\n\
             aof_enabled:{enabled}\r\naof_rewrite_in_progress:{running}\r\n\
             aof_rewrite_scheduled:0\r\naof_last_bgrewrite_status:{rstatus}\r\n\
             aof_rewrites:{saves}\r\naof_last_write_status:{wstatus}\r\n",
            running = (p.rewrites_running > 0) as u8,
            rstatus = status(p.rewrite_failed),
            saves = p.rewrites,
            enabled = p.enabled as u8,
            wstatus = status(p.aof_failed_errno != 0),
        );
        if p.enabled {
            let _ = write!(
                s,
                "aof_current_size:{}\r\naof_base_size:{}\r\naof_buffer_length:{}\r\n\
                 corekv_appendfsync:{}\r\ncorekv_snapshot_max_pause_us:{}\r\n\
                 corekv_aof_writes:{}\r\ncorekv_aof_fsyncs:{}\r\n\
                 corekv_aof_write_usec:{}\r\ncorekv_aof_fsync_usec:{}\r\n\
                 corekv_aof_written_bytes:{}\r\n",
                p.aof_size,
                p.aof_base_size,
                p.aof_buffered,
                p.fsync,
                p.snapshot_max_pause_us,
                p.aof_writes,
                p.aof_fsyncs,
                p.aof_write_us,
                p.aof_fsync_us,
                p.aof_written_bytes,
            );
        }
    }
    if want("stats") {
        section(&mut s, "Stats");
        t.ops = t.ops.saturating_sub(base.ops);
        t.errors = t.errors.saturating_sub(base.errors);
        let _ = write!(
            s,
            "total_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             instantaneous_ops_per_sec:{ops_per_sec}\r\n\
             total_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\n\
             rejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\n\
             keyspace_hits:{hits}\r\nkeyspace_misses:{misses}\r\n\
             total_error_replies:{}\r\n\
             total_reads_processed:{}\r\ntotal_writes_processed:{}\r\n\
             corekv_total_gets:{}\r\ncorekv_total_puts:{}\r\ncorekv_total_deletes:{}\r\n\
             corekv_forwarded_ops:{}\r\n",
            obs.sum(|o| &o.accepted),
            t.ops,
            obs.sum(|o| &o.net_in),
            obs.sum(|o| &o.net_out),
            obs.sum(|o| &o.rejected_conns),
            cache.expired_keys,
            cache.evicted_keys,
            t.errors,
            obs.sum(|o| &o.reads),
            obs.sum(|o| &o.writes),
            t.gets,
            t.puts,
            t.dels,
            t.forwarded_out,
        );
    }
    if want("cpu") {
        section(&mut s, "CPU");
        let (sys, user) = rusage(libc::RUSAGE_SELF);
        let (csys, cuser) = rusage(libc::RUSAGE_CHILDREN);
        let (tsys, tuser) = rusage(libc::RUSAGE_THREAD);
        let _ = write!(
            s,
            "used_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\n\
             used_cpu_sys_children:{csys:.6}\r\nused_cpu_user_children:{cuser:.6}\r\n\
             used_cpu_sys_main_thread:{tsys:.6}\r\nused_cpu_user_main_thread:{tuser:.6}\r\n",
        );
    }
    if want("commandstats") {
        section(&mut s, "Commandstats");
        for slot in 0..observe::nr_slots() {
            let (calls, nanos, rejected, failed) = obs.cmd_totals(slot);
            if calls == 0 && rejected == 0 && failed == 0 {
                continue;
            }
            let usec = nanos / 1000;
            let per_call = if calls == 0 {
                0.0
            } else {
                nanos as f64 / 1000.0 / calls as f64
            };
            let _ = write!(
                s,
                "cmdstat_{}:calls={calls},usec={usec},usec_per_call={per_call:.2},\
                 rejected_calls={rejected},failed_calls={failed}\r\n",
                observe::slot_name(slot)
            );
        }
    }
    if want("errorstats") {
        section(&mut s, "Errorstats");
        for (code, count) in ERROR_CODES.iter().zip(obs.error_totals()) {
            if count > 0 {
                let _ = write!(s, "errorstat_{code}:count={count}\r\n");
            }
        }
    }
    if want("latencystats") {
        section(&mut s, "Latencystats");
        for slot in 0..observe::nr_slots() {
            let counts = obs.cmd_hist(slot);
            let Some(p50) = observe::percentile(&counts, 50.0) else {
                continue;
            };
            let usec = |ns: u64| ns as f64 / 1000.0;
            let _ = write!(
                s,
                "latency_percentiles_usec_{}:p50={:.3},p99={:.3},p99.9={:.3}\r\n",
                observe::slot_name(slot),
                usec(p50),
                usec(observe::percentile(&counts, 99.0).unwrap_or(p50)),
                usec(observe::percentile(&counts, 99.9).unwrap_or(p50)),
            );
        }
    }
    if want("cluster") {
        section(&mut s, "Cluster");
        s.push_str("cluster_enabled:1\r\n");
    }
    if want("keyspace") {
        section(&mut s, "Keyspace");
        for db in 0..node.databases() {
            let d = node.db_stats(db);
            if d.keys > 0 {
                let _ = write!(
                    s,
                    "db{db}:keys={},expires={},avg_ttl={}\r\n",
                    d.keys, d.expires, d.avg_ttl_ms
                );
            }
        }
    }
    s
}

/// CPU seconds (system, user) of `who` (RUSAGE_SELF: every thread of the
/// process; RUSAGE_THREAD: the shard thread answering).
fn rusage(who: libc::c_int) -> (f64, f64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable rusage.
    if unsafe { libc::getrusage(who, &mut u) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(u.ru_stime), secs(u.ru_utime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"save", b"save"));
        assert!(glob_match(b"SAVE", b"save"));
        assert!(glob_match(b"max*", b"maxmemory"));
        assert!(glob_match(b"*", b"appendonly"));
        assert!(glob_match(b"m?xclients", b"maxclients"));
        assert!(!glob_match(b"max", b"maxmemory"));
        assert!(glob_match(b"*memory*", b"maxmemory-policy"));
        assert!(!glob_match(b"*x", b"maxmemory"));
    }

    #[test]
    fn command_docs_cover_the_table() {
        for s in table::all() {
            assert_eq!(s.name, s.name.to_ascii_lowercase());
            assert!(std::ptr::eq(
                table::lookup(s.name.to_ascii_uppercase().as_bytes()).unwrap(),
                s
            ));
        }
        let mut out = Vec::new();
        command_reply(&mut out, &[b"docs"], Proto::Resp2);
        let (reply, used) = resp::parse_reply(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        assert!(matches!(reply, resp::Reply::Array(Some(a)) if a.len() == table::count() * 2));
        out.clear();
        command_reply(&mut out, &[], Proto::Resp2);
        assert_eq!(resp::parse_reply(&out).unwrap().unwrap().1, out.len());
    }
}
