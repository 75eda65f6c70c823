//! The checksum of a whole object as S3 shows it. A single-part object has the checksums computed
//! while its body streamed (`ObjectRecord.checksums`). A multipart object has the algorithm and
//! type named at CreateMultipartUpload, and its checksum is derived from its parts' checksums
//! (which every segment keeps) whenever it is shown:
//!
//! * COMPOSITE: the algorithm over the concatenated binary part checksums, shown as `base64-N`;
//! * FULL_OBJECT (CRC32, CRC32C, CRC64NVME only): the parts' CRCs combined mathematically into
//!   the CRC of the whole object, as if it had been computed in one pass.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use coffer_proto::pb::metadata::{ListPartsRequest, ObjectRecord, Segment, UploadRecord};
use crc_fast::CrcAlgorithm;
use futures::{StreamExt, TryStreamExt};
use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, ChecksumAlgorithm, ChecksumType, CompleteMultipartUploadInput, CompletedPart};
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::CofferS3;
use super::checksums::ChecksumRequest;
use super::convert::remote;
use crate::write_path::{WriteKey, Written};

type StdError = Box<dyn std::error::Error + Send + Sync>;

pub const COMPOSITE: &str = "COMPOSITE";
pub const FULL_OBJECT: &str = "FULL_OBJECT";

/// The algorithm names of `ObjectRecord.checksum_algorithm` and the checksum maps.
const ALGORITHMS: [&str; 5] = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"];

/// The stored name of a requested algorithm (`crc32` → `CRC32`).
pub fn algorithm_name(algorithm: &ChecksumAlgorithm) -> Option<&'static str> {
    ALGORITHMS.iter().copied().find(|n| n.eq_ignore_ascii_case(algorithm.as_str()))
}

fn is_crc(name: &str) -> bool {
    matches!(name, "CRC32" | "CRC32C" | "CRC64NVME")
}

fn invalid_request(message: String) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidRequest, message)
}

/// The (algorithm, type) a CreateMultipartUpload asks for, checked as S3 checks them.
pub fn upload_checksum(
    algorithm: Option<&ChecksumAlgorithm>,
    kind: Option<&ChecksumType>,
) -> S3Result<Option<(&'static str, &'static str)>> {
    let Some(algorithm) = algorithm else {
        if kind.is_some() {
            return Err(invalid_request(
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.".into(),
            ));
        }
        return Ok(None);
    };
    let name = algorithm_name(algorithm).ok_or_else(|| {
        S3Error::with_message(S3ErrorCode::InvalidArgument, "Value for x-amz-checksum-algorithm header is invalid.")
    })?;
    let kind = match kind.map(ChecksumType::as_str) {
        None if name == "CRC64NVME" => FULL_OBJECT,
        None => COMPOSITE,
        Some(k) if k.eq_ignore_ascii_case(COMPOSITE) => COMPOSITE,
        Some(k) if k.eq_ignore_ascii_case(FULL_OBJECT) => FULL_OBJECT,
        Some(_) => {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "Value for x-amz-checksum-type header is invalid.",
            ));
        }
    };
    if kind == FULL_OBJECT && !is_crc(name) {
        return Err(invalid_request(format!(
            "The FULL_OBJECT checksum type cannot be used with the {} checksum algorithm.",
            name.to_ascii_lowercase()
        )));
    }
    if kind == COMPOSITE && name == "CRC64NVME" {
        return Err(invalid_request(
            "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.".into(),
        ));
    }
    Ok(Some((name, kind)))
}

fn decode(value: &str) -> Option<Vec<u8>> {
    STANDARD.decode(value).ok()
}

fn crc_algorithm(name: &str) -> Option<CrcAlgorithm> {
    match name {
        "CRC32" => Some(CrcAlgorithm::Crc32IsoHdlc),
        "CRC32C" => Some(CrcAlgorithm::Crc32Iscsi),
        "CRC64NVME" => Some(CrcAlgorithm::Crc64Nvme),
        _ => None,
    }
}

fn hasher_for(name: &str) -> Option<ChecksumHasher> {
    let mut hasher = ChecksumHasher::default();
    match name {
        "CRC32" => hasher.crc32 = Some(Default::default()),
        "CRC32C" => hasher.crc32c = Some(Default::default()),
        "CRC64NVME" => hasher.crc64nvme = Some(Default::default()),
        "SHA1" => hasher.sha1 = Some(Default::default()),
        "SHA256" => hasher.sha256 = Some(Default::default()),
        _ => return None,
    }
    Some(hasher)
}

/// COMPOSITE: the algorithm over the concatenated binary part checksums, then `-N`.
pub fn composite(name: &str, parts: &[&str]) -> Option<String> {
    let mut hasher = hasher_for(name)?;
    for part in parts {
        hasher.update(&decode(part)?);
    }
    let sums = super::checksums::to_map(&hasher.finalize());
    Some(format!("{}-{}", sums.get(name)?, parts.len()))
}

/// FULL_OBJECT: the CRC of the concatenated parts, from each part's CRC and size.
pub fn full_object(name: &str, parts: &[(&str, u64)]) -> Option<String> {
    let algorithm = crc_algorithm(name)?;
    let width = if name == "CRC64NVME" { 8 } else { 4 };
    let mut combined: Option<u64> = None;
    for (value, size) in parts {
        let bytes = decode(value)?;
        if bytes.len() != width {
            return None;
        }
        let crc = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        combined = Some(match combined {
            None => crc,
            Some(previous) => crc_fast::checksum_combine(algorithm, previous, crc, *size),
        });
    }
    // An empty object's CRC is that of no bytes.
    let crc = combined.unwrap_or_else(|| crc_fast::checksum(algorithm, &[]));
    Some(STANDARD.encode(&crc.to_be_bytes()[8 - width..]))
}

/// The object checksum of parts with the upload's algorithm and type; `None` when a part lacks
/// a checksum of that algorithm (uploaded before S3 kept one, or copied without one).
pub fn of_segments(name: &str, kind: &str, segments: &[Segment]) -> Option<String> {
    let values: Option<Vec<&str>> = segments.iter().map(|s| s.checksums.get(name).map(String::as_str)).collect();
    let values = values?;
    if kind == FULL_OBJECT {
        let sized: Vec<(&str, u64)> = values.iter().copied().zip(segments.iter().map(|s| s.size)).collect();
        full_object(name, &sized)
    } else {
        composite(name, &values)
    }
}

/// What GET, HEAD and GetObjectAttributes show as the object's checksum, and its type.
pub fn of_object(record: &ObjectRecord) -> (Checksum, Option<ChecksumType>) {
    if record.checksum_algorithm.is_empty() {
        if record.checksums.is_empty() {
            return (Checksum::default(), None);
        }
        // A checksum computed over the whole body in one pass.
        return (super::checksums::from_map(&record.checksums), Some(ChecksumType::from_static(FULL_OBJECT)));
    }
    let kind = if record.checksum_type.is_empty() { COMPOSITE } else { record.checksum_type.as_str() };
    match of_segments(&record.checksum_algorithm, kind, &record.segments) {
        Some(value) => {
            let map = HashMap::from([(record.checksum_algorithm.clone(), value)]);
            (super::checksums::from_map(&map), Some(ChecksumType::from(kind.to_string())))
        }
        None => (Checksum::default(), None),
    }
}

/// A part's checksums (`partNumber` reads, ObjectParts): those of its segment.
pub fn of_part(record: &ObjectRecord, segment: &Segment) -> (Checksum, Option<ChecksumType>) {
    if record.checksum_algorithm.is_empty() {
        // A single-part object's only part is the object.
        return of_object(record);
    }
    let kind = if record.checksum_type.is_empty() { COMPOSITE } else { record.checksum_type.as_str() };
    let sums = super::checksums::from_map(&segment.checksums);
    let any = !segment.checksums.is_empty();
    (sums, any.then(|| ChecksumType::from(kind.to_string())))
}

/// The checksum an UploadPart must carry for an upload created with `algorithm` (empty: none):
/// one of another algorithm is refused as S3 refuses it; none at all is computed here.
pub fn require_part_algorithm(checks: &mut ChecksumRequest, algorithm: &str) -> S3Result<()> {
    let Some(name) = ALGORITHMS.iter().copied().find(|n| *n == algorithm) else {
        return Ok(());
    };
    if let Some(other) = checks.wanted.iter().find(|w| **w != name)
        && !checks.wanted.contains(&name)
    {
        return Err(invalid_request(format!(
            "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
            name.to_ascii_lowercase(),
            other.to_ascii_lowercase()
        )));
    }
    if !checks.wanted.contains(&name) {
        checks.wanted.push(name);
    }
    Ok(())
}

fn invalid_part() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InvalidPart,
        "One or more of the specified parts could not be found.  The part may not have been uploaded, or the \
         specified entity tag may not match the part's entity tag.",
    )
}

/// Most parts one upload can have (S3's limit), bounding the listing below.
const MAX_PARTS: usize = 10_000;

impl CofferS3 {
    /// Reads `range` of an object and writes it as new data of `target` with its `algorithm`
    /// checksum.
    pub(super) async fn copy_bytes_with_checksum(
        &self,
        target: &WriteKey,
        source: &ObjectRecord,
        range: Range<u64>,
        algorithm: &str,
    ) -> S3Result<Written> {
        let name =
            ALGORITHMS.iter().copied().find(|n| *n == algorithm).ok_or_else(|| {
                S3Error::with_message(S3ErrorCode::InternalError, "unknown stored checksum algorithm")
            })?;
        let checks = ChecksumRequest { expected: HashMap::new(), wanted: vec![name], trailers: None };
        let hasher = checks.hasher();
        let len = range.end - range.start;
        let tap = hasher.clone();
        let stream = self
            .plane
            .read(source.segments.clone(), range)
            .map_err(|e| -> StdError { Box::new(e) })
            .inspect_ok(move |chunk| {
                if let Ok(mut h) = tap.lock() {
                    h.update(chunk);
                }
            })
            .boxed();
        let mut written = self.plane.write(target, stream, len).await?;
        if written.segment.size != len {
            self.abandon(&written.key, written.intents).await;
            return Err(S3Error::with_message(S3ErrorCode::InternalError, "copy source ended early"));
        }
        match checks.verify(hasher) {
            Ok(computed) => written.segment.checksums = computed,
            Err(e) => {
                self.abandon(&written.key, written.intents).await;
                return Err(e);
            }
        }
        Ok(written)
    }

    /// Checks the part checksums a CompleteMultipartUpload lists against those stored (InvalidPart
    /// when one differs), that a COMPOSITE upload lists every part's, and that a whole-object
    /// checksum sent in a header matches the one the parts give (BadDigest).
    pub(super) async fn check_completed_checksums(
        &self,
        input: &CompleteMultipartUploadInput,
        parts: &[CompletedPart],
    ) -> S3Result<()> {
        let header = super::checksums::to_map(&Checksum {
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            checksum_type: None,
        });
        let listed: Vec<HashMap<String, String>> = parts
            .iter()
            .map(|p| {
                super::checksums::to_map(&Checksum {
                    checksum_crc32: p.checksum_crc32.clone(),
                    checksum_crc32c: p.checksum_crc32c.clone(),
                    checksum_crc64nvme: p.checksum_crc64nvme.clone(),
                    checksum_sha1: p.checksum_sha1.clone(),
                    checksum_sha256: p.checksum_sha256.clone(),
                    checksum_type: None,
                })
            })
            .collect();
        // The common case, no checksums at all, costs one small read rather than a listing of every part.
        if header.is_empty()
            && listed.iter().all(HashMap::is_empty)
            && self.check_upload(&input.bucket, &input.key, &input.upload_id).await?.is_empty()
        {
            return Ok(());
        }
        let (upload, stored) = self.all_parts(input).await?;
        let template = upload.and_then(|u| u.template).unwrap_or_default();
        let algorithm = template.checksum_algorithm.as_str();
        let kind = if template.checksum_type.is_empty() { COMPOSITE } else { template.checksum_type.as_str() };
        if let Some(asked) = &input.checksum_type
            && !algorithm.is_empty()
            && !asked.as_str().eq_ignore_ascii_case(kind)
        {
            return Err(invalid_request(format!(
                "The upload was created using the {kind} checksum mode. The complete request must use the same \
                 checksum mode."
            )));
        }
        let mut segments = Vec::with_capacity(parts.len());
        for (part, sums) in parts.iter().zip(&listed) {
            let number = part.part_number.unwrap_or_default();
            // A part that was never uploaded is the metadata service's InvalidPart.
            let Some(segment) = u32::try_from(number).ok().and_then(|n| stored.get(&n)) else {
                continue;
            };
            for (name, value) in sums {
                if segment.checksums.get(name) != Some(value) {
                    return Err(invalid_part());
                }
            }
            if !algorithm.is_empty() && kind == COMPOSITE && !sums.contains_key(algorithm) {
                return Err(invalid_request(format!(
                    "The upload was created using a {} checksum. The complete request must include the checksum \
                     for each part. It was missing for part {number} in the request.",
                    algorithm.to_ascii_lowercase()
                )));
            }
            segments.push(segment.clone());
        }
        for (name, value) in &header {
            if !algorithm.is_empty() && name != algorithm {
                return Err(invalid_request(format!(
                    "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                    algorithm.to_ascii_lowercase(),
                    name.to_ascii_lowercase()
                )));
            }
            let kind = if algorithm.is_empty() { COMPOSITE } else { kind };
            let computed = of_segments(name, kind, &segments);
            // A COMPOSITE checksum may be sent with or without its `-N`.
            let bare = |v: &str| v.split('-').next().unwrap_or_default().to_string();
            if computed.as_deref().map(bare) != Some(bare(value)) {
                return Err(S3Error::with_message(
                    S3ErrorCode::BadDigest,
                    format!("The {} you specified did not match the calculated checksum.", name.to_ascii_lowercase()),
                ));
            }
        }
        Ok(())
    }

    /// The upload and all its stored parts' segments, by part number.
    async fn all_parts(
        &self,
        input: &CompleteMultipartUploadInput,
    ) -> S3Result<(Option<UploadRecord>, BTreeMap<u32, Segment>)> {
        let mut stored = BTreeMap::new();
        let mut upload = None;
        let mut marker = 0;
        loop {
            let request = ListPartsRequest {
                bucket: input.bucket.clone(),
                key: input.key.clone(),
                upload_id: input.upload_id.clone(),
                part_number_marker: marker,
                max_parts: 1000,
            };
            let response = remote(self.plane.metadata.rpc().list_parts(request).await)?;
            upload = upload.or(response.upload);
            for part in response.parts {
                if let Some(segment) = part.segment {
                    stored.insert(part.part_number, segment);
                }
            }
            if !response.is_truncated || stored.len() >= MAX_PARTS || response.next_part_number_marker <= marker {
                return Ok((upload, stored));
            }
            marker = response.next_part_number_marker;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc(algorithm: CrcAlgorithm, width: usize, data: &[u8]) -> String {
        STANDARD.encode(&crc_fast::checksum(algorithm, data).to_be_bytes()[8 - width..])
    }

    #[test]
    fn full_object_crcs_combine_to_the_crc_of_the_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (a, rest) = data.split_at(3000);
        let (b, c) = rest.split_at(5000);
        for (name, algorithm, width) in [
            ("CRC32", CrcAlgorithm::Crc32IsoHdlc, 4),
            ("CRC32C", CrcAlgorithm::Crc32Iscsi, 4),
            ("CRC64NVME", CrcAlgorithm::Crc64Nvme, 8),
        ] {
            let parts = [
                (crc(algorithm, width, a), a.len() as u64),
                (crc(algorithm, width, b), b.len() as u64),
                (crc(algorithm, width, c), c.len() as u64),
            ];
            let refs: Vec<(&str, u64)> = parts.iter().map(|(v, s)| (v.as_str(), *s)).collect();
            assert_eq!(full_object(name, &refs), Some(crc(algorithm, width, &data)), "{name}");
        }
    }

    #[test]
    fn composite_hashes_the_binary_part_checksums() {
        let a = crc(CrcAlgorithm::Crc32IsoHdlc, 4, b"hello ");
        let b = crc(CrcAlgorithm::Crc32IsoHdlc, 4, b"world");
        let mut joined = STANDARD.decode(&a).expect("a");
        joined.extend(STANDARD.decode(&b).expect("b"));
        let expected = format!("{}-2", crc(CrcAlgorithm::Crc32IsoHdlc, 4, &joined));
        assert_eq!(composite("CRC32", &[&a, &b]), Some(expected));
    }

    #[test]
    fn upload_checksum_rules() {
        let alg = |s: &str| ChecksumAlgorithm::from(s.to_string());
        let kind = |s: &str| ChecksumType::from(s.to_string());
        assert_eq!(upload_checksum(None, None).ok(), Some(None));
        assert!(upload_checksum(None, Some(&kind("COMPOSITE"))).is_err());
        assert_eq!(upload_checksum(Some(&alg("CRC32")), None).ok(), Some(Some(("CRC32", COMPOSITE))));
        assert_eq!(upload_checksum(Some(&alg("CRC64NVME")), None).ok(), Some(Some(("CRC64NVME", FULL_OBJECT))));
        assert!(upload_checksum(Some(&alg("SHA256")), Some(&kind("FULL_OBJECT"))).is_err());
        assert!(upload_checksum(Some(&alg("CRC64NVME")), Some(&kind("COMPOSITE"))).is_err());
    }
}
