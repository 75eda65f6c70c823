//! Instants for the `Date...` operators: ISO 8601 / RFC 3339 text or epoch seconds, as
//! nanoseconds since the epoch so comparisons are plain integer comparisons.

use time::format_description::well_known::{Iso8601, Rfc3339};
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

/// `2024-05-01T12:00:00Z`, `2024-05-01T12:00:00+02:00`, `20240501T120000Z`,
/// `2024-05-01T12:00:00` and `2024-05-01` (both taken as UTC), or epoch seconds such as
/// `1714564800` or `1714564800.5`.
pub(crate) fn parse_instant(text: &str) -> Option<i128> {
    if let Some(nanos) = parse_epoch(text) {
        return Some(nanos);
    }
    let local = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]");
    let instant = OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .or_else(|_| PrimitiveDateTime::parse(text, local).map(PrimitiveDateTime::assume_utc))
        .or_else(|_| Date::parse(text, format_description!("[year]-[month]-[day]")).map(|d| d.midnight().assume_utc()))
        .ok()?;
    Some(instant.unix_timestamp_nanos())
}

fn parse_epoch(text: &str) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || (digits.contains('.') && fraction.is_empty())
    {
        return None;
    }
    // Twenty digits of seconds are far beyond any calendar and would overflow the sum below.
    if whole.len() > 20 {
        return None;
    }
    let seconds: i128 = whole.parse().ok()?;
    let mut nanos: i128 = 0;
    for (place, digit) in fraction.bytes().take(9).enumerate() {
        nanos += i128::from(digit - b'0') * 10i128.pow(8 - place as u32);
    }
    let total = seconds * 1_000_000_000 + nanos;
    Some(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants() {
        let noon = 1_714_564_800_i128 * 1_000_000_000;
        let cases = [
            ("2024-05-01T12:00:00Z", Some(noon)),
            ("2024-05-01T14:00:00+02:00", Some(noon)),
            ("2024-05-01T12:00:00.5Z", Some(noon + 500_000_000)),
            ("20240501T120000Z", Some(noon)),
            ("2024-05-01T12:00:00", Some(noon)),
            ("2024-05-01", Some(noon - 12 * 3600 * 1_000_000_000)),
            ("1714564800", Some(noon)),
            ("1714564800.25", Some(noon + 250_000_000)),
            ("-1", Some(-1_000_000_000)),
            ("1714564800.", None),
            ("1e9", None),
            ("tomorrow", None),
            ("2024-13-01", None),
            ("", None),
            ("99999999999999999999999999", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_instant(text), expected, "{text}");
        }
    }
}
