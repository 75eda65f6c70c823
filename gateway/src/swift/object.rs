//! Object requests, run through the S3 implementation: PUT (with an `ETag` check and
//! `X-Copy-From`), GET and HEAD (ranges), DELETE, POST (metadata) and COPY.

use std::collections::HashMap;

use base64::Engine;
use http::{HeaderMap, Method, Request, StatusCode};
use hyper::body::Incoming;
use s3s::S3;
use s3s::dto::{
    CopyObjectInput, CopySource, DeleteObjectInput, GetObjectInput, HeadObjectInput, MetadataDirective, PutObjectInput,
    Range, StreamingBlob, Timestamp,
};

use super::expiry;
use super::large::{self, Kind};
use super::quota;
use super::ranges::{self, Wanted};
use super::response::{self, SwiftResponse};
use super::versioned_writes;
use super::{Access, MAX_META_NAME, MAX_META_VALUE, SwiftApi, Target, header, query_pairs, query_value};

const META_PREFIX: &str = "x-object-meta-";
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

pub async fn handle(api: &SwiftApi, req: Request<Incoming>, target: Target) -> SwiftResponse {
    // A COPY reads the object of its path; its destination's write access is checked below.
    let access = match *req.method() {
        Method::GET | Method::HEAD => Access::ObjectRead,
        ref m if m.as_str() == "COPY" => Access::ObjectRead,
        _ => Access::ObjectWrite,
    };
    if let Err(denied) = api.allowed(&target, access).await {
        return denied;
    }
    for unsupported in ["x-symlink-target"] {
        if req.headers().contains_key(unsupported) && matches!(*req.method(), Method::PUT | Method::POST) {
            return response::error(StatusCode::NOT_IMPLEMENTED, &format!("{unsupported} is not supported yet"));
        }
    }
    let container = target.container.clone().unwrap_or_default();
    let object = target.object.clone().unwrap_or_default();
    let query = query_pairs(req.uri().query());
    let manifest_op = query_value(&query, "multipart-manifest").map(str::to_ascii_lowercase);
    let result = match *req.method() {
        Method::PUT if manifest_op.as_deref() == Some("put") => {
            let (parts, body) = req.into_parts();
            large::put_static(api, &target, parts.headers, body, &container, &object).await
        }
        Method::PUT if req.headers().contains_key(large::DLO_MANIFEST) => {
            let (parts, body) = req.into_parts();
            large::put_dynamic(api, &target, parts.headers, body, &container, &object).await
        }
        Method::DELETE if manifest_op.as_deref() == Some("delete") => {
            large::delete_static(api, &target, req.headers(), &query, &container, &object).await
        }
        Method::PUT if req.headers().contains_key("x-copy-from") => {
            let source = header(req.headers(), "x-copy-from").unwrap_or_default().to_string();
            copy(api, &target, &source, (&container, &object), req.headers(), Versioned::Yes).await
        }
        Method::PUT => put(api, &target, req, &container, &object).await,
        Method::GET | Method::HEAD => get(api, &target, &req, &container, &object).await,
        Method::DELETE => delete(api, &target, &container, &object).await,
        Method::POST => post(api, &target, req.headers(), &container, &object).await,
        _ if req.method().as_str() == "COPY" => {
            let Some(destination) = header(req.headers(), "destination").map(str::to_string) else {
                return response::error(StatusCode::PRECONDITION_FAILED, "Destination header required");
            };
            let Some((dest_container, dest_object)) = split_path(&destination) else {
                return response::error(StatusCode::PRECONDITION_FAILED, "Destination must be /container/object");
            };
            // A COPY writes its destination: the requester must be allowed to write there.
            let dest_target =
                Target { container: Some(dest_container.clone()), object: Some(dest_object.clone()), ..target.clone() };
            if let Err(denied) = api.allowed(&dest_target, Access::ObjectWrite).await {
                return denied;
            }
            let source = literal_path(&container, &object);
            copy(api, &target, &source, (&dest_container, &dest_object), req.headers(), Versioned::Yes).await
        }
        _ => Err(response::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on an object")),
    };
    result.unwrap_or_else(|response| response)
}

/// The `/container/object` path that [`split_path`] reads back as exactly these (already decoded)
/// names: a `%` in a name (`a%25ff`) must not be decoded a second time.
fn literal_path(container: &str, object: &str) -> String {
    format!("/{container}/{object}").replace('%', "%25")
}

/// `/container/object` (percent-encoded, leading slash optional) into its parts.
fn split_path(path: &str) -> Option<(String, String)> {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let (container, object) = decoded.trim_start_matches('/').split_once('/')?;
    (!container.is_empty() && !object.is_empty()).then(|| (container.to_string(), object.to_string()))
}

/// The request's `X-Object-Meta-*`, plus its expiry (`X-Delete-At`/`X-Delete-After`) under its
/// reserved name; reserved names given as metadata are dropped, so no client can make an ordinary
/// object pose as a manifest or expire it behind Swift's checks.
pub(super) fn user_metadata(headers: &HeaderMap) -> Result<HashMap<String, String>, SwiftResponse> {
    let mut metadata = HashMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(META_PREFIX)
            && !large::is_reserved(key)
            && key != expiry::DELETE_AT
        {
            let value = String::from_utf8_lossy(value.as_bytes());
            // Swift clients send UTF-8 in metadata values, which `to_str` (visible ASCII only) would drop.
            let value = value.trim();
            if key.len() > MAX_META_NAME || value.len() > MAX_META_VALUE {
                return Err(response::error(StatusCode::BAD_REQUEST, "Metadata name or value too long"));
            }
            metadata.insert(key.to_string(), value.to_string());
        }
    }
    if let Some(at) = expiry::requested(headers, super::now_unix_s())? {
        metadata.insert(expiry::DELETE_AT.to_string(), at.to_string());
    }
    Ok(metadata)
}

/// Swift guesses a missing Content-Type from the name's extension.
pub fn guess_content_type(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "txt" | "text" | "log" => "text/plain",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "csv" => "text/csv",
        "js" => "application/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        _ => DEFAULT_CONTENT_TYPE,
    }
}

fn http_date(ts: &Timestamp) -> String {
    response::http_date(time::OffsetDateTime::from(ts.clone()).unix_timestamp() * 1000)
}

fn x_timestamp(ts: &Timestamp) -> String {
    let t = time::OffsetDateTime::from(ts.clone());
    format!("{}.{:05}", t.unix_timestamp(), t.millisecond() as u32 * 100)
}

fn bad(e: impl std::fmt::Display) -> SwiftResponse {
    response::error(StatusCode::BAD_REQUEST, &e.to_string())
}

async fn put(
    api: &SwiftApi,
    target: &Target,
    req: Request<Incoming>,
    container: &str,
    object: &str,
) -> Result<SwiftResponse, SwiftResponse> {
    let headers = req.headers().clone();
    let metadata = user_metadata(&headers)?;
    let content_md5 = match header(&headers, "etag").map(|e| e.trim_matches('"')) {
        None => None,
        Some(hex_md5) => {
            let digest = hex::decode(hex_md5)
                .ok()
                .filter(|d| d.len() == 16)
                .ok_or_else(|| response::error(StatusCode::UNPROCESSABLE_ENTITY, "Unprocessable Entity"))?;
            Some(base64::engine::general_purpose::STANDARD.encode(digest))
        }
    };
    let detect = header(&headers, "x-detect-content-type").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let content_type = match header(&headers, "content-type") {
        Some(ct) if !detect && !ct.is_empty() => ct.to_string(),
        _ => guess_content_type(object).to_string(),
    };
    let content_length = header(&headers, "content-length").and_then(|v| v.parse::<i64>().ok());
    if content_length.is_none() && !header(&headers, "transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        return Err(response::error(StatusCode::LENGTH_REQUIRED, "Missing Content-Length or chunked encoding"));
    }
    quota::check(api, container, content_length.unwrap_or(0).max(0) as u64).await?;
    versioned_writes::before_write(api, target, container, object).await?;
    let body = StreamingBlob::from(s3s::Body::from(req.into_body()));
    let input = PutObjectInput::builder()
        .bucket(container.to_string())
        .key(object.to_string())
        .body(Some(body))
        .content_length(content_length)
        .content_type(Some(content_type))
        .content_md5(content_md5)
        .metadata(Some(metadata))
        .build()
        .map_err(bad)?;
    // The S3 layer reads the decoded length from the request headers; pass the client's.
    let mut s3_headers = HeaderMap::new();
    if let Some(length) = headers.get("content-length") {
        s3_headers.insert("content-length", length.clone());
    }
    let mut request = api.s3_request(target, input, s3_headers);
    if content_length.is_none() {
        // Chunked transfer: the object is as long as what arrives.
        request.extensions.insert(crate::s3::LengthUnknown);
    }
    let output = api.s3.put_object(request).await.map_err(|e| response::from_s3(&e))?;
    let mut response = response::status(StatusCode::CREATED);
    if let Some(etag) = &output.output.e_tag {
        response::set(&mut response, "etag", etag.value());
    }
    response::set(&mut response, "content-type", "text/html; charset=UTF-8");
    Ok(response)
}

async fn get(
    api: &SwiftApi,
    target: &Target,
    req: &Request<Incoming>,
    container: &str,
    object: &str,
) -> Result<SwiftResponse, SwiftResponse> {
    // One range is served by S3 itself; several become a multipart/byteranges answer below.
    let mut range = header(req.headers(), "range")
        .filter(|r| !r.contains(','))
        .map(Range::parse)
        .transpose()
        .map_err(|_| response::error(StatusCode::RANGE_NOT_SATISFIABLE, "Requested Range Not Satisfiable"))?;
    let query = query_pairs(req.uri().query());
    let manifest_get = query_value(&query, "multipart-manifest").is_some_and(|v| v.eq_ignore_ascii_case("get"));
    if req.method() == Method::HEAD {
        let input =
            HeadObjectInput::builder().bucket(container.to_string()).key(object.to_string()).build().map_err(bad)?;
        let out = api.run_s3(target, input, |r| api.s3.head_object(r)).await?;
        expiry::refuse_expired(out.metadata.as_ref(), super::now_unix_s())?;
        let kind = Kind::of(out.metadata.as_ref());
        if !matches!(kind, Kind::Plain) && !manifest_get {
            let segments = large::segments_of(api, target, &kind, None, (container, object)).await;
            // A static manifest's totals are stored with it; only a dynamic one lists its segments.
            let (etag, size) = large::totals(&kind, &segments.unwrap_or_default());
            return large_answer(req.headers(), &kind, &etag, size, &HeadObjectOutputLike::from(&out), None);
        }
        if let Some(refused) = unmet_condition(req.headers(), out.e_tag.as_ref(), out.last_modified.as_ref()) {
            return Ok(response::status(refused));
        }
        let mut response = response::status(StatusCode::OK);
        describe_output!(&mut response, out);
        return Ok(response);
    }
    if let Some(value) = header(req.headers(), "range").filter(|r| r.contains(',')) {
        let input =
            HeadObjectInput::builder().bucket(container.to_string()).key(object.to_string()).build().map_err(bad)?;
        let out = api.run_s3(target, input, |r| api.s3.head_object(r)).await?;
        expiry::refuse_expired(out.metadata.as_ref(), super::now_unix_s())?;
        if matches!(Kind::of(out.metadata.as_ref()), Kind::Plain) {
            if let Some(refused) = unmet_condition(req.headers(), out.e_tag.as_ref(), out.last_modified.as_ref()) {
                return Ok(response::status(refused));
            }
            let total = out.content_length.unwrap_or(0).max(0) as u64;
            match ranges::parse(value, total) {
                Wanted::Unsatisfiable => {
                    return Err(response::error(StatusCode::RANGE_NOT_SATISFIABLE, "Requested Range Not Satisfiable"));
                }
                Wanted::Ranges(list) if list.len() > 1 => {
                    let etag = out.e_tag.as_ref().map(|e| e.value().to_string()).unwrap_or_default();
                    let content_type = out.content_type.clone().unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string());
                    let mut answer =
                        ranges::multipart_answer(api, target, container, object, &etag, &content_type, total, &list);
                    let framing = answer.headers().clone();
                    describe_output!(&mut answer, out);
                    for name in ["content-type", "content-length"] {
                        if let Some(value) = framing.get(name) {
                            answer.headers_mut().insert(name, value.clone());
                        }
                    }
                    return Ok(answer);
                }
                Wanted::Ranges(list) => range = Some(Range::Int { first: list[0].0, last: Some(list[0].1) }),
                Wanted::Whole => {}
            }
        }
    }
    let input = GetObjectInput::builder()
        .bucket(container.to_string())
        .key(object.to_string())
        .range(range)
        .build()
        .map_err(bad)?;
    let mut out = match api.run_s3(target, input, |r| api.s3.get_object(r)).await {
        Ok(out) => out,
        // The range may lie beyond a manifest's own (small) body but inside its large object.
        Err(refused) if refused.status() == StatusCode::RANGE_NOT_SATISFIABLE && range.is_some() => {
            let head = HeadObjectInput::builder()
                .bucket(container.to_string())
                .key(object.to_string())
                .build()
                .map_err(bad)?;
            let found = api.run_s3(target, head, |r| api.s3.head_object(r)).await?;
            if matches!(Kind::of(found.metadata.as_ref()), Kind::Plain) {
                return Err(refused);
            }
            let whole =
                GetObjectInput::builder().bucket(container.to_string()).key(object.to_string()).build().map_err(bad)?;
            range = None;
            api.run_s3(target, whole, |r| api.s3.get_object(r)).await?
        }
        Err(other) => return Err(other),
    };
    expiry::refuse_expired(out.metadata.as_ref(), super::now_unix_s())?;
    let kind = Kind::of(out.metadata.as_ref());
    if !matches!(kind, Kind::Plain) {
        let manifest = match kind {
            Kind::Static { .. } => {
                if range.is_some() {
                    // The ranged read above cut the manifest itself; read it whole.
                    let whole = GetObjectInput::builder()
                        .bucket(container.to_string())
                        .key(object.to_string())
                        .build()
                        .map_err(bad)?;
                    out = api.run_s3(target, whole, |r| api.s3.get_object(r)).await?;
                }
                Some(large::parse_manifest(&large::read_manifest_body(out.body.take()).await?)?)
            }
            _ => None,
        };
        if manifest_get && let Some(manifest) = &manifest {
            let raw = query_value(&query, "format").is_some_and(|f| f.eq_ignore_ascii_case("raw"));
            return Ok(large::manifest_response(manifest, raw));
        }
        if !manifest_get {
            let head = HeadObjectOutputLike::of(&out);
            let segments = large::segments_of(api, target, &kind, manifest, (container, object)).await?;
            let (etag, size) = large::totals(&kind, &segments);
            let (span, partial) = large::byte_range(req.headers(), size)?;
            let body = large::stream(api, target, &kind, segments, span.clone());
            let mut answer = large_answer(req.headers(), &kind, &etag, size, &head, Some(body))?;
            if answer.status() == StatusCode::OK && partial {
                *answer.status_mut() = StatusCode::PARTIAL_CONTENT;
                response::set(&mut answer, "content-length", &(span.end - span.start).to_string());
                let last = span.end.saturating_sub(1);
                response::set(&mut answer, "content-range", &format!("bytes {}-{last}/{size}", span.start));
            }
            return Ok(answer);
        }
    }
    // Checked on the answer's own ETag and time; a refused GET drops the body stream unread.
    if let Some(refused) = unmet_condition(req.headers(), out.e_tag.as_ref(), out.last_modified.as_ref()) {
        return Ok(response::status(refused));
    }
    let mut response = http::Response::new(out.body.map(s3s::Body::from).unwrap_or_else(s3s::Body::empty));
    *response.status_mut() = if out.content_range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    describe_output!(&mut response, out);
    if let Some(range) = &out.content_range {
        response::set(&mut response, "content-range", range);
    }
    Ok(response)
}

/// The headers of a manifest that describe a large object, from a GET or a HEAD of it.
struct HeadObjectOutputLike {
    content_type: Option<String>,
    last_modified: Option<Timestamp>,
    metadata: Option<HashMap<String, String>>,
}

impl HeadObjectOutputLike {
    fn of(out: &s3s::dto::GetObjectOutput) -> Self {
        HeadObjectOutputLike {
            content_type: out.content_type.clone(),
            last_modified: out.last_modified.clone(),
            metadata: out.metadata.clone(),
        }
    }
}

impl From<&s3s::dto::HeadObjectOutput> for HeadObjectOutputLike {
    fn from(out: &s3s::dto::HeadObjectOutput) -> Self {
        HeadObjectOutputLike {
            content_type: out.content_type.clone(),
            last_modified: out.last_modified.clone(),
            metadata: out.metadata.clone(),
        }
    }
}

/// GET or HEAD of a large object: its total size, its quoted segment ETag, the manifest's kind.
fn large_answer(
    headers: &HeaderMap,
    kind: &Kind,
    etag: &str,
    size: u64,
    head: &HeadObjectOutputLike,
    body: Option<s3s::Body>,
) -> Result<SwiftResponse, SwiftResponse> {
    let quoted = s3s::dto::ETag::Strong(format!("\"{etag}\""));
    if let Some(refused) =
        unmet_condition(headers, Some(&s3s::dto::ETag::Strong(etag.to_string())), head.last_modified.as_ref())
    {
        return Ok(response::status(refused));
    }
    let mut answer = http::Response::new(body.unwrap_or_else(s3s::Body::empty));
    let length = i64::try_from(size).unwrap_or(i64::MAX);
    describe(
        &mut answer,
        Some(length),
        head.content_type.as_deref(),
        Some(&quoted),
        head.last_modified.as_ref(),
        head.metadata.as_ref(),
    );
    match kind {
        Kind::Static { .. } => response::set(&mut answer, large::SLO_MARKER, "True"),
        Kind::Dynamic(prefix) => response::set(&mut answer, large::DLO_MANIFEST, prefix),
        Kind::Plain => {}
    }
    Ok(answer)
}

/// RFC 9110's preconditions on a GET or HEAD, as Swift evaluates them: `If-Match` (a list or `*`)
/// and `If-Unmodified-Since` refuse with 412, `If-None-Match` and `If-Modified-Since` with 304.
/// Unparseable dates are ignored.
fn unmet_condition(
    headers: &HeaderMap,
    etag: Option<&s3s::dto::ETag>,
    modified: Option<&Timestamp>,
) -> Option<StatusCode> {
    let etag = etag.map(|e| e.value().to_string()).unwrap_or_default();
    let listed = |value: &str| {
        value.split(',').map(|t| t.trim().trim_start_matches("W/").trim_matches('"')).any(|t| t == "*" || t == etag)
    };
    let modified = modified.map(|ts| time::OffsetDateTime::from(ts.clone()).unix_timestamp());
    let date = |name: &str| header(headers, name).and_then(crate::s3::edge::parse_http_date);
    if let Some(value) = header(headers, "if-match")
        && !listed(value)
    {
        return Some(StatusCode::PRECONDITION_FAILED);
    }
    if let (Some(since), Some(modified)) = (date("if-unmodified-since"), modified)
        && modified > since
    {
        return Some(StatusCode::PRECONDITION_FAILED);
    }
    if let Some(value) = header(headers, "if-none-match") {
        if listed(value) {
            return Some(StatusCode::NOT_MODIFIED);
        }
    } else if let (Some(since), Some(modified)) = (date("if-modified-since"), modified)
        && modified <= since
    {
        return Some(StatusCode::NOT_MODIFIED);
    }
    None
}

/// [`describe`] for a GetObject or HeadObject output (their fields share names, not a type).
macro_rules! describe_output {
    ($response:expr, $out:expr) => {
        describe(
            $response,
            $out.content_length,
            $out.content_type.as_deref(),
            $out.e_tag.as_ref(),
            $out.last_modified.as_ref(),
            $out.metadata.as_ref(),
        )
    };
}
use describe_output;

/// The object headers of GET and HEAD.
fn describe(
    response: &mut SwiftResponse,
    length: Option<i64>,
    content_type: Option<&str>,
    etag: Option<&s3s::dto::ETag>,
    last_modified: Option<&Timestamp>,
    metadata: Option<&HashMap<String, String>>,
) {
    response::set(response, "content-length", &length.unwrap_or(0).to_string());
    response::set(response, "content-type", content_type.unwrap_or(DEFAULT_CONTENT_TYPE));
    response::set(response, "accept-ranges", "bytes");
    if let Some(etag) = etag {
        response::set(response, "etag", etag.value());
    }
    if let Some(ts) = last_modified {
        response::set(response, "last-modified", &http_date(ts));
        response::set(response, "x-timestamp", &x_timestamp(ts));
    }
    if let Some(at) = expiry::stored(metadata) {
        response::set(response, "x-delete-at", &at.to_string());
    }
    for (key, value) in
        metadata.into_iter().flatten().filter(|(k, _)| !large::is_reserved(k) && k.as_str() != expiry::DELETE_AT)
    {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::try_from(format!("{META_PREFIX}{key}")), http::HeaderValue::from_bytes(value.as_bytes()))
        {
            response.headers_mut().insert(name, value);
        }
    }
}

/// DELETE, as Swift's pipeline answers it: through the container's versioning, if any.
pub(super) async fn delete(
    api: &SwiftApi,
    target: &Target,
    container: &str,
    object: &str,
) -> Result<SwiftResponse, SwiftResponse> {
    match versioned_writes::of_container(api, container).await? {
        Some(versioning) => versioned_writes::delete(api, target, &versioning, container, object).await,
        None => delete_unversioned(api, target, container, object).await,
    }
}

/// DELETE of the object itself, whatever the container's versioning.
pub(super) async fn delete_unversioned(
    api: &SwiftApi,
    target: &Target,
    container: &str,
    object: &str,
) -> Result<SwiftResponse, SwiftResponse> {
    // S3's DELETE succeeds on a missing key; Swift answers 404.
    let head = HeadObjectInput::builder().bucket(container.to_string()).key(object.to_string()).build().map_err(bad)?;
    let found = api.run_s3(target, head, |r| api.s3.head_object(r)).await?;
    expiry::refuse_expired(found.metadata.as_ref(), super::now_unix_s())?;
    let input =
        DeleteObjectInput::builder().bucket(container.to_string()).key(object.to_string()).build().map_err(bad)?;
    api.run_s3(target, input, |r| api.s3.delete_object(r)).await?;
    Ok(response::status(StatusCode::NO_CONTENT))
}

/// Whether a copy replaces its destination as a new write (archived first in a versioned
/// container), or only rewrites its metadata (a POST, which Swift does not version).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Versioned {
    Yes,
    No,
}

/// Copies `source` (`/container/object`) to `dest`: the source's metadata, updated by the
/// request's `X-Object-Meta-*` (replaced wholesale with `X-Fresh-Metadata: true`).
async fn copy(
    api: &SwiftApi,
    target: &Target,
    source: &str,
    dest: (&str, &str),
    headers: &HeaderMap,
    versioned: Versioned,
) -> Result<SwiftResponse, SwiftResponse> {
    let (source_container, source_object) = split_path(source)
        .ok_or_else(|| response::error(StatusCode::PRECONDITION_FAILED, "X-Copy-From must be /container/object"))?;
    let source_target = Target { container: Some(source_container.clone()), object: None, ..target.clone() };
    api.allowed(&source_target, Access::ObjectRead).await?;
    let head =
        HeadObjectInput::builder().bucket(source_container.clone()).key(source_object.clone()).build().map_err(bad)?;
    let existing = api.run_s3(target, head, |r| api.s3.head_object(r)).await?;
    let fresh = header(headers, "x-fresh-metadata").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut metadata = if fresh { HashMap::new() } else { existing.metadata.clone().unwrap_or_default() };
    metadata.extend(user_metadata(headers)?);
    let content_type = header(headers, "content-type").map(str::to_string).or(existing.content_type);
    if (source_container.as_str(), source_object.as_str()) != dest {
        quota::check(api, dest.0, existing.content_length.unwrap_or(0).max(0) as u64).await?;
    }
    if versioned == Versioned::Yes {
        versioned_writes::before_write(api, target, dest.0, dest.1).await?;
    }
    let input = CopyObjectInput::builder()
        .bucket(dest.0.to_string())
        .key(dest.1.to_string())
        .copy_source(CopySource::Bucket {
            bucket: source_container.clone().into(),
            key: source_object.clone().into(),
            version_id: None,
        })
        .metadata_directive(Some(MetadataDirective::from_static(MetadataDirective::REPLACE)))
        .metadata(Some(metadata))
        .content_type(content_type)
        .build()
        .map_err(bad)?;
    let out = api.run_s3(target, input, |r| api.s3.copy_object(r)).await?;
    let mut response = response::status(StatusCode::CREATED);
    response::set(&mut response, "x-copied-from", &format!("{source_container}/{source_object}"));
    if let Some(etag) = out.copy_object_result.and_then(|r| r.e_tag) {
        response::set(&mut response, "etag", etag.value());
    }
    Ok(response)
}

/// Swift's POST replaces every `X-Object-Meta-*` of the object (and its Content-Type when given).
async fn post(
    api: &SwiftApi,
    target: &Target,
    headers: &HeaderMap,
    container: &str,
    object: &str,
) -> Result<SwiftResponse, SwiftResponse> {
    let mut fresh = headers.clone();
    fresh.insert("x-fresh-metadata", http::HeaderValue::from_static("true"));
    copy(api, target, &literal_path(container, object), (container, object), &fresh, Versioned::No).await?;
    Ok(response::status(StatusCode::ACCEPTED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditions_refuse_as_swift_does() {
        let etag = s3s::dto::ETag::Strong("abc".into());
        let at = Timestamp::from(time::OffsetDateTime::from_unix_timestamp(1_000_000_000).unwrap());
        let check = |name: &'static str, value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, value.parse().unwrap());
            unmet_condition(&headers, Some(&etag), Some(&at))
        };
        assert_eq!(check("if-match", "\"x\", \"abc\""), None);
        assert_eq!(check("if-match", "\"x\""), Some(StatusCode::PRECONDITION_FAILED));
        assert_eq!(check("if-none-match", "abc"), Some(StatusCode::NOT_MODIFIED));
        assert_eq!(check("if-none-match", "*"), Some(StatusCode::NOT_MODIFIED));
        assert_eq!(check("if-modified-since", "Sun, 09 Sep 2001 01:46:40 GMT"), Some(StatusCode::NOT_MODIFIED));
        assert_eq!(check("if-modified-since", "garbage"), None);
        assert_eq!(
            check("if-unmodified-since", "Sat, 08 Sep 2001 00:00:00 GMT"),
            Some(StatusCode::PRECONDITION_FAILED)
        );
    }

    #[test]
    fn paths_split_and_types_are_guessed() {
        assert_eq!(split_path("/c/a%20b/c"), Some(("c".into(), "a b/c".into())));
        assert_eq!(split_path("c/o"), Some(("c".into(), "o".into())));
        assert_eq!(split_path("/c"), None);
        assert_eq!(split_path(&literal_path("c", "a%25ff b")), Some(("c".into(), "a%25ff b".into())));
        assert_eq!(guess_content_type("photo.JPG"), "image/jpeg");
        assert_eq!(guess_content_type("noext"), DEFAULT_CONTENT_TYPE);
    }
}
