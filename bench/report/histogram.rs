//! The latency histogram wrapper: nanoseconds, 1 ns .. 60 s, 3 significant
//! figures, serialized exactly as base64 of HdrHistogram V2 so JSON round
//! trips and merges lose nothing; and its percentile summary. Pure data.

use anyhow::{Context, Result};
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{
    Deserialize, Deserializer as SerdeDeserializer, Serialize, Serializer as SerdeSerializer,
};

/// Lowest discernible latency: 1 ns.
pub const HIST_LOWEST_NS: u64 = 1;
/// Highest trackable latency: 60 s (larger values are clamped to it).
pub const HIST_HIGHEST_NS: u64 = 60_000_000_000;
/// Significant figures kept by the histograms.
pub const HIST_SIGFIG: u8 = 3;

/// Latency histogram in nanoseconds (1 ns .. 60 s, 3 significant figures,
/// auto-resize off). Serializes (serde) as a base64 string of the
/// HdrHistogram V2 (uncompressed) encoding, so a JSON round trip and merges
/// of deserialized histograms are exact.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// Empty histogram with the standard bounds.
    pub fn new() -> Self {
        let mut hist = Histogram::new_with_bounds(HIST_LOWEST_NS, HIST_HIGHEST_NS, HIST_SIGFIG)
            .expect("static histogram bounds are valid");
        hist.auto(false);
        LatencyHistogram { hist }
    }

    /// Records one latency in ns; values above 60 s are clamped to 60 s.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns);
    }

    /// Records `count` occurrences of a latency in ns (clamped like [`Self::record`]).
    #[inline]
    pub fn record_n(&mut self, ns: u64, count: u64) {
        self.hist.saturating_record_n(ns, count);
    }

    /// Adds all counts of `other` into `self` (exact).
    pub fn add(&mut self, other: &LatencyHistogram) -> Result<()> {
        self.hist
            .add(&other.hist)
            .map_err(|e| anyhow::anyhow!("histogram add failed: {e:?}"))
    }

    /// Clears all counts.
    pub fn reset(&mut self) {
        self.hist.reset();
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// Value (ns) at percentile `p` in `[0, 100]`; 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_percentile(p)
        }
    }

    /// Median (ns).
    pub fn p50(&self) -> u64 {
        self.percentile(50.0)
    }

    /// 90th percentile (ns).
    pub fn p90(&self) -> u64 {
        self.percentile(90.0)
    }

    /// 99th percentile (ns).
    pub fn p99(&self) -> u64 {
        self.percentile(99.0)
    }

    /// 99.9th percentile (ns).
    pub fn p999(&self) -> u64 {
        self.percentile(99.9)
    }

    /// 99.99th percentile (ns).
    pub fn p9999(&self) -> u64 {
        self.percentile(99.99)
    }

    /// Largest recorded value (ns, highest equivalent); 0 when empty.
    pub fn max(&self) -> u64 {
        self.hist.max()
    }

    /// Smallest recorded value (ns); 0 when empty.
    pub fn min(&self) -> u64 {
        self.hist.min()
    }

    /// Mean (ns); 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.hist.is_empty() {
            0.0
        } else {
            self.hist.mean()
        }
    }

    /// Standard deviation (ns); 0 when empty.
    pub fn stdev(&self) -> f64 {
        if self.hist.is_empty() {
            0.0
        } else {
            self.hist.stdev()
        }
    }

    /// The underlying HdrHistogram (ns).
    pub fn inner(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// Base64 (standard alphabet, padded) of the V2 uncompressed encoding.
    pub fn to_base64(&self) -> Result<String> {
        let mut buf = Vec::new();
        V2Serializer::new()
            .serialize(&self.hist, &mut buf)
            .map_err(|e| anyhow::anyhow!("histogram serialization failed: {e:?}"))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(buf))
    }

    /// Inverse of [`Self::to_base64`]; also accepts V2 deflate encodings.
    pub fn from_base64(s: &str) -> Result<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .context("histogram base64 decode")?;
        let mut hist: Histogram<u64> = Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|e| anyhow::anyhow!("histogram decode failed: {e:?}"))?;
        hist.auto(false);
        // Normalise to the standard bounds so later merges never fail.
        if hist.low() != HIST_LOWEST_NS
            || hist.high() != HIST_HIGHEST_NS
            || hist.sigfig() != HIST_SIGFIG
        {
            let mut std = LatencyHistogram::new();
            for v in hist.iter_recorded() {
                std.record_n(v.value_iterated_to(), v.count_at_value());
            }
            return Ok(std);
        }
        Ok(LatencyHistogram { hist })
    }

    /// Fixed set of summary figures.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count(),
            p50_ns: self.p50(),
            p90_ns: self.p90(),
            p99_ns: self.p99(),
            p999_ns: self.p999(),
            p9999_ns: self.p9999(),
            max_ns: self.max(),
            mean_ns: self.mean(),
        }
    }
}

impl Serialize for LatencyHistogram {
    fn serialize<S: SerdeSerializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let b64 = self.to_base64().map_err(serde::ser::Error::custom)?;
        s.serialize_str(&b64)
    }
}

impl<'de> Deserialize<'de> for LatencyHistogram {
    fn deserialize<D: SerdeDeserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        LatencyHistogram::from_base64(&s).map_err(serde::de::Error::custom)
    }
}

/// Percentile summary of a [`LatencyHistogram`] (all ns).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of values.
    pub count: u64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// 99.99th percentile.
    pub p9999_ns: u64,
    /// Maximum.
    pub max_ns: u64,
    /// Mean.
    pub mean_ns: f64,
}
