//! Test support shared by the tests that need it (not part of the production
//! library): the linearizability checker and the history recorder feeding it.
//! A test includes it with `#[path = "support/mod.rs"] mod support;`.

#![allow(dead_code)]

pub mod history;
pub mod linearizability;
pub mod multikey;
