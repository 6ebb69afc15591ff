//! What every client connection shares, whatever its protocol: its charge
//! against the shard's connection-memory budget, its read deadlines
//! (partial-request timeout, idle timeout, shrinking idle buffers) and the
//! access rules (protected mode).
//!
//! It owns no buffers and parses nothing: [`super::native`] and
//! [`super::resp`] own their buffers and tell this module how big they are
//! ([`Charge::set`]) and whether a request is half-arrived
//! ([`Deadlines::before_read`]).
//!
//! # Memory
//!
//! A connection starts with small buffers ([`INITIAL_READ`]) and grows them
//! only with bytes that actually arrived (doubling), never with a length a
//! header declares. Every growth is charged to the shard first; a shard's
//! share of `--max-conn-memory` is a hard cap, and the connection that would
//! pass it gets a clear error and is closed. A connection whose buffers grew
//! past [`KEEP_BUFFER`] and then went quiet for [`SHRINK_AFTER`] gives the
//! memory back. Closing a connection releases its charge.

use std::time::{Duration, Instant};

use glommio::net::TcpStream;

use crate::config::Limits;
use crate::shard::Shard;

/// Initial read buffer of a connection: one small request fits.
pub const INITIAL_READ: usize = 4 * 1024;
/// Buffers up to this size are kept when a connection goes quiet; larger
/// ones are released after [`SHRINK_AFTER`]. Below glibc's default mmap
/// threshold (128 KiB), so kept buffers come from the shard thread's heap.
pub const KEEP_BUFFER: usize = 64 * 1024;
/// Replies are written out once this many bytes are pending, even in the
/// middle of a pipeline, so a long pipeline streams instead of piling up.
pub const DRAIN_AT: usize = 1024 * 1024;
/// How long a connection with large, empty buffers waits before releasing
/// them.
pub const SHRINK_AFTER: Duration = Duration::from_millis(200);

/// A connection's bytes charged to its shard's connection-memory budget.
/// Dropping it gives them back.
pub struct Charge<'s> {
    shard: &'s Shard,
    held: usize,
}

impl<'s> Charge<'s> {
    /// A connection holding nothing yet.
    pub fn new(shard: &'s Shard) -> Charge<'s> {
        Charge { shard, held: 0 }
    }

    /// Charges `bytes` in total for this connection; `false` (and nothing
    /// changed) when growing to it would pass the shard's budget.
    pub fn set(&mut self, bytes: usize) -> bool {
        if bytes == self.held {
            return true;
        }
        if self.shard.recharge_conn_memory(self.held, bytes) {
            self.held = bytes;
            true
        } else {
            false
        }
    }

    /// Bytes charged now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Bytes this connection could still grow by.
    pub fn headroom(&self) -> usize {
        self.shard.conn_memory_left()
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        self.set(0);
    }
}

/// The error text for a connection that would pass the budget.
pub const BUDGET_EXCEEDED: &str =
    "connection memory budget exhausted: the node's --max-conn-memory is in use by other connections";

/// What a read that timed out means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// A request stayed incomplete past `--client-timeout`: close.
    Partial,
    /// The connection was idle past `--timeout`: close.
    Idle,
    /// Only the shrink delay passed: release idle buffers, read again.
    Shrink,
}

/// A connection's read deadlines, applied through the stream's read timeout
/// (glommio arms a timer only when a read actually has to wait, so a busy
/// connection pays nothing).
pub struct Deadlines {
    client_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    /// When the request now incomplete in the buffer started arriving.
    partial_since: Option<Instant>,
    /// Deadline of the read in progress, and whether it only shrinks.
    deadline: Option<(Instant, Expired)>,
    /// The timeout last set on the stream.
    current: Option<Duration>,
}

impl Deadlines {
    /// Deadlines from the configured limits; also bounds every write by
    /// `--client-timeout` (a client that does not read its replies is
    /// closed rather than left holding them forever).
    pub fn new(stream: &TcpStream, limits: &Limits) -> Deadlines {
        let _ = stream.set_write_timeout(limits.client_timeout);
        Deadlines {
            client_timeout: limits.client_timeout,
            idle_timeout: limits.idle_timeout,
            partial_since: None,
            deadline: None,
            current: None,
        }
    }

    /// Sets the stream's read timeout for the next read. `partial`: a
    /// request has begun arriving; `shrinkable`: the buffers are large and
    /// could be released if nothing comes.
    pub fn before_read(&mut self, stream: &TcpStream, partial: bool, shrinkable: bool) {
        let wanted = if partial {
            self.client_timeout.map(|t| (t, Expired::Partial))
        } else {
            self.partial_since = None;
            self.idle_timeout.map(|t| (t, Expired::Idle))
        };
        if wanted.is_none() && !shrinkable {
            self.deadline = None;
            if self.current.is_some() {
                self.current = None;
                let _ = stream.set_read_timeout(None);
            }
            return;
        }
        let now = Instant::now();
        let mut deadline = wanted.map(|(t, why)| {
            let since = if partial {
                *self.partial_since.get_or_insert(now)
            } else {
                now
            };
            (since + t, why)
        });
        if shrinkable && deadline.map_or(true, |(d, _)| d > now + SHRINK_AFTER) {
            deadline = Some((now + SHRINK_AFTER, Expired::Shrink));
        }
        self.deadline = deadline;
        let timeout = deadline.map(|(d, _)| {
            d.saturating_duration_since(now)
                .max(Duration::from_millis(1))
        });
        if timeout != self.current {
            self.current = timeout;
            let _ = stream.set_read_timeout(timeout);
        }
    }

    /// What the read that just failed with `TimedOut` means.
    pub fn expired(&self) -> Expired {
        self.deadline.map_or(Expired::Idle, |(_, why)| why)
    }
}

/// Compares a given password with the configured one in time that does not
/// depend on where they differ (RESP AUTH, native HELLO token).
pub fn token_matches(given: &[u8], password: &[u8]) -> bool {
    let mut diff = given.len() ^ password.len();
    for (i, &p) in password.iter().enumerate() {
        diff |= (given.get(i).copied().unwrap_or(0) ^ p) as usize;
    }
    diff == 0
}

/// Redis's protected-mode refusal, word for word (Redis 7.0).
pub const PROTECTED_MODE_DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn tokens() {
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secreT", b"secret"));
        assert!(!token_matches(b"secret1", b"secret"));
        assert!(!token_matches(b"secre", b"secret"));
        assert!(!token_matches(b"", b"secret"));
    }
}
