//! Measurements: workers append samples to their own slot (an uncontended mutex), a collector drains the slots
//! once a second into per-second and whole-run HDR histograms per operation.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::s3::OpResult;

/// Latencies are recorded in microseconds, from 1 µs to an hour, with three significant digits.
const HIGHEST_US: u64 = 3_600_000_000;
const SIGFIG: u8 = 3;
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Op {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "DELETE")]
    Delete,
    #[serde(rename = "STAT")]
    Stat,
    #[serde(rename = "LIST")]
    List,
    #[serde(rename = "MULTIPART")]
    Multipart,
    #[serde(rename = "UPLOADPART")]
    UploadPart,
}

impl Op {
    pub const ALL: [Op; 7] = [Op::Get, Op::Put, Op::Delete, Op::Stat, Op::List, Op::Multipart, Op::UploadPart];

    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "GET",
            Op::Put => "PUT",
            Op::Delete => "DELETE",
            Op::Stat => "STAT",
            Op::List => "LIST",
            Op::Multipart => "MULTIPART",
            Op::UploadPart => "UPLOADPART",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, HIGHEST_US, SIGFIG).expect("valid histogram bounds")
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    op: Op,
    us: u64,
    bytes: u64,
}

#[derive(Default)]
struct Slot {
    samples: Vec<Sample>,
    errors: Vec<(Op, Cow<'static, str>)>,
    verified: u64,
}

/// Where workers record. Only operations that started while `measuring` was set are kept.
pub struct Recorder {
    slots: Vec<Mutex<Slot>>,
    measuring: AtomicBool,
}

impl Recorder {
    pub fn new(workers: usize) -> Recorder {
        Recorder {
            slots: (0..workers).map(|_| Mutex::new(Slot::default())).collect(),
            measuring: AtomicBool::new(false),
        }
    }

    pub fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }

    pub fn set_measuring(&self, on: bool) {
        self.measuring.store(on, Ordering::Relaxed);
    }

    /// Records the outcome of an operation that took `latency` and moved `bytes` when it succeeded.
    pub fn record<T>(
        &self,
        worker: usize,
        op: Op,
        measured: bool,
        latency: Duration,
        bytes: u64,
        result: &OpResult<T>,
    ) {
        if !measured {
            return;
        }
        let Some(slot) = self.slots.get(worker) else { return };
        let Ok(mut slot) = slot.lock() else { return };
        match result {
            Ok(_) => slot.samples.push(Sample { op, us: latency.as_micros().max(1) as u64, bytes }),
            Err(e) => slot.errors.push((op, e.code.clone())),
        }
    }

    /// Counts a GET whose bytes were compared with what was written.
    pub fn verified(&self, worker: usize, measured: bool) {
        if let (true, Some(slot)) = (measured, self.slots.get(worker))
            && let Ok(mut slot) = slot.lock()
        {
            slot.verified += 1;
        }
    }
}

/// Whole-run figures of one operation.
#[derive(Clone)]
pub struct OpStats {
    pub histogram: Histogram<u64>,
    pub ops: u64,
    pub bytes: u64,
    pub errors: BTreeMap<String, u64>,
    pub verified: u64,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats { histogram: new_histogram(), ops: 0, bytes: 0, errors: BTreeMap::new(), verified: 0 }
    }
}

impl OpStats {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn is_used(&self) -> bool {
        self.ops > 0 || !self.errors.is_empty()
    }

    pub fn merge(&mut self, other: &OpStats) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
        self.ops += other.ops;
        self.bytes += other.bytes;
        self.verified += other.verified;
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
    }
}

/// One operation's figures over one interval of the per-second series.
#[derive(Debug, Clone, Serialize)]
pub struct OpPoint {
    pub op: Op,
    pub ops: u64,
    pub errors: u64,
    pub ops_per_s: f64,
    pub mib_per_s: f64,
    #[serde(flatten)]
    pub latency: Percentiles,
}

/// One interval (normally a second) of the series.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// End of the interval, in seconds since the measurement started.
    pub t_s: f64,
    pub dt_s: f64,
    pub ops: Vec<OpPoint>,
}

impl Point {
    pub fn total_ops_per_s(&self) -> f64 {
        self.ops.iter().map(|p| p.ops_per_s).sum()
    }

    pub fn total_mib_per_s(&self) -> f64 {
        self.ops.iter().map(|p| p.mib_per_s).sum()
    }

    pub fn total_errors(&self) -> u64 {
        self.ops.iter().map(|p| p.errors).sum()
    }
}

/// What one measured run produced.
#[derive(Clone)]
pub struct RunStats {
    pub elapsed: Duration,
    pub ops: BTreeMap<Op, OpStats>,
    pub series: Vec<Point>,
}

impl RunStats {
    pub fn total_ops(&self) -> u64 {
        self.ops.values().map(|s| s.ops).sum()
    }

    pub fn total_errors(&self) -> u64 {
        self.ops.values().map(OpStats::error_count).sum()
    }

    /// Adds another run of the same workload (rounds): counts and histograms add up, and so does time.
    pub fn merge(&mut self, other: &RunStats) {
        self.elapsed += other.elapsed;
        for (op, stats) in &other.ops {
            self.ops.entry(*op).or_default().merge(stats);
        }
    }
}

/// Drains the recorder's slots and keeps the totals and the series.
pub struct Collector {
    totals: Vec<OpStats>,
    interval: Vec<Histogram<u64>>,
    interval_ops: Vec<(u64, u64, u64)>,
    series: Vec<Point>,
    start: Instant,
    last: Instant,
    spare: Vec<Sample>,
}

impl Collector {
    pub fn new(start: Instant) -> Collector {
        Collector {
            totals: Op::ALL.iter().map(|_| OpStats::default()).collect(),
            interval: Op::ALL.iter().map(|_| new_histogram()).collect(),
            interval_ops: vec![(0, 0, 0); Op::ALL.len()],
            series: Vec::new(),
            start,
            last: start,
            spare: Vec::new(),
        }
    }

    /// Moves every recorded sample into the histograms and closes the interval that ends `now`.
    pub fn drain(&mut self, recorder: &Recorder, now: Instant) -> &Point {
        for slot in &recorder.slots {
            let (errors, verified) = {
                let Ok(mut slot) = slot.lock() else { continue };
                std::mem::swap(&mut slot.samples, &mut self.spare);
                (std::mem::take(&mut slot.errors), std::mem::take(&mut slot.verified))
            };
            for sample in self.spare.drain(..) {
                let i = sample.op.index();
                self.totals[i].histogram.saturating_record(sample.us);
                self.totals[i].ops += 1;
                self.totals[i].bytes += sample.bytes;
                self.interval[i].saturating_record(sample.us);
                self.interval_ops[i].0 += 1;
                self.interval_ops[i].1 += sample.bytes;
            }
            for (op, code) in errors {
                *self.totals[op.index()].errors.entry(code.into_owned()).or_default() += 1;
                self.interval_ops[op.index()].2 += 1;
            }
            self.totals[Op::Get.index()].verified += verified;
        }
        let dt = now.saturating_duration_since(self.last).as_secs_f64().max(1e-9);
        let mut ops = Vec::new();
        for op in Op::ALL {
            let i = op.index();
            let (n, bytes, errors) = std::mem::take(&mut self.interval_ops[i]);
            if n > 0 || errors > 0 || self.totals[i].is_used() {
                ops.push(OpPoint {
                    op,
                    ops: n,
                    errors,
                    ops_per_s: n as f64 / dt,
                    mib_per_s: bytes as f64 / MIB / dt,
                    latency: Percentiles::of(&self.interval[i]),
                });
            }
            self.interval[i].reset();
        }
        self.series.push(Point { t_s: now.saturating_duration_since(self.start).as_secs_f64(), dt_s: dt, ops });
        self.last = now;
        self.series.last().expect("a point was just pushed")
    }

    /// The run's figures; `end` is when the measurement ended.
    pub fn finish(mut self, end: Instant) -> RunStats {
        // A last sliver of an interval (the measurement ended just after a tick) makes a noisy point; its samples
        // are in the totals already.
        if self.series.len() > 1 && self.series.last().is_some_and(|p| p.dt_s < 0.25) {
            self.series.pop();
        }
        let ops = Op::ALL.into_iter().zip(self.totals).filter(|(_, stats)| stats.is_used()).collect();
        RunStats { elapsed: end.saturating_duration_since(self.start), ops, series: self.series }
    }
}

/// Rates of a whole run.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

pub fn mib_per_second(bytes: u64, elapsed: Duration) -> f64 {
    per_second(bytes, elapsed) / MIB
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::OpError;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = new_histogram();
        for us in 1..=10_000u64 {
            h.record(us).expect("in range");
        }
        let p = Percentiles::of(&h);
        let close = |got: f64, want: f64| (got - want).abs() / want < 0.002;
        assert!(close(p.p50_ms, 5.0), "{p:?}");
        assert!(close(p.p90_ms, 9.0), "{p:?}");
        assert!(close(p.p99_ms, 9.9), "{p:?}");
        assert!(close(p.p999_ms, 9.99), "{p:?}");
        assert!(close(p.max_ms, 10.0), "{p:?}");
        assert_eq!(Percentiles::of(&new_histogram()), Percentiles::default());
    }

    #[test]
    fn only_measured_operations_count() {
        let recorder = Recorder::new(2);
        let t0 = Instant::now();
        let mut collector = Collector::new(t0);
        let ok: OpResult<()> = Ok(());
        recorder.record(0, Op::Put, false, Duration::from_millis(1), 10, &ok);
        recorder.record(0, Op::Put, true, Duration::from_millis(2), 4096, &ok);
        recorder.record(1, Op::Put, true, Duration::from_millis(4), 4096, &ok);
        let failed: OpResult<()> = Err(OpError::new("SlowDown", ""));
        recorder.record(1, Op::Put, true, Duration::from_millis(4), 4096, &failed);
        recorder.record(1, Op::Get, true, Duration::from_millis(4), 0, &Err::<(), _>(OpError::bad_content("x")));
        recorder.verified(0, true);
        recorder.verified(0, false);
        let point = collector.drain(&recorder, t0 + Duration::from_secs(1)).clone();
        assert_eq!(point.t_s, 1.0);
        let put = point.ops.iter().find(|p| p.op == Op::Put).expect("put point");
        assert_eq!((put.ops, put.errors), (2, 1));
        assert!((put.ops_per_s - 2.0).abs() < 1e-9);
        assert!((put.mib_per_s - 8192.0 / MIB).abs() < 1e-9);
        assert!((put.latency.p50_ms - 2.0).abs() < 0.01 && (put.latency.max_ms - 4.0).abs() < 0.01);
        // A quiet second still has a point, with zero rates, for every operation seen so far.
        let quiet = collector.drain(&recorder, t0 + Duration::from_millis(2500)).clone();
        assert_eq!(quiet.dt_s, 1.5);
        assert!(quiet.ops.iter().all(|p| p.ops == 0 && p.ops_per_s == 0.0));
        assert_eq!(quiet.ops.len(), 2);
        let stats = collector.finish(t0 + Duration::from_millis(2500));
        assert_eq!(stats.series.len(), 2);
        assert_eq!(stats.elapsed, Duration::from_millis(2500));
        let put = &stats.ops[&Op::Put];
        assert_eq!((put.ops, put.bytes, put.error_count()), (2, 8192, 1));
        assert_eq!(put.errors.get("SlowDown"), Some(&1));
        assert_eq!(stats.ops[&Op::Get].errors.get("BadContent"), Some(&1));
        assert_eq!(stats.ops[&Op::Get].verified, 1);
        assert!(!stats.ops.contains_key(&Op::List));
        assert_eq!((stats.total_ops(), stats.total_errors()), (2, 2));
    }

    #[test]
    fn rounds_merge() {
        let mut a = OpStats::default();
        a.histogram.record(1000).expect("in range");
        a.ops = 1;
        a.errors.insert("Timeout".into(), 2);
        let mut b = a.clone();
        b.histogram.record(3000).expect("in range");
        b.ops = 2;
        let mut run_a = RunStats { elapsed: Duration::from_secs(1), ops: [(Op::Get, a)].into(), series: vec![] };
        let run_b = RunStats { elapsed: Duration::from_secs(2), ops: [(Op::Get, b)].into(), series: vec![] };
        run_a.merge(&run_b);
        let get = &run_a.ops[&Op::Get];
        assert_eq!((get.ops, get.histogram.len(), get.errors["Timeout"]), (3, 3, 4));
        assert_eq!(run_a.elapsed, Duration::from_secs(3));
        assert!((per_second(get.ops, run_a.elapsed) - 1.0).abs() < 1e-9);
        assert!((mib_per_second(3 << 20, Duration::from_secs(3)) - 1.0).abs() < 1e-9);
    }
}
