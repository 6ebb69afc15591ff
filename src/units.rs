//! Human-readable figures for every report corekv prints (server stats line
//! and INFO, `corekv stats`, the bench's progress and reports, `corekv
//! monitor`): byte sizes in binary units for the server's memory (as Redis's
//! `*_human` fields), in decimal units for the bench's utilization summaries
//! (beside decimal Gbit/s), and operation rates. Pure formatting; it owns no
//! state and touches no I/O.

/// `1234567` → `1.2MiB` (binary units; bytes below 1 KiB as `512B`).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// `1790000000` → `1.79 GB`, `12300000` → `12.3 MB` (decimal units): the
/// bench's memory figures, decimal like the network's Gbit/s beside them.
pub fn si_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else {
        format!("{:.1} MB", b / 1e6)
    }
}

/// An operation rate with an SI prefix: `1234567.0` → `1.235 M`,
/// `12345.0` → `12.3 k`, `12.0` → `12.0 ` (a unit such as `op/s` follows).
pub fn fmt_rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.3} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.1} ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_rates() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(3 << 20), "3.0MiB");
        assert_eq!(si_bytes(1_790_000_000), "1.79 GB");
        assert_eq!(si_bytes(12_300_000), "12.3 MB");
        assert_eq!(fmt_rate(1_234_567.0), "1.235 M");
        assert_eq!(fmt_rate(12_345.0), "12.3 k");
        assert_eq!(fmt_rate(12.0), "12.0 ");
    }
}
