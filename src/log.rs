//! Log levels for the messages corekv writes to stderr (start-up banner,
//! warnings, per-connection debug lines). One process-wide level, set once
//! by the binary (`--log-level`, `-q`) and read with a relaxed atomic load;
//! [`log!`](crate::log!) checks it before formatting anything. Owns nothing
//! else: the per-second stats line on stdout is switched by
//! `--stats-interval`, not by the level.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// How much to say, least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Failures only.
    Error = 1,
    /// Also conditions an operator should look at (accept failures).
    Warn = 2,
    /// Also start-up, configuration changes, shutdown (the default).
    Info = 3,
    /// Also every RESP client connecting and leaving, and CLIENT KILL.
    Debug = 4,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Sets the process's level.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Relaxed);
}

/// Whether messages of `level` are written.
#[inline]
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Relaxed)
}

/// `log!(Level::Warn, "format", args…)`: writes the line to stderr when the
/// level is enabled (nothing is formatted otherwise).
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)*) => {
        if $crate::log::enabled($level) {
            eprintln!($($arg)*);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order() {
        assert!(Level::Error < Level::Debug);
        set_level(Level::Warn);
        assert!(enabled(Level::Error) && enabled(Level::Warn));
        assert!(!enabled(Level::Info) && !enabled(Level::Debug));
        set_level(Level::Info);
        assert!(enabled(Level::Info) && !enabled(Level::Debug));
    }
}
