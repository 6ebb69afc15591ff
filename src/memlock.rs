//! The locked-memory limit glommio's io_uring rings and buffers need.
//!
//! The server, the client and the bench all start glommio executors, so all
//! three call [`raise_memlock`] before they do; it lives here, beside none of
//! them. It owns one process-wide setting (RLIMIT_MEMLOCK) and touches
//! nothing else.

/// Raises RLIMIT_MEMLOCK to what glommio's io_uring needs, where allowed.
/// Returns the soft limit in effect afterwards (bytes).
pub fn raise_memlock(needed: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) != 0 {
            return 0;
        }
        if r.rlim_cur != libc::RLIM_INFINITY && r.rlim_cur < needed {
            let want = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &want) != 0 {
                let hard = libc::rlimit {
                    rlim_cur: r.rlim_max,
                    rlim_max: r.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_MEMLOCK, &hard);
            }
            libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r);
        }
        r.rlim_cur
    }
}
