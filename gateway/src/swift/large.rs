//! Swift large objects. A static large object (SLO, `?multipart-manifest=put`) is a manifest
//! object whose body lists its segments, checked when it is written; a dynamic large object (DLO,
//! `X-Object-Manifest: container/prefix`) names every object under a prefix, listed when it is
//! read. Segments are ordinary objects read with the requester's own rights, so a manifest grants
//! nothing its reader could not read directly. The manifest's kind lives in reserved metadata
//! names, which Swift clients can neither set nor see as `X-Object-Meta-*`.

use std::collections::HashMap;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Limited};
use md5::{Digest, Md5};
use s3s::S3;
use s3s::dto::{GetObjectInput, HeadObjectInput, ListObjectsV2Input, PutObjectInput, Range, StreamingBlob};
use serde::{Deserialize, Serialize};

use super::ranges::{self, Wanted};
use super::response::{self, SwiftResponse};
use super::{Access, SwiftApi, Target, bulk, header, object};

/// Reserved metadata names (lower-case, as stored).
pub const SLO_MARKER: &str = "x-static-large-object";
const SLO_ETAG: &str = "x-slo-etag";
const SLO_SIZE: &str = "x-slo-size";
pub const DLO_MANIFEST: &str = "x-object-manifest";

/// Swift's defaults: `max_manifest_segments` and `max_manifest_size`.
pub const MAX_SEGMENTS: usize = 1000;
pub const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;
/// A GET follows nested manifests this deep, and streams at most this many segments in all.
const MAX_NESTING: usize = 10;
pub const MAX_EXPANDED_SEGMENTS: usize = 10_000;
/// Segments fetched ahead of the client: chunks buffered between the segment reader and the response.
const STREAM_BUFFER_CHUNKS: usize = 8;

pub fn is_reserved(name: &str) -> bool {
    [SLO_MARKER, SLO_ETAG, SLO_SIZE, DLO_MANIFEST].contains(&name)
}

/// What an object is, from its stored metadata.
pub enum Kind {
    Plain,
    Static {
        etag: String,
        size: u64,
    },
    /// `container/prefix`, as given (percent-decoded).
    Dynamic(String),
}

impl Kind {
    pub fn of(metadata: Option<&HashMap<String, String>>) -> Kind {
        let Some(m) = metadata else { return Kind::Plain };
        if m.get(SLO_MARKER).is_some_and(|v| super::is_true(v)) {
            let size = m.get(SLO_SIZE).and_then(|s| s.parse().ok()).unwrap_or(0);
            return Kind::Static { etag: m.get(SLO_ETAG).cloned().unwrap_or_default(), size };
        }
        match m.get(DLO_MANIFEST) {
            Some(prefix) => Kind::Dynamic(prefix.clone()),
            None => Kind::Plain,
        }
    }
}

/// One segment as a client lists it in `?multipart-manifest=put`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutSegment {
    #[serde(default)]
    path: Option<String>,
    /// Inline bytes (base64) instead of a segment object.
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    size_bytes: Option<u64>,
    #[serde(default)]
    range: Option<String>,
}

/// One segment as stored (Swift's own stored manifest shape, returned by `?multipart-manifest=get`).
#[derive(Serialize, Deserialize, Clone)]
pub struct StoredSegment {
    /// `/container/object` (empty for inline data).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    name: String,
    /// Inline bytes, base64, instead of a segment object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<String>,
    #[serde(default)]
    bytes: u64,
    #[serde(default)]
    hash: String,
    #[serde(default)]
    content_type: String,
    #[serde(default)]
    last_modified: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    sub_slo: bool,
    /// Only these bytes of the segment (`first-last`, inclusive), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    range: Option<String>,
}

impl StoredSegment {
    /// The bytes of the segment this manifest entry uses: (offset, length).
    fn span(&self) -> Option<(u64, u64)> {
        match &self.range {
            None => Some((0, self.bytes)),
            Some(range) => {
                let (first, last) = range.split_once('-')?;
                let (first, last) = (first.parse::<u64>().ok()?, last.parse::<u64>().ok()?);
                (first <= last && last < self.bytes).then_some((first, last - first + 1))
            }
        }
    }

    /// What this entry adds to the SLO's ETag (Swift: the segment's ETag, with `:range;` when
    /// ranged; the MD5 of inline data).
    fn etag_part(&self) -> String {
        if self.data.is_some() {
            return self.hash.clone();
        }
        match &self.range {
            None => self.hash.clone(),
            Some(range) => format!("{}:{range};", self.hash),
        }
    }
}

/// One segment of a large object as it is read: `len` bytes from `offset` of an object.
pub struct Segment {
    /// Bytes from the manifest itself; the object fields are then unused.
    inline: Option<Bytes>,
    container: String,
    object: String,
    offset: u64,
    len: u64,
    etag: String,
}

/// Part of one object to stream.
pub struct Piece {
    pub container: String,
    pub object: String,
    pub first: u64,
    pub len: u64,
    /// The ETag the object must still have (an SLO's promise, or the object a multi-range GET
    /// describes), checked before its bytes are sent.
    pub etag: Option<String>,
}

/// What a streamed body is made of: literal bytes (multipart boundaries) and parts of objects.
pub enum Part {
    Literal(Bytes),
    Object(Piece),
}

fn bad_request(message: &str) -> SwiftResponse {
    response::error(StatusCode::BAD_REQUEST, message)
}

fn split(path: &str) -> Option<(String, String)> {
    let (container, object) = path.trim_start_matches('/').split_once('/')?;
    (!container.is_empty() && !object.is_empty()).then(|| (container.to_string(), object.to_string()))
}

/// The ETag of a large object: the MD5 of its segments' ETags, concatenated.
fn etag_of<'a>(etags: impl Iterator<Item = &'a str>) -> String {
    let mut md5 = Md5::new();
    for etag in etags {
        md5.update(etag.trim_matches('"').as_bytes());
    }
    hex::encode(md5.finalize())
}

/// `PUT ?multipart-manifest=put`: checks every segment (it exists and has the promised ETag and
/// size) and stores the manifest.
pub async fn put_static(
    api: &SwiftApi,
    target: &Target,
    headers: HeaderMap,
    body: hyper::body::Incoming,
    container: &str,
    name: &str,
) -> Result<SwiftResponse, SwiftResponse> {
    let body = Limited::new(body, MAX_MANIFEST_BYTES)
        .collect()
        .await
        .map_err(|_| response::error(StatusCode::PAYLOAD_TOO_LARGE, "Manifest File > 8388608 bytes"))?
        .to_bytes();
    let listed: Vec<PutSegment> =
        serde_json::from_slice(&body).map_err(|_| bad_request("Manifest must be valid JSON."))?;
    if listed.is_empty() {
        return Err(bad_request("Manifest must have at least one segment."));
    }
    if listed.len() > MAX_SEGMENTS {
        return Err(bad_request(&format!("Too many segments: at most {MAX_SEGMENTS}.")));
    }
    let mut stored = Vec::with_capacity(listed.len());
    let mut problems = Vec::new();
    for (i, segment) in listed.iter().enumerate() {
        let path = match (&segment.path, &segment.data) {
            (Some(path), None) => percent_encoding::percent_decode_str(path).decode_utf8_lossy().into_owned(),
            (None, Some(data)) => {
                match base64::engine::general_purpose::STANDARD.decode(data) {
                    Ok(bytes) if !bytes.is_empty() => stored.push(StoredSegment {
                        name: String::new(),
                        data: Some(data.clone()),
                        bytes: bytes.len() as u64,
                        hash: hex::encode(Md5::digest(&bytes)),
                        content_type: String::new(),
                        last_modified: String::new(),
                        sub_slo: false,
                        range: None,
                    }),
                    _ => problems.push(format!("Index {i}: data must be non-empty base64")),
                }
                continue;
            }
            _ => {
                problems.push(format!("Index {i}: give exactly one of path and data"));
                continue;
            }
        };
        let Some((seg_container, seg_object)) = split(&path) else {
            problems.push(format!("Index {i}: path must be /container/object"));
            continue;
        };
        let seg_target =
            Target { container: Some(seg_container.clone()), object: Some(seg_object.clone()), ..target.clone() };
        if api.allowed(&seg_target, Access::ObjectRead).await.is_err() {
            problems.push(format!("{path}, 403 Forbidden"));
            continue;
        }
        let head = HeadObjectInput::builder().bucket(seg_container.clone()).key(seg_object.clone()).build();
        let Ok(head) = head else {
            problems.push(format!("{path}, 400 Bad Request"));
            continue;
        };
        let found = match api.run_s3(target, head, |r| api.s3.head_object(r)).await {
            Ok(found) => found,
            Err(answer) => {
                let status = answer.status();
                problems.push(format!("{path}, {} {}", status.as_u16(), status.canonical_reason().unwrap_or("")));
                continue;
            }
        };
        let (size, etag, sub_slo) = match Kind::of(found.metadata.as_ref()) {
            Kind::Static { etag, size } => (size, etag, true),
            _ => (
                found.content_length.unwrap_or(0).max(0) as u64,
                found.e_tag.as_ref().map(|e| e.value().to_string()).unwrap_or_default(),
                false,
            ),
        };
        if let Some(want) = segment.etag.as_deref().map(|e| e.trim_matches('"')).filter(|e| !e.is_empty())
            && want != etag
        {
            problems.push(format!("{path}, Etag Mismatch"));
        }
        if let Some(want) = segment.size_bytes
            && want != size
        {
            problems.push(format!("{path}, Size Mismatch"));
        }
        let range = match segment.range.as_deref().map(|r| ranges::parse(&format!("bytes={r}"), size)) {
            None => None,
            // A range of the whole segment is no range (Swift drops it, and so its ETag part).
            Some(Wanted::Ranges(list)) if list.len() == 1 && list[0] == (0, size.saturating_sub(1)) => None,
            Some(Wanted::Ranges(list)) if list.len() == 1 => Some(format!("{}-{}", list[0].0, list[0].1)),
            Some(_) => {
                problems.push(format!("Index {i}: invalid or unsatisfiable range"));
                continue;
            }
        };
        stored.push(StoredSegment {
            name: format!("/{seg_container}/{seg_object}"),
            data: None,
            range,
            bytes: size,
            hash: etag,
            content_type: found.content_type.clone().unwrap_or_default(),
            last_modified: found
                .last_modified
                .as_ref()
                .map(|t| time::OffsetDateTime::from(t.clone()).unix_timestamp().to_string())
                .unwrap_or_default(),
            sub_slo,
        });
    }
    if !problems.is_empty() {
        let text = format!("Errors:\n{}\n", problems.join("\n"));
        return Err(response::body(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", text));
    }
    let parts: Vec<String> = stored.iter().map(StoredSegment::etag_part).collect();
    let slo_etag = etag_of(parts.iter().map(String::as_str));
    if let Some(want) = header(&headers, "etag").map(|e| e.trim_matches('"'))
        && want != slo_etag
    {
        return Err(response::error(StatusCode::UNPROCESSABLE_ENTITY, "Unprocessable Entity"));
    }
    let total: u64 = stored.iter().filter_map(|s| s.span().map(|(_, len)| len)).sum();
    let mut metadata = object::user_metadata(&headers)?;
    metadata.insert(SLO_MARKER.into(), "True".into());
    metadata.insert(SLO_ETAG.into(), slo_etag.clone());
    metadata.insert(SLO_SIZE.into(), total.to_string());
    let manifest = serde_json::to_vec(&stored).map_err(|e| bad_request(&e.to_string()))?;
    put_manifest_object(api, target, &headers, container, name, metadata, Bytes::from(manifest)).await?;
    let mut answer = response::status(StatusCode::CREATED);
    response::set(&mut answer, "etag", &format!("\"{slo_etag}\""));
    Ok(answer)
}

/// `PUT` with `X-Object-Manifest`: the object itself (usually empty) marked as a DLO.
pub async fn put_dynamic(
    api: &SwiftApi,
    target: &Target,
    headers: HeaderMap,
    body: hyper::body::Incoming,
    container: &str,
    name: &str,
) -> Result<SwiftResponse, SwiftResponse> {
    // Raw UTF-8 is common here (Swift's own clients send container names unquoted).
    let prefix =
        headers.get(DLO_MANIFEST).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default();
    let prefix = percent_encoding::percent_decode_str(&prefix).decode_utf8_lossy().into_owned();
    let Some((seg_container, _)) = prefix.trim_start_matches('/').split_once('/') else {
        return Err(bad_request("X-Object-Manifest must be in the format container/prefix"));
    };
    if seg_container.is_empty() {
        return Err(bad_request("X-Object-Manifest must be in the format container/prefix"));
    }
    let body = Limited::new(body, MAX_MANIFEST_BYTES)
        .collect()
        .await
        .map_err(|_| response::error(StatusCode::PAYLOAD_TOO_LARGE, "a manifest object's own body is limited"))?
        .to_bytes();
    let mut metadata = object::user_metadata(&headers)?;
    metadata.insert(DLO_MANIFEST.into(), prefix.trim_start_matches('/').to_string());
    let etag = put_manifest_object(api, target, &headers, container, name, metadata, body).await?;
    let mut answer = response::status(StatusCode::CREATED);
    response::set(&mut answer, "etag", &etag);
    Ok(answer)
}

async fn put_manifest_object(
    api: &SwiftApi,
    target: &Target,
    headers: &HeaderMap,
    container: &str,
    name: &str,
    metadata: HashMap<String, String>,
    body: Bytes,
) -> Result<String, SwiftResponse> {
    let content_type = match header(headers, "content-type") {
        Some(ct) if !ct.is_empty() => ct.to_string(),
        _ => object::guess_content_type(name).to_string(),
    };
    let length = body.len() as i64;
    let input = PutObjectInput::builder()
        .bucket(container.to_string())
        .key(name.to_string())
        .body(Some(StreamingBlob::from(s3s::Body::from(body))))
        .content_length(Some(length))
        .content_type(Some(content_type))
        .metadata(Some(metadata))
        .build()
        .map_err(|e| bad_request(&e.to_string()))?;
    let mut s3_headers = HeaderMap::new();
    s3_headers.insert("content-length", http::HeaderValue::from(length));
    super::versioned_writes::before_write(api, target, container, name).await?;
    let output =
        api.s3.put_object(api.s3_request(target, input, s3_headers)).await.map_err(|e| response::from_s3(&e))?;
    Ok(output.output.e_tag.map(|e| e.value().to_string()).unwrap_or_default())
}

/// The stored manifest of an SLO.
pub fn parse_manifest(body: &[u8]) -> Result<Vec<StoredSegment>, SwiftResponse> {
    serde_json::from_slice(body)
        .map_err(|_| response::error(StatusCode::INTERNAL_SERVER_ERROR, "the stored manifest does not parse"))
}

/// `?multipart-manifest=get`: the stored manifest, or with `format=raw` the form it was put in.
pub fn manifest_response(segments: &[StoredSegment], raw: bool) -> SwiftResponse {
    let text = if raw {
        let put: Vec<serde_json::Value> = segments
            .iter()
            .map(|s| {
                if let Some(data) = &s.data {
                    return serde_json::json!({ "data": data });
                }
                let mut entry = serde_json::json!({"path": s.name, "etag": s.hash, "size_bytes": s.bytes});
                if let Some(range) = &s.range {
                    entry["range"] = serde_json::Value::String(range.clone());
                }
                entry
            })
            .collect();
        serde_json::Value::Array(put).to_string()
    } else {
        serde_json::to_string(segments).unwrap_or_default()
    };
    let mut answer = response::body(StatusCode::OK, "application/json; charset=utf-8", text);
    response::set(&mut answer, SLO_MARKER, "True");
    answer
}

/// Reads a whole manifest object's body (bounded).
pub async fn read_manifest_body(body: Option<StreamingBlob>) -> Result<Bytes, SwiftResponse> {
    let Some(body) = body else { return Ok(Bytes::new()) };
    let body = s3s::Body::from(body);
    Limited::new(body, MAX_MANIFEST_BYTES)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| response::error(StatusCode::INTERNAL_SERVER_ERROR, "the stored manifest is too large"))
}

/// Every segment of a large object, nested SLOs expanded, with sizes and ETags.
pub async fn segments_of(
    api: &SwiftApi,
    target: &Target,
    kind: &Kind,
    manifest: Option<Vec<StoredSegment>>,
    self_name: (&str, &str),
) -> Result<Vec<Segment>, SwiftResponse> {
    match kind {
        Kind::Plain => Ok(Vec::new()),
        Kind::Static { .. } => {
            let mut out = Vec::new();
            expand(api, target, manifest.unwrap_or_default(), 0, &mut out).await?;
            Ok(out)
        }
        Kind::Dynamic(prefix) => dynamic_segments(api, target, prefix, self_name).await,
    }
}

fn expand<'a>(
    api: &'a SwiftApi,
    target: &'a Target,
    segments: Vec<StoredSegment>,
    depth: usize,
    out: &'a mut Vec<Segment>,
) -> futures::future::BoxFuture<'a, Result<(), SwiftResponse>> {
    Box::pin(async move {
        for segment in segments {
            if let Some(data) = &segment.data {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|_| response::error(StatusCode::CONFLICT, "a manifest holds invalid inline data"))?;
                let len = bytes.len() as u64;
                let inline = Some(Bytes::from(bytes));
                out.push(Segment {
                    inline,
                    container: String::new(),
                    object: String::new(),
                    offset: 0,
                    len,
                    etag: segment.hash,
                });
                continue;
            }
            let Some((container, name)) = split(&segment.name) else {
                return Err(response::error(StatusCode::CONFLICT, "a manifest names an invalid segment"));
            };
            if out.len() >= MAX_EXPANDED_SEGMENTS {
                return Err(response::error(StatusCode::CONFLICT, "too many segments"));
            }
            let Some((offset, len)) = segment.span() else {
                return Err(response::error(StatusCode::CONFLICT, "a manifest names an invalid range"));
            };
            if !segment.sub_slo {
                out.push(Segment { inline: None, container, object: name, offset, len, etag: segment.hash });
                continue;
            }
            if depth + 1 >= MAX_NESTING {
                return Err(response::error(StatusCode::CONFLICT, "manifests are nested too deeply"));
            }
            let input = GetObjectInput::builder()
                .bucket(container)
                .key(name)
                .build()
                .map_err(|e| bad_request(&e.to_string()))?;
            let nested = api.run_s3(target, input, |r| api.s3.get_object(r)).await?;
            let body = read_manifest_body(nested.body).await?;
            let mut inner = Vec::new();
            expand(api, target, parse_manifest(&body)?, depth + 1, &mut inner).await?;
            out.extend(slice(inner, offset..offset + len));
        }
        Ok(())
    })
}

/// A DLO's segments: the objects under its prefix in name order (the manifest itself excluded).
async fn dynamic_segments(
    api: &SwiftApi,
    target: &Target,
    prefix: &str,
    self_name: (&str, &str),
) -> Result<Vec<Segment>, SwiftResponse> {
    let Some((container, prefix)) = prefix.split_once('/') else { return Ok(Vec::new()) };
    let list_target = Target { container: Some(container.to_string()), object: None, ..target.clone() };
    api.allowed(&list_target, Access::ContainerRead).await?;
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let input = ListObjectsV2Input::builder()
            .bucket(container.to_string())
            .prefix(Some(prefix.to_string()))
            .continuation_token(token.take())
            .build()
            .map_err(|e| bad_request(&e.to_string()))?;
        let page = match api.run_s3(target, input, |r| api.s3.list_objects_v2(r)).await {
            Ok(page) => page,
            Err(answer) if answer.status() == StatusCode::NOT_FOUND => return Ok(out),
            Err(answer) => return Err(answer),
        };
        for item in page.contents.unwrap_or_default() {
            let Some(key) = item.key else { continue };
            if (container, key.as_str()) == self_name {
                continue;
            }
            if out.len() >= MAX_EXPANDED_SEGMENTS {
                return Err(response::error(StatusCode::CONFLICT, "too many segments"));
            }
            let etag = item.e_tag.map(|e| e.value().to_string()).unwrap_or_default();
            let len = item.size.unwrap_or(0).max(0) as u64;
            out.push(Segment { inline: None, container: container.to_string(), object: key, offset: 0, len, etag });
        }
        match page.next_continuation_token {
            Some(next) if page.is_truncated == Some(true) => token = Some(next),
            _ => return Ok(out),
        }
    }
}

/// The parts of `segments` that cover bytes `range` of their concatenation (empty segments dropped).
fn slice(segments: Vec<Segment>, range: std::ops::Range<u64>) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut start = 0u64;
    for segment in segments {
        let end = start + segment.len;
        if end > range.start && start < range.end && segment.len > 0 {
            let skip = range.start.saturating_sub(start);
            let keep = range.end.min(end) - start - skip;
            out.push(Segment { offset: segment.offset + skip, len: keep, ..segment });
        }
        start = end;
    }
    out
}

/// The ETag and size a large object shows.
pub fn totals(kind: &Kind, segments: &[Segment]) -> (String, u64) {
    match kind {
        Kind::Static { etag, size } => (etag.clone(), *size),
        _ => (etag_of(segments.iter().map(|s| s.etag.as_str())), segments.iter().map(|s| s.len).sum()),
    }
}

/// The body of a large object (or of one range of it): its segments, read one after the other
/// with the requester's rights and streamed through a bounded buffer.
pub fn stream(
    api: &SwiftApi,
    target: &Target,
    kind: &Kind,
    segments: Vec<Segment>,
    range: std::ops::Range<u64>,
) -> s3s::Body {
    let check_etags = matches!(kind, Kind::Static { .. });
    let pieces = slice(segments, range).into_iter().map(|s| {
        if let Some(bytes) = &s.inline {
            let (start, end) = (s.offset as usize, (s.offset + s.len) as usize);
            return Part::Literal(bytes.slice(start.min(bytes.len())..end.min(bytes.len())));
        }
        Part::Object(Piece {
            container: s.container,
            object: s.object,
            first: s.offset,
            len: s.len,
            etag: check_etags.then_some(s.etag),
        })
    });
    stream_parts(api, target, pieces.collect())
}

/// A body made of `parts`, read one after the other with the requester's rights and streamed
/// through a bounded buffer; a part that fails ends the body early (the client sees a short read,
/// as with Swift).
pub fn stream_parts(api: &SwiftApi, target: &Target, parts: Vec<Part>) -> s3s::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(STREAM_BUFFER_CHUNKS);
    let (api, target) = (api.clone(), target.clone());
    tokio::spawn(async move {
        for part in parts {
            let piece = match part {
                Part::Literal(bytes) => {
                    if tx.send(Ok(bytes)).await.is_err() {
                        return;
                    }
                    continue;
                }
                Part::Object(piece) => piece,
            };
            if let Err(e) = send_piece(&api, &target, &piece, &tx).await {
                tracing::warn!(container = %piece.container, object = %piece.object, error = %e, "streamed part failed");
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    });
    s3s::Body::from(StreamingBlob::wrap(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

async fn send_piece(
    api: &SwiftApi,
    target: &Target,
    piece: &Piece,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), std::io::Error> {
    use futures::StreamExt;
    let failed = |what: String| std::io::Error::other(what);
    let input = GetObjectInput::builder()
        .bucket(piece.container.clone())
        .key(piece.object.clone())
        .range(Some(Range::Int { first: piece.first, last: Some(piece.first + piece.len - 1) }))
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let out = api
        .run_s3(target, input, |r| api.s3.get_object(r))
        .await
        .map_err(|answer| failed(format!("segment answered {}", answer.status())))?;
    if let Some(want) = &piece.etag
        && out.e_tag.as_ref().is_some_and(|e| e.value() != want.trim_matches('"'))
    {
        return Err(failed("segment changed since the manifest was written".into()));
    }
    let mut body = out.body.ok_or_else(|| failed("segment without a body".into()))?;
    let mut sent = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| failed(e.to_string()))?;
        sent += chunk.len() as u64;
        if tx.send(Ok(chunk)).await.is_err() {
            return Ok(()); // the client went away
        }
    }
    if sent != piece.len {
        return Err(failed(format!("segment gave {sent} of {} bytes", piece.len)));
    }
    Ok(())
}

/// `DELETE ?multipart-manifest=delete`: the segments (with the caller's rights), then the manifest.
pub async fn delete_static(
    api: &SwiftApi,
    target: &Target,
    headers: &HeaderMap,
    query: &[(String, String)],
    container: &str,
    name: &str,
) -> Result<SwiftResponse, SwiftResponse> {
    let input = GetObjectInput::builder()
        .bucket(container.to_string())
        .key(name.to_string())
        .build()
        .map_err(|e| bad_request(&e.to_string()))?;
    let found = api.run_s3(target, input, |r| api.s3.get_object(r)).await?;
    if !matches!(Kind::of(found.metadata.as_ref()), Kind::Static { .. }) {
        // Not a manifest: an ordinary delete.
        return object::delete(api, target, container, name).await;
    }
    let manifest = parse_manifest(&read_manifest_body(found.body).await?)?;
    let mut summary = bulk::Summary::default();
    for segment in manifest.into_iter().filter(|s| s.data.is_none()) {
        let path = segment.name.clone();
        let answer = match split(&segment.name) {
            None => bad_request("invalid segment"),
            Some((c, o)) => {
                let item = Target { container: Some(c.clone()), object: Some(o.clone()), ..target.clone() };
                match api.allowed(&item, Access::ObjectWrite).await {
                    Err(denied) => denied,
                    Ok(()) => object::delete(api, &item, &c, &o).await.unwrap_or_else(|r| r),
                }
            }
        };
        summary.count(&path, answer.status());
    }
    let answer = object::delete(api, target, container, name).await.unwrap_or_else(|r| r);
    summary.count(&format!("/{container}/{name}"), answer.status());
    Ok(summary.render(headers, query))
}

/// Swift's HTTP range header over a large object of `total` bytes: the byte range to send and
/// whether it is partial; multi-range and unsatisfiable ranges as Swift answers them.
pub fn byte_range(headers: &HeaderMap, total: u64) -> Result<(std::ops::Range<u64>, bool), SwiftResponse> {
    let Some(value) = header(headers, "range").filter(|r| !r.contains(',')) else { return Ok((0..total, false)) };
    let Ok(range) = Range::parse(value) else { return Ok((0..total, false)) };
    range
        .check(total)
        .map(|r| (r, true))
        .map_err(|_| response::error(StatusCode::RANGE_NOT_SATISFIABLE, "Requested Range Not Satisfiable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_reserved_metadata() {
        let meta = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert!(matches!(Kind::of(None), Kind::Plain));
        let slo: HashMap<String, String> = meta(&[(SLO_MARKER, "True"), (SLO_ETAG, "abc"), (SLO_SIZE, "12")]);
        assert!(matches!(Kind::of(Some(&slo)), Kind::Static { size: 12, .. }));
        let dlo: HashMap<String, String> = meta(&[(DLO_MANIFEST, "c/p")]);
        assert!(matches!(Kind::of(Some(&dlo)), Kind::Dynamic(p) if p == "c/p"));
        assert!(is_reserved("x-object-manifest") && !is_reserved("color"));
    }

    #[test]
    fn the_etag_of_a_large_object_is_the_md5_of_its_segment_etags() {
        let a = hex::encode(Md5::digest(b"a"));
        let b = hex::encode(Md5::digest(b"b"));
        let joined = format!("{a}{b}");
        assert_eq!(etag_of([a.as_str(), b.as_str()].into_iter()), hex::encode(Md5::digest(joined.as_bytes())));
        assert_eq!(etag_of(["\"x\""].into_iter()), hex::encode(Md5::digest(b"x")));
    }

    #[test]
    fn slices_cut_segments_at_the_range_edges() {
        let seg = |object: &str, offset, len| Segment {
            inline: None,
            container: "c".into(),
            object: object.into(),
            offset,
            len,
            etag: String::new(),
        };
        let cut = slice(vec![seg("a", 0, 10), seg("empty", 0, 0), seg("b", 5, 10)], 8..13);
        let spans: Vec<_> = cut.iter().map(|s| (s.object.as_str(), s.offset, s.len)).collect();
        assert_eq!(spans, [("a", 8, 2), ("b", 5, 3)]);
        assert!(slice(vec![seg("a", 0, 10)], 10..20).is_empty());
        let ranged = StoredSegment {
            name: "/c/s".into(),
            data: None,
            bytes: 10,
            hash: "h".into(),
            content_type: String::new(),
            last_modified: String::new(),
            sub_slo: false,
            range: Some("2-4".into()),
        };
        assert_eq!(ranged.span(), Some((2, 3)));
        assert_eq!(ranged.etag_part(), "h:2-4;");
        assert_eq!(StoredSegment { range: Some("4-10".into()), ..ranged }.span(), None);
    }

    #[test]
    fn manifests_round_trip_in_both_shapes() {
        let stored = vec![StoredSegment {
            name: "/c/s1".into(),
            data: None,
            bytes: 5,
            hash: "e".into(),
            content_type: String::new(),
            last_modified: String::new(),
            sub_slo: false,
            range: None,
        }];
        let text = serde_json::to_vec(&stored).unwrap();
        assert!(!String::from_utf8_lossy(&text).contains("sub_slo"));
        assert_eq!(parse_manifest(&text).ok().map(|m| m.len()), Some(1));
        assert!(parse_manifest(b"not json").is_err());
    }
}
