//! Results: one row per target and operation, ratios between targets, the text table and the JSON document.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::run::Workload;
use crate::size::SizeDist;
use crate::stats::{Op, Percentiles, Point, RunStats, mib_per_second, per_second};

/// Per-figure ratios `a / b` (absent where `b` is zero).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Ratios {
    pub ops_per_s: Option<f64>,
    pub mib_per_s: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

impl Ratios {
    pub fn of(a: &ResultRow, b: &ResultRow) -> Ratios {
        Ratios {
            ops_per_s: ratio(a.ops_per_s, b.ops_per_s),
            mib_per_s: ratio(a.mib_per_s, b.mib_per_s),
            p50_ms: ratio(a.latency.p50_ms, b.latency.p50_ms),
            p90_ms: ratio(a.latency.p90_ms, b.latency.p90_ms),
            p99_ms: ratio(a.latency.p99_ms, b.latency.p99_ms),
            p999_ms: ratio(a.latency.p999_ms, b.latency.p999_ms),
        }
    }
}

/// The figures of one operation against one target (all rounds together).
#[derive(Debug, Clone, Serialize)]
pub struct ResultRow {
    pub target: String,
    pub op: Op,
    pub ops: u64,
    pub bytes: u64,
    pub elapsed_s: f64,
    pub ops_per_s: f64,
    pub mib_per_s: f64,
    #[serde(flatten)]
    pub latency: Percentiles,
    pub errors: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    /// GETs whose bytes were compared with what was written (and matched).
    pub verified: u64,
    /// Server throughput (ops/s) as a fraction of the ceiling's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_ceiling: Option<f64>,
    /// Every figure as a ratio of the ceiling's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratios_to_ceiling: Option<Ratios>,
    /// On server rows: every figure as a ratio of the compared endpoint's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_compare: Option<Ratios>,
    /// On compare rows: every figure as a ratio of the server's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_server: Option<Ratios>,
}

impl ResultRow {
    fn new(target: &str, op: Op, stats: &RunStats) -> Option<ResultRow> {
        let s = stats.ops.get(&op)?;
        Some(ResultRow {
            target: target.to_string(),
            op,
            ops: s.ops,
            bytes: s.bytes,
            elapsed_s: stats.elapsed.as_secs_f64(),
            ops_per_s: per_second(s.ops, stats.elapsed),
            mib_per_s: mib_per_second(s.bytes, stats.elapsed),
            latency: Percentiles::of(&s.histogram),
            errors: s.error_count(),
            errors_by_code: s.errors.clone(),
            verified: s.verified,
            ratio_to_ceiling: None,
            ratios_to_ceiling: None,
            ratio_to_compare: None,
            ratio_to_server: None,
        })
    }
}

/// Builds the rows of every target (in the order given) and fills in the ratios.
pub fn rows(targets: &[(String, RunStats)]) -> Vec<ResultRow> {
    let mut rows: Vec<ResultRow> = Vec::new();
    for (target, stats) in targets {
        rows.extend(Op::ALL.iter().filter_map(|op| ResultRow::new(target, *op, stats)));
    }
    let find =
        |rows: &[ResultRow], target: &str, op: Op| rows.iter().find(|r| r.target == target && r.op == op).cloned();
    for i in 0..rows.len() {
        let (target, op) = (rows[i].target.clone(), rows[i].op);
        if target != "ceiling"
            && let Some(ceiling) = find(&rows, "ceiling", op)
        {
            rows[i].ratio_to_ceiling = ratio(rows[i].ops_per_s, ceiling.ops_per_s);
            rows[i].ratios_to_ceiling = Some(Ratios::of(&rows[i], &ceiling));
        }
        if target == "server"
            && let Some(other) = find(&rows, "compare", op)
        {
            rows[i].ratio_to_compare = Some(Ratios::of(&rows[i], &other));
        }
        if target == "compare"
            && let Some(server) = find(&rows, "server", op)
        {
            rows[i].ratio_to_server = Some(Ratios::of(&rows[i], &server));
        }
    }
    rows
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"))
}

/// The end-of-run table.
pub fn table(rows: &[ResultRow]) -> String {
    let has_ceiling = rows.iter().any(|r| r.ratio_to_ceiling.is_some());
    let has_compare = rows.iter().any(|r| r.ratio_to_compare.is_some());
    let mut out = String::new();
    let _ = write!(
        out,
        "{:<8} {:<10} {:>9} {:>10} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>7}",
        "target", "op", "ops", "ops/s", "MiB/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
    );
    if has_ceiling {
        let _ = write!(out, " {:>10}", "/ceiling");
    }
    if has_compare {
        let _ = write!(out, " {:>10}", "/compare");
    }
    out.push('\n');
    for r in rows {
        let l = &r.latency;
        let _ = write!(
            out,
            "{:<8} {:<10} {:>9} {:>10.1} {:>9.2} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {:>7}",
            r.target,
            r.op.name(),
            r.ops,
            r.ops_per_s,
            r.mib_per_s,
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.p999_ms,
            l.max_ms,
            r.errors
        );
        if has_ceiling {
            let _ = write!(
                out,
                " {:>10}",
                if r.target == "ceiling" { String::new() } else { fmt_ratio(r.ratio_to_ceiling) }
            );
        }
        if has_compare {
            let _ = write!(out, " {:>10}", fmt_ratio(r.ratio_to_compare.as_ref().and_then(|x| x.ops_per_s)));
        }
        out.push('\n');
    }
    for r in rows.iter().filter(|r| r.errors > 0) {
        let codes: Vec<String> = r.errors_by_code.iter().map(|(code, n)| format!("{code} {n}")).collect();
        let _ = writeln!(out, "errors {} {}: {}", r.target, r.op.name(), codes.join(", "));
    }
    let verified: Vec<String> =
        rows.iter().filter(|r| r.verified > 0).map(|r| format!("{} {}", r.target, r.verified)).collect();
    if !verified.is_empty() {
        let _ = writeln!(out, "GETs verified byte for byte: {}", verified.join(", "));
    }
    out
}

/// The per-second series of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub target: String,
    pub round: u32,
    pub points: Vec<Point>,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub workload: Workload,
    pub size: String,
    pub size_min: u64,
    pub size_max: u64,
    pub size_dist: SizeDist,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mix: Option<String>,
    pub concurrency: usize,
    /// Measured seconds per run (unused when `ops` bounds the run).
    pub duration: f64,
    pub ops: Option<u64>,
    pub warmup: f64,
    pub objects: u64,
    pub rounds: u32,
    pub bucket: String,
    pub region: String,
    pub endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare_endpoint: Option<String>,
    pub ceiling: bool,
    pub timestamp: String,
    pub results: Vec<ResultRow>,
    pub series: Vec<Series>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{OpStats, new_histogram};
    use std::time::Duration;

    fn stats(ops: u64, latency_us: u64) -> RunStats {
        let mut histogram = new_histogram();
        histogram.record_n(latency_us, ops).expect("in range");
        let op = OpStats { histogram, ops, bytes: ops * 1024 * 1024, errors: BTreeMap::new(), verified: 3 };
        RunStats { elapsed: Duration::from_secs(2), ops: [(Op::Get, op)].into(), series: vec![] }
    }

    #[test]
    fn rows_carry_ratios() {
        let targets = vec![
            ("ceiling".to_string(), stats(1000, 1000)),
            ("server".to_string(), stats(250, 4000)),
            ("compare".to_string(), stats(500, 2000)),
        ];
        let rows = rows(&targets);
        assert_eq!(rows.len(), 3);
        let server = rows.iter().find(|r| r.target == "server").expect("server row");
        assert_eq!(server.ops_per_s, 125.0);
        assert_eq!(server.mib_per_s, 125.0);
        assert_eq!(server.ratio_to_ceiling, Some(0.25));
        let to_compare = server.ratio_to_compare.as_ref().expect("compare ratios");
        assert_eq!(to_compare.ops_per_s, Some(0.5));
        assert!((to_compare.p50_ms.expect("p50") - 2.0).abs() < 0.01);
        let compare = rows.iter().find(|r| r.target == "compare").expect("compare row");
        assert_eq!(compare.ratio_to_server.as_ref().and_then(|r| r.ops_per_s), Some(2.0));
        assert!(rows[0].ratio_to_ceiling.is_none());

        let json = serde_json::to_value(server).expect("json");
        for field in ["target", "op", "ops_per_s", "mib_per_s", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"] {
            assert!(json.get(field).is_some(), "{field} missing");
        }
        assert_eq!(json["op"], "GET");
        assert_eq!(json["errors"], 0);
        assert!(json["errors_by_code"].is_object());
        let text = table(&rows);
        assert!(text.contains("0.25x"), "{text}");
        assert!(text.contains("GETs verified"), "{text}");
    }
}
