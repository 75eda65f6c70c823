//! GetObjectAttributes: the ETag, checksum, parts, storage class and size of an object (or one
//! version of it), each only when asked for in `x-amz-object-attributes`.

use s3s::S3Result;
use s3s::dto::*;

use super::CofferS3;
use super::convert::{etag, invalid_argument, timestamp};
use super::{object_checksum, versioning};

/// S3's default and largest page of parts.
const MAX_PARTS: i32 = 1000;

impl CofferS3 {
    pub(super) async fn do_get_object_attributes(
        &self,
        input: GetObjectAttributesInput,
    ) -> S3Result<GetObjectAttributesOutput> {
        // One header may list several, comma-separated (s3s keeps each header value whole).
        let wanted: Vec<String> = input
            .object_attributes
            .iter()
            .flat_map(|a| a.as_str().split(',').map(|n| n.trim().to_ascii_lowercase()).collect::<Vec<_>>())
            .filter(|n| !n.is_empty())
            .collect();
        let known = ["etag", "checksum", "objectparts", "storageclass", "objectsize"];
        if wanted.is_empty() || wanted.iter().any(|w| !known.contains(&w.as_str())) {
            return Err(invalid_argument("Invalid attribute name specified."));
        }
        let max_parts = input.max_parts.unwrap_or(MAX_PARTS);
        if max_parts < 0 {
            return Err(invalid_argument("Argument max-parts must be an integer between 0 and 2147483647"));
        }
        let marker = input.part_number_marker.unwrap_or(0);
        if marker < 0 {
            return Err(invalid_argument("Argument part-number-marker must be an integer between 0 and 2147483647"));
        }
        let record = self.get_version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let asked = |name: &str| wanted.iter().any(|w| w == name);

        let checksum = asked("checksum")
            .then(|| {
                let (mut sums, kind) = object_checksum::of_object(&record);
                sums.checksum_type = kind;
                sums
            })
            .filter(|c| c.checksum_type.is_some());
        let multipart = record.etag.contains('-');
        let object_parts = (asked("objectparts") && multipart).then(|| {
            let total = record.segments.len() as i32;
            let first = usize::try_from(marker).unwrap_or(usize::MAX);
            let page: Vec<ObjectPart> = record
                .segments
                .iter()
                .enumerate()
                .skip(first)
                .take(usize::try_from(max_parts.min(MAX_PARTS)).unwrap_or(0))
                .map(|(i, segment)| {
                    let sums = super::checksums::from_map(&segment.checksums);
                    ObjectPart {
                        part_number: Some(i as i32 + 1),
                        size: Some(segment.size as i64),
                        checksum_crc32: sums.checksum_crc32,
                        checksum_crc32c: sums.checksum_crc32c,
                        checksum_crc64nvme: sums.checksum_crc64nvme,
                        checksum_sha1: sums.checksum_sha1,
                        checksum_sha256: sums.checksum_sha256,
                    }
                })
                .collect();
            let last = page.last().and_then(|p| p.part_number).unwrap_or(marker);
            let truncated = first.saturating_add(page.len()) < record.segments.len();
            GetObjectAttributesParts {
                total_parts_count: Some(total),
                part_number_marker: Some(marker),
                next_part_number_marker: Some(last),
                max_parts: Some(max_parts),
                is_truncated: Some(truncated),
                parts: Some(page),
            }
        });
        let storage_class = asked("storageclass").then(|| {
            let class = if record.storage_class.is_empty() { "STANDARD" } else { record.storage_class.as_str() };
            StorageClass::from(class.to_string())
        });
        Ok(GetObjectAttributesOutput {
            e_tag: asked("etag").then(|| etag(&record.etag)),
            checksum,
            object_parts,
            storage_class,
            object_size: asked("objectsize").then_some(record.size as i64),
            last_modified: Some(timestamp(record.last_modified_unix_ms)),
            version_id: versioning::shown_id(&record),
            ..Default::default()
        })
    }
}
