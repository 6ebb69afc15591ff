//! The command table and the argument cursor every handler reads through.
//!
//! A [`Spec`] is one command's row: what COMMAND and COMMAND DOCS report
//! (name, arity, flags, key positions, docs), whether it is a *batched* key
//! command, and its [`Handler`]. The rows live in the family modules beside
//! their handlers; [`FAMILIES`] gathers them and [`lookup`] finds one.
//!
//! Handlers never index an argument list: they read through [`Parse`]
//! (mini-redis's cursor), whose `next_*` return Redis's own error when an
//! argument is missing. The arity check in the connection is a courtesy that
//! gives the right error early; a wrong arity in a row cannot panic a
//! connection (the test `every_command_survives_any_arity` runs every row
//! with 0..=N arguments). This module touches no socket and no store.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Range;

use crate::op::parse_i64;

use super::{
    cluster, connection, diagnostics, expiry, keys, keyspace, multikey, server, strings, Connection,
};

/// Every family's rows, in the order COMMAND lists them. A new family module
/// adds its `COMMANDS` here (and nowhere else).
pub(crate) static FAMILIES: &[&[Spec]] = &[
    strings::COMMANDS,
    keys::COMMANDS,
    multikey::COMMANDS,
    keyspace::COMMANDS,
    expiry::COMMANDS,
    server::COMMANDS,
    diagnostics::COMMANDS,
    connection::COMMANDS,
    cluster::COMMANDS,
];

/// Runs a command whose name and arity were checked: reads its arguments
/// from the cursor, then either queues ops into the connection's run (a
/// batched command) or writes its reply into `conn.out`.
///
/// A batched handler must read and check every argument *before* queueing
/// anything: when it returns an error, nothing of that command is queued.
pub(crate) type Handler = fn(&mut Connection<'_>, &mut Parse<'_>) -> Result<Effect, CmdError>;

/// What the connection does once a handler returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Go on with the next command.
    Continue,
    /// Write what is pending and close (QUIT).
    Close,
    /// Remove every key of the node, then answer `+OK` (FLUSHALL: a
    /// command that must wait for other shards).
    FlushAll,
    /// Remove every key of the connection's database on every shard, then
    /// answer `+OK` (FLUSHDB).
    FlushDb,
    /// Answer the connection's pending keyspace command (SWAPDB, MOVE,
    /// SCAN, …: see `keyspace::finish`).
    Keyspace,
    /// Snapshot every shard and wait, then answer `+OK` (SAVE).
    Save,
    /// Run the multi-key command the handler left in the connection as one
    /// transaction (`multikey`), after the queued run.
    Atomic,
    /// Count (`limit` None) or list up to `limit` keys of a cluster slot:
    /// asked of the shard owning it (CLUSTER COUNTKEYSINSLOT/GETKEYSINSLOT).
    SlotKeys {
        /// The slot.
        slot: u16,
        /// `None`: count only; `Some(n)`: at most n keys.
        limit: Option<usize>,
    },
    /// Give every shard this memory limit (node, bytes, 0: none) and
    /// eviction policy, then answer `+OK` (CONFIG SET).
    Configure {
        /// The node's limit.
        max_memory: u64,
        /// The policy.
        policy: crate::store::Policy,
    },
}

/// A reply that is an error caused by the request (counted as rejected).
/// The text is Redis's, without the leading `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CmdError(pub(crate) Cow<'static, str>);

/// `ERR syntax error`.
pub(crate) const ERR_SYNTAX: &str = "ERR syntax error";
/// Redis's error for an argument that is not an `i64`.
pub(crate) const ERR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";

impl CmdError {
    /// A fixed error text.
    pub(crate) fn msg(text: &'static str) -> CmdError {
        CmdError(Cow::Borrowed(text))
    }

    /// `ERR wrong number of arguments for '<name>' command`.
    pub(crate) fn wrong_arity(name: &str) -> CmdError {
        CmdError(Cow::Owned(format!(
            "ERR wrong number of arguments for '{name}' command"
        )))
    }

    /// `ERR unknown subcommand '<sub>'. Try <CMD> HELP.`
    pub(crate) fn unknown_subcommand(sub: &[u8], cmd: &str) -> CmdError {
        CmdError(Cow::Owned(format!(
            "ERR unknown subcommand '{}'. Try {cmd} HELP.",
            String::from_utf8_lossy(sub)
        )))
    }
}

impl From<String> for CmdError {
    fn from(text: String) -> CmdError {
        CmdError(Cow::Owned(text))
    }
}

/// A cursor over one command's arguments (after its name), ranges into the
/// read buffer. Running out of arguments, or having some left at
/// [`Parse::finish`], is Redis's wrong-arity error for this command.
pub(crate) struct Parse<'a> {
    name: &'static str,
    buf: &'a [u8],
    args: &'a [Range<usize>],
    pos: usize,
}

impl<'a> Parse<'a> {
    /// A cursor for command `name` over `args` (ranges into `buf`).
    pub(crate) fn new(name: &'static str, buf: &'a [u8], args: &'a [Range<usize>]) -> Parse<'a> {
        Parse {
            name,
            buf,
            args,
            pos: 0,
        }
    }

    /// The command's name (lower case), for handlers shared by several.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The wrong-arity error of this command.
    pub(crate) fn wrong_arity(&self) -> CmdError {
        CmdError::wrong_arity(self.name)
    }

    /// Arguments not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.args.len() - self.pos
    }

    /// The next argument as a range into the read buffer (keys and values
    /// of queued ops, which are read in place when the run executes).
    pub(crate) fn next_range(&mut self) -> Result<Range<usize>, CmdError> {
        let r = self.args.get(self.pos).ok_or_else(|| self.wrong_arity())?;
        self.pos += 1;
        Ok(r.clone())
    }

    /// The bytes of an argument this cursor handed out as a range.
    pub(crate) fn bytes_of(&self, r: &Range<usize>) -> &'a [u8] {
        &self.buf[r.clone()]
    }

    /// The next argument's bytes.
    pub(crate) fn next_bytes(&mut self) -> Result<&'a [u8], CmdError> {
        let r = self.next_range()?;
        Ok(&self.buf[r])
    }

    /// The next argument as a decimal `i64` (Redis's grammar).
    pub(crate) fn next_int(&mut self) -> Result<i64, CmdError> {
        parse_i64(self.next_bytes()?).ok_or(CmdError::msg(ERR_NOT_INTEGER))
    }

    /// The next argument, if there is one.
    pub(crate) fn try_next_bytes(&mut self) -> Option<&'a [u8]> {
        self.next_bytes().ok()
    }

    /// Every argument not read yet, as ranges (DEL, MGET, MSET).
    pub(crate) fn rest(&mut self) -> &'a [Range<usize>] {
        let rest = &self.args[self.pos..];
        self.pos = self.args.len();
        rest
    }

    /// Every argument not read yet, as bytes.
    pub(crate) fn rest_bytes(&mut self) -> Vec<&'a [u8]> {
        let buf = self.buf;
        self.rest().iter().map(|r| &buf[r.clone()]).collect()
    }

    /// Checks that every argument was read.
    pub(crate) fn finish(&self) -> Result<(), CmdError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(self.wrong_arity())
        }
    }
}

/// True when `word` is `expected` (lower case), ignoring ASCII case.
#[inline]
pub(crate) fn is_word(word: &[u8], expected: &str) -> bool {
    word.eq_ignore_ascii_case(expected.as_bytes())
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

/// A required argument of Redis type `kind`.
pub(crate) const fn arg(name: &'static str, kind: &'static str) -> Arg {
    Arg {
        name,
        kind,
        token: None,
        optional: false,
        multiple: false,
        sub: &[],
    }
}

/// `a`, repeatable.
pub(crate) const fn many(a: Arg) -> Arg {
    Arg {
        multiple: true,
        ..a
    }
}

/// `a`, optional.
pub(crate) const fn opt(a: Arg) -> Arg {
    Arg {
        optional: true,
        ..a
    }
}

/// A literal token argument.
pub(crate) const fn token(name: &'static str, token: &'static str) -> Arg {
    Arg {
        name,
        kind: "pure-token",
        token: Some(token),
        optional: false,
        multiple: false,
        sub: &[],
    }
}

/// One of several alternatives.
pub(crate) const fn oneof(name: &'static str, sub: &'static [Arg]) -> Arg {
    Arg {
        name,
        kind: "oneof",
        token: None,
        optional: false,
        multiple: false,
        sub,
    }
}

/// A key argument.
pub(crate) const KEY: Arg = arg("key", "key");
/// A value argument.
pub(crate) const VALUE: Arg = arg("value", "string");

/// One row of the command table.
pub struct Spec {
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
    /// A key command: its handler only queues ops into the connection's run,
    /// which is executed as one batch. Other commands see the run flushed
    /// first (so their replies stay in order and see its writes).
    pub batched: bool,
    /// Reads the arguments and does the command.
    pub(crate) handler: Handler,
}

impl Spec {
    /// A row: `keys` is (first, last, step) as COMMAND reports them. The
    /// families' own constructors (`key_cmd`, `server_cmd`, …) fill in what
    /// is fixed for them and call this.
    #[allow(clippy::too_many_arguments)]
    pub(crate) const fn new(
        name: &'static str,
        arity: i32,
        flags: &'static [&'static str],
        keys: (i32, i32, i32),
        group: &'static str,
        summary: &'static str,
        args: &'static [Arg],
        batched: bool,
        handler: Handler,
    ) -> Spec {
        Spec {
            name,
            arity,
            flags,
            first_key: keys.0,
            last_key: keys.1,
            step: keys.2,
            group,
            summary,
            args,
            batched,
            handler,
        }
    }

    /// Does a command line of `n` words (name included) fit the arity?
    pub fn arity_ok(&self, n: usize) -> bool {
        let n = n as i32;
        (self.arity > 0 && n == self.arity) || (self.arity < 0 && n >= -self.arity)
    }
}

/// Every row, in table order.
pub(crate) fn all() -> impl Iterator<Item = &'static Spec> {
    FAMILIES.iter().flat_map(|f| f.iter())
}

/// Number of supported commands.
pub(crate) fn count() -> usize {
    FAMILIES.iter().map(|f| f.len()).sum()
}

/// Finds a command by name, ignoring ASCII case. A linear scan, GET and SET
/// first (the strings family comes first and starts with them).
#[inline]
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    lookup_row(name).map(|(_, s)| s)
}

/// Finds a command and its row number in table order (the index of its
/// statistics, see `server::observe`).
#[inline]
pub fn lookup_row(name: &[u8]) -> Option<(usize, &'static Spec)> {
    all()
        .enumerate()
        .find(|(_, s)| s.name.len() == name.len() && s.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Redis's unknown-command error, arguments shown up to about 128 bytes.
/// `args[0]` is the command name.
pub(crate) fn unknown_command(buf: &[u8], args: &[Range<usize>]) -> CmdError {
    let Some((first, rest)) = args.split_first() else {
        return CmdError::msg("ERR unknown command ''");
    };
    let name = String::from_utf8_lossy(&buf[first.clone()]);
    let name: String = name.chars().take(128).collect();
    let mut shown = String::new();
    for a in rest {
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
    CmdError::from(format!(
        "ERR unknown command '{name}', with args beginning with: {shown}"
    ))
}
