//! What every client connection shares, whatever its protocol: its charge
//! against the shard's connection-memory budget, its read deadlines
//! (partial-request timeout, idle timeout, shrinking idle buffers) and the
//! access rules (protected mode), and its turn: a connection whose client
//! keeps it fed never waits, so it lets the executor's reactor run between
//! rounds ([`let_reactor_run`]).
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

/// How long a task may keep the executor from its rings (timers, other
/// sockets' readiness, disk completions) before [`let_reactor_run`] waits
/// for a pass.
pub const PASS_EVERY: Duration = Duration::from_millis(1);

/// Waits for one pass of the executor's reactor if none happened for
/// [`PASS_EVERY`]; otherwise returns at once (one clock read).
///
/// glommio looks at its rings only when every task waits (or the latency
/// ring fires). A connection whose client keeps it fed finds data at every
/// read and never waits, so without this the shard's timers (active
/// expiry, `everysec`), every other connection's requests and the log's
/// completions wait until that client pauses: seconds, under a load
/// generator as fast as the server. Called once per round of requests (a
/// read's worth), so a round's work is the unit of preemption.
#[inline]
pub async fn let_reactor_run() {
    if glommio::executor().since_reactor_pass() >= PASS_EVERY {
        crate::persist::log::reactor_pass().await;
    }
}

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
    use super::{let_reactor_run, token_matches, PASS_EVERY};
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    /// A task that never waits but calls `let_reactor_run` between units
    /// of work lets a timer fire while it runs (without it, the executor
    /// would not look at its timers until the loop ended).
    #[test]
    fn a_task_that_never_waits_still_lets_timers_fire() {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .unwrap();
        let (units, fired_after) = ex.run(async {
            let fired = Rc::new(Cell::new(false));
            let f = fired.clone();
            glommio::spawn_local(async move {
                glommio::timer::sleep(Duration::from_millis(10)).await;
                f.set(true);
            })
            .detach();
            let start = Instant::now();
            let mut units = 0u32;
            while !fired.get() && start.elapsed() < Duration::from_secs(5) {
                // A unit of work: a fifth of the pass interval, no await.
                let t = Instant::now();
                while t.elapsed() < PASS_EVERY / 5 {
                    std::hint::spin_loop();
                }
                units += 1;
                let_reactor_run().await;
            }
            (units, fired.get().then(|| start.elapsed()))
        });
        let after = fired_after.expect("the timer never fired while the loop ran");
        assert!(units > 1, "{units} units");
        eprintln!("timer fired after {after:?} ({units} units of work)");
    }

    #[test]
    fn tokens() {
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secreT", b"secret"));
        assert!(!token_matches(b"secret1", b"secret"));
        assert!(!token_matches(b"secre", b"secret"));
        assert!(!token_matches(b"", b"secret"));
    }
}
