//! Workload generator for the corekv load generator (`corekv::bench::workload`).
//!
//! Owns: the exact reproduction of the seed (Go class project) workload —
//! xorshift64 RNG, YCSB/Gray et al. Zipfian key chooser (as in RAMCloud),
//! uniform key chooser, read/write mix by YCSB workload name, decimal key
//! formatting without allocation, per-session seed derivation and a pure
//! generation-speed micro-measurement.
//!
//! Must not touch: networking, the wire protocol, timing of requests,
//! result reporting (see `super::report`) or plotting (see `super::plot`).
//! Nothing here allocates per operation; the only allocations are in
//! constructors ([`WorkloadConfig::value`], [`WorkloadConfig::from_name`]).
//!
//! Exactness notes: the draw order per operation is fixed (key draw first,
//! then the read/write draw, both from the same xorshift64 stream), and the
//! zeta sum is accumulated in ascending `i` order like the seed's loop. Rust's
//! `powf` and Go's `math.Pow` may differ in the last ulp, so `zetan` can differ
//! from the seed's value in the last bits; this cannot change a sampled key
//! except for draws that land within an ulp of a bucket boundary.

use std::fmt;
use std::time::Instant;

/// Default number of records (key space size).
pub const DEFAULT_RECORDS: u64 = 1_000_000;
/// Default Zipfian skew.
pub const DEFAULT_THETA: f64 = 0.99;
/// Default value size in bytes.
pub const DEFAULT_VALUE_SIZE: usize = 128;
/// The byte every value is made of.
pub const VALUE_BYTE: u8 = b'x';
/// Longest decimal representation of a `u64` (`18446744073709551615`).
pub const MAX_KEY_LEN: usize = 20;

/// Errors from building or validating a workload.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkloadError {
    /// The workload name is not one of YCSB-A / YCSB-B / YCSB-C (or A / B / C).
    #[error("unknown workload {0:?}: expected YCSB-A, YCSB-B or YCSB-C (or A, B, C)")]
    UnknownWorkload(String),
    /// The distribution name is not `zipfian` or `uniform`.
    #[error("unknown key distribution {0:?}: expected \"zipfian\" or \"uniform\"")]
    UnknownDistribution(String),
    /// Fewer than two records.
    #[error("records must be >= 2, got {0}")]
    TooFewRecords(u64),
    /// Zipfian theta outside `[0, 1)`.
    #[error("zipfian theta must be in [0, 1), got {0}")]
    BadTheta(f64),
    /// Read ratio outside `[0, 1]`.
    #[error("read ratio must be in [0, 1], got {0}")]
    BadReadRatio(f64),
    /// Zero-sized values.
    #[error("value size must be >= 1, got {0}")]
    BadValueSize(usize),
}

/// How key indices are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Distribution {
    /// YCSB / Gray et al. Zipfian, key 0 hottest, not scrambled.
    #[default]
    Zipfian,
    /// `rng.next_u64() % records`.
    Uniform,
}

impl Distribution {
    /// Lower-case name (`"zipfian"` / `"uniform"`), as used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Distribution::Zipfian => "zipfian",
            Distribution::Uniform => "uniform",
        }
    }

    /// Parses `"zipfian"`/`"zipf"`/`"uniform"`, case-insensitively.
    pub fn parse(name: &str) -> Result<Self, WorkloadError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "zipfian" | "zipf" => Ok(Distribution::Zipfian),
            "uniform" => Ok(Distribution::Uniform),
            _ => Err(WorkloadError::UnknownDistribution(name.to_string())),
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Canonical workload name (`"YCSB-A"`, `"YCSB-B"`, `"YCSB-C"`) for a user
/// spelling; case-insensitive, also accepts `"A"`, `"B"`, `"C"`.
pub fn canonical_workload_name(name: &str) -> Result<&'static str, WorkloadError> {
    match name.trim().to_ascii_uppercase().as_str() {
        "YCSB-A" | "A" => Ok("YCSB-A"),
        "YCSB-B" | "B" => Ok("YCSB-B"),
        "YCSB-C" | "C" => Ok("YCSB-C"),
        _ => Err(WorkloadError::UnknownWorkload(name.to_string())),
    }
}

/// Read ratio of a named workload: A 0.50, B 0.95, C 1.0.
pub fn read_ratio_for(name: &str) -> Result<f64, WorkloadError> {
    Ok(match canonical_workload_name(name)? {
        "YCSB-A" => 0.50,
        "YCSB-B" => 0.95,
        _ => 1.0,
    })
}

/// Workload parameters. `Default` is the seed's default: YCSB-B, 1,000,000
/// records, Zipfian theta 0.99, 128-byte values.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadConfig {
    /// Canonical workload name (`"YCSB-B"` etc.); informational, used in reports.
    pub name: String,
    /// Key space size; keys are `"0"..(records-1)` in decimal.
    pub records: u64,
    /// Zipfian skew in `[0, 1)`; ignored for [`Distribution::Uniform`].
    pub theta: f64,
    /// Probability that an operation is a read (GET); the rest are writes (PUT).
    pub read_ratio: f64,
    /// Size of every written value in bytes.
    pub value_size: usize,
    /// Key distribution.
    pub distribution: Distribution,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            name: "YCSB-B".to_string(),
            records: DEFAULT_RECORDS,
            theta: DEFAULT_THETA,
            read_ratio: 0.95,
            value_size: DEFAULT_VALUE_SIZE,
            distribution: Distribution::Zipfian,
        }
    }
}

impl WorkloadConfig {
    /// Defaults with the read ratio of the named workload (see
    /// [`read_ratio_for`]).
    pub fn from_name(name: &str) -> Result<Self, WorkloadError> {
        Ok(WorkloadConfig {
            name: canonical_workload_name(name)?.to_string(),
            read_ratio: read_ratio_for(name)?,
            ..WorkloadConfig::default()
        })
    }

    /// Checks `records >= 2`, `theta` in `[0, 1)` (Zipfian only),
    /// `read_ratio` in `[0, 1]` and `value_size >= 1`.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        if self.records < 2 {
            return Err(WorkloadError::TooFewRecords(self.records));
        }
        if self.distribution == Distribution::Zipfian && !(0.0..1.0).contains(&self.theta) {
            return Err(WorkloadError::BadTheta(self.theta));
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return Err(WorkloadError::BadReadRatio(self.read_ratio));
        }
        if self.value_size == 0 {
            return Err(WorkloadError::BadValueSize(self.value_size));
        }
        Ok(())
    }

    /// The value every write stores: `b'x'` repeated `value_size` times.
    /// Build it once and reuse it.
    pub fn value(&self) -> Vec<u8> {
        vec![VALUE_BYTE; self.value_size]
    }

    /// Validates and builds the key chooser (computes zeta for Zipfian —
    /// slow for large `records`; do it once and clone the result).
    pub fn key_dist(&self) -> Result<KeyDist, WorkloadError> {
        self.validate()?;
        Ok(match self.distribution {
            Distribution::Zipfian => KeyDist::Zipfian(ZipfParams::new(self.records, self.theta)?),
            Distribution::Uniform => KeyDist::Uniform {
                records: self.records,
            },
        })
    }
}

/// xorshift64 (shifts 13, 7, 17). A zero seed becomes 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xorshift64 {
    state: u64,
}

impl Xorshift64 {
    /// New generator; seed 0 (a fixed point of xorshift) is replaced by 1.
    pub fn new(seed: u64) -> Self {
        Xorshift64 {
            state: if seed == 0 { 1 } else { seed },
        }
    }

    /// Advances the state and returns it.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }
}

/// `zeta(n, theta) = sum_{i=1..n} 1 / i^theta`, summed in ascending `i`.
pub fn zeta(n: u64, theta: f64) -> f64 {
    let mut sum = 0.0;
    for i in 1..=n {
        sum += 1.0 / (i as f64).powf(theta);
    }
    sum
}

/// Precomputed Zipfian constants (YCSB / Gray et al., as in RAMCloud).
/// Computing them costs an `n`-term sum; the struct is `Copy`, so compute it
/// once and hand a copy to every session's [`Generator`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZipfParams {
    n: u64,
    n_f: f64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    /// `1 + 0.5^theta`.
    second_threshold: f64,
    /// Relative error bound of [`fast_pow`] at this `alpha`, with margin
    /// (see [`ZipfParams::sample`]).
    tol: f64,
    /// The tables of [`fast_pow`].
    tables: &'static PowTables,
}

impl ZipfParams {
    /// Computes the constants for `n` items with skew `theta` in `[0, 1)`.
    pub fn new(n: u64, theta: f64) -> Result<Self, WorkloadError> {
        if n < 2 {
            return Err(WorkloadError::TooFewRecords(n));
        }
        if !(0.0..1.0).contains(&theta) {
            return Err(WorkloadError::BadTheta(theta));
        }
        let zetan = zeta(n, theta);
        Ok(Self::with_zetan(n, theta, zetan))
    }

    /// Builds the constants from an already known `zetan = zeta(n, theta)`
    /// (e.g. cached); the caller vouches for its correctness.
    pub fn with_zetan(n: u64, theta: f64, zetan: f64) -> Self {
        let n_f = n as f64;
        let alpha = 1.0 / (1.0 - theta);
        let zeta2 = zeta(2, theta);
        let eta = (1.0 - (2.0 / n_f).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        ZipfParams {
            n,
            n_f,
            theta,
            alpha,
            zetan,
            eta,
            second_threshold: 1.0 + 0.5f64.powf(theta),
            tol: pow_tolerance(alpha),
            tables: PowTables::get(),
        }
    }

    /// Number of items `n`.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Skew `theta`.
    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// `zeta(n, theta)`.
    pub fn zetan(&self) -> f64 {
        self.zetan
    }

    /// `1 / (1 - theta)`.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// `(1 - (2/n)^(1-theta)) / (1 - zeta(2,theta)/zetan)`.
    pub fn eta(&self) -> f64 {
        self.eta
    }

    /// One draw in `0..=n` (the value `n` is possible only for `u == 1.0`;
    /// callers reduce it `% records` as the seed does).
    ///
    /// The result is exactly [`ZipfParams::sample_reference`]'s, the seed's
    /// formula `floor(n * (eta*u - eta + 1)^alpha)` with libm's `pow`, which
    /// took a third of the load generator's CPU. The power is computed by
    /// [`fast_pow`] (table-driven, relative error below `tol`); when
    /// `n * x^alpha` lies within `tol` of an integer, i.e. when the two
    /// powers could floor differently, libm's `pow` decides (about one draw
    /// in 10^5 at the seed's parameters).
    #[inline]
    pub fn sample(&self, rng: &mut Xorshift64) -> u64 {
        self.sample_draw(rng.next_u64())
    }

    /// [`ZipfParams::sample`] of the RNG draw `draw`. Its floating-point
    /// work is one long dependency chain (a logarithm, then an
    /// exponential): callers with many draws (a batch) compute them in a
    /// loop of their own, whose iterations the CPU overlaps.
    #[inline]
    pub fn sample_draw(&self, draw: u64) -> u64 {
        let u = draw as f64 / u64::MAX as f64;
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < self.second_threshold {
            return 1;
        }
        let x = self.eta * u - self.eta + 1.0;
        if let Some(p) = fast_pow(self.tables, x, self.alpha) {
            let y = self.n_f * p;
            let d = y * self.tol;
            // y >= 0: `as u64` is floor (and 0 below 0).
            let (lo, hi) = ((y - d) as u64, (y + d) as u64);
            if lo == hi {
                return lo;
            }
        }
        self.reference_tail(u)
    }

    /// [`ZipfParams::sample`] with libm's `pow` for every draw: the seed's
    /// formula as written (tests compare the two).
    pub fn sample_reference(&self, rng: &mut Xorshift64) -> u64 {
        let u = rng.next_u64() as f64 / u64::MAX as f64;
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < self.second_threshold {
            return 1;
        }
        self.reference_tail(u)
    }

    #[cold]
    #[inline(never)]
    fn reference_tail(&self, u: f64) -> u64 {
        (self.n_f * (self.eta * u - self.eta + 1.0).powf(self.alpha)).floor() as u64
    }
}

/// Tables of [`fast_pow`]: for the logarithm, 128 centres `c_j` of
/// `[1 + j/128, 1 + (j+1)/128)` as `1/c_j` and `ln c_j`; for the
/// exponential, `2^(i/128)`.
#[derive(Debug, PartialEq)]
pub struct PowTables {
    invc: [f64; 128],
    logc: [f64; 128],
    exp2: [f64; 128],
    /// `ln 2 / 128` in two parts: the high part has its low 20 bits zero,
    /// so `k * ln2_128_hi` is exact for every `|k| < 2^20`.
    ln2_128_hi: f64,
    ln2_128_lo: f64,
}

impl PowTables {
    /// The process's tables (built once, 3 KiB).
    pub fn get() -> &'static PowTables {
        static T: std::sync::OnceLock<PowTables> = std::sync::OnceLock::new();
        T.get_or_init(|| {
            let mut t = PowTables {
                invc: [0.0; 128],
                logc: [0.0; 128],
                exp2: [0.0; 128],
                ln2_128_hi: f64::from_bits((LN2 / 128.0).to_bits() & !0xF_FFFF),
                ln2_128_lo: 0.0,
            };
            t.ln2_128_lo = LN2 / 128.0 - t.ln2_128_hi;
            for j in 0..128 {
                let invc = 1.0 / (1.0 + (j as f64 + 0.5) / 128.0);
                t.invc[j] = invc;
                // ln of the stored reciprocal's inverse, so that
                // ln m = ln(m * invc) - ln(invc) holds for the value used.
                t.logc[j] = -invc.ln();
                t.exp2[j] = (j as f64 / 128.0).exp2();
            }
            t
        })
    }
}

const LN2: f64 = std::f64::consts::LN_2;
/// `1.5 * 2^52`: adding it rounds a float of magnitude below 2^51 to an
/// integer held in the low mantissa bits.
const ROUND_SHIFT: f64 = 6_755_399_441_055_744.0;

/// `x^alpha` for a positive normal `x` and `|alpha * ln x| <= 700`, with a
/// relative error below [`pow_tolerance`]`(alpha)` (without the margin: a
/// few times 1e-16 plus `alpha` times the logarithm's absolute error, also
/// a few times 1e-16); `None` outside that domain. Table-driven
/// `exp(alpha * ln x)`: no libm call, no division.
#[inline]
pub fn fast_pow(t: &PowTables, x: f64, alpha: f64) -> Option<f64> {
    if !(f64::MIN_POSITIVE..f64::INFINITY).contains(&x) {
        return None;
    }
    // ln x = e ln 2 + ln c_j + ln(1 + r), m = x / 2^e in [1, 2), |r| <= 2^-8.
    let bits = x.to_bits();
    let e = ((bits >> 52) as i64 - 1023) as f64;
    let j = ((bits >> 45) & 127) as usize;
    let m = f64::from_bits((bits & ((1 << 52) - 1)) | 0x3FF0_0000_0000_0000);
    let r = m * t.invc[j] - 1.0;
    // ln(1 + r) to degree 6: the next term is below 2e-18.
    let r2 = r * r;
    let p = r - r2 * (0.5 - r * (1.0 / 3.0 - r * (0.25 - r * (0.2 - r * (1.0 / 6.0)))));
    let ln_x = e * LN2 + t.logc[j] + p;
    let y = alpha * ln_x;
    if !(-700.0..=700.0).contains(&y) {
        return None;
    }
    // exp y = 2^(k/128) exp s, k = round(128 y / ln 2), |s| <= ln 2 / 256.
    let kd = y * (128.0 / LN2) + ROUND_SHIFT;
    let k = kd.to_bits() as i64 as i32 as i64; // low bits: the integer
    let kd = kd - ROUND_SHIFT;
    let s = y - kd * t.ln2_128_hi - kd * t.ln2_128_lo;
    // exp s to degree 5: the next term is below 6e-19.
    let q = 1.0 + s * (1.0 + s * (0.5 + s * (1.0 / 6.0 + s * (1.0 / 24.0 + s * (1.0 / 120.0)))));
    let scale = f64::from_bits((((k >> 7) + 1023) as u64) << 52);
    Some(t.exp2[(k & 127) as usize] * scale * q)
}

/// The relative tolerance [`ZipfParams::sample`] allows [`fast_pow`] at
/// exponent `alpha`: ten times its error bound (1e-15 per unit of
/// `alpha`, for the logarithm's absolute error the exponent multiplies,
/// plus 1e-15 per unit of `|alpha ln x| <= 700` and 1e-14 for the rest),
/// so libm's `pow` (< 1 ulp) and the product with `n` stay inside it.
pub fn pow_tolerance(alpha: f64) -> f64 {
    10.0 * (1e-14 + alpha.abs() * 1e-15 + 700.0 * 1e-15)
}

/// A ready-to-use key chooser; cheap to clone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyDist {
    /// Zipfian over `params.n()` records.
    Zipfian(ZipfParams),
    /// Uniform over `records`.
    Uniform {
        /// Key space size.
        records: u64,
    },
}

impl KeyDist {
    /// Key space size.
    pub fn records(&self) -> u64 {
        match self {
            KeyDist::Zipfian(p) => p.n(),
            KeyDist::Uniform { records } => *records,
        }
    }
}

/// Operation kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// GET.
    Read,
    /// PUT of the fixed value.
    Write,
}

/// One generated operation: kind and key index (key is its decimal string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpSpec {
    /// Read or write.
    pub kind: OpKind,
    /// Key index in `0..records`.
    pub key_index: u64,
}

/// Per-session operation generator. Not shared between sessions; create one
/// per session with a seed from [`seed_for`].
#[derive(Debug, Clone)]
pub struct Generator {
    rng: Xorshift64,
    keys: KeyDist,
    records: u64,
    read_threshold: u64,
    always_read: bool,
    key_buf: [u8; MAX_KEY_LEN],
}

impl Generator {
    /// Validates `cfg`, computes the key chooser and seeds the generator.
    /// Slow for large Zipfian key spaces: prefer [`Generator::from_parts`]
    /// with a [`KeyDist`] computed once.
    pub fn new(cfg: &WorkloadConfig, seed: u64) -> Result<Self, WorkloadError> {
        let keys = cfg.key_dist()?;
        Self::from_parts(keys, cfg.read_ratio, seed)
    }

    /// Builds a generator from a precomputed key chooser.
    ///
    /// The op is a read when `rng.next_u64() < (read_ratio * u64::MAX as f64) as u64`;
    /// `read_ratio >= 1.0` means every op is a read (the threshold formula
    /// saturates to `u64::MAX`, which would make the single draw equal to
    /// `u64::MAX` a write, so 1.0 is special-cased as the spec requires).
    pub fn from_parts(keys: KeyDist, read_ratio: f64, seed: u64) -> Result<Self, WorkloadError> {
        if !(0.0..=1.0).contains(&read_ratio) {
            return Err(WorkloadError::BadReadRatio(read_ratio));
        }
        let records = keys.records();
        if records < 2 {
            return Err(WorkloadError::TooFewRecords(records));
        }
        Ok(Generator {
            rng: Xorshift64::new(seed),
            keys,
            records,
            read_threshold: (read_ratio * u64::MAX as f64) as u64,
            always_read: read_ratio >= 1.0,
            key_buf: [0; MAX_KEY_LEN],
        })
    }

    /// Key space size.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Draws the next key index (one RNG draw), without the read/write draw.
    #[inline]
    pub fn next_key_index(&mut self) -> u64 {
        let draw = self.rng.next_u64();
        self.key_of(draw)
    }

    /// The key index of the key draw `draw`.
    #[inline]
    fn key_of(&self, draw: u64) -> u64 {
        match &self.keys {
            KeyDist::Zipfian(p) => {
                // `% records` as the seed does; only the draw `n` wraps.
                let k = p.sample_draw(draw);
                if k < self.records {
                    k
                } else {
                    k % self.records
                }
            }
            KeyDist::Uniform { records } => draw % *records,
        }
    }

    /// Next operation: key draw, then read/write draw, from the same RNG.
    #[inline]
    pub fn next_op(&mut self) -> OpSpec {
        let key_index = self.next_key_index();
        let r = self.rng.next_u64();
        let kind = if self.always_read || r < self.read_threshold {
            OpKind::Read
        } else {
            OpKind::Write
        };
        OpSpec { kind, key_index }
    }

    /// Cache-aside: draws `n` key indices (GETs only, no read/write draw),
    /// calling `f(key_index, key_bytes)` for each.
    #[inline]
    pub fn fill_gets<F: FnMut(u64, &[u8])>(&mut self, n: usize, f: &mut F) {
        let mut keys = [0u64; CHUNK];
        let mut done = 0;
        while done < n {
            let m = (n - done).min(CHUNK);
            for k in &mut keys[..m] {
                *k = self.rng.next_u64();
            }
            for k in &mut keys[..m] {
                *k = self.key_of(*k);
            }
            for &k in &keys[..m] {
                let len = format_key(k, &mut self.key_buf);
                f(k, &self.key_buf[..len]);
            }
            done += m;
        }
    }

    /// Generates `n` operations, calling `f(kind, key_bytes)` for each; the
    /// key slice borrows an internal buffer and is valid only during the call.
    ///
    /// The same operations as `n` calls of [`Generator::next_op`], made in
    /// chunks: the chunk's RNG draws first (in the stream's order: key,
    /// read/write, key, …), then its key indices in a loop of independent
    /// iterations, then the callbacks.
    #[inline]
    pub fn fill_batch<F: FnMut(OpKind, &[u8])>(&mut self, n: usize, f: &mut F) {
        let mut keys = [0u64; CHUNK];
        let mut reads = [false; CHUNK];
        let mut done = 0;
        while done < n {
            let m = (n - done).min(CHUNK);
            for (k, read) in keys[..m].iter_mut().zip(&mut reads[..m]) {
                *k = self.rng.next_u64();
                let r = self.rng.next_u64();
                *read = self.always_read || r < self.read_threshold;
            }
            for k in &mut keys[..m] {
                *k = self.key_of(*k);
            }
            for (&k, &read) in keys[..m].iter().zip(&reads[..m]) {
                let len = format_key(k, &mut self.key_buf);
                let kind = if read { OpKind::Read } else { OpKind::Write };
                f(kind, &self.key_buf[..len]);
            }
            done += m;
        }
    }
}

/// Operations [`Generator::fill_batch`] draws at a time.
const CHUNK: usize = 32;

/// `"00" "01" … "99"`: two decimal digits per lookup.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes the decimal form of `index` at the start of `buf`, returns its length.
/// Two digits per step from a table, written in place from the end (the
/// length comes first from `ilog10`).
#[inline]
pub fn format_key(mut index: u64, buf: &mut [u8; MAX_KEY_LEN]) -> usize {
    let len = index.checked_ilog10().unwrap_or(0) as usize + 1;
    let mut pos = len;
    while index >= 100 {
        let d = (index % 100) as usize * 2;
        index /= 100;
        pos -= 2;
        buf[pos..pos + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
    }
    if index >= 10 {
        let d = index as usize * 2;
        buf[..2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
    } else {
        buf[0] = b'0' + index as u8;
    }
    len
}

/// The decimal key as a slice of `buf` (convenience over [`format_key`]).
#[inline]
pub fn key_bytes(index: u64, buf: &mut [u8; MAX_KEY_LEN]) -> &[u8] {
    let len = format_key(index, buf);
    &buf[..len]
}

/// Appends the decimal key to `out`; allocates only if `out` lacks capacity.
#[inline]
pub fn append_key(index: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; MAX_KEY_LEN];
    let len = format_key(index, &mut buf);
    out.extend_from_slice(&buf[..len]);
}

/// splitmix64 finalizer step.
#[inline]
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deterministic, distinct-per-(worker, session), non-zero seed derived from
/// `base_seed` with splitmix64. Distinct for all `worker, session < 2^32`.
pub fn seed_for(worker: usize, session: usize, base_seed: u64) -> u64 {
    let id = ((worker as u64) << 32) ^ (session as u64 & 0xFFFF_FFFF);
    // splitmix64 is a bijection, so distinct `id`s give distinct seeds.
    let s = splitmix64(splitmix64(base_seed) ^ id);
    if s == 0 {
        // Astronomically unlikely; keep the result non-zero and still deterministic.
        0x9E37_79B9_7F4A_7C15
    } else {
        s
    }
}

/// Pure generation speed in ops/s for `cfg`: time to produce `n_ops`
/// operations including decimal key formatting (zeta computation excluded).
pub fn generation_rate(cfg: &WorkloadConfig, n_ops: u64) -> Result<f64, WorkloadError> {
    let keys = cfg.key_dist()?;
    Ok(generation_rate_with(keys, cfg.read_ratio, n_ops))
}

/// Like [`generation_rate`] but with a precomputed key chooser.
pub fn generation_rate_with(keys: KeyDist, read_ratio: f64, n_ops: u64) -> f64 {
    let mut g = match Generator::from_parts(keys, read_ratio, seed_for(0, 0, 0x5EED)) {
        Ok(g) => g,
        Err(_) => return 0.0,
    };
    let n_ops = n_ops.max(1);
    let mut checksum = 0u64;
    let start = Instant::now();
    let mut left = n_ops;
    while left > 0 {
        let chunk = left.min(1024) as usize;
        g.fill_batch(chunk, &mut |kind, key| {
            checksum = checksum
                .wrapping_add(key.len() as u64)
                .wrapping_add(key[0] as u64)
                .wrapping_add(kind as u64);
        });
        left -= chunk as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(checksum);
    n_ops as f64 / secs.max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// zeta(1e6, 0.99), computed once for all tests.
    fn params_1m() -> ZipfParams {
        static P: OnceLock<ZipfParams> = OnceLock::new();
        *P.get_or_init(|| ZipfParams::new(1_000_000, 0.99).unwrap())
    }

    #[test]
    fn xorshift_golden_and_seed_zero() {
        let mut r = Xorshift64::new(1);
        // 1 -> 1^(1<<13)=8193 -> 8193^(8193>>7)=8257 -> 8257^(8257<<17)
        assert_eq!(r.next_u64(), 1_082_269_761);
        let mut a = Xorshift64::new(0);
        let mut b = Xorshift64::new(1);
        for _ in 0..100 {
            let x = a.next_u64();
            assert_ne!(x, 0);
            assert_eq!(x, b.next_u64());
        }
    }

    #[test]
    fn zeta_and_constants_match_independent_computation() {
        // Independently computed with Python (float64, ascending sum):
        // zeta(1e6, 0.99) = 15.391849746037371.
        let p = params_1m();
        assert!(
            (p.zetan() - 15.391_849_746_037_371).abs() < 1e-9,
            "{}",
            p.zetan()
        );
        assert!((p.alpha() - 100.0).abs() < 1e-9);
        assert!((zeta(2, 0.99) - (1.0 + 0.5f64.powf(0.99))).abs() < 1e-15);
        assert_eq!(zeta(10, 0.0), 10.0);
    }

    #[test]
    fn zipf_frequencies_match_formula() {
        let p = params_1m();
        let zetan = p.zetan();
        let p0 = 1.0 / zetan;
        let top10: f64 = (1..=10).map(|i| 1.0 / (i as f64).powf(0.99)).sum::<f64>() / zetan;
        // Analytic values (Python): 1/zetan = 0.06496944918900666,
        // top-10 mass = 0.19205667709116073.
        assert!((p0 - 0.064_969_449).abs() < 1e-8);
        assert!((top10 - 0.192_056_677).abs() < 1e-8);

        let mut g = Generator::from_parts(KeyDist::Zipfian(p), 0.95, 42).unwrap();
        const N: usize = 2_000_000;
        let mut hot = [0u64; 10];
        for _ in 0..N {
            let k = g.next_op().key_index;
            assert!(k < 1_000_000);
            if k < 10 {
                hot[k as usize] += 1;
            }
        }
        let f0 = hot[0] as f64 / N as f64;
        let f10 = hot.iter().sum::<u64>() as f64 / N as f64;
        // Tolerances. The binomial standard deviation sqrt(p(1-p)/N) is
        // ~1.7e-4 for key 0 and ~2.8e-4 for the top-10 mass; we allow ~6 sigma.
        //
        // Key 0 (and key 1) are exact in the Gray et al. algorithm
        // (P(key 0) = P(u < 1/zetan) = 1/zetan), so key 0 gets 6 sigma = 1.1e-3.
        assert!((f0 - p0).abs() < 1.1e-3, "key 0: got {f0}, want {p0}");
        // Keys 2.. come from the continuous approximation
        // floor(n*(eta*u-eta+1)^alpha), which is NOT the exact Zipf mass: the
        // algorithm puts key < 10 exactly when u < 1 + ((10/n)^(1-theta)-1)/eta,
        // i.e. with probability 0.2020838 (Python) instead of the analytic
        // 0.1920567, a known +0.0100 bias of the YCSB generator at these
        // parameters. So: tight (6 sigma) against the algorithm's own mass,
        // and bias + 6 sigma (0.0100 + 0.0017 < 0.012) against the analytic sum.
        let algo10 = 1.0 + ((10.0 / 1e6f64).powf(1.0 - 0.99) - 1.0) / p.eta();
        assert!((algo10 - 0.202_083_807).abs() < 1e-8, "{algo10}");
        assert!(
            (f10 - algo10).abs() < 1.7e-3,
            "top 10: got {f10}, algorithm mass {algo10}"
        );
        assert!(
            (f10 - top10).abs() < 0.012,
            "top 10: got {f10}, analytic {top10}"
        );
        // Ordering sanity: 0 is the hottest, 1 next.
        assert!(hot[0] > hot[1] && hot[1] > hot[2]);
        // Key 1 is also exact: P = 0.5^theta / zetan (~0.0325, sigma ~1.3e-4).
        let f1 = hot[1] as f64 / N as f64;
        let p1 = 0.5f64.powf(0.99) / zetan;
        assert!((f1 - p1).abs() < 8e-4, "key 1: got {f1}, want {p1}");
    }

    fn read_fraction(name: &str, n: usize) -> f64 {
        let cfg = WorkloadConfig::from_name(name).unwrap();
        // Small key space: the read/write mix does not depend on it.
        let keys = KeyDist::Zipfian(ZipfParams::new(1000, 0.99).unwrap());
        let mut g = Generator::from_parts(keys, cfg.read_ratio, 7).unwrap();
        let reads = (0..n).filter(|_| g.next_op().kind == OpKind::Read).count();
        reads as f64 / n as f64
    }

    #[test]
    fn read_ratios_by_workload() {
        assert_eq!(read_ratio_for("ycsb-a").unwrap(), 0.5);
        assert_eq!(read_ratio_for("B").unwrap(), 0.95);
        assert_eq!(read_ratio_for("YCSB-C").unwrap(), 1.0);
        assert!(matches!(
            read_ratio_for("YCSB-D"),
            Err(WorkloadError::UnknownWorkload(_))
        ));
        assert_eq!(WorkloadConfig::from_name("c").unwrap().name, "YCSB-C");
        const N: usize = 400_000;
        // sigma = sqrt(p(1-p)/N): 7.9e-4 for A, 3.4e-4 for B; use ~6 sigma.
        let a = read_fraction("A", N);
        assert!((a - 0.5).abs() < 5e-3, "A: {a}");
        let b = read_fraction("ycsb-b", N);
        assert!((b - 0.95).abs() < 2e-3, "B: {b}");
        // C: every op must be a read, exactly.
        assert_eq!(read_fraction("YCSB-C", N), 1.0);
    }

    #[test]
    fn read_ratio_one_is_always_read_even_on_max_draw() {
        let keys = KeyDist::Uniform { records: 10 };
        let mut g = Generator::from_parts(keys, 1.0, 1).unwrap();
        // The threshold formula saturates to u64::MAX for 1.0 and the one
        // draw equal to u64::MAX would be a write, hence the explicit flag.
        assert!(g.always_read);
        assert_eq!(g.read_threshold, u64::MAX);
        assert_eq!(g.next_op().kind, OpKind::Read);
        let g0 = Generator::from_parts(keys, 0.0, 1).unwrap();
        assert_eq!(g0.read_threshold, 0);
    }

    #[test]
    fn determinism_and_draw_order() {
        let keys = KeyDist::Zipfian(ZipfParams::new(10_000, 0.99).unwrap());
        let mut a = Generator::from_parts(keys, 0.95, 123).unwrap();
        let mut b = Generator::from_parts(keys, 0.95, 123).unwrap();
        let mut c = Generator::from_parts(keys, 0.95, 124).unwrap();
        let va: Vec<OpSpec> = (0..10_000).map(|_| a.next_op()).collect();
        let vb: Vec<OpSpec> = (0..10_000).map(|_| b.next_op()).collect();
        let vc: Vec<OpSpec> = (0..10_000).map(|_| c.next_op()).collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);

        // Draw order: key from the 1st draw, read/write from the 2nd.
        let mut rng = Xorshift64::new(99);
        let mut g = Generator::from_parts(KeyDist::Uniform { records: 1000 }, 0.5, 99).unwrap();
        for _ in 0..1000 {
            let k = rng.next_u64() % 1000;
            let r = rng.next_u64();
            let kind = if r < (0.5 * u64::MAX as f64) as u64 {
                OpKind::Read
            } else {
                OpKind::Write
            };
            assert_eq!(g.next_op(), OpSpec { kind, key_index: k });
        }

        // Seed 0 behaves like seed 1.
        let mut z = Generator::from_parts(keys, 0.5, 0).unwrap();
        let mut o = Generator::from_parts(keys, 0.5, 1).unwrap();
        for _ in 0..1000 {
            assert_eq!(z.next_op(), o.next_op());
        }
    }

    #[test]
    fn zipf_sample_matches_formula_by_hand() {
        let p = ZipfParams::new(1000, 0.99).unwrap();
        let mut rng = Xorshift64::new(5);
        let mut check = Xorshift64::new(5);
        for _ in 0..10_000 {
            let got = p.sample(&mut rng);
            let u = check.next_u64() as f64 / u64::MAX as f64;
            let uz = u * p.zetan();
            let want = if uz < 1.0 {
                0
            } else if uz < 1.0 + 0.5f64.powf(0.99) {
                1
            } else {
                (1000.0 * (p.eta() * u - p.eta() + 1.0).powf(p.alpha())).floor() as u64
            };
            assert_eq!(got, want);
            assert!(got <= 1000);
        }
    }

    #[test]
    fn fast_sample_equals_the_reference_formula() {
        // Every draw of the table-driven sampler equals the formula with
        // libm's pow, at the seed's parameters and at skews whose exponent
        // `alpha` ranges from 1 to 1000.
        let cases = [
            params_1m(),
            ZipfParams::new(1000, 0.99).unwrap(),
            ZipfParams::new(100_000, 0.5).unwrap(),
            ZipfParams::new(100_000, 0.0).unwrap(),
            ZipfParams::new(100_000, 0.999).unwrap(),
            ZipfParams::new(2, 0.99).unwrap(),
        ];
        for (c, p) in cases.iter().enumerate() {
            let draws = if c == 0 { 4_000_000 } else { 500_000 };
            let mut a = Xorshift64::new(11 + c as u64);
            let mut b = a.clone();
            let mut fell_back = 0u64;
            for i in 0..draws {
                let want = p.sample_reference(&mut b);
                let got = p.sample(&mut a);
                assert_eq!(got, want, "case {c} draw {i}");
            }
            // The fallback is rare: count it on a copy of the stream.
            let mut r = Xorshift64::new(11 + c as u64);
            for _ in 0..100_000 {
                let u = r.next_u64() as f64 / u64::MAX as f64;
                if u * p.zetan() < p.second_threshold {
                    continue;
                }
                let x = p.eta() * u - p.eta() + 1.0;
                match fast_pow(p.tables, x, p.alpha()) {
                    Some(v) => {
                        let y = p.n_f * v;
                        let d = y * p.tol;
                        fell_back += u64::from((y - d) as u64 != (y + d) as u64);
                    }
                    None => fell_back += 1,
                }
            }
            assert!(fell_back < 100, "case {c}: {fell_back} fallbacks in 100000");
        }
    }

    #[test]
    fn fast_pow_is_within_its_bound() {
        let t = PowTables::get();
        let mut rng = Xorshift64::new(3);
        for alpha in [1.0, 2.0, 1.0 / (1.0 - 0.99), 1000.0, 0.3] {
            let bound = pow_tolerance(alpha) / 10.0;
            for _ in 0..200_000 {
                let x = 0.25 + 0.75 * (rng.next_u64() as f64 / u64::MAX as f64);
                let want = x.powf(alpha);
                if want < 1e-300 {
                    continue;
                }
                let got = fast_pow(t, x, alpha).expect("in domain");
                let rel = ((got - want) / want).abs();
                assert!(
                    rel <= bound,
                    "x {x} alpha {alpha}: {got} vs {want} ({rel:e})"
                );
            }
        }
        assert!((fast_pow(t, 1.0, 100.0).unwrap() - 1.0).abs() < 1e-13);
        assert_eq!(fast_pow(t, 0.0, 100.0), None);
        assert_eq!(fast_pow(t, f64::NAN, 100.0), None);
        assert_eq!(fast_pow(t, -0.5, 100.0), None);
        assert_eq!(fast_pow(t, 1e-300, 100.0), None);
    }

    #[test]
    fn uniform_is_roughly_flat() {
        let mut g = Generator::from_parts(KeyDist::Uniform { records: 100 }, 0.5, 77).unwrap();
        let mut counts = [0u64; 100];
        const N: u64 = 1_000_000;
        for _ in 0..N {
            counts[g.next_op().key_index as usize] += 1;
        }
        // Expected 10,000 per bucket, sigma ~99.5: +-6% is ~6 sigma.
        for (k, &c) in counts.iter().enumerate() {
            assert!((c as f64 - 10_000.0).abs() < 600.0, "key {k}: {c}");
        }
    }

    #[test]
    fn key_formatting() {
        let mut buf = [0u8; MAX_KEY_LEN];
        assert_eq!(key_bytes(0, &mut buf), b"0");
        assert_eq!(key_bytes(999_999, &mut buf), b"999999");
        assert_eq!(key_bytes(u64::MAX, &mut buf), b"18446744073709551615");
        for i in [1u64, 9, 10, 11, 99, 100, 101, 999, 1000, 12345, 1_000_000] {
            assert_eq!(key_bytes(i, &mut buf), i.to_string().as_bytes());
        }
        for i in (0..2_000_000u64).chain((0..64).map(|s| 1u64 << s)) {
            for j in [i, i.wrapping_sub(1), i.saturating_mul(10), u64::MAX - i] {
                assert_eq!(key_bytes(j, &mut buf), j.to_string().as_bytes());
            }
        }
        let mut v = Vec::with_capacity(32);
        append_key(42, &mut v);
        append_key(7, &mut v);
        assert_eq!(v, b"427");

        let mut g = Generator::from_parts(KeyDist::Uniform { records: 1000 }, 0.5, 3).unwrap();
        let mut h = g.clone();
        let mut seen = Vec::new();
        g.fill_batch(50, &mut |kind, key| seen.push((kind, key.to_vec())));
        for (kind, key) in seen {
            let op = h.next_op();
            assert_eq!(kind, op.kind);
            assert_eq!(key, op.key_index.to_string().into_bytes());
        }
    }

    #[test]
    fn chunked_fills_equal_one_op_at_a_time() {
        let keys = KeyDist::Zipfian(ZipfParams::new(10_000, 0.99).unwrap());
        for (read_ratio, n) in [(0.95, 1), (0.95, 31), (0.5, 32), (0.95, 33), (1.0, 1000)] {
            let mut g = Generator::from_parts(keys, read_ratio, 9).unwrap();
            let mut h = g.clone();
            let mut seen = Vec::new();
            g.fill_batch(n, &mut |kind, key| seen.push((kind, key.to_vec())));
            g.fill_batch(n, &mut |kind, key| seen.push((kind, key.to_vec())));
            assert_eq!(seen.len(), 2 * n);
            for (kind, key) in seen {
                let op = h.next_op();
                assert_eq!(
                    (kind, key),
                    (op.kind, op.key_index.to_string().into_bytes())
                );
            }
            let mut seen = Vec::new();
            g.fill_gets(n, &mut |k, key| seen.push((k, key.to_vec())));
            for (k, key) in seen {
                assert_eq!(k, h.next_key_index());
                assert_eq!(key, k.to_string().into_bytes());
            }
        }
    }

    #[test]
    fn seeds_are_distinct_nonzero_deterministic() {
        let mut all = std::collections::HashSet::new();
        for w in 0..16 {
            for s in 0..64 {
                let x = seed_for(w, s, 1);
                assert_ne!(x, 0);
                assert_eq!(x, seed_for(w, s, 1));
                assert!(all.insert(x));
            }
        }
        assert_ne!(seed_for(0, 0, 1), seed_for(0, 0, 2));
    }

    #[test]
    fn config_validation() {
        let ok = WorkloadConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.value(), vec![b'x'; 128]);
        let bad = |f: fn(&mut WorkloadConfig)| {
            let mut c = WorkloadConfig::default();
            f(&mut c);
            c.validate()
        };
        assert_eq!(bad(|c| c.records = 1), Err(WorkloadError::TooFewRecords(1)));
        assert_eq!(bad(|c| c.theta = 1.0), Err(WorkloadError::BadTheta(1.0)));
        assert!(bad(|c| c.theta = f64::NAN).is_err());
        assert!(bad(|c| {
            c.theta = 1.5;
            c.distribution = Distribution::Uniform;
        })
        .is_ok());
        assert_eq!(
            bad(|c| c.read_ratio = 1.5),
            Err(WorkloadError::BadReadRatio(1.5))
        );
        assert_eq!(
            bad(|c| c.value_size = 0),
            Err(WorkloadError::BadValueSize(0))
        );
        assert_eq!(Distribution::parse("Uniform"), Ok(Distribution::Uniform));
        assert!(Distribution::parse("normal").is_err());
    }

    #[test]
    fn generation_rate_is_positive() {
        let cfg = WorkloadConfig {
            records: 10_000,
            ..WorkloadConfig::default()
        };
        let r = generation_rate(&cfg, 100_000).unwrap();
        assert!(r.is_finite() && r > 1000.0, "{r}");
    }
}
