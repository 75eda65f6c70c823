//! `--plot FILE.png`: throughput (ops/s, MiB/s) and latency percentiles over time, one line per target and
//! operation, drawn with plotters into an RGB buffer and written as PNG by the small encoder below.
//!
//! Text needs a TrueType font, loaded at run time from `COFFER_LOADTEST_FONT` or the usual Debian paths (the
//! `fonts-dejavu-core` package). Without one the chart is drawn without any text.

use std::io::Write as _;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use plotters::prelude::*;

use crate::report::Series;
use crate::stats::{Op, OpPoint};

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 1050;
const FONT_PATHS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
];
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Registers a font with plotters once; false when none could be loaded.
fn font_loaded() -> bool {
    static LOADED: OnceLock<bool> = OnceLock::new();
    *LOADED.get_or_init(|| {
        let candidates = std::env::var("COFFER_LOADTEST_FONT").ok().into_iter().chain(FONT_PATHS.map(String::from));
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                // plotters keeps fonts for the life of the process; this happens once.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// One line of a panel.
struct Line {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// What to draw; `text` false draws no text at all (no font).
pub fn render(title: &str, series: &[Series], text: bool) -> anyhow::Result<Vec<u8>> {
    let multi_round = series.iter().any(|s| s.round > 0);
    // One color per (target, round, op), in order of appearance.
    let mut keys: Vec<(String, Op)> = Vec::new();
    for s in series {
        for point in &s.points {
            for p in &point.ops {
                let label = if multi_round { format!("{} r{}", s.target, s.round + 1) } else { s.target.clone() };
                if !keys.iter().any(|(l, op)| *l == label && *op == p.op) {
                    keys.push((label, p.op));
                }
            }
        }
    }
    let line = |label: &str, op: Op, value: &dyn Fn(&OpPoint) -> Option<f64>| -> Line {
        let index = keys.iter().position(|(l, o)| l == label && *o == op).unwrap_or(0);
        let mut points = Vec::new();
        for s in series {
            let l = if multi_round { format!("{} r{}", s.target, s.round + 1) } else { s.target.clone() };
            if l != label {
                continue;
            }
            for point in &s.points {
                if let Some(v) = point.ops.iter().find(|p| p.op == op).and_then(value) {
                    points.push((point.t_s - point.dt_s / 2.0, v));
                }
            }
        }
        Line { label: format!("{label} {}", op.name()), color: COLORS[index % COLORS.len()], points }
    };
    let has_bytes = |op: Op| matches!(op, Op::Get | Op::Put | Op::Multipart | Op::UploadPart);
    let ops_lines: Vec<Line> = keys.iter().map(|(l, op)| line(l, *op, &|p| Some(p.ops_per_s))).collect();
    let mib_lines: Vec<Line> =
        keys.iter().filter(|(_, op)| has_bytes(*op)).map(|(l, op)| line(l, *op, &|p| Some(p.mib_per_s))).collect();
    let latency = |f: fn(&OpPoint) -> f64| -> Vec<Line> {
        keys.iter().map(|(l, op)| line(l, *op, &|p| (p.ops > 0 && f(p) > 0.0).then(|| f(p)))).collect()
    };
    let p50 = latency(|p| p.latency.p50_ms);
    let p99 = latency(|p| p.latency.p99_ms);
    let p999 = latency(|p| p.latency.p999_ms);

    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let root = if text { root.titled(title, ("sans-serif", 22)).map_err(|e| anyhow!("{e}"))? } else { root };
        let panels = root.split_evenly((3, 1));
        let t_max = series.iter().flat_map(|s| s.points.last()).map(|p| p.t_s).fold(1.0f64, f64::max);
        draw_linear(&panels[0], "throughput (ops/s)", t_max, &ops_lines, text)?;
        draw_linear(&panels[1], "throughput (MiB/s)", t_max, &mib_lines, text)?;
        draw_latency(&panels[2], t_max, &p50, &p99, &p999, text)?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    encode_png(WIDTH, HEIGHT, &pixels)
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn draw_linear(area: &Area<'_>, what: &str, t_max: f64, lines: &[Line], text: bool) -> anyhow::Result<()> {
    let y_max = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).fold(0.0f64, f64::max).max(1e-3) * 1.1;
    let mut builder = ChartBuilder::on(area);
    builder.margin(12).x_label_area_size(if text { 28 } else { 0 }).y_label_area_size(if text { 70 } else { 0 });
    if text {
        builder.caption(what, ("sans-serif", 16));
    }
    let mut chart = builder.build_cartesian_2d(0.0..t_max, 0.0..y_max).map_err(|e| anyhow!("{e}"))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("seconds").label_style(("sans-serif", 13)).y_label_formatter(&|v| tick_label(*v));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| anyhow!("{e}"))?;
    for l in lines {
        let series = chart
            .draw_series(LineSeries::new(l.points.iter().copied(), l.color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?;
        if text {
            let color = l.color;
            series
                .label(&l.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
    }
    if text && !lines.is_empty() {
        draw_legend(&mut chart)?;
    }
    Ok(())
}

fn draw_latency(
    area: &Area<'_>,
    t_max: f64,
    p50: &[Line],
    p99: &[Line],
    p999: &[Line],
    text: bool,
) -> anyhow::Result<()> {
    let values = || p50.iter().chain(p99).chain(p999).flat_map(|l| l.points.iter().map(|p| p.1));
    let lo = values().fold(f64::INFINITY, f64::min);
    let hi = values().fold(0.0f64, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > 0.0 { (lo * 0.8, hi * 1.25) } else { (0.01, 10.0) };
    let mut builder = ChartBuilder::on(area);
    builder.margin(12).x_label_area_size(if text { 28 } else { 0 }).y_label_area_size(if text { 70 } else { 0 });
    if text {
        builder.caption("latency (ms, log): p50 thick, p99 thin, p99.9 faint", ("sans-serif", 16));
    }
    let mut chart = builder.build_cartesian_2d(0.0..t_max, (lo..hi).log_scale()).map_err(|e| anyhow!("{e}"))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("seconds").label_style(("sans-serif", 13));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| anyhow!("{e}"))?;
    for l in p999 {
        chart
            .draw_series(LineSeries::new(l.points.iter().copied(), l.color.mix(0.35).stroke_width(1)))
            .map_err(|e| anyhow!("{e}"))?;
    }
    for l in p99 {
        chart
            .draw_series(LineSeries::new(l.points.iter().copied(), l.color.mix(0.8).stroke_width(1)))
            .map_err(|e| anyhow!("{e}"))?;
    }
    for l in p50 {
        let series = chart
            .draw_series(LineSeries::new(l.points.iter().copied(), l.color.stroke_width(3)))
            .map_err(|e| anyhow!("{e}"))?;
        if text {
            let color = l.color;
            series
                .label(&l.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3)));
        }
    }
    if text && !p50.is_empty() {
        draw_legend(&mut chart)?;
    }
    Ok(())
}

/// The legend box of the labelled series, top right.
fn draw_legend<'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, CT>,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|e| anyhow!("{e}"))
}

/// A short axis label: no needless decimals.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}").trim_end_matches(".0").to_string()
    } else if a >= 0.1 {
        format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Draws and writes the plot; returns whether it has text.
pub fn write(path: &Path, title: &str, series: &[Series]) -> anyhow::Result<bool> {
    let text = font_loaded();
    let png = render(title, series, text)?;
    std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
    Ok(text)
}

/// A minimal PNG encoder: 8-bit RGB, no interlace, each row filtered with `Sub`, one zlib IDAT chunk.
pub fn encode_png(width: u32, height: u32, rgb: &[u8]) -> anyhow::Result<Vec<u8>> {
    let stride = width as usize * 3;
    anyhow::ensure!(rgb.len() == stride * height as usize, "pixel buffer of the wrong size");
    let mut raw = Vec::with_capacity((stride + 1) * height as usize);
    for row in rgb.chunks_exact(stride) {
        raw.push(1); // Sub: each byte minus the byte of the pixel to its left
        raw.extend(row.iter().enumerate().map(|(i, &b)| if i < 3 { b } else { b.wrapping_sub(row[i - 3]) }));
    }
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
    zlib.write_all(&raw)?;
    let idat = zlib.finish()?;
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // depth 8, RGB, deflate, adaptive filtering, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", &ihdr[..]), (b"IDAT", &idat[..]), (b"IEND", &[][..])] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{OpPoint, Percentiles, Point};
    use std::io::Read as _;

    fn series() -> Vec<Series> {
        let point = |t: f64, ops: u64, p50: f64| Point {
            t_s: t,
            dt_s: 1.0,
            ops: vec![OpPoint {
                op: Op::Get,
                ops,
                errors: 0,
                ops_per_s: ops as f64,
                mib_per_s: ops as f64 / 256.0,
                latency: Percentiles {
                    p50_ms: p50,
                    p90_ms: p50 * 2.0,
                    p99_ms: p50 * 3.0,
                    p999_ms: p50 * 5.0,
                    max_ms: 9.0,
                },
            }],
        };
        vec![
            Series {
                target: "ceiling".into(),
                round: 0,
                points: (1..=5).map(|t| point(t as f64, 9000, 0.3)).collect(),
            },
            Series { target: "server".into(), round: 0, points: (1..=5).map(|t| point(t as f64, 3000, 1.1)).collect() },
        ]
    }

    fn decode(png: &[u8]) -> (u32, u32, Vec<u8>) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let (mut pos, mut size, mut idat) = (8, (0, 0), Vec::new());
        while pos < png.len() {
            let len = u32::from_be_bytes(png[pos..pos + 4].try_into().expect("len")) as usize;
            let kind = &png[pos + 4..pos + 8];
            let data = &png[pos + 8..pos + 8 + len];
            let mut crc = flate2::Crc::new();
            crc.update(kind);
            crc.update(data);
            assert_eq!(crc.sum().to_be_bytes(), png[pos + 8 + len..pos + 12 + len], "crc of {kind:?}");
            match kind {
                b"IHDR" => {
                    size = (
                        u32::from_be_bytes(data[..4].try_into().expect("w")),
                        u32::from_be_bytes(data[4..8].try_into().expect("h")),
                    )
                }
                b"IDAT" => idat.extend_from_slice(data),
                _ => {}
            }
            pos += 12 + len;
        }
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).expect("zlib");
        (size.0, size.1, raw)
    }

    #[test]
    fn axis_helpers() {
        assert_eq!(tick_label(5000.0), "5000");
        assert_eq!(tick_label(12.5), "12.5");
        assert_eq!(tick_label(20.0), "20");
        assert_eq!(tick_label(0.5), "0.5");
    }

    #[test]
    fn png_round_trips() {
        let rgb: Vec<u8> = (0..4 * 3 * 3).map(|i| (i * 37 % 251) as u8).collect();
        let png = encode_png(4, 3, &rgb).expect("png");
        let (w, h, raw) = decode(&png);
        assert_eq!((w, h), (4, 3));
        let mut back = Vec::new();
        for row in raw.chunks_exact(4 * 3 + 1) {
            assert_eq!(row[0], 1);
            let start = back.len();
            for (i, &b) in row[1..].iter().enumerate() {
                let left = if i < 3 { 0 } else { back[start + i - 3] };
                back.push(b.wrapping_add(left));
            }
        }
        assert_eq!(back, rgb);
        assert!(encode_png(5, 3, &rgb).is_err());
    }

    #[test]
    fn renders_without_text() {
        let png = render("t", &series(), false).expect("render");
        let (w, h, raw) = decode(&png);
        assert_eq!((w, h), (WIDTH, HEIGHT));
        assert_eq!(raw.len(), (WIDTH as usize * 3 + 1) * HEIGHT as usize);
        // Something other than the white background was drawn.
        assert!(raw.chunks_exact(WIDTH as usize * 3 + 1).any(|row| row[1..].iter().any(|&b| b != 0 && b != 255)));
    }

    #[test]
    fn renders_with_text_when_a_font_exists() {
        if !font_loaded() {
            return;
        }
        let png = render("coffer-loadtest get 4KiB", &series(), true).expect("render");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(render("empty", &[], true).is_ok());
    }
}
