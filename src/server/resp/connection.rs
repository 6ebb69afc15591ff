//! The connection commands: PING, ECHO, SELECT, CLIENT, HELLO, AUTH, QUIT,
//! and the per-connection [`Client`] state they read and change. Replies are
//! written straight into the connection's output (the run was flushed
//! before). Touches no socket and no store.

use std::sync::Arc;

use std::sync::atomic::Ordering::Relaxed;

use crate::protocol::resp::{self, Proto};
use crate::server::observe::{self, ClientShared, Observe};

use super::table::{arg, is_word, opt, CmdError, Effect, Parse, Spec};
use super::{Connection, REDIS_COMPAT_VERSION};

/// Per-connection client state (CLIENT ID / SETNAME / GETNAME).
pub struct Client {
    /// CLIENT ID.
    pub id: u64,
    /// CLIENT SETNAME.
    pub name: Option<Vec<u8>>,
    /// What other shards see of this client (CLIENT LIST, CLIENT KILL).
    pub(crate) shared: Arc<ClientShared>,
}

impl Client {
    /// A client not bound to a socket (unit tests), with a fresh id.
    pub fn new() -> Client {
        Client::with_shared(Arc::new(ClientShared::new(
            0,
            -1,
            String::new(),
            String::new(),
        )))
    }

    /// The client of a connection, registered as `shared`.
    pub(crate) fn with_shared(shared: Arc<ClientShared>) -> Client {
        Client {
            id: shared.id,
            name: None,
            shared,
        }
    }

    /// Sets (or, with an empty name, clears) the connection's name.
    fn set_name(&mut self, name: &[u8]) {
        self.name = (!name.is_empty()).then(|| name.to_vec());
        observe::set_name(&self.shared, name);
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
    Spec::new(
        name,
        arity,
        flags,
        (0, 0, 0),
        "connection",
        summary,
        args,
        false,
        handler,
    )
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
        "Changes the selected database (0 to --databases - 1; 0 only with --cluster).",
        &[arg("index", "integer")],
        select,
    ),
    conn_cmd(
        "client",
        -2,
        &[],
        "CLIENT ID | SETNAME | GETNAME | SETINFO | LIST | INFO | KILL | HELP.",
        &[],
        client,
    ),
    conn_cmd(
        "hello",
        -1,
        NO_AUTH,
        "Handshakes with the server: RESP2 or RESP3, AUTH, SETNAME.",
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

/// SELECT index: databases 0..`--databases` (see
/// `keyspace::select_index`). SELECT is not batched, so the run queued
/// before it executes in the database selected before.
fn select(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let index = p.next_bytes()?;
    p.finish()?;
    conn.db = super::keyspace::select_index(conn, index)?;
    conn.client.shared.db.store(conn.db as u32, Relaxed);
    conn.out.extend_from_slice(b"+OK\r\n");
    Ok(Effect::Continue)
}

/// CLIENT ID | GETNAME | SETNAME name | SETINFO attr value | LIST | INFO |
/// KILL | HELP
fn client(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let sub = p.next_bytes()?;
    let rest = p.remaining();
    let out = &mut conn.out;
    if is_word(sub, "id") && rest == 0 {
        resp::integer(out, conn.client.id as i64);
    } else if is_word(sub, "getname") && rest == 0 {
        match &conn.client.name {
            Some(n) => resp::bulk(out, n),
            None => resp::null(out, conn.proto),
        }
    } else if is_word(sub, "setname") && rest == 1 {
        let name = p.next_bytes()?;
        check_name(name)?;
        conn.client.set_name(name);
        out.extend_from_slice(b"+OK\r\n");
    } else if is_word(sub, "setinfo") && rest == 2 {
        out.extend_from_slice(b"+OK\r\n");
    } else if is_word(sub, "list") {
        client_list(conn, p)?;
    } else if is_word(sub, "info") && rest == 0 {
        let line = client_line(conn.obs, &conn.client.shared, conn.client.id, "client|info");
        resp::verbatim(&mut conn.out, line.as_bytes(), conn.proto);
    } else if is_word(sub, "kill") && rest >= 1 {
        client_kill(conn, p)?;
    } else if is_word(sub, "help") && rest == 0 {
        super::diagnostics::help(&mut conn.out, CLIENT_HELP);
    } else if [
        "id", "getname", "setname", "setinfo", "info", "kill", "help",
    ]
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

/// HELLO [protover [AUTH user pass] [SETNAME name]]: switches the
/// connection to RESP2 or RESP3. As in Redis, every option is read before
/// the credentials are checked, a client that is still not authenticated
/// gets NOAUTH, then the name is checked and set, and the protocol changes
/// only once all of that passed.
fn hello(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let mut proto = None;
    if let Some(version) = p.try_next_bytes() {
        match crate::op::parse_i64(version) {
            Some(2) => proto = Some(Proto::Resp2),
            Some(3) => proto = Some(Proto::Resp3),
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
    // As Redis 7.0: a bad name is refused after AUTH took effect, and
    // before the protocol changes.
    if let Some(name) = setname {
        check_name(name)?;
        conn.client.set_name(name);
    }
    if let Some(proto) = proto {
        conn.proto = proto;
        conn.client
            .shared
            .resp
            .store(proto.version() as u8, Relaxed);
    }
    hello_reply(&mut conn.out, conn.client.id, conn.proto);
    Ok(Effect::Continue)
}

/// Redis's rule for client names: printable ASCII without spaces.
fn check_name(name: &[u8]) -> Result<(), CmdError> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(CmdError::msg(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
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

/// HELLO's answer: a map (a flat array in RESP2).
fn hello_reply(out: &mut Vec<u8>, client_id: u64, proto: Proto) {
    resp::map_header(out, 7, proto);
    for (k, v) in [("server", "redis"), ("version", REDIS_COMPAT_VERSION)] {
        resp::bulk(out, k.as_bytes());
        resp::bulk(out, v.as_bytes());
    }
    resp::bulk(out, b"proto");
    resp::integer(out, proto.version());
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

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "    * ID <client-id> [<client-id> ...]",
    "      Return clients with the given ids.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <attr> <value>",
    "    Accepted and ignored (client library name and version).",
    "HELP",
    "    Prints this help.",
];

/// One CLIENT LIST line, Redis 7.0's fields in Redis's order. corekv has no
/// pub/sub, transactions, ACL users or client-side caching, so those fields
/// carry Redis's values for a client that uses none of them.
fn client_line(obs: &Observe, c: &ClientShared, me: u64, current: &str) -> String {
    let now = std::time::Instant::now();
    let age = now.duration_since(c.created).as_secs();
    let idle_ms = obs
        .millis(now)
        .saturating_sub(c.last_active_ms.load(Relaxed));
    let cmd = match c.last_cmd.load(Relaxed) {
        u32::MAX => "NULL",
        slot => observe::slot_name(slot as usize),
    };
    // The connection answering sees itself running this very command.
    let cmd = if c.id == me { current } else { cmd };
    let name = observe::lock_name(c);
    let rbs = c.read_buf.load(Relaxed);
    let qbuf = c.qbuf.load(Relaxed);
    let obuf = c.out_buf.load(Relaxed);
    format!(
        "id={} addr={} laddr={} fd={} name={} age={age} idle={} flags=N db={} sub=0 psub=0 \
         ssub=0 multi=-1 qbuf={qbuf} qbuf-free={} argv-mem=0 multi-mem=0 rbs={rbs} rbp={rbs} \
         obl=0 oll=0 omem=0 tot-mem={} events=r cmd={cmd} user=default redir=-1 resp={}\n",
        c.id,
        c.addr,
        c.laddr,
        c.fd,
        String::from_utf8_lossy(&name),
        idle_ms / 1000,
        c.db.load(Relaxed),
        rbs.saturating_sub(qbuf),
        rbs + obuf,
        c.resp.load(Relaxed),
    )
}

/// CLIENT LIST [TYPE NORMAL|MASTER|REPLICA|PUBSUB] [ID id ...]: every RESP
/// client of the node (every shard's), one line each.
fn client_list(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<(), CmdError> {
    let mut ids: Option<Vec<u64>> = None;
    let mut only_normal = true;
    while let Some(opt) = p.try_next_bytes() {
        if is_word(opt, "type") {
            let t = p
                .try_next_bytes()
                .ok_or(CmdError::msg("ERR syntax error"))?;
            only_normal = if is_word(t, "normal") {
                true
            } else if ["master", "replica", "slave", "pubsub"]
                .iter()
                .any(|w| is_word(t, w))
            {
                false
            } else {
                return Err(CmdError::from(format!(
                    "ERR Unknown client type '{}'",
                    String::from_utf8_lossy(t)
                )));
            };
        } else if is_word(opt, "id") {
            let mut list = Vec::new();
            while let Some(id) = p.try_next_bytes() {
                match crate::op::parse_i64(id) {
                    Some(n) if n > 0 => list.push(n as u64),
                    _ => return Err(CmdError::msg("ERR Invalid client ID")),
                }
            }
            if list.is_empty() {
                return Err(CmdError::msg("ERR syntax error"));
            }
            ids = Some(list);
        } else {
            return Err(CmdError::msg("ERR syntax error"));
        }
    }
    let me = conn.client.id;
    let mut text = String::new();
    if only_normal {
        for c in conn.obs.clients() {
            if ids.as_ref().is_some_and(|ids| !ids.contains(&c.id)) {
                continue;
            }
            text.push_str(&client_line(conn.obs, &c, me, "client|list"));
        }
    }
    resp::verbatim(&mut conn.out, text.as_bytes(), conn.proto);
    Ok(())
}

/// CLIENT KILL ip:port (old form: `+OK` or an error) | CLIENT KILL
/// [ID id] [ADDR ip:port] [LADDR ip:port] [SKIPME yes|no] ... (new form: the
/// number killed). A client on another shard has its socket shut down; this
/// connection, when it kills itself, closes after the reply.
fn client_kill(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<(), CmdError> {
    let me = conn.client.id;
    if p.remaining() == 1 {
        let addr = p.next_bytes()?;
        let target = conn
            .obs
            .clients()
            .into_iter()
            .find(|c| c.addr.as_bytes() == addr);
        match target {
            Some(c) if conn.obs.kill(&c, me) => conn.out.extend_from_slice(b"+OK\r\n"),
            _ => return Err(CmdError::msg("ERR No such client")),
        }
        return Ok(());
    }
    let (mut id, mut addr, mut laddr, mut skipme) = (None, None, None, true);
    while let Some(opt) = p.try_next_bytes() {
        let value = p
            .try_next_bytes()
            .ok_or(CmdError::msg("ERR syntax error"))?;
        if is_word(opt, "id") {
            match crate::op::parse_i64(value) {
                Some(n) if n > 0 => id = Some(n as u64),
                _ => return Err(CmdError::msg("ERR client-id should be greater than 0")),
            }
        } else if is_word(opt, "addr") {
            addr = Some(value);
        } else if is_word(opt, "laddr") {
            laddr = Some(value);
        } else if is_word(opt, "skipme") {
            skipme = if is_word(value, "yes") {
                true
            } else if is_word(value, "no") {
                false
            } else {
                return Err(CmdError::msg("ERR syntax error"));
            };
        } else if is_word(opt, "type") || is_word(opt, "user") || is_word(opt, "maxage") {
            // No replicas, pub/sub clients or ACL users: only `normal` and
            // `default` match, and those are every client.
            if !(is_word(value, "normal") || is_word(value, "default") || is_word(opt, "maxage")) {
                resp::integer(&mut conn.out, 0);
                return Ok(());
            }
        } else {
            return Err(CmdError::msg("ERR syntax error"));
        }
    }
    let mut killed = 0;
    for c in conn.obs.clients() {
        let matches = id.map_or(true, |id| c.id == id)
            && addr.map_or(true, |a| c.addr.as_bytes() == a)
            && laddr.map_or(true, |a| c.laddr.as_bytes() == a)
            && !(skipme && c.id == me);
        if matches && conn.obs.kill(&c, me) {
            killed += 1;
        }
    }
    resp::integer(&mut conn.out, killed);
    Ok(())
}
