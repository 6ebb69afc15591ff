//! The RESP reply parsers (what the bench's RESP target and the tests read)
//! on arbitrary bytes. Invariants: `parse_reply` and `skip_reply` agree on
//! whether a reply is complete and on its length, and never claim more bytes
//! than they were given.
#![no_main]

use corekv::protocol::resp::{parse_reply, skip_reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_reply(data);
    let skipped = skip_reply(data);
    match (&parsed, &skipped) {
        (Ok(Some((_, n))), Ok(Some(s))) => {
            assert_eq!(*n, s.consumed);
            assert!(*n <= data.len());
        }
        (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
        _ => panic!(
            "parse_reply and skip_reply disagree: {:?} vs {:?}",
            parsed.as_ref().map(|o| o.as_ref().map(|(_, n)| *n)),
            skipped.as_ref().map(|o| o.as_ref().map(|s| s.consumed))
        ),
    }
});
