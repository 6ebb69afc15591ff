//! An owned RESP2 reply for assertions ([`R`]), parsed with corekv's own
//! reply parser (the byte-for-byte differential checks in [`super::redis`]
//! do not depend on it).

use corekv::protocol::resp::{parse_reply, Reply};

/// An owned reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum R {
    Simple(String),
    Err(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Arr(Option<Vec<R>>),
}

/// Copies a borrowed reply.
pub fn own(r: &Reply<'_>) -> R {
    match r {
        Reply::Simple(s) => R::Simple(String::from_utf8_lossy(s).into()),
        Reply::Error(s) => R::Err(String::from_utf8_lossy(s).into()),
        Reply::Integer(i) => R::Int(*i),
        Reply::Bulk(b) => R::Bulk(b.map(|b| b.to_vec())),
        Reply::Array(a) => R::Arr(a.as_ref().map(|v| v.iter().map(own).collect())),
    }
}

/// Parses exactly one whole reply (panics otherwise: a test failure).
pub fn parsed(bytes: &[u8]) -> R {
    let (r, used) = parse_reply(bytes)
        .expect("valid reply")
        .expect("a whole reply");
    assert_eq!(used, bytes.len());
    own(&r)
}

impl R {
    /// A bulk, simple or error reply's text.
    pub fn text(&self) -> String {
        match self {
            R::Bulk(Some(b)) => String::from_utf8_lossy(b).into(),
            R::Simple(s) | R::Err(s) => s.clone(),
            other => panic!("not text: {other:?}"),
        }
    }
    /// An array reply's elements.
    pub fn arr(&self) -> &[R] {
        match self {
            R::Arr(Some(a)) => a,
            other => panic!("not an array: {other:?}"),
        }
    }
    /// An integer reply.
    pub fn int(&self) -> i64 {
        match self {
            R::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }
}
