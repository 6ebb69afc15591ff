//! The fast lane for the two commands that make up most pipelines: a plain
//! `GET key` and `SET key value` in multibulk form. [`recognise`] reads the
//! frame's bytes directly (no argument vector, no table lookup, no argument
//! cursor, no handler call through a pointer, no future per command) and the
//! connection queues the op exactly as the GET and SET handlers do
//! (`strings::queue_get`, `expiry::queue_set`), under the same row's
//! statistics.
//!
//! It only ever says yes to a frame the general parser
//! ([`crate::protocol::resp::parse_command`]) would accept with the same
//! length and the same argument ranges, and that `dispatch` would answer by
//! queueing that very op: anything else — another command, SET with
//! options, an incomplete or malformed frame, a bulk length past the
//! parser's limit, a leading zero — is `None`, and the frame takes the
//! general path, which gives Redis's reply or error. The connection uses the
//! lane only while nothing else applies to a key command (authenticated, a
//! one-node cluster, see `Connection::fast_lane`). Touches no socket and no
//! store.

use std::ops::Range;

/// A frame the lane takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fast {
    /// `GET key`.
    Get { key: Range<usize> },
    /// `SET key value`, no options.
    Set {
        key: Range<usize>,
        value: Range<usize>,
    },
}

/// The table rows (statistics slots) of GET and SET: the strings family
/// comes first and starts with them (checked by a test).
pub(crate) const GET_ROW: u32 = 0;
/// See [`GET_ROW`].
pub(crate) const SET_ROW: u32 = 1;

/// `*2\r\n$3\r\n`, the first 8 bytes of a GET frame, little-endian.
const HEAD2: u64 = u64::from_le_bytes(*b"*2\r\n$3\r\n");
/// `*3\r\n$3\r\n`, the first 8 bytes of a SET frame.
const HEAD3: u64 = u64::from_le_bytes(*b"*3\r\n$3\r\n");

/// If `buf[pos..]` starts with a complete, well-formed `GET key` or `SET key
/// value` multibulk frame (name in any case), whose bulk lengths are at most
/// `max_bulk`: the command, its ranges into `buf`, and the frame's length.
#[inline]
pub(crate) fn recognise(buf: &[u8], pos: usize, max_bulk: usize) -> Option<(Fast, usize)> {
    let b = buf.get(pos..)?;
    let head = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let nargs = if head == HEAD2 {
        2
    } else if head == HEAD3 {
        3
    } else {
        return None;
    };
    let name = b.get(8..13)?;
    if name[3] != b'\r' || name[4] != b'\n' {
        return None;
    }
    // `x | 0x20` equals a lower-case letter only for that letter and its
    // upper case.
    let lower = [name[0] | 0x20, name[1] | 0x20, name[2] | 0x20];
    let cmd = match (nargs, &lower) {
        (2, b"get") => {
            let (key, end) = bulk(b, 13, max_bulk)?;
            (
                Fast::Get {
                    key: shift(key, pos),
                },
                end,
            )
        }
        (3, b"set") => {
            let (key, next) = bulk(b, 13, max_bulk)?;
            let (value, end) = bulk(b, next, max_bulk)?;
            (
                Fast::Set {
                    key: shift(key, pos),
                    value: shift(value, pos),
                },
                end,
            )
        }
        _ => return None,
    };
    Some(cmd)
}

#[inline]
fn shift(r: Range<usize>, by: usize) -> Range<usize> {
    r.start + by..r.end + by
}

/// One complete bulk string `$<len>\r\n<len bytes>\r\n` at `b[p..]`: its
/// payload range and the index after it. Canonical lengths only (no sign,
/// no leading zero), at most `max_bulk`.
#[inline]
fn bulk(b: &[u8], mut p: usize, max_bulk: usize) -> Option<(Range<usize>, usize)> {
    if *b.get(p)? != b'$' {
        return None;
    }
    p += 1;
    let first = *b.get(p)?;
    if !first.is_ascii_digit() {
        return None;
    }
    let mut len = usize::from(first - b'0');
    p += 1;
    loop {
        let c = *b.get(p)?;
        if c == b'\r' {
            break;
        }
        // A leading zero ("01") is the general parser's error to give.
        if !c.is_ascii_digit() || len == 0 {
            return None;
        }
        len = len * 10 + usize::from(c - b'0');
        if len > max_bulk {
            return None;
        }
        p += 1;
    }
    if len > max_bulk || *b.get(p + 1)? != b'\n' {
        return None;
    }
    let start = p + 2;
    let end = start.checked_add(len)?;
    if b.get(end..end + 2)? != b"\r\n" {
        return None;
    }
    Some((start..end, end + 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::resp::{parse_command, Limits};

    fn lim(max_bulk: usize) -> Limits {
        Limits {
            max_bulk_len: max_bulk,
            ..Limits::default()
        }
    }

    /// Whenever the lane takes a frame, the general parser reads the same
    /// frame length and the same arguments, and the name is GET or SET with
    /// the lane's arity.
    fn agrees(buf: &[u8], pos: usize, max_bulk: usize) -> bool {
        let Some((cmd, n)) = recognise(buf, pos, max_bulk) else {
            return false;
        };
        let mut args = Vec::new();
        let got = parse_command(&buf[pos..], &lim(max_bulk), &mut args);
        assert_eq!(got, Ok(Some(n)), "{:?}", String::from_utf8_lossy(buf));
        let args: Vec<Range<usize>> = args.into_iter().map(|r| shift(r, pos)).collect();
        let name = buf[args[0].clone()].to_ascii_lowercase();
        match cmd {
            Fast::Get { key } => {
                assert_eq!((name.as_slice(), &args[1..]), (&b"get"[..], &[key][..]));
            }
            Fast::Set { key, value } => {
                assert_eq!(
                    (name.as_slice(), &args[1..]),
                    (&b"set"[..], &[key, value][..])
                );
            }
        }
        true
    }

    #[test]
    fn rows_are_get_and_set() {
        use super::super::table::lookup_row;
        assert_eq!(lookup_row(b"get").map(|r| r.0), Some(GET_ROW as usize));
        assert_eq!(lookup_row(b"set").map(|r| r.0), Some(SET_ROW as usize));
    }

    #[test]
    fn takes_plain_get_and_set_in_any_case() {
        let buf = b"xx*2\r\n$3\r\ngEt\r\n$3\r\nkey\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";
        let (cmd, n) = recognise(buf, 2, 100).unwrap();
        assert_eq!((cmd, n), (Fast::Get { key: 19..22 }, 22));
        assert!(agrees(buf, 2, 100));
        let (cmd, n) = recognise(buf, 24, 100).unwrap();
        assert_eq!(
            (cmd, n),
            (
                Fast::Set {
                    key: 41..42,
                    value: 48..48
                },
                26
            )
        );
        assert!(agrees(buf, 24, 100));
    }

    #[test]
    fn leaves_everything_else_to_the_general_path() {
        for frame in [
            &b"*2\r\n$3\r\nGEX\r\n$1\r\nk\r\n"[..],
            b"*2\r\n$3\r\nSET\r\n$1\r\nk\r\n", // SET, wrong arity
            b"*3\r\n$3\r\nGET\r\n$1\r\nk\r\n$1\r\nv\r\n", // GET, wrong arity
            b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nNX\r\n", // options
            b"*2\r\n$3\r\nGET\r\n$01\r\nk\r\n", // leading zero
            b"*2\r\n$3\r\nGET\r\n$-1\r\n",     // negative
            b"*2\r\n$3\r\nGET\r\n$+1\r\nk\r\n", // sign
            b"*2\r\n$3\r\nGET\r\n$1\r\nkk\r\n", // bad terminator
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\rx",  // bad terminator
            b"*2\r\n$3\r\nGET\r\n$1\rxk\r\n",  // bad header end
            b"*2\r\n$3\r\nGET\r\n$101\r\nk\r\n", // past max_bulk
            b"*2\r\n$3\r\nGET\r\n$99999999999999999999999\r\n", // overflow
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r",   // incomplete
            b"*2\r\n$3\r\nGET\r\n",            // incomplete
            b"GET k\r\n",                      // inline
            b"*2\r\n$4\r\nGETS\r\n$1\r\nk\r\n",
            b"*2\r\n$3\r\nG\x05T\r\n$1\r\nk\r\n",
        ] {
            assert_eq!(
                recognise(frame, 0, 100),
                None,
                "{:?}",
                String::from_utf8_lossy(frame)
            );
        }
        // Exactly at the bound is taken.
        let at = format!("*2\r\n$3\r\nget\r\n$100\r\n{}\r\n", "k".repeat(100));
        assert!(agrees(at.as_bytes(), 0, 100));
    }

    /// Every prefix and every one-byte corruption of a pipeline: whatever
    /// the lane takes, the general parser reads identically.
    #[test]
    fn agrees_with_the_general_parser() {
        let pipeline = b"*3\r\n$3\r\nset\r\n$5\r\nkey:1\r\n$10\r\n0123456789\r\n*2\r\n$3\r\nGET\r\n$5\r\nkey:1\r\n";
        let second = 41;
        assert!(agrees(pipeline, 0, 64) && agrees(pipeline, second, 64));
        for cut in 0..pipeline.len() {
            // A frame is taken once, and only once, all of it is there.
            assert_eq!(agrees(&pipeline[..cut], 0, 64), cut >= second);
            if cut >= second {
                assert!(!agrees(&pipeline[..cut], second, 64));
            }
        }
        for i in 0..pipeline.len() {
            for byte in [
                b'0', b'1', b'9', b'$', b'*', b'\r', b'\n', b'a', b'G', 0, 0xff,
            ] {
                let mut b = pipeline.to_vec();
                b[i] = byte;
                for pos in [0, second] {
                    agrees(&b, pos, 64);
                }
            }
        }
    }
}
