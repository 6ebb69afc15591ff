//! Session machinery shared by every bench target: the run's clock
//! ([`Timing`]), per-second buckets and a worker's recording state, the
//! worker context its sessions share, the open/closed-loop [`Pacer`] and
//! [`sleep_until`]. Targets ([`super::native_target`],
//! [`super::resp_target`], [`super::memcached_target`]) and the driver use it; it uses none of them, so the
//! arrows run one way: driver → targets → session → report.
//!
//! It owns timing and recording, not connections, workloads or reports.
//!
//! # Sessions
//!
//! A session owns one seeded generator and its target's request and result
//! buffers, all reused: no heap allocation per operation. It draws `batch`
//! operations in the generator's order, sends them (native: split per node
//! and shard, parts in flight together; RESP: one pipeline per host;
//! memcached: one pipeline per host, consecutive GETs as multi-gets), waits
//! for every result and counts per-operation errors and GET misses. With
//! `--cache-aside` ([`WorkerCtx::cache_aside`]) a batch is `batch` GETs led by
//! a SET for each key the previous batch missed (the fills; their key
//! indices sit in reused buffers). Closed loop: the next batch
//! is generated as soon as the previous one is answered. Open loop
//! (`rate`): session `g` of `S` sends batch `n` at the intended time
//! `t0 + (n + g/S) * S * batch / rate`; its batch is generated before that
//! time, and latency is measured from the *intended* send time, so a stall
//! shows up in the latency of every batch that should have been sent during
//! it (no coordinated omission). A session that falls behind sends at once
//! and never skips an operation.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::report::{LatencyHistogram, ServerNodeReport, ShardTotals};
use crate::op::{arg as expiry_flag, ExpiryArg};

/// The run's clock: warm-up from `t0`, measured window `[start, end)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) t0: Instant,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    /// Index of the first (warm-up) second: `-ceil(warmup)`.
    pub(crate) first_second: i64,
    /// Number of measured seconds: `ceil(secs)` (the last may be partial).
    pub(crate) seconds: i64,
}

impl Timing {
    /// The clock of a run starting at `t0` with `warmup` then `secs` seconds.
    pub(crate) fn new(t0: Instant, warmup: f64, secs: f64) -> Timing {
        let start = t0 + Duration::from_secs_f64(warmup);
        Timing {
            t0,
            start,
            end: start + Duration::from_secs_f64(secs),
            first_second: -(warmup.ceil() as i64),
            seconds: (secs.ceil() as i64).max(1),
        }
    }

    /// The second `t` falls in: `floor((t - start) / 1 s)`, negative in the warm-up.
    #[inline]
    pub(crate) fn second_of(&self, t: Instant) -> i64 {
        const NS: u128 = 1_000_000_000;
        if t >= self.start {
            ((t - self.start).as_nanos() / NS) as i64
        } else {
            -((self.start - t).as_nanos().div_ceil(NS) as i64)
        }
    }

    /// Start of second `k` (clamped to `[t0, end]`).
    pub(crate) fn second_start(&self, k: i64) -> Instant {
        self.at(k)
    }

    /// End of second `k` (clamped to `[t0, end]`).
    pub(crate) fn second_end(&self, k: i64) -> Instant {
        self.at(k + 1)
    }

    fn at(&self, k: i64) -> Instant {
        let t = if k >= 0 {
            self.start + Duration::from_secs(k as u64)
        } else {
            self.start
                .checked_sub(Duration::from_secs((-k) as u64))
                .unwrap_or(self.t0)
        };
        t.clamp(self.t0, self.end)
    }
}

/// Counters and batch latencies of one second of one worker (or, merged, of
/// all workers).
#[derive(Debug, Clone, Default)]
pub(crate) struct Bucket {
    pub(crate) ops: u64,
    pub(crate) gets: u64,
    pub(crate) puts: u64,
    pub(crate) errors: u64,
    pub(crate) get_misses: u64,
    pub(crate) batches: u64,
    pub(crate) batch_hist: LatencyHistogram,
}

impl Bucket {
    /// Adds another bucket's counters and latencies into this one.
    pub(crate) fn add(&mut self, o: &Bucket) {
        self.ops += o.ops;
        self.gets += o.gets;
        self.puts += o.puts;
        self.errors += o.errors;
        self.get_misses += o.get_misses;
        self.batches += o.batches;
        let _ = self.batch_hist.add(&o.batch_hist);
    }
}

/// A worker's recording state, shared by its sessions and its ticker.
pub(crate) struct WorkerState {
    pub(crate) timing: Timing,
    /// Seconds not yet handed to the main thread, by index.
    pub(crate) buckets: BTreeMap<i64, Bucket>,
    /// Batch latencies of the measured window.
    pub(crate) batch_hist: LatencyHistogram,
    /// Per-operation latencies of the measured window.
    pub(crate) op_hist: LatencyHistogram,
    /// GET latencies (each GET's batch latency) of the measured window.
    pub(crate) get_hist: LatencyHistogram,
    /// SET latencies (each SET's batch latency) of the measured window.
    pub(crate) set_hist: LatencyHistogram,
    /// Open loop: how late each batch of the measured window left the
    /// session, from its intended send time to the moment it was handed to
    /// the connection (the driver's own share of the batch latency).
    pub(crate) send_lag_hist: LatencyHistogram,
}

impl WorkerState {
    /// Empty state for a run with this clock.
    pub(crate) fn new(timing: Timing) -> WorkerState {
        WorkerState {
            timing,
            buckets: BTreeMap::new(),
            batch_hist: LatencyHistogram::new(),
            op_hist: LatencyHistogram::new(),
            get_hist: LatencyHistogram::new(),
            set_hist: LatencyHistogram::new(),
            send_lag_hist: LatencyHistogram::new(),
        }
    }

    /// Records that a batch meant to leave at `intended` left at `actual`
    /// (open loop; only batches leaving within the measured window).
    #[inline]
    pub(crate) fn record_send_lag(&mut self, intended: Instant, actual: Instant) {
        if actual >= self.timing.start && actual < self.timing.end {
            self.send_lag_hist
                .record(actual.saturating_duration_since(intended).as_nanos() as u64);
        }
    }

    /// Records one completed batch of `ops` operations, `gets` of them GETs
    /// of which `misses` found nothing, `errors` failed.
    #[inline]
    pub(crate) fn record(
        &mut self,
        sent: Instant,
        done: Instant,
        ops: u64,
        gets: u64,
        errors: u64,
        misses: u64,
    ) {
        if done >= self.timing.end {
            return;
        }
        let idx = self.timing.second_of(done);
        let ns = done.saturating_duration_since(sent).as_nanos() as u64;
        let b = self.buckets.entry(idx).or_default();
        b.ops += ops;
        b.gets += gets;
        b.puts += ops - gets;
        b.errors += errors;
        b.get_misses += misses;
        b.batches += 1;
        b.batch_hist.record(ns);
        if idx >= 0 {
            self.batch_hist.record(ns);
            self.op_hist.record_n(ns, ops);
            if gets > 0 {
                self.get_hist.record_n(ns, gets);
            }
            if ops > gets {
                self.set_hist.record_n(ns, ops - gets);
            }
        }
    }
}

/// Per-worker context shared by its tasks (`Rc`, never crosses threads).
pub(crate) struct WorkerCtx {
    pub(crate) timing: Timing,
    pub(crate) batch: usize,
    pub(crate) value: Vec<u8>,
    /// With `--ttl`: the native SET-with-TTL op's value (its expiry
    /// argument, then `value`), built once.
    pub(crate) ttl_value: Option<Vec<u8>>,
    /// With `--ttl`: the TTL in milliseconds as decimal text (RESP's PX).
    pub(crate) ttl_ms_text: Option<Vec<u8>>,
    /// With `--ttl`: the TTL in whole seconds, rounded up (memcached's
    /// exptime); 0 without.
    pub(crate) ttl_secs: u64,
    /// `--cache-aside`: batches are GETs, and the keys a batch missed are
    /// SET at the head of the session's next batch.
    pub(crate) cache_aside: bool,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) state: RefCell<WorkerState>,
    /// Socket byte counters of the RESP driver (the native client keeps its own).
    pub(crate) bytes_sent: Cell<u64>,
    pub(crate) bytes_received: Cell<u64>,
    error: RefCell<Option<String>>,
}

impl WorkerCtx {
    /// The context of a worker whose run has this clock.
    pub(crate) fn new(
        timing: Timing,
        batch: usize,
        value: Vec<u8>,
        stop: Arc<AtomicBool>,
    ) -> WorkerCtx {
        WorkerCtx {
            timing,
            batch,
            value,
            ttl_value: None,
            ttl_ms_text: None,
            ttl_secs: 0,
            cache_aside: false,
            stop,
            state: RefCell::new(WorkerState::new(timing)),
            bytes_sent: Cell::new(0),
            bytes_received: Cell::new(0),
            error: RefCell::new(None),
        }
    }

    /// Makes every write set a key expiring after `ttl` (`--ttl`).
    pub(crate) fn with_ttl(mut self, ttl: Option<Duration>) -> WorkerCtx {
        if let Some(t) = ttl {
            let ms = t.as_millis().clamp(1, i64::MAX as u128) as i64;
            let mut v = Vec::with_capacity(ExpiryArg::LEN + self.value.len());
            ExpiryArg {
                flags: expiry_flag::REL,
                when: ms,
            }
            .encode(&mut v);
            v.extend_from_slice(&self.value);
            self.ttl_value = Some(v);
            self.ttl_ms_text = Some(ms.to_string().into_bytes());
            self.ttl_secs = t.as_secs() + u64::from(t.subsec_nanos() > 0);
        }
        self
    }

    /// Makes sessions run cache-aside (`--cache-aside`).
    pub(crate) fn with_cache_aside(mut self, on: bool) -> WorkerCtx {
        self.cache_aside = on;
        self
    }

    /// The error that stopped the run, if any (taken).
    pub(crate) fn take_error(&self) -> Option<String> {
        self.error.borrow_mut().take()
    }

    /// Stops the whole run with `e` (the first error wins).
    pub(crate) fn fail(&self, e: String) {
        if self.error.borrow().is_none() {
            *self.error.borrow_mut() = Some(e);
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    /// True once the run is stopping (an error, or the caller's stop flag).
    #[inline]
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Records a batch's send lag (see [`WorkerState::record_send_lag`]).
    #[inline]
    pub(crate) fn record_send_lag(&self, intended: Instant, actual: Instant) {
        self.state.borrow_mut().record_send_lag(intended, actual);
    }

    /// Records one completed batch (see [`WorkerState::record`]).
    #[inline]
    pub(crate) fn record(
        &self,
        sent: Instant,
        done: Instant,
        ops: u64,
        gets: u64,
        errors: u64,
        misses: u64,
    ) {
        self.state
            .borrow_mut()
            .record(sent, done, ops, gets, errors, misses);
    }
}

/// Pacing of one session: closed loop, or its slot in the open-loop schedule.
pub(crate) struct Pacer {
    /// `(first intended send time, interval between this session's batches)`.
    schedule: Option<(Instant, Duration)>,
    sent: u64,
}

impl Pacer {
    /// The pacer of session `g` of `total` (all workers' sessions counted),
    /// sending batches of `batch` ops; open loop at `rate` ops/s in total,
    /// closed loop when `None`.
    pub(crate) fn new(
        rate: Option<f64>,
        total: usize,
        g: usize,
        batch: usize,
        timing: &Timing,
    ) -> Pacer {
        let schedule = rate.map(|rate| {
            let (total, g) = (total as f64, g as f64);
            let interval = total * batch as f64 / rate;
            (
                timing.t0 + Duration::from_secs_f64(interval * g / total),
                Duration::from_secs_f64(interval),
            )
        });
        Pacer { schedule, sent: 0 }
    }

    /// Waits for the next send slot and returns the instant latency is
    /// measured from; `None` when the run is over.
    #[inline]
    pub(crate) async fn next(&mut self, ctx: &WorkerCtx) -> Option<Instant> {
        if ctx.stopped() {
            return None;
        }
        match self.schedule {
            None => {
                let now = Instant::now();
                (now < ctx.timing.end).then_some(now)
            }
            Some((first, interval)) => {
                let intended = first + interval.mul_f64(self.sent as f64);
                if intended >= ctx.timing.end {
                    return None;
                }
                self.sent += 1;
                let now = Instant::now();
                if intended > now {
                    glommio::timer::sleep(intended - now).await;
                }
                (!ctx.stopped()).then_some(intended)
            }
        }
    }

    /// True in open loop (a rate was given).
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.schedule.is_some()
    }

    /// True when no further batch will be sent (cheap pre-check before
    /// generating one).
    #[inline]
    pub(crate) fn done(&self, ctx: &WorkerCtx) -> bool {
        if ctx.stopped() {
            return true;
        }
        match self.schedule {
            None => Instant::now() >= ctx.timing.end,
            Some((first, interval)) => first + interval.mul_f64(self.sent as f64) >= ctx.timing.end,
        }
    }
}

/// Sleeps until `t` (at once when it has passed).
pub(crate) async fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        glommio::timer::sleep(t - now).await;
    }
}

/// User + system CPU seconds of this process so far.
pub fn process_cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a local rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_bucketed_from_the_window_start() {
        let t0 = Instant::now();
        let t = Timing::new(t0, 2.0, 2.5);
        assert_eq!(t.first_second, -2);
        assert_eq!(t.seconds, 3);
        assert_eq!(t.second_of(t0), -2);
        assert_eq!(t.second_of(t0 + Duration::from_millis(1500)), -1);
        assert_eq!(t.second_of(t.start), 0);
        assert_eq!(t.second_of(t.start + Duration::from_millis(999)), 0);
        assert_eq!(t.second_of(t.start + Duration::from_millis(2400)), 2);
        assert_eq!(t.second_end(2), t.end);
        assert_eq!(t.second_start(-2), t0);
    }

    #[test]
    fn fractional_warmup_starts_at_t0() {
        let t0 = Instant::now();
        let t = Timing::new(t0, 0.5, 1.0);
        assert_eq!(t.first_second, -1);
        assert_eq!(t.second_start(-1), t0);
        assert_eq!(t.second_of(t0), -1);
    }

    #[test]
    fn record_ignores_late_completions_and_counts_the_window() {
        let t0 = Instant::now();
        let timing = Timing::new(t0, 1.0, 1.0);
        let mut st = WorkerState::new(timing);
        st.record(t0, t0 + Duration::from_millis(10), 8, 6, 0, 2); // warm-up
        st.record(
            timing.start,
            timing.start + Duration::from_millis(2),
            8,
            7,
            1,
            3,
        );
        st.record(
            timing.end,
            timing.end + Duration::from_millis(1),
            8,
            8,
            0,
            0,
        ); // after
        assert_eq!(st.batch_hist.count(), 1);
        assert_eq!(st.op_hist.count(), 8);
        assert_eq!(st.get_hist.count(), 7);
        assert_eq!(st.set_hist.count(), 1);
        assert_eq!(st.buckets[&0].get_misses, 3);
        assert_eq!(st.buckets[&-1].get_misses, 2);
        assert_eq!(st.buckets[&-1].ops, 8);
        assert_eq!(st.buckets[&0].puts, 1);
        assert_eq!(st.buckets[&0].errors, 1);
        assert_eq!(st.buckets.len(), 2);
    }
}

/// One host's counters as a RESP or memcached target reads them from its
/// server (`INFO all`, `stats`), cumulative since the server started.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HostCounters {
    /// GETs (memcached: one per key) and SETs served.
    pub(crate) gets: u64,
    pub(crate) sets: u64,
    pub(crate) keys: u64,
    pub(crate) memory: u64,
    pub(crate) connections: u64,
    pub(crate) errors: u64,
    /// The answer was the server kind the target expects.
    pub(crate) recognised: bool,
}

/// Asks every host for its [`HostCounters`].
pub(crate) trait HostPoller {
    /// One snapshot per host, in host order, with the time each answer arrived.
    async fn snapshot(&mut self) -> Result<Vec<(Instant, HostCounters)>, String>;
}

/// Polls every host at the window's start and after each measured second:
/// per-node ops/s from gets + sets, and the window's totals. `unrecognised`
/// is the error when the first answer is not the expected kind of server.
/// The reports' `durability` is left for the target to fill in.
pub(crate) async fn poll_hosts(
    ctx: &WorkerCtx,
    hosts: &[String],
    poller: &mut impl HostPoller,
    unrecognised: &str,
) -> Result<Vec<ServerNodeReport>, String> {
    let t = ctx.timing;
    sleep_until(t.start).await;
    let first = poller.snapshot().await?;
    if !first.iter().all(|(_, c)| c.recognised) {
        return Err(unrecognised.to_string());
    }
    let ops = |c: &HostCounters| c.gets + c.sets;
    let mut prev = first.clone();
    let mut per_second: Vec<Vec<f64>> = vec![Vec::new(); first.len()];
    for k in 0..t.seconds {
        sleep_until(t.second_end(k)).await;
        if ctx.stopped() && Instant::now() < t.end {
            break;
        }
        let now = poller.snapshot().await?;
        for (i, ((ta, a), (tb, b))) in prev.iter().zip(&now).enumerate() {
            let dt = (*tb - *ta).as_secs_f64();
            if dt > 0.0 {
                per_second[i].push(ops(b).saturating_sub(ops(a)) as f64 / dt);
            }
        }
        prev = now;
    }
    Ok(hosts
        .iter()
        .enumerate()
        .zip(first.iter().zip(&prev))
        .zip(per_second)
        .map(|(((i, addr), ((_, f), (_, l))), ps)| ServerNodeReport {
            node_id: i as u32,
            address: addr.clone(),
            per_second_ops: ps,
            shards: vec![ShardTotals {
                shard_id: 0,
                ops: ops(l).saturating_sub(ops(f)),
                gets: l.gets.saturating_sub(f.gets),
                puts: l.sets.saturating_sub(f.sets),
                dels: 0,
                keys: l.keys,
                memory_bytes: l.memory,
                connections: l.connections,
                errors: l.errors.saturating_sub(f.errors),
            }],
            durability: String::new(),
        })
        .collect())
}
