//! The load generator's library half: the seed-exact workload, drivers,
//! latency histograms, reports and plots. Lives in the top-level `bench/`
//! folder (the design card's layout) and is compiled into the `corekv`
//! library as `corekv::bench`, so `corekv bench` and the tests use it as any
//! user would.

pub mod cli;
pub mod driver;
mod memcached_target;
pub mod plot;
pub mod report;
mod resp_target;
pub mod workload;
