//! Server-side encryption in the data path: segments are encrypted in the gateway before they
//! are stored (inline or erasure-coded), so no plaintext of an encrypted object reaches a
//! blobnode or the metadata service. `keys` holds the key hierarchy, `package` the format,
//! `stream` the streaming halves; the S3 side (headers, bucket defaults) is `s3::sse`.

pub mod compress;
pub mod keys;
pub mod package;
pub mod stream;

use std::ops::Range;

use bytes::Bytes;
use coffer_proto::pb::metadata::{CompressionSegment, Segment, SseSegment};
use futures::StreamExt;
use futures::stream::BoxStream;
use md5::Digest;

use self::keys::DataKey;
use self::package::{Geometry, PACKAGE_SIZE, PackageKey};
use crate::dataplane::DataPlane;
use crate::error::{GatewayError, GatewayResult};
use crate::write_path::{WriteKey, Written};

type StdError = Box<dyn std::error::Error + Send + Sync>;

/// `SseObject.algorithm` values.
pub const SSE_S3: &str = "AES256";
pub const SSE_KMS: &str = keys::KMS_ALGORITHM;
pub const SSE_C: &str = "SSE-C";

/// How to encrypt one new segment: a fresh data key and what to store about it.
pub struct Sealer {
    pub data_key: DataKey,
    pub info: SseSegment,
    /// The ETag is the plaintext MD5 (SSE-S3, as AWS), else the MD5 of what is stored (AWS's
    /// SSE-C and SSE-KMS ETags are not the MD5 of the data).
    pub plain_etag: bool,
}

impl Sealer {
    /// A fresh random data key.
    pub fn data_key() -> DataKey {
        rand::random()
    }

    /// Seals with `data_key`, stored as `wrapped` under `key_id`, with a fresh nonce prefix.
    pub fn new(data_key: DataKey, key_id: String, wrapped: Vec<u8>, plain_etag: bool) -> Sealer {
        let prefix: [u8; package::NONCE_PREFIX_LEN] = rand::random();
        let info =
            SseSegment { key_id, wrapped_key: wrapped, package_size: PACKAGE_SIZE, nonce_prefix: prefix.to_vec() };
        Sealer { data_key, info, plain_etag }
    }
}

fn package_error(e: package::PackageError) -> GatewayError {
    GatewayError::Internal(e.to_string())
}

/// How a new segment's bytes are transformed before they are stored: compressed (first), then
/// encrypted.
#[derive(Default)]
pub struct Transform {
    pub compress: bool,
    pub sealer: Option<Sealer>,
}

impl Transform {
    pub fn is_identity(&self) -> bool {
        !self.compress && self.sealer.is_none()
    }
}

impl DataPlane {
    /// Stores `body` like [`DataPlane::write`], compressed and encrypted as `transform` says. The
    /// result describes the plaintext (size, MD5 for Content-MD5 checks and the ETag) and records
    /// the stored length and how to undo the transforms.
    pub async fn write_transformed(
        &self,
        key: &WriteKey,
        body: BoxStream<'static, Result<Bytes, StdError>>,
        max_len: u64,
        transform: Transform,
    ) -> GatewayResult<Written> {
        if !transform.compress && transform.sealer.is_none() {
            return self.write(key, body, max_len).await;
        }
        let stats = stream::SharedStats::default();
        let tap = stats.clone();
        // The limit applies to the plaintext; a body beyond it ends the write here.
        let mut bytes = body
            .map(move |chunk| {
                let chunk = chunk?;
                let mut stats = stream::lock(&tap);
                stats.len += chunk.len() as u64;
                stats.md5.update(&chunk);
                if stats.len > max_len {
                    return Err(StdError::from("the body exceeds its size limit"));
                }
                Ok(chunk)
            })
            .boxed();
        let mut bound = max_len;
        let frames = compress::SharedFrames::default();
        if transform.compress {
            bytes = compress::compress(bytes, compress::PACKAGE_SIZE, frames.clone());
            // A frame of incompressible data is a little larger than its package.
            let packages = max_len.div_ceil(u64::from(compress::PACKAGE_SIZE));
            bound = max_len + packages * (compress_overhead() + 16);
        }
        if let Some(sealer) = &transform.sealer {
            let key = PackageKey::new(&sealer.data_key, &sealer.info.nonce_prefix).map_err(package_error)?;
            bytes = stream::encrypt(bytes, key, sealer.info.package_size, stream::SharedStats::default());
            bound = package::stored_len(bound);
        }
        let result = self.write(key, bytes, bound).await;
        let (plain_len, plain_md5) = {
            let mut stats = stream::lock(&stats);
            let md5 = std::mem::take(&mut stats.md5);
            (stats.len, <[u8; 16]>::from(md5.finalize()))
        };
        if plain_len > max_len {
            return Err(GatewayError::EntityTooLarge);
        }
        let mut written = result?;
        let stored_md5 = written.md5;
        written.segment.stored_size = written.segment.size;
        written.segment.size = plain_len;
        let plain_etag = transform.sealer.as_ref().is_none_or(|s| s.plain_etag);
        written.segment.etag = hex::encode(if plain_etag { plain_md5 } else { stored_md5 });
        if transform.compress {
            written.segment.compression = Some(CompressionSegment {
                algorithm: compress::ALGORITHM.into(),
                package_size: compress::PACKAGE_SIZE,
                frame_sizes: compress::frames_of(&frames),
            });
        }
        written.segment.sse = transform.sealer.map(|s| s.info);
        written.md5 = plain_md5;
        Ok(written)
    }

    /// Plaintext `range` (within the segment, non-empty) of a segment stored compressed and/or
    /// encrypted; `data_key` is needed for an encrypted one.
    pub fn read_transformed(
        &self,
        segment: Segment,
        range: Range<u64>,
        data_key: Option<&DataKey>,
    ) -> GatewayResult<BoxStream<'static, GatewayResult<Bytes>>> {
        let frames = match &segment.compression {
            Some(c) if c.algorithm == compress::ALGORITHM => {
                Some(compress::Frames::new(c.package_size, segment.size, c.frame_sizes.clone())?)
            }
            Some(c) => return Err(GatewayError::Internal(format!("unknown compression {:?}", c.algorithm))),
            None => None,
        };
        // The bytes under the compression: the frames, or the plaintext itself.
        let inner_len = frames.as_ref().map_or(segment.size, compress::Frames::compressed_len);
        let (inner_range, frame_span) = match &frames {
            Some(f) => {
                let (indexes, bytes, skip) = f.covering(&range);
                (bytes, Some((indexes, skip)))
            }
            None => (range.clone(), None),
        };
        let sse = segment.sse.clone();
        let mut stored = segment;
        stored.size = stored.stored_size;
        stored.sse = None;
        stored.compression = None;
        let inner: BoxStream<'static, GatewayResult<Bytes>> = match sse {
            None => {
                if inner_len != stored.size {
                    return Err(GatewayError::Internal(format!(
                        "compressed segment stores {} bytes, {inner_len} expected",
                        stored.size
                    )));
                }
                self.read(vec![stored], inner_range).boxed()
            }
            Some(info) => {
                let data_key =
                    data_key.ok_or_else(|| GatewayError::Internal("encrypted segment without its key".into()))?;
                let geometry = Geometry::new(info.package_size, inner_len).map_err(package_error)?;
                if geometry.stored_len() != stored.size {
                    return Err(GatewayError::Internal(format!(
                        "encrypted segment stores {} bytes, {} expected",
                        stored.size,
                        geometry.stored_len()
                    )));
                }
                let key = PackageKey::new(data_key, &info.nonce_prefix).map_err(package_error)?;
                let (packages, stored_range, skip) = geometry.covering(&inner_range);
                let bytes = self.read(vec![stored], stored_range).boxed();
                stream::decrypt(bytes, key, geometry, packages, skip, inner_range.end - inner_range.start).boxed()
            }
        };
        Ok(match (frames, frame_span) {
            (Some(frames), Some((indexes, skip))) => {
                compress::decompress(inner, frames, indexes, skip, range.end - range.start).boxed()
            }
            _ => inner,
        })
    }
}

/// zstd's worst-case growth of one package.
fn compress_overhead() -> u64 {
    let package = compress::PACKAGE_SIZE as usize;
    compress::compress_bound(package).saturating_sub(package) as u64
}
