//! S3 flexible checksums (`x-amz-checksum-*`): computed while the body streams, checked against
//! what the client sent in a header or an aws-chunked trailer, stored with the object and
//! returned on request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, ChecksumAlgorithm};
use s3s::{S3Error, S3ErrorCode, S3Result, TrailingHeaders};

const NAMES: [(&str, &str); 5] = [
    ("CRC32", "x-amz-checksum-crc32"),
    ("CRC32C", "x-amz-checksum-crc32c"),
    ("CRC64NVME", "x-amz-checksum-crc64nvme"),
    ("SHA1", "x-amz-checksum-sha1"),
    ("SHA256", "x-amz-checksum-sha256"),
];

/// What the request says about checksums, before the body is read.
pub struct ChecksumRequest {
    /// Values sent as headers, by algorithm name.
    pub expected: HashMap<&'static str, String>,
    /// Algorithms the client wants computed (x-amz-sdk-checksum-algorithm, x-amz-trailer).
    pub wanted: Vec<&'static str>,
    pub trailers: Option<TrailingHeaders>,
}

impl ChecksumRequest {
    pub fn from_request(
        algorithm: Option<&ChecksumAlgorithm>,
        provided: [Option<&String>; 5],
        headers: &http::HeaderMap,
        trailers: Option<TrailingHeaders>,
    ) -> Self {
        let mut expected = HashMap::new();
        let mut wanted = Vec::new();
        for ((name, _), value) in NAMES.iter().zip(provided) {
            if let Some(value) = value {
                expected.insert(*name, value.clone());
                wanted.push(*name);
            }
        }
        if let Some(algorithm) = algorithm
            && let Some((name, _)) = NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(algorithm.as_str()))
        {
            wanted.push(name);
        }
        if let Some(declared) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
            for part in declared.split(',') {
                if let Some((name, _)) = NAMES.iter().find(|(_, h)| h.eq_ignore_ascii_case(part.trim())) {
                    wanted.push(name);
                }
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        ChecksumRequest { expected, wanted, trailers }
    }

    /// A hasher for the wanted algorithms, shared with the body stream.
    pub fn hasher(&self) -> Arc<Mutex<ChecksumHasher>> {
        let mut hasher = ChecksumHasher::default();
        for name in &self.wanted {
            match *name {
                "CRC32" => hasher.crc32 = Some(Default::default()),
                "CRC32C" => hasher.crc32c = Some(Default::default()),
                "CRC64NVME" => hasher.crc64nvme = Some(Default::default()),
                "SHA1" => hasher.sha1 = Some(Default::default()),
                "SHA256" => hasher.sha256 = Some(Default::default()),
                _ => {}
            }
        }
        Arc::new(Mutex::new(hasher))
    }

    /// Compares the computed checksums with those sent in headers or trailers (read only now,
    /// after the body ended). Returns the computed values by algorithm name.
    pub fn verify(&self, hasher: Arc<Mutex<ChecksumHasher>>) -> S3Result<HashMap<String, String>> {
        let hasher = Arc::try_unwrap(hasher)
            .ok()
            .and_then(|m| m.into_inner().ok())
            .ok_or_else(|| S3Error::with_message(S3ErrorCode::InternalError, "checksum state still shared"))?;
        let computed = to_map(&hasher.finalize());
        let mut expected = self.expected.clone();
        if let Some(trailers) = self.trailers.as_ref().and_then(TrailingHeaders::take) {
            for (name, header) in NAMES {
                if let Some(value) = trailers.get(header).and_then(|v| v.to_str().ok()) {
                    expected.insert(name, value.to_string());
                }
            }
        }
        for (name, value) in expected {
            if computed.get(name) != Some(&value) {
                return Err(S3Error::with_message(
                    S3ErrorCode::BadDigest,
                    format!("The {name} you specified did not match the calculated checksum."),
                ));
            }
        }
        Ok(computed)
    }
}

pub fn to_map(c: &Checksum) -> HashMap<String, String> {
    let values = [&c.checksum_crc32, &c.checksum_crc32c, &c.checksum_crc64nvme, &c.checksum_sha1, &c.checksum_sha256];
    NAMES.iter().zip(values).filter_map(|((name, _), v)| v.as_ref().map(|v| (name.to_string(), v.clone()))).collect()
}

pub fn from_map(m: &HashMap<String, String>) -> Checksum {
    Checksum {
        checksum_crc32: m.get("CRC32").cloned(),
        checksum_crc32c: m.get("CRC32C").cloned(),
        checksum_crc64nvme: m.get("CRC64NVME").cloned(),
        checksum_sha1: m.get("SHA1").cloned(),
        checksum_sha256: m.get("SHA256").cloned(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(crc32: Option<&str>) -> ChecksumRequest {
        let value = crc32.map(str::to_string);
        ChecksumRequest::from_request(None, [value.as_ref(), None, None, None, None], &http::HeaderMap::new(), None)
    }

    #[test]
    fn a_matching_header_passes_and_a_wrong_one_is_bad_digest() {
        // CRC32 of "hello" is 0x3610a686.
        let good = request(Some("NhCmhg=="));
        let hasher = good.hasher();
        hasher.lock().expect("lock").update(b"hello");
        assert_eq!(good.verify(hasher).expect("match").get("CRC32").map(String::as_str), Some("NhCmhg=="));

        let bad = request(Some("AAAAAA=="));
        let hasher = bad.hasher();
        hasher.lock().expect("lock").update(b"hello");
        assert_eq!(bad.verify(hasher).err().map(|e| e.code().clone()), Some(S3ErrorCode::BadDigest));
    }

    #[test]
    fn nothing_asked_nothing_computed() {
        let none = request(None);
        let hasher = none.hasher();
        hasher.lock().expect("lock").update(b"hello");
        assert!(none.verify(hasher).expect("ok").is_empty());
    }
}
