//! One object written from a stream that another request carries (a member of a bulk upload's
//! archive, a file of a form post), as Swift's object PUT writes it: the given `X-Object-Meta-*`
//! and expiry, the container's quota and versioning, and a content type guessed from the name
//! when none is given. The caller has already decided that the write is allowed.

use http::{HeaderMap, HeaderValue, StatusCode};
use s3s::S3;
use s3s::dto::{PutObjectInput, StreamingBlob};

use super::response::{self, SwiftResponse};
use super::{MAX_OBJECT_NAME, SwiftApi, Target, header, object, quota, versioned_writes};

/// Writes `body` (exactly `length` bytes) as the object `target` names; `headers` are the object
/// headers a PUT would carry (`Content-Type`, `Content-Encoding`, `X-Object-Meta-*`,
/// `X-Delete-At`/`-After`). Answers 201 or the Swift failure.
pub async fn put(
    api: &SwiftApi,
    target: &Target,
    headers: &HeaderMap,
    body: StreamingBlob,
    length: u64,
) -> Result<StatusCode, SwiftResponse> {
    let container = target.container.as_deref().unwrap_or_default();
    let name = target.object.as_deref().unwrap_or_default();
    if container.is_empty() || name.is_empty() {
        return Err(response::error(StatusCode::BAD_REQUEST, "The object needs a container and a name"));
    }
    if name.len() > MAX_OBJECT_NAME {
        return Err(response::error(StatusCode::BAD_REQUEST, "Object name length exceeds the limit"));
    }
    let metadata = object::user_metadata(headers)?;
    let content_type = match header(headers, "content-type").filter(|t| !t.is_empty()) {
        Some(given) => given.to_string(),
        None => object::guess_content_type(name).to_string(),
    };
    quota::check(api, container, length).await?;
    versioned_writes::before_write(api, target, container, name).await?;
    let declared = i64::try_from(length).map_err(|_| response::error(StatusCode::PAYLOAD_TOO_LARGE, "too large"))?;
    let input = PutObjectInput::builder()
        .bucket(container.to_string())
        .key(name.to_string())
        .body(Some(body))
        .content_length(Some(declared))
        .content_type(Some(content_type))
        .content_encoding(header(headers, "content-encoding").map(str::to_string))
        .metadata(Some(metadata))
        .build()
        .map_err(|e| response::error(StatusCode::BAD_REQUEST, &e.to_string()))?;
    // The S3 layer reads the length to expect from the request's headers.
    let mut s3_headers = HeaderMap::new();
    s3_headers.insert("content-length", HeaderValue::from(length));
    api.s3.put_object(api.s3_request(target, input, s3_headers)).await.map_err(|e| response::from_s3(&e))?;
    Ok(StatusCode::CREATED)
}
