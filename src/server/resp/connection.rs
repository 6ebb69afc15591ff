//! The connection commands: PING, ECHO, SELECT, CLIENT, HELLO, AUTH, QUIT,
//! and the per-connection [`Client`] state they read and change. Replies are
//! written straight into the connection's output (the run was flushed
//! before). Touches no socket and no store.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::protocol::resp;

use super::table::{arg, is_word, opt, CmdError, Effect, Parse, Spec};
use super::{Connection, REDIS_COMPAT_VERSION};

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

    /// Sets (or, with an empty name, clears) the connection's name.
    fn set_name(&mut self, name: &[u8]) {
        self.name = (!name.is_empty()).then(|| name.to_vec());
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

/// A row of this family (no keys, group "connection").
const fn conn_cmd(
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
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "connection",
        summary,
        args,
        batched: false,
        handler,
    }
}

const LOADING_STALE_FAST: &[&str] = &["loading", "stale", "fast"];
/// Commands a client may send before it authenticates (Redis's `no_auth`).
const NO_AUTH: &[&str] = &["loading", "stale", "fast", "no_auth"];

/// The connection family's rows.
pub(crate) static COMMANDS: &[Spec] = &[
    conn_cmd(
        "ping",
        -1,
        &["fast", "stale"],
        "Returns the server's liveliness response.",
        &[opt(arg("message", "string"))],
        ping,
    ),
    conn_cmd(
        "echo",
        2,
        &["fast"],
        "Returns the given string.",
        &[arg("message", "string")],
        echo,
    ),
    conn_cmd(
        "select",
        2,
        LOADING_STALE_FAST,
        "Changes the selected database (corekv has only database 0).",
        &[arg("index", "integer")],
        select,
    ),
    conn_cmd(
        "client",
        -2,
        &[],
        "CLIENT ID | SETNAME name | GETNAME | SETINFO attr value.",
        &[],
        client,
    ),
    conn_cmd(
        "hello",
        -1,
        NO_AUTH,
        "Handshakes with the server (RESP2 only).",
        &[opt(arg("protover", "integer"))],
        hello,
    ),
    conn_cmd(
        "auth",
        -2,
        NO_AUTH,
        "Authenticates the connection (the default user's --requirepass).",
        &[opt(arg("username", "string")), arg("password", "string")],
        auth,
    ),
    conn_cmd("quit", -1, NO_AUTH, "Closes the connection.", &[], quit),
];

/// PING [message]
fn ping(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let msg = p.try_next_bytes();
    p.finish()?;
    match msg {
        None => conn.out.extend_from_slice(b"+PONG\r\n"),
        Some(m) => resp::bulk(&mut conn.out, m),
    }
    Ok(Effect::Continue)
}

/// ECHO message
fn echo(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let msg = p.next_bytes()?;
    p.finish()?;
    resp::bulk(&mut conn.out, msg);
    Ok(Effect::Continue)
}

/// SELECT index: only database 0 exists.
fn select(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let index = p.next_int()?;
    p.finish()?;
    if index != 0 {
        return Err(CmdError::msg("ERR DB index is out of range"));
    }
    conn.out.extend_from_slice(b"+OK\r\n");
    Ok(Effect::Continue)
}

/// CLIENT ID | GETNAME | SETNAME name | SETINFO attr value
fn client(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let sub = p.next_bytes()?;
    let rest = p.remaining();
    let out = &mut conn.out;
    if is_word(sub, "id") && rest == 0 {
        resp::integer(out, conn.client.id as i64);
    } else if is_word(sub, "getname") && rest == 0 {
        match &conn.client.name {
            Some(n) => resp::bulk(out, n),
            None => resp::null_bulk(out),
        }
    } else if is_word(sub, "setname") && rest == 1 {
        let name = p.next_bytes()?;
        if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
            return Err(CmdError::msg(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            ));
        }
        conn.client.set_name(name);
        out.extend_from_slice(b"+OK\r\n");
    } else if is_word(sub, "setinfo") && rest == 2 {
        out.extend_from_slice(b"+OK\r\n");
    } else if ["id", "getname", "setname", "setinfo"]
        .iter()
        .any(|w| is_word(sub, w))
    {
        let sub = String::from_utf8_lossy(sub).to_ascii_lowercase();
        return Err(CmdError::wrong_arity(&format!("client|{sub}")));
    } else {
        return Err(CmdError::unknown_subcommand(sub, "CLIENT"));
    }
    Ok(Effect::Continue)
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]: RESP2 only. As in
/// Redis, every option is read before the credentials are checked, and a
/// client that is still not authenticated gets NOAUTH.
fn hello(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    if let Some(version) = p.try_next_bytes() {
        match crate::op::parse_i64(version) {
            Some(2) => {}
            Some(_) => return Err(CmdError::msg("NOPROTO unsupported protocol version")),
            None => {
                return Err(CmdError::msg(
                    "ERR Protocol version is not an integer or out of range",
                ))
            }
        }
    }
    let mut setname = None;
    let mut credentials = None;
    while let Some(option) = p.try_next_bytes() {
        let more = p.remaining();
        if is_word(option, "setname") && more >= 1 {
            setname = Some(p.next_bytes()?);
        } else if is_word(option, "auth") && more >= 2 {
            credentials = Some((p.next_bytes()?, p.next_bytes()?));
        } else {
            return Err(CmdError::from(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(option)
            )));
        }
    }
    if let Some((user, pass)) = credentials {
        if !credentials_ok(conn, user, pass) {
            return Err(CmdError::msg(WRONGPASS));
        }
        conn.authed = true;
    }
    if !conn.authed {
        return Err(CmdError::msg(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let Some(name) = setname {
        conn.client.set_name(name);
    }
    hello_reply(&mut conn.out, conn.client.id);
    Ok(Effect::Continue)
}

/// Redis's answer to wrong credentials.
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Does `user`/`pass` name the default user with its password? Without
/// `--requirepass` the default user takes any password, as Redis's `nopass`
/// default user does; there are no other users.
fn credentials_ok(conn: &Connection<'_>, user: &[u8], pass: &[u8]) -> bool {
    if user != b"default" {
        return false;
    }
    match &conn.security.requirepass {
        None => true,
        Some(p) => crate::server::conn::token_matches(pass, p.as_bytes()),
    }
}

/// HELLO's RESP2 answer: a map as a flat array.
fn hello_reply(out: &mut Vec<u8>, client_id: u64) {
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

/// AUTH [username] password. A failed AUTH leaves an authenticated
/// connection authenticated, as in Redis.
fn auth(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    if p.remaining() > 2 {
        return Err(CmdError::msg("ERR syntax error"));
    }
    let first = p.next_bytes()?;
    let (user, pass) = match p.try_next_bytes() {
        Some(pass) => (first, pass),
        None if conn.security.requirepass.is_none() => {
            return Err(CmdError::msg(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ))
        }
        None => (&b"default"[..], first),
    };
    if !credentials_ok(conn, user, pass) {
        return Err(CmdError::msg(WRONGPASS));
    }
    conn.authed = true;
    conn.out.extend_from_slice(b"+OK\r\n");
    Ok(Effect::Continue)
}

/// QUIT: `+OK`, then the connection closes.
fn quit(conn: &mut Connection<'_>, _p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    conn.out.extend_from_slice(b"+OK\r\n");
    Ok(Effect::Close)
}
