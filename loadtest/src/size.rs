//! Object sizes: parsing (`4KiB`, `1.5MiB`, `1KiB..1MiB`), formatting and the size distributions.

use std::fmt;
use std::str::FromStr;

use clap::ValueEnum;
use rand::Rng;
use serde::Serialize;

/// Parses a byte count: a number (decimals allowed) and an optional unit. Binary units (`K`, `KiB`, `k`, `M`,
/// `MiB`, `G`, `GiB`, `T`, `TiB`) are powers of 1024, decimal ones (`KB`, `MB`, `GB`, `TB`) powers of 1000; units
/// are case-insensitive.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(format!("bad size {s:?}: expected a number with an optional unit such as 4KiB"));
    }
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "t" | "ti" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => return Err(format!("bad size {s:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, KB, MB, GB)")),
    };
    if let Ok(n) = number.parse::<u64>() {
        return n.checked_mul(multiplier).ok_or_else(|| format!("size {s:?} is too large"));
    }
    let value: f64 = number.parse().map_err(|_| format!("bad size {s:?}"))?;
    let bytes = (value * multiplier as f64).round();
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("size {s:?} is out of range"));
    }
    Ok(bytes as u64)
}

/// Formats a byte count with the largest binary unit that keeps it short: `4KiB`, `1.5MiB`, `100B`.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size {
            if n.is_multiple_of(size) {
                return format!("{}{unit}", n / size);
            }
            let value = n as f64 / size as f64;
            let text = format!("{value:.2}");
            let text = text.trim_end_matches('0').trim_end_matches('.');
            return format!("{text}{unit}");
        }
    }
    format!("{n}B")
}

/// How sizes are drawn from a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SizeDist {
    /// Every size in the range is equally likely.
    #[default]
    Uniform,
    /// The logarithm of the size is uniform: as many objects between 1KiB and 2KiB as between 512KiB and 1MiB.
    LogUniform,
}

/// A fixed object size or a range to draw sizes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeSpec {
    pub min: u64,
    pub max: u64,
    pub dist: SizeDist,
}

impl SizeSpec {
    pub fn fixed(size: u64) -> SizeSpec {
        SizeSpec { min: size, max: size, dist: SizeDist::Uniform }
    }

    pub fn with_dist(self, dist: SizeDist) -> SizeSpec {
        SizeSpec { dist, ..self }
    }

    pub fn is_fixed(&self) -> bool {
        self.min == self.max
    }

    /// Draws one size.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        if self.is_fixed() {
            return self.min;
        }
        match self.dist {
            SizeDist::Uniform => rng.random_range(self.min..=self.max),
            SizeDist::LogUniform => {
                // ln(0) is -inf: a zero minimum draws from [1, max] and maps the 1 back to 0 half the time.
                let lo = (self.min.max(1) as f64).ln();
                let hi = ((self.max + 1) as f64).ln();
                let x = rng.random_range(lo..hi).exp().floor() as u64;
                x.clamp(self.min, self.max)
            }
        }
    }
}

impl FromStr for SizeSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once("..") {
            None => Ok(SizeSpec::fixed(parse_bytes(s)?)),
            Some((lo, hi)) => {
                let (min, max) = (parse_bytes(lo)?, parse_bytes(hi)?);
                if min > max {
                    return Err(format!("bad size range {s:?}: the minimum is larger than the maximum"));
                }
                Ok(SizeSpec { min, max, dist: SizeDist::Uniform })
            }
        }
    }
}

impl fmt::Display for SizeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_fixed() {
            return write!(f, "{}", format_bytes(self.min));
        }
        let dist = match self.dist {
            SizeDist::Uniform => "uniform",
            SizeDist::LogUniform => "log-uniform",
        };
        write!(f, "{}..{} {dist}", format_bytes(self.min), format_bytes(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_bytes("4KiB"), Ok(4096));
        assert_eq!(parse_bytes("4k"), Ok(4096));
        assert_eq!(parse_bytes("4KB"), Ok(4000));
        assert_eq!(parse_bytes("1.5MiB"), Ok(1536 * 1024));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert_eq!(parse_bytes("7B"), Ok(7));
        assert_eq!(parse_bytes(" 2 GiB "), Ok(2 << 30));
        assert!(parse_bytes("KiB").is_err());
        assert!(parse_bytes("4XB").is_err());
        assert!(parse_bytes("99999999999999TiB").is_err());
    }

    #[test]
    fn formats_sizes() {
        assert_eq!(format_bytes(4096), "4KiB");
        assert_eq!(format_bytes(1536 * 1024), "1.5MiB");
        assert_eq!(format_bytes(1000), "1000B");
        assert_eq!(format_bytes(5 << 20), "5MiB");
    }

    #[test]
    fn parses_ranges() {
        let spec: SizeSpec = "1KiB..256KiB".parse().expect("range");
        assert_eq!((spec.min, spec.max), (1024, 256 * 1024));
        assert!(!spec.is_fixed());
        assert_eq!(spec.to_string(), "1KiB..256KiB uniform");
        assert_eq!("4KiB".parse::<SizeSpec>().expect("fixed").to_string(), "4KiB");
        assert!("2KiB..1KiB".parse::<SizeSpec>().is_err());
    }

    #[test]
    fn uniform_stays_in_range_and_spreads() {
        let spec: SizeSpec = "1KiB..1MiB".parse().expect("range");
        let mut rng = SmallRng::seed_from_u64(7);
        let samples: Vec<u64> = (0..20_000).map(|_| spec.sample(&mut rng)).collect();
        assert!(samples.iter().all(|&s| (1024..=1 << 20).contains(&s)));
        let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64;
        let expected = (1024.0 + (1 << 20) as f64) / 2.0;
        assert!((mean - expected).abs() / expected < 0.03, "mean {mean}");
    }

    #[test]
    fn log_uniform_has_equal_mass_per_octave() {
        let spec = "1KiB..1MiB".parse::<SizeSpec>().expect("range").with_dist(SizeDist::LogUniform);
        let mut rng = SmallRng::seed_from_u64(11);
        let n = 50_000;
        let mut low = 0; // 1KiB..32KiB is half of the ten octaves
        for _ in 0..n {
            let s = spec.sample(&mut rng);
            assert!((1024..=1 << 20).contains(&s));
            if s < 32 * 1024 {
                low += 1;
            }
        }
        let share = low as f64 / n as f64;
        assert!((share - 0.5).abs() < 0.02, "share below 32KiB: {share}");
        assert_eq!(SizeSpec::fixed(9).sample(&mut rng), 9);
    }
}
