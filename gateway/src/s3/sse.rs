//! Server-side encryption, the S3 side: the SSE-S3, SSE-KMS and SSE-C request headers (checked
//! as AWS checks them), bucket default encryption (Put/Get/DeleteBucketEncryption, stored in
//! the `encryption` configuration slot as JSON), the keys of each segment, and the response
//! headers. The data path itself is `crate::sse`.

use std::ops::Range;

use base64::Engine;
use bytes::Bytes;
use coffer_proto::pb::metadata::{GetUploadRequest, ObjectRecord, Segment, SseObject, SseSegment};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::CofferS3;
use super::bucket_config::names;
use super::convert::{invalid_argument, remote};
use crate::error::{GatewayError, GatewayResult};
use crate::sse::keys::{self, CustomerKey, DataKey, KeyError};
use crate::sse::{SSE_C, SSE_KMS, SSE_S3, Sealer, Transform, compress};

const SALT_LEN: usize = 16;

/// The encryption a write asks for in its headers.
#[derive(Debug)]
pub(crate) enum Wanted {
    S3,
    Kms(Option<String>),
    Customer(CustomerKey),
}

/// What a new object (or upload) is encrypted with: its record's `sse`, and the customer key
/// when it is SSE-C.
pub(crate) struct Plan {
    pub object: SseObject,
    pub customer: Option<CustomerKey>,
}

/// The encryption response headers of an object.
#[derive(Default)]
pub(crate) struct Shown {
    pub server_side_encryption: Option<ServerSideEncryption>,
    pub ssekms_key_id: Option<String>,
    pub sse_customer_algorithm: Option<String>,
    pub sse_customer_key_md5: Option<String>,
}

pub(crate) fn shown(sse: Option<&SseObject>) -> Shown {
    match sse.map(|s| (s.algorithm.as_str(), s)) {
        Some((SSE_S3, _)) => {
            Shown { server_side_encryption: Some(ServerSideEncryption::from_static(SSE_S3)), ..Default::default() }
        }
        Some((SSE_KMS, s)) => Shown {
            server_side_encryption: Some(ServerSideEncryption::from_static(SSE_KMS)),
            ssekms_key_id: Some(s.kms_key_id.clone()),
            ..Default::default()
        },
        Some((SSE_C, s)) => Shown {
            sse_customer_algorithm: Some("AES256".to_string()),
            sse_customer_key_md5: Some(s.customer_key_md5.clone()),
            ..Default::default()
        },
        _ => Shown::default(),
    }
}

fn invalid_request(message: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidRequest, message.to_string())
}

fn key_mismatch() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::AccessDenied,
        "The provided encryption parameters did not match the ones used originally.",
    )
}

fn kms_not_found(e: &KeyError) -> S3Error {
    let mut err = S3Error::with_message(S3ErrorCode::Custom("KMS.NotFoundException".into()), e.to_string());
    err.set_status_code(http::StatusCode::BAD_REQUEST);
    err
}

fn key_error(e: KeyError) -> S3Error {
    match e {
        KeyError::NotFound(_) => kms_not_found(&e),
        KeyError::Unwrap(_) | KeyError::Config(_) => GatewayError::Internal(e.to_string()).into(),
    }
}

/// The SSE-C headers of a request (or its copy-source twins), validated as AWS does. `None`
/// when none was sent.
pub(crate) fn customer_key(
    algorithm: Option<&str>,
    key: Option<&str>,
    key_md5: Option<&str>,
) -> S3Result<Option<CustomerKey>> {
    if algorithm.is_none() && key.is_none() && key_md5.is_none() {
        return Ok(None);
    }
    let Some(algorithm) = algorithm else {
        return Err(invalid_argument(
            "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.",
        ));
    };
    if algorithm != "AES256" {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidEncryptionAlgorithmError,
            "The encryption request you specified is not valid. The valid value is AES256.",
        ));
    }
    let Some(key) = key else {
        return Err(invalid_argument(
            "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key.",
        ));
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let key: DataKey = b64
        .decode(key.trim())
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| invalid_argument("The secret key was invalid for the specified algorithm."))?;
    let Some(key_md5) = key_md5 else {
        return Err(invalid_argument(
            "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key.",
        ));
    };
    let actual = b64.encode(Md5::digest(key));
    if b64.decode(key_md5.trim()).ok() != b64.decode(&actual).ok() {
        return Err(invalid_argument("The calculated MD5 hash of the key did not match the hash that was provided."));
    }
    Ok(Some(CustomerKey { key, md5: actual }))
}

/// The encryption headers of a write (PutObject, CopyObject's target, CreateMultipartUpload).
pub(crate) fn wanted(
    sse: Option<&ServerSideEncryption>,
    kms_key_id: Option<&str>,
    customer: Option<CustomerKey>,
) -> S3Result<Option<Wanted>> {
    if let Some(customer) = customer {
        if sse.is_some() || kms_key_id.is_some() {
            return Err(invalid_argument(
                "Server Side Encryption with Customer provided key is incompatible with the encryption method specified",
            ));
        }
        return Ok(Some(Wanted::Customer(customer)));
    }
    match sse.map(ServerSideEncryption::as_str) {
        None if kms_key_id.is_some() => Err(invalid_argument(
            "x-amz-server-side-encryption-aws-kms-key-id header requires x-amz-server-side-encryption:aws:kms",
        )),
        None => Ok(None),
        Some(SSE_S3) if kms_key_id.is_some() => Err(invalid_argument(
            "x-amz-server-side-encryption-aws-kms-key-id header is not supported with x-amz-server-side-encryption:AES256",
        )),
        Some(SSE_S3) => Ok(Some(Wanted::S3)),
        Some(SSE_KMS) => Ok(Some(Wanted::Kms(kms_key_id.filter(|k| !k.is_empty()).map(str::to_string)))),
        Some(_) => Err(invalid_argument("The encryption method specified is not supported")),
    }
}

/// The encryption headers of a write request, by reference.
pub(crate) struct WriteHeaders<'a> {
    pub sse: Option<&'a ServerSideEncryption>,
    pub kms_key_id: Option<&'a str>,
    pub customer_algorithm: Option<&'a str>,
    pub customer_key: Option<&'a str>,
    pub customer_key_md5: Option<&'a str>,
}

/// The `WriteHeaders` of a PutObject, CopyObject or CreateMultipartUpload input (same field names).
macro_rules! write_headers {
    ($input:expr) => {
        $crate::s3::sse::WriteHeaders {
            sse: $input.server_side_encryption.as_ref(),
            kms_key_id: $input.ssekms_key_id.as_deref(),
            customer_algorithm: $input.sse_customer_algorithm.as_deref(),
            customer_key: $input.sse_customer_key.as_deref(),
            customer_key_md5: $input.sse_customer_key_md5.as_deref(),
        }
    };
}
pub(crate) use write_headers;

/// The SSE-C key of a request carrying `sse_customer_*` fields (GetObject, HeadObject, UploadPart, ...).
macro_rules! request_key {
    ($input:expr) => {
        $crate::s3::sse::customer_key(
            $input.sse_customer_algorithm.as_deref(),
            $input.sse_customer_key.as_deref(),
            $input.sse_customer_key_md5.as_deref(),
        )
    };
}
pub(crate) use request_key;

/// The SSE-C key of a copy source (`x-amz-copy-source-server-side-encryption-customer-*`).
macro_rules! copy_source_key {
    ($input:expr) => {
        $crate::s3::sse::customer_key(
            $input.copy_source_sse_customer_algorithm.as_deref(),
            $input.copy_source_sse_customer_key.as_deref(),
            $input.copy_source_sse_customer_key_md5.as_deref(),
        )
    };
}
pub(crate) use copy_source_key;

fn rule_default(config: &ServerSideEncryptionConfiguration) -> Option<&ServerSideEncryptionByDefault> {
    config.rules.first().and_then(|r| r.apply_server_side_encryption_by_default.as_ref())
}

impl CofferS3 {
    /// The bucket's default encryption, from the per-request cache.
    async fn bucket_default(&self, bucket: &str) -> S3Result<Option<Wanted>> {
        let facts = self.authorizer.owners.facts(bucket).await?;
        let Some(raw) = facts.as_ref().and_then(|f| f.config(names::ENCRYPTION)) else {
            return Ok(None);
        };
        let config: ServerSideEncryptionConfiguration = serde_json::from_slice(raw)
            .map_err(|e| GatewayError::Internal(format!("stored bucket encryption does not parse: {e}")))?;
        Ok(rule_default(&config).map(|d| match d.sse_algorithm.as_str() {
            SSE_KMS => Wanted::Kms(d.kms_master_key_id.clone()),
            _ => Wanted::S3,
        }))
    }

    /// What a new object of `bucket` is encrypted with: the request's headers, else the bucket's
    /// default, else nothing.
    pub(crate) async fn plan(&self, bucket: &str, wanted: Option<Wanted>) -> S3Result<Option<Plan>> {
        let wanted = match wanted {
            Some(w) => w,
            None => match self.bucket_default(bucket).await? {
                Some(w) => w,
                None => return Ok(None),
            },
        };
        let object = match &wanted {
            Wanted::S3 => SseObject { algorithm: SSE_S3.into(), ..Default::default() },
            Wanted::Kms(key_id) => {
                let kms = self.sse.kms.as_ref().ok_or_else(|| {
                    kms_not_found(&KeyError::NotFound(key_id.clone().unwrap_or_else(|| "(default)".into())))
                })?;
                let key_id = match key_id {
                    Some(id) => kms.resolve(id).map_err(|e| kms_not_found(&e))?,
                    None => kms.default_key().ok_or_else(|| kms_not_found(&KeyError::NotFound("(default)".into())))?,
                };
                SseObject { algorithm: SSE_KMS.into(), kms_key_id: key_id, ..Default::default() }
            }
            Wanted::Customer(key) => {
                let salt: [u8; SALT_LEN] = rand::random();
                SseObject {
                    algorithm: SSE_C.into(),
                    customer_key_md5: key.md5.clone(),
                    customer_key_verifier: key.verifier(&salt),
                    customer_key_salt: salt.to_vec(),
                    ..Default::default()
                }
            }
        };
        let customer = match wanted {
            Wanted::Customer(key) => Some(key),
            _ => None,
        };
        Ok(Some(Plan { object, customer }))
    }

    /// The encryption of a new object from its write headers and the bucket's default.
    pub(crate) async fn write_plan(&self, bucket: &str, headers: WriteHeaders<'_>) -> S3Result<Option<Plan>> {
        let customer = customer_key(headers.customer_algorithm, headers.customer_key, headers.customer_key_md5)?;
        let wanted = wanted(headers.sse, headers.kms_key_id, customer)?;
        self.plan(bucket, wanted).await
    }

    /// How to store a new object of `bucket` with `content_type` encrypted as `plan` says:
    /// compressed when the bucket asks for it and the type is compressible, then encrypted.
    pub(crate) async fn plan_transform(
        &self,
        bucket: &str,
        content_type: Option<&str>,
        plan: Option<&Plan>,
    ) -> S3Result<Transform> {
        let compress = self.compresses(bucket, content_type).await?;
        let sealer = match plan {
            Some(plan) => Some(self.sealer(&plan.object, plan.customer.as_ref()).await?),
            None => None,
        };
        Ok(Transform { compress, sealer })
    }

    /// Whether new objects of `content_type` in `bucket` are compressed (the bucket's
    /// `compression` configuration, set through the admin API).
    async fn compresses(&self, bucket: &str, content_type: Option<&str>) -> S3Result<bool> {
        let facts = self.authorizer.owners.facts(bucket).await?;
        let Some(raw) = facts.as_ref().and_then(|f| f.config(names::COMPRESSION)) else {
            return Ok(false);
        };
        let config: CompressionConfig = serde_json::from_slice(raw)
            .map_err(|e| GatewayError::Internal(format!("stored bucket compression does not parse: {e}")))?;
        Ok(config.enabled && config.compresses(content_type.unwrap_or_default()))
    }

    /// A sealer with a fresh data key for one new segment of an object encrypted as `object`.
    pub(crate) async fn sealer(&self, object: &SseObject, customer: Option<&CustomerKey>) -> S3Result<Sealer> {
        let data_key = Sealer::data_key();
        match object.algorithm.as_str() {
            SSE_S3 => {
                let id = self
                    .sse
                    .master
                    .newest()
                    .ok_or_else(|| GatewayError::Internal("no SSE-S3 master key is configured".into()))?;
                let kek =
                    self.sse.master.get(id).ok_or_else(|| GatewayError::Internal("master key vanished".into()))?;
                let wrapped = keys::wrap(kek, SSE_S3, id, &data_key);
                Ok(Sealer::new(data_key, id.to_string(), wrapped, true))
            }
            SSE_KMS => {
                let kms = self
                    .sse
                    .kms
                    .as_ref()
                    .ok_or_else(|| kms_not_found(&KeyError::NotFound(object.kms_key_id.clone())))?;
                let wrapped = kms.wrap(&object.kms_key_id, &data_key).await.map_err(key_error)?;
                Ok(Sealer::new(data_key, object.kms_key_id.clone(), wrapped, false))
            }
            SSE_C => {
                let customer = customer.ok_or_else(|| {
                    invalid_request(
                        "The multipart upload initiate requested encryption. Subsequent part requests must include the appropriate encryption parameters.",
                    )
                })?;
                check_customer(object, customer)?;
                let wrapped = keys::wrap(&customer.key, SSE_C, "", &data_key);
                Ok(Sealer::new(data_key, String::new(), wrapped, false))
            }
            other => Err(GatewayError::Internal(format!("unknown stored encryption {other:?}")).into()),
        }
    }

    /// The data key of one stored segment.
    async fn data_key(
        &self,
        object: &SseObject,
        segment: &SseSegment,
        customer: Option<&CustomerKey>,
    ) -> GatewayResult<DataKey> {
        let unwrap_failed = |e: KeyError| GatewayError::Internal(e.to_string());
        match object.algorithm.as_str() {
            SSE_S3 => {
                let kek = self.sse.master.get(&segment.key_id).ok_or_else(|| {
                    GatewayError::Internal(format!("SSE-S3 master key {:?} is not configured", segment.key_id))
                })?;
                keys::unwrap(kek, SSE_S3, &segment.key_id, &segment.wrapped_key).map_err(unwrap_failed)
            }
            SSE_KMS => {
                let kms =
                    self.sse.kms.as_ref().ok_or_else(|| GatewayError::Internal("SSE-KMS is not configured".into()))?;
                kms.unwrap(&segment.key_id, &segment.wrapped_key).await.map_err(unwrap_failed)
            }
            SSE_C => {
                let customer = customer.ok_or_else(|| GatewayError::Internal("SSE-C key missing".into()))?;
                keys::unwrap(&customer.key, SSE_C, "", &segment.wrapped_key).map_err(unwrap_failed)
            }
            other => Err(GatewayError::Internal(format!("unknown stored encryption {other:?}"))),
        }
    }

    /// Checks the SSE-C key a read of `record` carries: required for an SSE-C object (400
    /// without, 403 when wrong), refused for any other object, as AWS answers.
    /// A missing SSE-S3 master key or KMS key fails here, before any response byte.
    pub(crate) fn check_read_key(&self, record: &ObjectRecord, customer: Option<&CustomerKey>) -> S3Result<()> {
        let key_ids = || record.segments.iter().filter_map(|s| s.sse.as_ref()).map(|s| s.key_id.as_str());
        match record.sse.as_ref().map(|s| s.algorithm.as_str()) {
            Some(SSE_S3) => {
                if let Some(missing) = key_ids().find(|id| self.sse.master.get(id).is_none()) {
                    let e = GatewayError::Internal(format!("SSE-S3 master key {missing:?} is not configured"));
                    return Err(e.into());
                }
            }
            Some(SSE_KMS) => {
                let kms =
                    self.sse.kms.as_ref().ok_or_else(|| GatewayError::Internal("SSE-KMS is not configured".into()))?;
                if let Some(Err(e)) = key_ids().map(|id| kms.resolve(id)).find(Result::is_err) {
                    return Err(GatewayError::Internal(format!("SSE-KMS key not available: {e}")).into());
                }
            }
            _ => {}
        }
        let sse_c = record.sse.as_ref().filter(|s| s.algorithm == SSE_C);
        match (sse_c, customer) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(invalid_request("The encryption parameters are not applicable to this object.")),
            (Some(_), None) => Err(invalid_request(
                "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.",
            )),
            (Some(object), Some(key)) => check_customer(object, key),
        }
    }

    /// The plaintext of `range` of `record`, decrypting only the packages that cover it.
    pub(crate) fn plain_body(
        &self,
        record: &ObjectRecord,
        range: Range<u64>,
        customer: Option<CustomerKey>,
    ) -> BoxStream<'static, GatewayResult<Bytes>> {
        if !transformed(record) {
            return self.plane.read(record.segments.clone(), range).boxed();
        }
        let object = record.sse.clone();
        let this = self.clone();
        let mut offset = 0u64;
        let pieces: Vec<(Segment, Range<u64>)> = record
            .segments
            .iter()
            .filter_map(|segment| {
                let start = offset;
                offset += segment.size;
                let lo = range.start.max(start);
                let hi = range.end.min(start + segment.size);
                (lo < hi).then(|| (segment.clone(), lo - start..hi - start))
            })
            .collect();
        futures::stream::iter(pieces)
            .then(move |(segment, sub)| {
                let (this, object, customer) = (this.clone(), object.clone(), customer.clone());
                async move {
                    if segment.sse.is_none() && segment.compression.is_none() {
                        return Ok(this.plane.read(vec![segment], sub).boxed());
                    }
                    let key = match (&segment.sse, &object) {
                        (Some(info), Some(object)) => Some(this.data_key(object, info, customer.as_ref()).await?),
                        (Some(_), None) => {
                            return Err(GatewayError::Internal("encrypted segment of an unencrypted object".into()));
                        }
                        (None, _) => None,
                    };
                    this.plane.read_transformed(segment, sub, key.as_ref())
                }
            })
            .try_flatten()
            .boxed()
    }

    /// A GET body: like `DataPlane::read_body`, decrypting when the object is encrypted.
    pub(crate) fn object_body(
        &self,
        record: &ObjectRecord,
        range: Range<u64>,
        customer: Option<CustomerKey>,
    ) -> crate::read_path::BodyStream {
        if !transformed(record) {
            return self.plane.read_body(record.segments.clone(), range);
        }
        crate::read_path::BodyStream::spawn(self.plain_body(record, range, customer))
    }

    /// The template of the upload a part belongs to (NoSuchUpload when there is none).
    pub(crate) async fn upload_template(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<ObjectRecord> {
        let request =
            GetUploadRequest { bucket: bucket.to_string(), key: key.to_string(), upload_id: upload_id.to_string() };
        let upload = remote(self.plane.metadata.rpc().get_upload(request).await)?.upload.unwrap_or_default();
        let mut template = upload.template.unwrap_or_default();
        template.bucket = upload.bucket;
        Ok(template)
    }

    /// How to store a new part of the upload `template` describes, given the part request's
    /// SSE-C key.
    pub(crate) async fn part_transform(
        &self,
        template: &ObjectRecord,
        customer: Option<&CustomerKey>,
    ) -> S3Result<Transform> {
        let compress = self.compresses(&template.bucket, Some(&template.content_type)).await?;
        let sealer = match template.sse.as_ref() {
            None if customer.is_some() => {
                return Err(invalid_request("The encryption parameters are not applicable to this object."));
            }
            None => None,
            Some(object) if object.algorithm != SSE_C && customer.is_some() => {
                return Err(invalid_request("The encryption parameters are not applicable to this object."));
            }
            Some(object) => Some(self.sealer(object, customer).await?),
        };
        Ok(Transform { compress, sealer })
    }

    pub(super) async fn do_put_bucket_encryption(
        &self,
        input: PutBucketEncryptionInput,
    ) -> S3Result<PutBucketEncryptionOutput> {
        let config = input.server_side_encryption_configuration;
        let malformed = || {
            S3Error::with_message(
                S3ErrorCode::MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema",
            )
        };
        if config.rules.len() != 1 {
            return Err(malformed());
        }
        let Some(default) = rule_default(&config) else {
            return Err(malformed());
        };
        match default.sse_algorithm.as_str() {
            SSE_S3 if default.kms_master_key_id.is_some() => {
                return Err(invalid_argument(
                    "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms",
                ));
            }
            SSE_S3 | SSE_KMS => {}
            _ => return Err(malformed()),
        }
        let value = serde_json::to_vec(&config).map_err(|e| GatewayError::Internal(e.to_string()))?;
        self.set_bucket_config(&input.bucket, names::ENCRYPTION, Some(value)).await?;
        Ok(PutBucketEncryptionOutput::default())
    }

    pub(super) async fn do_get_bucket_encryption(
        &self,
        input: GetBucketEncryptionInput,
    ) -> S3Result<GetBucketEncryptionOutput> {
        let Some(raw) = self.bucket_config(&input.bucket, names::ENCRYPTION).await? else {
            let mut e = S3Error::with_message(
                S3ErrorCode::ServerSideEncryptionConfigurationNotFoundError,
                "The server side encryption configuration was not found",
            );
            e.set_status_code(http::StatusCode::NOT_FOUND);
            return Err(e);
        };
        let config: ServerSideEncryptionConfiguration = serde_json::from_slice(&raw)
            .map_err(|e| GatewayError::Internal(format!("stored bucket encryption does not parse: {e}")))?;
        Ok(GetBucketEncryptionOutput { server_side_encryption_configuration: Some(config) })
    }

    pub(super) async fn do_delete_bucket_encryption(
        &self,
        input: DeleteBucketEncryptionInput,
    ) -> S3Result<DeleteBucketEncryptionOutput> {
        self.set_bucket_config(&input.bucket, names::ENCRYPTION, None).await?;
        Ok(DeleteBucketEncryptionOutput::default())
    }
}

/// The checksum a copied part must carry: the upload's `algorithm` (empty: none).
pub(crate) fn copy_checksums(algorithm: &str) -> super::checksums::ChecksumRequest {
    const KNOWN: [&str; 5] = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"];
    super::checksums::ChecksumRequest {
        expected: Default::default(),
        wanted: KNOWN.iter().copied().filter(|k| *k == algorithm).collect(),
        trailers: None,
    }
}

/// Whether any byte of `record` is stored encrypted or compressed.
pub(crate) fn transformed(record: &ObjectRecord) -> bool {
    record.sse.is_some() || record.segments.iter().any(|s| s.sse.is_some() || s.compression.is_some())
}

/// A bucket's `compression` configuration (JSON, set through the admin API).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct CompressionConfig {
    pub enabled: bool,
    /// `type/subtype` or `type/*`; empty: `compress::DEFAULT_CONTENT_TYPES`.
    #[serde(default)]
    pub content_types: Vec<String>,
}

impl CompressionConfig {
    pub fn compresses(&self, content_type: &str) -> bool {
        if self.content_types.is_empty() {
            let defaults: Vec<String> = compress::DEFAULT_CONTENT_TYPES.iter().map(|s| s.to_string()).collect();
            compress::matches_content_type(&defaults, content_type)
        } else {
            compress::matches_content_type(&self.content_types, content_type)
        }
    }
}

fn check_customer(object: &SseObject, key: &CustomerKey) -> S3Result<()> {
    if key.matches(&object.customer_key_salt, &object.customer_key_verifier) { Ok(()) } else { Err(key_mismatch()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn customer_headers_are_checked_as_aws_does() {
        let key = [7u8; 32];
        let md5 = b64(&Md5::digest(key));
        let ok = customer_key(Some("AES256"), Some(&b64(&key)), Some(&md5)).unwrap().unwrap();
        assert_eq!(ok.md5, md5);
        assert_eq!(customer_key(None, None, None).unwrap().map(|k| k.md5), None);
        let code = |r: S3Result<Option<CustomerKey>>| r.unwrap_err().code().as_str().to_string();
        assert_eq!(code(customer_key(Some("AES128"), Some(&b64(&key)), Some(&md5))), "InvalidEncryptionAlgorithmError");
        assert_eq!(code(customer_key(Some("AES256"), None, Some(&md5))), "InvalidArgument");
        assert_eq!(code(customer_key(Some("AES256"), Some(&b64(&[1; 16])), Some(&md5))), "InvalidArgument");
        assert_eq!(code(customer_key(Some("AES256"), Some(&b64(&key)), None)), "InvalidArgument");
        assert_eq!(code(customer_key(Some("AES256"), Some(&b64(&key)), Some(&b64(&[0; 16])))), "InvalidArgument");
        assert_eq!(code(customer_key(None, Some(&b64(&key)), Some(&md5))), "InvalidArgument");
    }

    #[test]
    fn write_headers_combine_as_aws_allows() {
        let s3 = ServerSideEncryption::from_static(SSE_S3);
        let kms = ServerSideEncryption::from_static(SSE_KMS);
        assert!(matches!(wanted(Some(&s3), None, None), Ok(Some(Wanted::S3))));
        assert!(matches!(wanted(Some(&kms), Some("k"), None), Ok(Some(Wanted::Kms(Some(_))))));
        assert!(matches!(wanted(Some(&kms), None, None), Ok(Some(Wanted::Kms(None)))));
        assert!(matches!(wanted(None, None, None), Ok(None)));
        assert!(wanted(None, Some("k"), None).is_err());
        assert!(wanted(Some(&s3), Some("k"), None).is_err());
        assert!(wanted(Some(&ServerSideEncryption::from("aws:kms:dsse".to_string())), None, None).is_err());
        let customer = CustomerKey { key: [1; 32], md5: String::new() };
        assert!(wanted(Some(&s3), None, Some(customer)).is_err());
    }
}
