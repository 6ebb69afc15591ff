//! The RESP command table and every command's parse → apply → encode.
//!
//! This module owns what Redis commands *mean* to corekv: the table of
//! supported commands ([`TABLE`]: name, arity, flags, key positions, docs —
//! also what COMMAND and COMMAND DOCS report), turning a parsed argument list
//! into a [`Command`], and applying it. Key commands are applied by queueing
//! ops into the connection's [`Run`](super::Run) (the batched path in
//! [`super`]); every other command first flushes that run, so replies stay in
//! order and see the run's writes, then writes its reply directly.
//!
//! Error texts are Redis's own (`ERR unknown command ...`, `ERR wrong number
//! of arguments for 'get' command`, `ERR syntax error`), so clients and
//! people recognise them. It does not touch sockets or the store.

use std::fmt::Write as _;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::protocol::resp;
use crate::store::{parse_i64, OpKind};

use super::{Connection, Flow, Style};

/// The Redis version corekv reports (INFO, HELLO): the command set and
/// reply formats follow Redis 7.0.
pub const REDIS_COMPAT_VERSION: &str = "7.0.0";

/// Client ids, unique in the process (CLIENT ID, HELLO).
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// Per-connection client state (CLIENT ID / SETNAME / GETNAME).
pub struct Client {
    /// CLIENT ID.
    pub id: u64,
    /// CLIENT SETNAME.
    pub name: Option<Vec<u8>>,
}

impl Client {
    /// A new client with a fresh id.
    pub fn new() -> Client {
        Client {
            id: NEXT_CLIENT_ID.fetch_add(1, Relaxed),
            name: None,
        }
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

/// Identifies a supported command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    /// GET key
    Get,
    /// SET key value [NX|XX] [GET]
    Set,
    /// DEL key [key ...]
    Del,
    /// EXISTS key [key ...]
    Exists,
    /// MGET key [key ...]
    MGet,
    /// MSET key value [key value ...]
    MSet,
    /// INCR key
    Incr,
    /// DECR key
    Decr,
    /// INCRBY key increment
    IncrBy,
    /// DECRBY key decrement
    DecrBy,
    /// STRLEN key
    Strlen,
    /// SETNX key value
    SetNx,
    /// GETSET key value
    GetSet,
    /// PING [message]
    Ping,
    /// ECHO message
    Echo,
    /// DBSIZE
    DbSize,
    /// FLUSHDB [ASYNC|SYNC]
    FlushDb,
    /// FLUSHALL [ASYNC|SYNC]
    FlushAll,
    /// INFO [section ...]
    Info,
    /// COMMAND [COUNT|DOCS|INFO|LIST]
    Command,
    /// CONFIG GET|SET|RESETSTAT
    Config,
    /// SELECT index
    Select,
    /// CLIENT ID|SETNAME|GETNAME|SETINFO
    Client,
    /// HELLO [protover [SETNAME name]]
    Hello,
    /// AUTH
    Auth,
    /// QUIT
    Quit,
}

/// One documented argument (COMMAND DOCS, which redis-cli turns into hints).
pub struct Arg {
    /// Argument name.
    pub name: &'static str,
    /// Redis argument type: key, string, integer, pure-token, oneof.
    pub kind: &'static str,
    /// The literal token, for pure-token arguments.
    pub token: Option<&'static str>,
    /// May be omitted.
    pub optional: bool,
    /// May repeat.
    pub multiple: bool,
    /// Alternatives of a `oneof`.
    pub sub: &'static [Arg],
}

const fn arg(name: &'static str, kind: &'static str) -> Arg {
    Arg {
        name,
        kind,
        token: None,
        optional: false,
        multiple: false,
        sub: &[],
    }
}

const fn many(a: Arg) -> Arg {
    Arg {
        multiple: true,
        ..a
    }
}

const fn opt(a: Arg) -> Arg {
    Arg {
        optional: true,
        ..a
    }
}

const fn token(name: &'static str, token: &'static str) -> Arg {
    Arg {
        name,
        kind: "pure-token",
        token: Some(token),
        optional: false,
        multiple: false,
        sub: &[],
    }
}

const fn oneof(name: &'static str, sub: &'static [Arg]) -> Arg {
    Arg {
        name,
        kind: "oneof",
        token: None,
        optional: false,
        multiple: false,
        sub,
    }
}

/// One row of the command table.
pub struct Spec {
    /// Which command.
    pub id: Name,
    /// Lower-case name (what COMMAND and error texts show).
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments including the name, `-n` at least n.
    pub arity: i32,
    /// COMMAND flags.
    pub flags: &'static [&'static str],
    /// Position of the first key (0: none).
    pub first_key: i32,
    /// Position of the last key (-1: the last argument).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// COMMAND DOCS group.
    pub group: &'static str,
    /// COMMAND DOCS summary.
    pub summary: &'static str,
    /// Documented arguments.
    pub args: &'static [Arg],
}

const KEY: Arg = arg("key", "key");
const VALUE: Arg = arg("value", "string");
const SYNC_MODE: Arg = opt(oneof(
    "flush-type",
    &[token("async", "ASYNC"), token("sync", "SYNC")],
));

/// Every supported command. GET and SET first: the lookup is a linear scan.
pub static TABLE: &[Spec] = &[
    Spec {
        id: Name::Get,
        name: "get",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Returns the string value of a key.",
        args: &[KEY],
    },
    Spec {
        id: Name::Set,
        name: "set",
        arity: -3,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Sets the string value of a key (NX/XX/GET; corekv has no expiry).",
        args: &[
            KEY,
            VALUE,
            opt(oneof("condition", &[token("nx", "NX"), token("xx", "XX")])),
            opt(token("get", "GET")),
        ],
    },
    Spec {
        id: Name::Del,
        name: "del",
        arity: -2,
        flags: &["write"],
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "generic",
        summary: "Deletes one or more keys.",
        args: &[many(KEY)],
    },
    Spec {
        id: Name::Exists,
        name: "exists",
        arity: -2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "generic",
        summary: "Determines whether one or more keys exist.",
        args: &[many(KEY)],
    },
    Spec {
        id: Name::MGet,
        name: "mget",
        arity: -2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "string",
        summary: "Atomically returns the string values of one or more keys.",
        args: &[many(KEY)],
    },
    Spec {
        id: Name::MSet,
        name: "mset",
        arity: -3,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: -1,
        step: 2,
        group: "string",
        summary: "Sets the string values of one or more keys (atomic per key, not across shards).",
        args: &[many(oneof("data", &[KEY, VALUE]))],
    },
    Spec {
        id: Name::Incr,
        name: "incr",
        arity: 2,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Increments the integer value of a key by one.",
        args: &[KEY],
    },
    Spec {
        id: Name::Decr,
        name: "decr",
        arity: 2,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Decrements the integer value of a key by one.",
        args: &[KEY],
    },
    Spec {
        id: Name::IncrBy,
        name: "incrby",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Increments the integer value of a key by a number.",
        args: &[KEY, arg("increment", "integer")],
    },
    Spec {
        id: Name::DecrBy,
        name: "decrby",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Decrements the integer value of a key by a number.",
        args: &[KEY, arg("decrement", "integer")],
    },
    Spec {
        id: Name::Strlen,
        name: "strlen",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Returns the length of a string value.",
        args: &[KEY],
    },
    Spec {
        id: Name::SetNx,
        name: "setnx",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Set the string value of a key only when the key doesn't exist.",
        args: &[KEY, VALUE],
    },
    Spec {
        id: Name::GetSet,
        name: "getset",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Returns the previous string value of a key after setting it to a new value.",
        args: &[KEY, VALUE],
    },
    Spec {
        id: Name::Ping,
        name: "ping",
        arity: -1,
        flags: &["fast", "stale"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Returns the server's liveliness response.",
        args: &[opt(arg("message", "string"))],
    },
    Spec {
        id: Name::Echo,
        name: "echo",
        arity: 2,
        flags: &["fast"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Returns the given string.",
        args: &[arg("message", "string")],
    },
    Spec {
        id: Name::DbSize,
        name: "dbsize",
        arity: 1,
        flags: &["readonly", "fast"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "Returns the number of keys in the database (the whole node).",
        args: &[],
    },
    Spec {
        id: Name::FlushDb,
        name: "flushdb",
        arity: -1,
        flags: &["write"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "Removes all keys from the database (the whole node).",
        args: &[SYNC_MODE],
    },
    Spec {
        id: Name::FlushAll,
        name: "flushall",
        arity: -1,
        flags: &["write"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "Removes all keys from the node.",
        args: &[SYNC_MODE],
    },
    Spec {
        id: Name::Info,
        name: "info",
        arity: -1,
        flags: &["loading", "stale"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "Returns information and statistics about the server.",
        args: &[opt(many(arg("section", "string")))],
    },
    Spec {
        id: Name::Command,
        name: "command",
        arity: -1,
        flags: &["loading", "stale"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "Returns detailed information about all commands (COUNT, DOCS, INFO, LIST).",
        args: &[],
    },
    Spec {
        id: Name::Config,
        name: "config",
        arity: -2,
        flags: &[],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "CONFIG GET parameter [parameter ...] (read-only in corekv).",
        args: &[],
    },
    Spec {
        id: Name::Select,
        name: "select",
        arity: 2,
        flags: &["loading", "stale", "fast"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Changes the selected database (corekv has only database 0).",
        args: &[arg("index", "integer")],
    },
    Spec {
        id: Name::Client,
        name: "client",
        arity: -2,
        flags: &[],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "CLIENT ID | SETNAME name | GETNAME | SETINFO attr value.",
        args: &[],
    },
    Spec {
        id: Name::Hello,
        name: "hello",
        arity: -1,
        flags: &["loading", "stale", "fast"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Handshakes with the server (RESP2 only).",
        args: &[opt(arg("protover", "integer"))],
    },
    Spec {
        id: Name::Auth,
        name: "auth",
        arity: -2,
        flags: &["loading", "stale", "fast"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Authenticates the connection (corekv has no passwords).",
        args: &[arg("password", "string")],
    },
    Spec {
        id: Name::Quit,
        name: "quit",
        arity: -1,
        flags: &["loading", "stale", "fast"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary: "Closes the connection.",
        args: &[],
    },
];

/// Finds a command by name, ignoring ASCII case.
#[inline]
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    TABLE
        .iter()
        .find(|s| s.name.len() == name.len() && s.name.as_bytes().eq_ignore_ascii_case(name))
}

/// A parsed command. Key commands carry argument ranges into the read
/// buffer; the rest borrow their arguments.
pub enum Command<'a> {
    /// GET key
    Get(Range<usize>),
    /// SET key value, with NX/XX mapped to the op and the GET flag.
    Set {
        /// Key.
        key: Range<usize>,
        /// Value.
        value: Range<usize>,
        /// `Put`, `PutIfAbsent` (NX) or `PutIfPresent` (XX).
        op: OpKind,
        /// Return the old value (GET flag).
        get: bool,
    },
    /// SETNX key value
    SetNx(Range<usize>, Range<usize>),
    /// GETSET key value
    GetSet(Range<usize>, Range<usize>),
    /// DEL key...
    Del(&'a [Range<usize>]),
    /// EXISTS key...
    Exists(&'a [Range<usize>]),
    /// MGET key...
    MGet(&'a [Range<usize>]),
    /// MSET key value ...
    MSet(&'a [Range<usize>]),
    /// INCR/DECR/INCRBY/DECRBY
    IncrBy(Range<usize>, i64),
    /// STRLEN key
    Strlen(Range<usize>),
    /// PING [message]
    Ping(Option<&'a [u8]>),
    /// ECHO message
    Echo(&'a [u8]),
    /// DBSIZE
    DbSize,
    /// FLUSHDB / FLUSHALL
    Flush,
    /// INFO [section...]
    Info(Vec<String>),
    /// COMMAND with its arguments.
    Command(Vec<&'a [u8]>),
    /// CONFIG GET patterns...
    ConfigGet(Vec<&'a [u8]>),
    /// SELECT 0
    Select0,
    /// CLIENT ID
    ClientId,
    /// CLIENT SETNAME name
    ClientSetName(&'a [u8]),
    /// CLIENT GETNAME
    ClientGetName,
    /// HELLO [2] [SETNAME name]
    Hello(Option<&'a [u8]>),
    /// QUIT
    Quit,
    /// A reply that is an error caused by the request (counted as rejected).
    Reject(String),
    /// A fixed reply (CLIENT SETINFO, CONFIG RESETSTAT, ...).
    Reply(&'static [u8]),
}

fn wrong_arity(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

/// Redis's unknown-command error, arguments shown up to about 128 bytes.
pub fn unknown_command(buf: &[u8], args: &[Range<usize>]) -> String {
    let name = String::from_utf8_lossy(&buf[args[0].clone()]);
    let name: String = name.chars().take(128).collect();
    let mut shown = String::new();
    for a in &args[1..] {
        if shown.len() >= 128 {
            break;
        }
        let room = 128 - shown.len();
        let text = String::from_utf8_lossy(&buf[a.clone()]);
        let mut end = text.len().min(room);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let _ = write!(shown, "'{}' ", &text[..end]);
    }
    format!("ERR unknown command '{name}', with args beginning with: {shown}")
}

fn unknown_subcommand(buf: &[u8], sub: &Range<usize>, cmd: &str) -> String {
    format!(
        "ERR unknown subcommand '{}'. Try {cmd} HELP.",
        String::from_utf8_lossy(&buf[sub.clone()])
    )
}

const ERR_SYNTAX: &str = "ERR syntax error";
const ERR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const ERR_NO_EXPIRY: &str = "ERR corekv has no key expiry: EX/PX/EXAT/PXAT are not supported";

impl<'a> Command<'a> {
    /// Turns a non-empty argument list (ranges into `buf`) into a command.
    pub fn parse(buf: &'a [u8], args: &'a [Range<usize>]) -> Command<'a> {
        let arg = |i: usize| &buf[args[i].clone()];
        let Some(spec) = lookup(arg(0)) else {
            return Command::Reject(unknown_command(buf, args));
        };
        let n = args.len() as i32;
        if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
            return Command::Reject(wrong_arity(spec.name));
        }
        let key = || args[1].clone();
        let is = |i: usize, word: &str| arg(i).eq_ignore_ascii_case(word.as_bytes());
        match spec.id {
            Name::Get => Command::Get(key()),
            Name::Set => parse_set(buf, args),
            Name::SetNx => Command::SetNx(key(), args[2].clone()),
            Name::GetSet => Command::GetSet(key(), args[2].clone()),
            Name::Del => Command::Del(&args[1..]),
            Name::Exists => Command::Exists(&args[1..]),
            Name::MGet => Command::MGet(&args[1..]),
            Name::MSet if n % 2 == 0 => Command::Reject(wrong_arity(spec.name)),
            Name::MSet => Command::MSet(&args[1..]),
            Name::Incr => Command::IncrBy(key(), 1),
            Name::Decr => Command::IncrBy(key(), -1),
            Name::IncrBy | Name::DecrBy => {
                let delta = parse_i64(arg(2)).and_then(|d| {
                    if spec.id == Name::DecrBy {
                        d.checked_neg()
                    } else {
                        Some(d)
                    }
                });
                match delta {
                    Some(d) => Command::IncrBy(key(), d),
                    None if spec.id == Name::DecrBy && parse_i64(arg(2)).is_some() => {
                        Command::Reject("ERR decrement would overflow".into())
                    }
                    None => Command::Reject(ERR_NOT_INTEGER.into()),
                }
            }
            Name::Strlen => Command::Strlen(key()),
            Name::Ping if n > 2 => Command::Reject(wrong_arity(spec.name)),
            Name::Ping => Command::Ping(args.get(1).map(|r| &buf[r.clone()])),
            Name::Echo => Command::Echo(arg(1)),
            Name::DbSize => Command::DbSize,
            Name::FlushDb | Name::FlushAll => match n {
                1 => Command::Flush,
                2 if is(1, "async") || is(1, "sync") => Command::Flush,
                _ => Command::Reject(ERR_SYNTAX.into()),
            },
            Name::Info => Command::Info(
                args[1..]
                    .iter()
                    .map(|r| String::from_utf8_lossy(&buf[r.clone()]).to_ascii_lowercase())
                    .collect(),
            ),
            Name::Command => Command::Command(args[1..].iter().map(|r| &buf[r.clone()]).collect()),
            Name::Config => {
                if is(1, "get") {
                    if n < 3 {
                        Command::Reject(wrong_arity("config|get"))
                    } else {
                        Command::ConfigGet(args[2..].iter().map(|r| &buf[r.clone()]).collect())
                    }
                } else if is(1, "resetstat") {
                    Command::Reply(b"+OK\r\n")
                } else if is(1, "set") {
                    Command::Reject("ERR CONFIG SET is not supported by corekv: restart it with the option instead".into())
                } else {
                    Command::Reject(unknown_subcommand(buf, &args[1], "CONFIG"))
                }
            }
            Name::Select => match parse_i64(arg(1)) {
                Some(0) => Command::Select0,
                Some(_) => Command::Reject("ERR DB index is out of range".into()),
                None => Command::Reject(ERR_NOT_INTEGER.into()),
            },
            Name::Client => {
                if is(1, "id") && n == 2 {
                    Command::ClientId
                } else if is(1, "getname") && n == 2 {
                    Command::ClientGetName
                } else if is(1, "setname") && n == 3 {
                    let name = arg(2);
                    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                        Command::Reject("ERR Client names cannot contain spaces, newlines or special characters.".into())
                    } else {
                        Command::ClientSetName(name)
                    }
                } else if is(1, "setinfo") && n == 4 {
                    Command::Reply(b"+OK\r\n")
                } else if ["id", "getname", "setname", "setinfo"]
                    .iter()
                    .any(|w| is(1, w))
                {
                    let sub = String::from_utf8_lossy(arg(1)).to_ascii_lowercase();
                    Command::Reject(wrong_arity(&format!("client|{sub}")))
                } else {
                    Command::Reject(unknown_subcommand(buf, &args[1], "CLIENT"))
                }
            }
            Name::Hello => parse_hello(buf, args),
            Name::Auth => Command::Reject(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?".into(),
            ),
            Name::Quit => Command::Quit,
        }
    }

    /// Applies the command: key commands are queued into the connection's
    /// run; everything else flushes the run first and then answers.
    pub(crate) async fn apply(self, conn: &mut Connection<'_>, buf: &[u8]) -> Flow {
        let run = &mut conn.run;
        match self {
            Command::Get(key) => {
                run.op(OpKind::Get, key, 0..0);
                run.plan(Style::Bulk, 1);
            }
            Command::Set {
                key,
                value,
                op,
                get,
            } => {
                if get {
                    run.op(OpKind::GetSet, key, value);
                    run.plan(Style::Bulk, 1);
                } else {
                    run.op(op, key, value);
                    run.plan(Style::SetOk, 1);
                }
            }
            Command::SetNx(key, value) => {
                run.op(OpKind::PutIfAbsent, key, value);
                run.plan(Style::Flag, 1);
            }
            Command::GetSet(key, value) => {
                run.op(OpKind::GetSet, key, value);
                run.plan(Style::Bulk, 1);
            }
            Command::Del(keys) => {
                for k in keys {
                    run.op(OpKind::Del, k.clone(), 0..0);
                }
                run.plan(Style::Count, keys.len());
            }
            Command::Exists(keys) => {
                for k in keys {
                    run.op(OpKind::Exists, k.clone(), 0..0);
                }
                run.plan(Style::Count, keys.len());
            }
            Command::MGet(keys) => {
                for k in keys {
                    run.op(OpKind::Get, k.clone(), 0..0);
                }
                run.plan(Style::Array, keys.len());
            }
            Command::MSet(pairs) => {
                for p in pairs.chunks_exact(2) {
                    run.op(OpKind::Put, p[0].clone(), p[1].clone());
                }
                run.plan(Style::AllOk, pairs.len() / 2);
            }
            Command::IncrBy(key, delta) => {
                run.incr_by(key, delta);
                run.plan(Style::Int, 1);
            }
            Command::Strlen(key) => {
                run.op(OpKind::Strlen, key, 0..0);
                run.plan(Style::Int, 1);
            }
            other => {
                conn.flush(buf).await;
                return other.apply_unbatched(conn).await;
            }
        }
        Flow::Continue
    }

    /// The non-key commands, after the run has been flushed.
    async fn apply_unbatched(self, conn: &mut Connection<'_>) -> Flow {
        let shard = conn.shard;
        let out = &mut conn.out;
        match self {
            // Key commands never get here (see `apply`); answer nothing
            // rather than panic if one ever did.
            Command::Get(_)
            | Command::Set { .. }
            | Command::SetNx(..)
            | Command::GetSet(..)
            | Command::Del(_)
            | Command::Exists(_)
            | Command::MGet(_)
            | Command::MSet(_)
            | Command::IncrBy(..)
            | Command::Strlen(_) => resp::error(out, "ERR internal: key command not batched"),
            Command::Ping(None) => out.extend_from_slice(b"+PONG\r\n"),
            Command::Ping(Some(msg)) | Command::Echo(msg) => resp::bulk(out, msg),
            Command::DbSize => resp::integer(out, shard.node_keys() as i64),
            Command::Flush => {
                shard.flush_all().await;
                out.extend_from_slice(b"+OK\r\n");
            }
            Command::Info(sections) => {
                let text = info(conn.shard, conn.limits, &sections);
                resp::bulk(&mut conn.out, text.as_bytes());
            }
            Command::Command(args) => command(out, &args),
            Command::ConfigGet(patterns) => config_get(conn.shard, conn.limits, out, &patterns),
            Command::Select0 => out.extend_from_slice(b"+OK\r\n"),
            Command::ClientId => resp::integer(out, conn.client.id as i64),
            Command::ClientSetName(name) => {
                conn.client.name = (!name.is_empty()).then(|| name.to_vec());
                out.extend_from_slice(b"+OK\r\n");
            }
            Command::ClientGetName => match &conn.client.name {
                Some(n) => resp::bulk(out, n),
                None => resp::null_bulk(out),
            },
            Command::Hello(setname) => {
                if let Some(name) = setname {
                    conn.client.name = (!name.is_empty()).then(|| name.to_vec());
                }
                hello(out, conn.client.id);
            }
            Command::Quit => {
                out.extend_from_slice(b"+OK\r\n");
                return Flow::Close;
            }
            Command::Reject(msg) => {
                shard.count_protocol_error();
                resp::error(out, &msg);
            }
            Command::Reply(bytes) => out.extend_from_slice(bytes),
        }
        Flow::Continue
    }
}

/// SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT|KEEPTTL ...]
fn parse_set<'a>(buf: &'a [u8], args: &'a [Range<usize>]) -> Command<'a> {
    let mut op = OpKind::Put;
    let mut get = false;
    for r in &args[3..] {
        let word = &buf[r.clone()];
        let is = |w: &str| word.eq_ignore_ascii_case(w.as_bytes());
        if is("nx") && op != OpKind::PutIfPresent {
            op = OpKind::PutIfAbsent;
        } else if is("xx") && op != OpKind::PutIfAbsent {
            op = OpKind::PutIfPresent;
        } else if is("get") {
            get = true;
        } else if ["ex", "px", "exat", "pxat", "keepttl"]
            .iter()
            .any(|w| is(w))
        {
            return Command::Reject(ERR_NO_EXPIRY.into());
        } else {
            return Command::Reject(ERR_SYNTAX.into());
        }
    }
    if get && op != OpKind::Put {
        return Command::Reject("ERR corekv does not support SET with both GET and NX/XX".into());
    }
    Command::Set {
        key: args[1].clone(),
        value: args[2].clone(),
        op,
        get,
    }
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]
fn parse_hello<'a>(buf: &'a [u8], args: &'a [Range<usize>]) -> Command<'a> {
    let arg = |i: usize| &buf[args[i].clone()];
    if args.len() >= 2 {
        match parse_i64(arg(1)) {
            Some(2) => {}
            Some(_) => return Command::Reject("NOPROTO unsupported protocol version".into()),
            None => {
                return Command::Reject(
                    "ERR Protocol version is not an integer or out of range".into(),
                )
            }
        }
    }
    let mut setname = None;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - i - 1;
        if arg(i).eq_ignore_ascii_case(b"setname") && more >= 1 {
            setname = Some(arg(i + 1));
            i += 2;
        } else if arg(i).eq_ignore_ascii_case(b"auth") && more >= 2 {
            return Command::Reject(
                "WRONGPASS invalid username-password pair or user is disabled.".into(),
            );
        } else {
            return Command::Reject(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(arg(i))
            ));
        }
    }
    Command::Hello(setname)
}

/// HELLO's RESP2 answer: a map as a flat array.
fn hello(out: &mut Vec<u8>, client_id: u64) {
    resp::array_header(out, 14);
    for (k, v) in [("server", "redis"), ("version", REDIS_COMPAT_VERSION)] {
        resp::bulk(out, k.as_bytes());
        resp::bulk(out, v.as_bytes());
    }
    resp::bulk(out, b"proto");
    resp::integer(out, 2);
    resp::bulk(out, b"id");
    resp::integer(out, client_id as i64);
    resp::bulk(out, b"mode");
    resp::bulk(out, b"standalone");
    resp::bulk(out, b"role");
    resp::bulk(out, b"master");
    resp::bulk(out, b"modules");
    resp::array_header(out, 0);
}

/// COMMAND [COUNT | LIST | INFO name... | DOCS [name...]]
fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let sub = args.first().map(|s| s.to_ascii_lowercase());
    match sub.as_deref() {
        None => {
            resp::array_header(out, TABLE.len());
            TABLE.iter().for_each(|s| command_info(out, s));
        }
        Some(b"count") if args.len() == 1 => resp::integer(out, TABLE.len() as i64),
        Some(b"list") if args.len() == 1 => {
            resp::array_header(out, TABLE.len());
            TABLE
                .iter()
                .for_each(|s| resp::bulk(out, s.name.as_bytes()));
        }
        Some(b"info") => {
            resp::array_header(out, args.len() - 1);
            for name in &args[1..] {
                match lookup(name) {
                    Some(s) => command_info(out, s),
                    None => resp::null_bulk(out),
                }
            }
        }
        Some(b"docs") => {
            let specs: Vec<&Spec> = if args.len() == 1 {
                TABLE.iter().collect()
            } else {
                args[1..].iter().filter_map(|n| lookup(n)).collect()
            };
            resp::array_header(out, specs.len() * 2);
            for s in specs {
                resp::bulk(out, s.name.as_bytes());
                command_docs(out, s);
            }
        }
        Some(b"count" | b"list") => resp::error(
            out,
            &wrong_arity(&format!(
                "command|{}",
                String::from_utf8_lossy(sub.as_deref().unwrap_or_default())
            )),
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

/// One COMMAND entry, Redis 7 layout (10 fields).
fn command_info(out: &mut Vec<u8>, s: &Spec) {
    resp::array_header(out, 10);
    resp::bulk(out, s.name.as_bytes());
    resp::integer(out, s.arity as i64);
    resp::array_header(out, s.flags.len());
    for f in s.flags {
        resp::simple(out, f);
    }
    resp::integer(out, s.first_key as i64);
    resp::integer(out, s.last_key as i64);
    resp::integer(out, s.step as i64);
    // ACL categories, tips, key specs, subcommands.
    for _ in 0..4 {
        resp::array_header(out, 0);
    }
}

/// One COMMAND DOCS entry (a map as a flat array).
fn command_docs(out: &mut Vec<u8>, s: &Spec) {
    let with_args = !s.args.is_empty();
    resp::array_header(out, if with_args { 10 } else { 8 });
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
        doc_args(out, s.args);
    }
}

fn doc_args(out: &mut Vec<u8>, args: &[Arg]) {
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
        resp::array_header(out, fields * 2);
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
            resp::array_header(out, flags.len());
            flags.iter().for_each(|f| resp::simple(out, f));
        }
        if !a.sub.is_empty() {
            resp::bulk(out, b"arguments");
            doc_args(out, a.sub);
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

/// CONFIG GET: real values for what clients and redis-benchmark ask.
fn config_get(
    shard: &crate::shard::Shard,
    limits: &crate::config::Limits,
    out: &mut Vec<u8>,
    patterns: &[&[u8]],
) {
    let node = &shard.node;
    let maxmemory = if node.shard_memory == usize::MAX {
        0
    } else {
        node.shard_memory as u64 * node.nr_shards() as u64
    };
    let port = node.layout().map_or(0, |l| l.resp_port);
    let params: [(&str, String); 13] = [
        ("save", String::new()),
        ("appendonly", "no".into()),
        ("maxmemory", maxmemory.to_string()),
        ("maxmemory-policy", "noeviction".into()),
        (
            "maxclients",
            (limits.max_connections_per_shard * node.nr_shards()).to_string(),
        ),
        ("databases", "1".into()),
        ("port", port.to_string()),
        (
            "timeout",
            limits.idle_timeout.map_or(0, |d| d.as_secs()).to_string(),
        ),
        ("tcp-keepalive", "0".into()),
        ("proto-max-bulk-len", parse_limits_bulk(limits).to_string()),
        (
            "client-query-buffer-limit",
            limits.max_frame_bytes.to_string(),
        ),
        ("io-threads", "1".into()),
        ("cluster-enabled", "no".into()),
    ];
    let matched: Vec<&(&str, String)> = params
        .iter()
        .filter(|(name, _)| patterns.iter().any(|p| glob_match(p, name.as_bytes())))
        .collect();
    resp::array_header(out, matched.len() * 2);
    for (name, value) in matched {
        resp::bulk(out, name.as_bytes());
        resp::bulk(out, value.as_bytes());
    }
}

fn parse_limits_bulk(limits: &crate::config::Limits) -> usize {
    super::parse_limits(limits).max_bulk_len
}

thread_local! {
    /// The last INFO sample on this shard's thread: (time, total ops), for
    /// instantaneous_ops_per_sec (the rate since the previous INFO).
    static LAST_INFO: std::cell::Cell<Option<(std::time::Instant, u64)>> =
        const { std::cell::Cell::new(None) };
}

/// INFO's text for the requested sections (none, `default`, `all` or
/// `everything`: every section).
pub fn info(
    shard: &crate::shard::Shard,
    limits: &crate::config::Limits,
    sections: &[String],
) -> String {
    shard.publish();
    let stats = shard.node.stats();
    let t = stats.total();
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|s| s == "all" || s == "default" || s == "everything");
    let want = |name: &str| all || sections.iter().any(|s| s == name);
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
    let maxmemory = if node.shard_memory == usize::MAX {
        0
    } else {
        node.shard_memory as u64 * node.nr_shards() as u64
    };
    let port = node.layout().map_or(0, |l| l.resp_port);
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
            "redis_version:{REDIS_COMPAT_VERSION}\r\ncorekv_version:{}\r\nredis_mode:standalone\r\n\
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
            t.connections,
            limits.max_connections_per_shard * node.nr_shards()
        );
    }
    if want("memory") {
        section(&mut s, "Memory");
        let _ = write!(
            s,
            "used_memory:{}\r\nused_memory_human:{}\r\nmaxmemory:{maxmemory}\r\n\
             maxmemory_human:{}\r\nmaxmemory_policy:noeviction\r\n\
             corekv_conn_memory:{}\r\ncorekv_max_conn_memory:{}\r\n",
            t.memory_used,
            super::super::stats::human_bytes(t.memory_used),
            super::super::stats::human_bytes(maxmemory),
            t.conn_memory_used,
            t.conn_memory_limit,
        );
    }
    if want("stats") {
        section(&mut s, "Stats");
        let _ = write!(
            s,
            "total_commands_processed:{}\r\ninstantaneous_ops_per_sec:{ops_per_sec}\r\n\
             total_reads_processed:{}\r\ntotal_writes_processed:{}\r\n\
             total_deletes_processed:{}\r\ntotal_error_replies:{}\r\n\
             corekv_forwarded_ops:{}\r\n",
            t.ops, t.gets, t.puts, t.dels, t.errors, t.forwarded_out,
        );
    }
    if want("keyspace") {
        section(&mut s, "Keyspace");
        if t.keys > 0 {
            let _ = write!(s, "db0:keys={},expires=0,avg_ttl=0\r\n", t.keys);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> (Vec<u8>, Vec<Range<usize>>) {
        let buf = line.as_bytes().to_vec();
        let mut args = Vec::new();
        let mut pos = 0;
        for w in line.split(' ') {
            args.push(pos..pos + w.len());
            pos += w.len() + 1;
        }
        (buf, args)
    }

    fn reject(line: &str) -> Option<String> {
        let (buf, args) = parse_str(line);
        match Command::parse(&buf, &args) {
            Command::Reject(m) => Some(m),
            _ => None,
        }
    }

    #[test]
    fn redis_error_texts() {
        assert_eq!(
            reject("foo a b").unwrap(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            reject("foo").unwrap(),
            "ERR unknown command 'foo', with args beginning with: "
        );
        assert_eq!(
            reject("GET").unwrap(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            reject("get a b").unwrap(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            reject("mset a b c").unwrap(),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(reject("set a b nx xx").unwrap(), ERR_SYNTAX);
        assert_eq!(reject("set a b foo").unwrap(), ERR_SYNTAX);
        assert_eq!(reject("set a b EX 10").unwrap(), ERR_NO_EXPIRY);
        assert!(reject("set a b nx get").is_some());
        assert_eq!(reject("select 1").unwrap(), "ERR DB index is out of range");
        assert!(reject("select 0").is_none());
        assert_eq!(
            reject("hello 3").unwrap(),
            "NOPROTO unsupported protocol version"
        );
        assert!(reject("hello 2").is_none());
        assert_eq!(reject("incrby k x").unwrap(), ERR_NOT_INTEGER);
        assert_eq!(
            reject("decrby k -9223372036854775808").unwrap(),
            "ERR decrement would overflow"
        );
        assert!(reject("config get save").is_none());
        assert!(reject("config foo")
            .unwrap()
            .starts_with("ERR unknown subcommand 'foo'"));
        assert!(reject("ping a b").is_some());
        let long = format!("foo {}", "x".repeat(300));
        let m = reject(&long).unwrap();
        assert!(m.len() < 300, "{m}");
    }

    #[test]
    fn parse_maps_flags_to_ops() {
        let (buf, args) = parse_str("SeT k v Nx");
        assert!(matches!(
            Command::parse(&buf, &args),
            Command::Set {
                op: OpKind::PutIfAbsent,
                get: false,
                ..
            }
        ));
        let (buf, args) = parse_str("set k v xx");
        assert!(matches!(
            Command::parse(&buf, &args),
            Command::Set {
                op: OpKind::PutIfPresent,
                ..
            }
        ));
        let (buf, args) = parse_str("set k v get");
        assert!(matches!(
            Command::parse(&buf, &args),
            Command::Set {
                op: OpKind::Put,
                get: true,
                ..
            }
        ));
        let (buf, args) = parse_str("decrby k 5");
        assert!(matches!(
            Command::parse(&buf, &args),
            Command::IncrBy(_, -5)
        ));
    }

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
    fn table_is_consistent() {
        for s in TABLE {
            assert_eq!(s.name, s.name.to_ascii_lowercase());
            assert!(std::ptr::eq(
                lookup(s.name.to_ascii_uppercase().as_bytes()).unwrap(),
                s
            ));
        }
        let mut out = Vec::new();
        command(&mut out, &[b"docs"]);
        let (reply, used) = resp::parse_reply(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        assert!(matches!(reply, resp::Reply::Array(Some(a)) if a.len() == TABLE.len() * 2));
        out.clear();
        command(&mut out, &[]);
        assert_eq!(resp::parse_reply(&out).unwrap().unwrap().1, out.len());
    }
}
