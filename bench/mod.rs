//! The load generator's library half: the seed-exact workload, drivers,
//! latency histograms, reports and plots. Lives in the top-level `bench/`
//! folder (the design card's layout) and is compiled into the `corekv`
//! library as `corekv::bench`, so `corekv bench` and the tests use it as any
//! user would.
//!
//! Arrows run one way, no circle:
//!
//! ```text
//! cli ─▶ driver ─▶ native_target, resp_target, memcached_target ─▶ session ─▶ report
//! cli ─▶ figures ─▶ plot, report        cli ─▶ sysstat
//! driver and targets ─▶ workload        targets ─▶ client, protocol
//! ```
//!
//! | module | owns |
//! |---|---|
//! | `workload` | the seed-exact key and operation stream |
//! | `driver` | workers, the run's steps, assembling a report |
//! | `session` | the run's clock, pacing, per-worker recording |
//! | `native_target`, `resp_target`, `memcached_target` | one target each: sessions and server monitor |
//! | `report` | the JSON schema, merging, histograms, text rendering |
//! | `figures`, `plot` | which series a figure shows; drawing them |
//! | `sysstat` | /proc sampling for `corekv monitor` and utilization reports; the machine's description |
//! | `cli` | the `corekv bench` / `corekv report` command lines |

pub mod cli;
pub mod driver;
pub mod figures;
mod memcached_target;
mod native_target;
pub mod plot;
pub mod report;
mod resp_target;
mod session;
pub mod sysstat;
pub mod workload;
