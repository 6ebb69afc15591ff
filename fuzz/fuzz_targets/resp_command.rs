//! The RESP request parser on arbitrary bytes, with small limits so they are
//! hit. Invariants: a parsed command consumes at least one byte and no more
//! than it was given, its arguments lie inside what it consumed, their count
//! and lengths respect the limits, and parsing a prefix never yields a
//! different command (it needs more bytes or fails the same way).
#![no_main]

use corekv::protocol::resp::{parse_command, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_bulk_len: 64,
        max_args: 8,
        max_inline_len: 128,
    };
    let mut args = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        match parse_command(&data[pos..], &limits, &mut args) {
            Ok(Some(n)) => {
                assert!(n >= 1 && pos + n <= data.len());
                assert!(args.len() <= limits.max_args);
                for a in &args {
                    assert!(a.start <= a.end && a.end <= n);
                    assert!(a.len() <= limits.max_bulk_len.max(limits.max_inline_len));
                }
                // Every strict prefix is incomplete (or an error), never a
                // shorter command.
                let mut again = Vec::new();
                if n > 1 {
                    let cut = n / 2;
                    if let Ok(Some(m)) = parse_command(&data[pos..pos + cut], &limits, &mut again) {
                        panic!("prefix of {cut} bytes parsed as a {m}-byte command; whole is {n}");
                    }
                }
                pos += n;
            }
            Ok(None) | Err(_) => return,
        }
    }
});
