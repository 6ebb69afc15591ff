//! INCRBYFLOAT's arithmetic: Redis adds in C `long double` (80-bit x87 on
//! x86_64), parses with `strtold` and prints with `"%.17Lf"`, so its replies
//! carry that type's digits (`0.1` + `5.0e3` is `5000.10000000000000009`).
//! Rust has no `long double`; `float.c` (compiled by `build.rs`) is Redis's
//! `string2ld` and `ld2string` over the same C library, so corekv answers
//! with the same bytes. Pure: no state, no I/O, no allocation.

use std::ffi::{c_char, c_long};

use crate::op::OpError;

/// Longest text INCRBYFLOAT reads or writes (Redis's
/// `MAX_LONG_DOUBLE_CHARS`): the reply buffer's size.
pub const OUT_LEN: usize = 5 * 1024;

extern "C" {
    fn corekv_incrbyfloat(
        current: *const c_char,
        current_len: usize,
        incr: *const c_char,
        incr_len: usize,
        out: *mut c_char,
        out_len: usize,
    ) -> c_long;
}

/// `current + incr` as Redis's INCRBYFLOAT text, written into `out`:
/// [`OpError::NotFloat`] when either is not a float to Redis (`strtold`'s
/// grammar, no leading space, no NaN, not out of range),
/// [`OpError::NanOrInfinity`] when the sum is.
pub fn incr_by_float<'b>(
    current: &[u8],
    incr: &[u8],
    out: &'b mut [u8; OUT_LEN],
) -> Result<&'b [u8], OpError> {
    // SAFETY: both inputs are valid for their lengths (the C side copies at
    // most OUT_LEN - 1 bytes of each into its own NUL-terminated buffer and
    // rejects longer ones); `out` is valid for OUT_LEN bytes and the C side
    // writes at most that many (snprintf with the size).
    let n = unsafe {
        corekv_incrbyfloat(
            current.as_ptr().cast(),
            current.len(),
            incr.as_ptr().cast(),
            incr.len(),
            out.as_mut_ptr().cast(),
            OUT_LEN,
        )
    };
    match n {
        -2 => Err(OpError::NanOrInfinity),
        n if n > 0 && (n as usize) < OUT_LEN => Ok(&out[..n as usize]),
        _ => Err(OpError::NotFloat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(a: &str, b: &str) -> Result<String, OpError> {
        let mut out = [0u8; OUT_LEN];
        incr_by_float(a.as_bytes(), b.as_bytes(), &mut out)
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    }

    #[test]
    fn redis_digits_and_errors() {
        assert_eq!(add("0", "0.1").unwrap(), "0.1");
        assert_eq!(add("0.1", "5.0e3").unwrap(), "5000.10000000000000009");
        assert_eq!(add("10.5", "-10.5").unwrap(), "0");
        assert_eq!(add("-0", "-0").unwrap(), "0");
        assert_eq!(add("3", "0x10").unwrap(), "19");
        assert_eq!(add("1\0junk", "1"), Err(OpError::NotFloat));
        assert_eq!(add("0", "  1"), Err(OpError::NotFloat));
        assert_eq!(add("0", "1 "), Err(OpError::NotFloat));
        assert_eq!(add("0", "nan"), Err(OpError::NotFloat));
        assert_eq!(add("", "1"), Err(OpError::NotFloat));
        assert_eq!(add("abc", "1"), Err(OpError::NotFloat));
        assert_eq!(add("0", "1e5000"), Err(OpError::NotFloat));
        assert_eq!(add("inf", "1"), Err(OpError::NanOrInfinity));
        assert_eq!(add("inf", "-inf"), Err(OpError::NanOrInfinity));
        let long = "1".repeat(OUT_LEN);
        assert_eq!(add(&long, "1"), Err(OpError::NotFloat));
        assert_eq!(add("1e4000", "1").unwrap().len(), 4000);
    }
}
