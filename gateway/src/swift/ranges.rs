//! Multi-range GETs (`Range: bytes=0-9,20-29`), answered as Swift does: a `multipart/byteranges`
//! body whose parts are read from the object one after the other. S3 has no such answer, so each
//! part is a ranged S3 read of the same object.

use bytes::Bytes;

use super::large::{self, Part, Piece};
use super::response::{self, SwiftResponse};
use super::{SwiftApi, Target};

/// Swift's `max_ranges`: more ranges than this are answered with the whole object.
const MAX_RANGES: usize = 50;

/// What a Range header asks of an object of `total` bytes.
#[derive(Debug, PartialEq)]
pub enum Wanted {
    /// No usable Range header (absent or not valid syntax): the whole object.
    Whole,
    /// Inclusive (first, last) byte pairs, at least one, in the order asked.
    Ranges(Vec<(u64, u64)>),
    /// Valid syntax but nothing inside the object: 416.
    Unsatisfiable,
}

/// Parses `bytes=a-b,c-,-n` against an object of `total` bytes (RFC 9110 §14.1.2).
pub fn parse(header: &str, total: u64) -> Wanted {
    let Some(specs) = header.trim().strip_prefix("bytes=") else { return Wanted::Whole };
    let mut ranges = Vec::new();
    for spec in specs.split(',').map(str::trim) {
        let Some((first, last)) = spec.split_once('-') else { return Wanted::Whole };
        let number = |s: &str| s.trim().parse::<u64>().ok();
        let range = match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, true) => return Wanted::Whole,
            // A suffix: the last n bytes.
            (true, false) => match number(last) {
                Some(0) => None,
                Some(n) => Some((total.saturating_sub(n), total.checked_sub(1))),
                None => return Wanted::Whole,
            },
            (false, true) => match number(first) {
                Some(f) => Some((f, total.checked_sub(1))),
                None => return Wanted::Whole,
            },
            (false, false) => match (number(first), number(last)) {
                (Some(f), Some(l)) if f <= l => Some((f, total.checked_sub(1).map(|end| l.min(end)))),
                _ => return Wanted::Whole,
            },
        };
        if let Some((first, Some(last))) = range
            && first <= last
            && first < total
        {
            ranges.push((first, last));
        }
    }
    if ranges.is_empty() {
        Wanted::Unsatisfiable
    } else if ranges.len() > MAX_RANGES {
        Wanted::Whole
    } else {
        Wanted::Ranges(ranges)
    }
}

/// The `multipart/byteranges` answer for `ranges` of the object `container/object`.
#[allow(clippy::too_many_arguments)]
pub fn multipart_answer(
    api: &SwiftApi,
    target: &Target,
    container: &str,
    object: &str,
    etag: &str,
    content_type: &str,
    total: u64,
    ranges: &[(u64, u64)],
) -> SwiftResponse {
    let boundary = uuid::Uuid::new_v4().simple().to_string();
    let mut parts = Vec::with_capacity(ranges.len() * 2 + 1);
    let mut length = 0u64;
    for (i, &(first, last)) in ranges.iter().enumerate() {
        let lead = if i == 0 { "" } else { "\r\n" };
        let head = format!(
            "{lead}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {first}-{last}/{total}\r\n\r\n"
        );
        length += head.len() as u64 + (last - first + 1);
        parts.push(Part::Literal(Bytes::from(head)));
        parts.push(Part::Object(Piece {
            container: container.to_string(),
            object: object.to_string(),
            first,
            len: last - first + 1,
            etag: Some(etag.to_string()),
        }));
    }
    let tail = format!("\r\n--{boundary}--");
    length += tail.len() as u64;
    parts.push(Part::Literal(Bytes::from(tail)));
    let mut answer = http::Response::new(large::stream_parts(api, target, parts));
    *answer.status_mut() = http::StatusCode::PARTIAL_CONTENT;
    response::set(&mut answer, "content-type", &format!("multipart/byteranges;boundary={boundary}"));
    response::set(&mut answer, "content-length", &length.to_string());
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_rfc_9110_says() {
        assert_eq!(parse("bytes=0-9,20-29", 100), Wanted::Ranges(vec![(0, 9), (20, 29)]));
        assert_eq!(parse("bytes=-5, 90-", 100), Wanted::Ranges(vec![(95, 99), (90, 99)]));
        assert_eq!(parse("bytes=95-200", 100), Wanted::Ranges(vec![(95, 99)]));
        assert_eq!(parse("bytes=100-,200-300", 100), Wanted::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 100), Wanted::Unsatisfiable);
        assert_eq!(parse("bytes=0-9,100-", 100), Wanted::Ranges(vec![(0, 9)]));
        assert_eq!(parse("bytes=9-0", 100), Wanted::Whole);
        assert_eq!(parse("lines=0-9", 100), Wanted::Whole);
        assert_eq!(parse("bytes=a-b", 100), Wanted::Whole);
        assert_eq!(parse("bytes=0-0", 0), Wanted::Unsatisfiable);
        let many = (0..51).map(|i| format!("{i}-{i}")).collect::<Vec<_>>().join(",");
        assert_eq!(parse(&format!("bytes={many}"), 100), Wanted::Whole);
    }
}
