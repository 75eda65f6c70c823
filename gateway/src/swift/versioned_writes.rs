//! Swift's legacy container versioning (the `versioned_writes` middleware). A container with
//! `X-Versions-Location: ARCHIVE` (stack mode) or `X-History-Location: ARCHIVE` (history mode)
//! keeps every object it is about to overwrite: the current object is copied, server-side, into the
//! archive container as `%03x<name>/<timestamp>` (the name's length in bytes, in hex) before a
//! PUT, COPY or manifest write replaces it. A DELETE in stack mode brings the newest archived
//! version back; in history mode it archives the object, adds a zero-byte delete marker and deletes.
//!
//! As in Swift, the archive container is written and read on the account's behalf, not the
//! requester's: whoever may write to the versioned container versions into its archive. The
//! archive must be a container of the same account (Swift's path always names the account); any
//! other is treated as missing (412 for a write that would version).

use std::collections::{HashMap, VecDeque};

use coffer_proto::ErrorCode;
use coffer_proto::pb::metadata::{GetObjectRequest, ListObjectsRequest, ObjectSummary};
use http::{HeaderMap, StatusCode};
use s3s::S3;
use s3s::dto::{CopyObjectInput, CopySource, MetadataDirective, PutObjectInput, StreamingBlob};

use super::response::{self, SwiftResponse};
use super::{SwiftApi, Target, expiry, object};
use crate::error::GatewayError;

/// The content type of a history-mode delete marker (its `swift_*` parameter is one no client sets).
pub const DELETE_MARKER_CONTENT_TYPE: &str = "application/x-deleted;swift_versions_deleted=1";

/// The client headers, and the flags `/info` advertises.
pub const VERSIONS_LOCATION: &str = "x-versions-location";
pub const HISTORY_LOCATION: &str = "x-history-location";
const REMOVE_HEADERS: [&str; 2] = ["x-remove-versions-location", "x-remove-history-location"];

/// Reserved container metadata names (clients can neither set nor see names starting with `:`):
/// the location as the client gave it (still URL-quoted, as Swift stores it), and the mode.
const LOCATION_KEY: &str = ":versions-location";
const MODE_KEY: &str = ":versions-mode";

/// Archived versions read per listing page, and at most examined by one DELETE (versions that
/// vanish while they are restored are skipped, as in Swift).
const LISTING_PAGE: u32 = 100;
const MAX_VERSIONS_EXAMINED: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Stack,
    History,
}

impl Mode {
    fn stored(self) -> &'static str {
        match self {
            Mode::Stack => "stack",
            Mode::History => "history",
        }
    }

    fn header(self) -> &'static str {
        match self {
            Mode::Stack => VERSIONS_LOCATION,
            Mode::History => HISTORY_LOCATION,
        }
    }
}

/// What a container PUT or POST asks of the versioning setting.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    Keep,
    Remove,
    /// The location as given (URL-quoted), and the mode.
    Set(String, Mode),
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    // Raw UTF-8 is common here (Swift's own clients send names unquoted).
    headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
}

/// Swift's reading of the versioning headers: both locations at once is 400 (unless one is
/// empty, which then defers to the other); an empty location removes the setting; a location wins
/// over an `X-Remove-…` header in the same request; a location with `/` is 412.
fn requested_change(headers: &HeaderMap) -> Result<Change, SwiftResponse> {
    let (versions, history) = match (header_text(headers, VERSIONS_LOCATION), header_text(headers, HISTORY_LOCATION)) {
        (Some(versions), Some(history)) if history.is_empty() => (Some(versions), None),
        (Some(versions), Some(_)) if !versions.is_empty() => {
            let text = format!("Only one of {VERSIONS_LOCATION} or {HISTORY_LOCATION} may be specified");
            return Err(response::body(StatusCode::BAD_REQUEST, "text/plain; charset=UTF-8", text));
        }
        (Some(_), Some(history)) => (None, Some(history)),
        other => other,
    };
    let given = versions.map(|v| (v, Mode::Stack)).or_else(|| history.map(|h| (h, Mode::History)));
    if let Some((location, mode)) = given {
        if location.is_empty() {
            return Ok(Change::Remove);
        }
        if location.contains('/') {
            return Err(response::body(
                StatusCode::PRECONDITION_FAILED,
                "text/plain; charset=UTF-8",
                "Container name cannot contain slashes".into(),
            ));
        }
        return Ok(Change::Set(location, mode));
    }
    let removed = REMOVE_HEADERS.iter().any(|name| header_text(headers, name).is_some_and(|v| !v.is_empty()));
    Ok(if removed { Change::Remove } else { Change::Keep })
}

/// Applies a container request's versioning headers to its metadata (refusing them as Swift
/// does); also how a container PUT validates them before the container exists.
pub fn apply(headers: &HeaderMap, metadata: &mut HashMap<String, String>) -> Result<(), SwiftResponse> {
    match requested_change(headers)? {
        Change::Keep => {}
        Change::Remove => {
            metadata.remove(LOCATION_KEY);
            metadata.remove(MODE_KEY);
        }
        Change::Set(location, mode) => {
            metadata.insert(LOCATION_KEY.into(), location);
            metadata.insert(MODE_KEY.into(), mode.stored().into());
        }
    }
    Ok(())
}

/// The setting as a container HEAD or GET shows it: the location exactly as it was given.
pub fn show(response: &mut SwiftResponse, metadata: &HashMap<String, String>) {
    if let Some(location) = metadata.get(LOCATION_KEY) {
        response::set(response, mode_of(metadata).header(), location);
    }
}

fn mode_of(metadata: &HashMap<String, String>) -> Mode {
    if metadata.get(MODE_KEY).is_some_and(|m| m == Mode::History.stored()) { Mode::History } else { Mode::Stack }
}

/// A versioned container's archive (its name, unquoted) and mode.
pub struct Versioning {
    archive: String,
    mode: Mode,
}

/// The versioning of `container`, from its cached metadata; `None` when it has none (or when
/// there is no such container, which the request itself then answers).
pub async fn of_container(api: &SwiftApi, container: &str) -> Result<Option<Versioning>, SwiftResponse> {
    let facts = api.authorizer.owners.facts(container).await.map_err(|e| unavailable_after(e.into()))?;
    let Some(facts) = facts else { return Ok(None) };
    let Some(location) = facts.metadata.get(LOCATION_KEY) else { return Ok(None) };
    // Swift unquotes the stored location and keeps what precedes any (quoted) slash.
    let unquoted = percent_encoding::percent_decode_str(location).decode_utf8_lossy();
    let archive = unquoted.split('/').next().unwrap_or_default().to_string();
    Ok((!archive.is_empty()).then(|| Versioning { archive, mode: mode_of(&facts.metadata) }))
}

/// Swift's `Timestamp.internal` (`%016.05f` seconds) of a time in units of 10 µs.
fn internal_timestamp(ten_micros: i64) -> String {
    let t = ten_micros.max(0);
    format!("{:010}.{:05}", t / 100_000, t % 100_000)
}

/// Where an object's versions are kept in the archive: `%03x<name>/`, the name's length in bytes.
fn versions_prefix(object: &str) -> String {
    format!("{:03x}{object}/", object.len())
}

fn version_name(object: &str, ten_micros: i64) -> String {
    format!("{}{}", versions_prefix(object), internal_timestamp(ten_micros))
}

fn now_ten_micros() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 10_000).unwrap_or(0)
}

/// Swift's answer when a step of versioning fails: 412 for a client error (a missing archive, a
/// refusal), 503 otherwise; the request's own write does not happen.
fn could_not_version(status: StatusCode) -> SwiftResponse {
    if status.is_client_error() {
        response::error(StatusCode::PRECONDITION_FAILED, "A precondition for this request was not met.")
    } else {
        response::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is currently unavailable. Please try again at a later time.",
        )
    }
}

fn unavailable_after(e: s3s::S3Error) -> SwiftResponse {
    could_not_version(response::from_s3(&e).status())
}

fn bad(e: impl std::fmt::Display) -> SwiftResponse {
    response::error(StatusCode::BAD_REQUEST, &e.to_string())
}

/// Whether the archive is a container of the request's account.
async fn archive_is_ours(api: &SwiftApi, target: &Target, archive: &str) -> Result<bool, SwiftResponse> {
    let owner = api.authorizer.owners.owner(archive).await.map_err(|e| unavailable_after(e.into()))?;
    Ok(owner.as_deref() == Some(target.account.as_str()))
}

/// The current object's last-modified time (10 µs units), or `None` when there is none (an
/// expired object counts as none, as Swift no longer serves it). Read from the metadata service,
/// which keeps milliseconds (S3 answers show whole seconds, too coarse to name versions).
async fn current_version(api: &SwiftApi, container: &str, object: &str) -> Result<Option<i64>, SwiftResponse> {
    let request = GetObjectRequest { bucket: container.to_string(), key: object.to_string(), ..Default::default() };
    let record = match api.metadata.rpc().get_object(request).await {
        Ok(response) => response.into_inner().record.filter(|r| !r.delete_marker),
        Err(status) => {
            let error = coffer_proto::RemoteError::from(status);
            if error.code != ErrorCode::NoSuchKey && error.code != ErrorCode::NoSuchBucket {
                return Err(unavailable_after(GatewayError::Remote(error).into()));
            }
            None
        }
    };
    Ok(record
        .filter(|r| expiry::refuse_expired(Some(&r.user_metadata), super::now_unix_s()).is_ok())
        .map(|r| r.last_modified_unix_ms.saturating_mul(100)))
}

/// A server-side copy of `from` onto `to` with everything of the source (bytes, content type,
/// metadata, manifest marks); the S3 answer's failure is returned as is.
async fn copy_whole(
    api: &SwiftApi,
    target: &Target,
    from: (&str, &str),
    to: (&str, &str),
) -> Result<(), SwiftResponse> {
    let input = CopyObjectInput::builder()
        .bucket(to.0.to_string())
        .key(to.1.to_string())
        .copy_source(CopySource::Bucket { bucket: from.0.into(), key: from.1.into(), version_id: None })
        .metadata_directive(Some(MetadataDirective::from_static(MetadataDirective::COPY)))
        .build()
        .map_err(bad)?;
    api.run_s3(target, input, |r| api.s3.copy_object(r)).await.map(|_| ())
}

/// Before a write replaces `container/object`: copies the current object, if any, into the
/// archive; its version's time (10 µs units) when there was one.
async fn archive_current(
    api: &SwiftApi,
    target: &Target,
    versioning: &Versioning,
    container: &str,
    object: &str,
) -> Result<Option<i64>, SwiftResponse> {
    let Some(modified) = current_version(api, container, object).await? else { return Ok(None) };
    if !archive_is_ours(api, target, &versioning.archive).await? {
        return Err(could_not_version(StatusCode::NOT_FOUND));
    }
    let name = version_name(object, modified);
    copy_whole(api, target, (container, object), (&versioning.archive, &name))
        .await
        .map_err(|answer| could_not_version(answer.status()))?;
    Ok(Some(modified))
}

/// The hook of every write that replaces an object (PUT, COPY, `X-Copy-From`, manifests).
pub async fn before_write(api: &SwiftApi, target: &Target, container: &str, object: &str) -> Result<(), SwiftResponse> {
    match of_container(api, container).await? {
        Some(versioning) => archive_current(api, target, &versioning, container, object).await.map(|_| ()),
        None => Ok(()),
    }
}

/// DELETE of an object of a versioned container.
pub async fn delete(
    api: &SwiftApi,
    target: &Target,
    versioning: &Versioning,
    container: &str,
    object: &str,
) -> Result<SwiftResponse, SwiftResponse> {
    match versioning.mode {
        Mode::History => push_delete(api, target, versioning, container, object).await,
        Mode::Stack => pop_delete(api, target, versioning, container, object).await,
    }
}

/// History mode: archive the object, write a delete marker after it, then delete it (404 when
/// there was nothing to delete, the marker written all the same, as Swift does).
async fn push_delete(
    api: &SwiftApi,
    target: &Target,
    versioning: &Versioning,
    container: &str,
    object: &str,
) -> Result<SwiftResponse, SwiftResponse> {
    let archived = archive_current(api, target, versioning, container, object).await?;
    if !archive_is_ours(api, target, &versioning.archive).await? {
        return Err(could_not_version(StatusCode::NOT_FOUND));
    }
    // The marker sorts after the version just archived, even within one clock tick.
    let at = archived.map_or(now_ten_micros(), |modified| now_ten_micros().max(modified + 1));
    let input = PutObjectInput::builder()
        .bucket(versioning.archive.clone())
        .key(version_name(object, at))
        .body(Some(StreamingBlob::from(s3s::Body::empty())))
        .content_length(Some(0))
        .content_type(Some(DELETE_MARKER_CONTENT_TYPE.to_string()))
        .build()
        .map_err(bad)?;
    let mut s3_headers = HeaderMap::new();
    s3_headers.insert("content-length", http::HeaderValue::from(0));
    api.s3
        .put_object(api.s3_request(target, input, s3_headers))
        .await
        .map_err(|e| could_not_version(response::from_s3(&e).status()))?;
    object::delete_unversioned(api, target, container, object).await
}

/// The archived versions of one object, newest first, read a page at a time.
struct NewestFirst {
    archive: String,
    prefix: String,
    /// The last name read (the next page lists names before it).
    marker: String,
    page: VecDeque<ObjectSummary>,
    exhausted: bool,
    examined: usize,
}

impl NewestFirst {
    fn new(archive: &str, object: &str) -> Self {
        NewestFirst {
            archive: archive.to_string(),
            prefix: versions_prefix(object),
            marker: String::new(),
            page: VecDeque::new(),
            exhausted: false,
            examined: 0,
        }
    }

    async fn next(&mut self, api: &SwiftApi) -> Result<Option<ObjectSummary>, SwiftResponse> {
        if self.page.is_empty() && !self.exhausted {
            let request = ListObjectsRequest {
                bucket: self.archive.clone(),
                prefix: self.prefix.clone(),
                delimiter: String::new(),
                start_after: self.marker.clone(),
                max_keys: LISTING_PAGE,
                reverse: true,
                start_at: String::new(),
            };
            let listing = match api.metadata.rpc().list_objects(request).await {
                Ok(r) => r.into_inner(),
                Err(status) => return Err(unavailable_after(GatewayError::Remote(status.into()).into())),
            };
            self.exhausted = (listing.objects.len() as u32) < LISTING_PAGE;
            self.page.extend(listing.objects);
            if let Some(last) = self.page.back() {
                self.marker = last.key.clone();
            }
        }
        let Some(item) = self.page.pop_front() else { return Ok(None) };
        self.examined += 1;
        if self.examined > MAX_VERSIONS_EXAMINED {
            return Err(could_not_version(StatusCode::INTERNAL_SERVER_ERROR));
        }
        Ok(Some(item))
    }
}

fn is_marker(item: &ObjectSummary) -> bool {
    item.content_type == DELETE_MARKER_CONTENT_TYPE
}

/// Copies an archived version over the object; `false` when the version has vanished meanwhile.
async fn restore(
    api: &SwiftApi,
    target: &Target,
    archive: &str,
    version: &str,
    container: &str,
    object: &str,
) -> Result<bool, SwiftResponse> {
    match copy_whole(api, target, (archive, version), (container, object)).await {
        Ok(()) => Ok(true),
        Err(answer) if answer.status() == StatusCode::NOT_FOUND => Ok(false),
        Err(answer) => Err(could_not_version(answer.status())),
    }
}

/// Stack mode: the newest archived version replaces the object and leaves the archive (the
/// answer is that of its removal from the archive); with none, the object is deleted. A delete
/// marker on top (left by history mode) is removed instead: when the object exists, the object is
/// deleted and the marker stays; when it does not, the newest version below the marker (if any
/// before another marker) is restored and the marker deleted.
async fn pop_delete(
    api: &SwiftApi,
    target: &Target,
    versioning: &Versioning,
    container: &str,
    object: &str,
) -> Result<SwiftResponse, SwiftResponse> {
    let archive = versioning.archive.as_str();
    if !archive_is_ours(api, target, archive).await? {
        return object::delete_unversioned(api, target, container, object).await;
    }
    let mut versions = NewestFirst::new(archive, object);
    while let Some(top) = versions.next(api).await? {
        if !is_marker(&top) {
            if !restore(api, target, archive, &top.key, container, object).await? {
                continue;
            }
            return object::delete_unversioned(api, target, archive, &top.key).await;
        }
        if current_version(api, container, object).await?.is_some() {
            // Back to the delete marker's state: the object goes, the marker stays.
            break;
        }
        while let Some(below) = versions.next(api).await? {
            if is_marker(&below) {
                break;
            }
            if !restore(api, target, archive, &below.key, container, object).await? {
                continue;
            }
            match object::delete_unversioned(api, target, archive, &below.key).await {
                // Gone already: it lasted long enough to be copied.
                Err(answer) if answer.status() == StatusCode::NOT_FOUND => {}
                Err(answer) => return Err(could_not_version(answer.status())),
                Ok(_) => {}
            }
            break;
        }
        return object::delete_unversioned(api, target, archive, &top.key).await;
    }
    object::delete_unversioned(api, target, container, object).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(n, v)| (http::HeaderName::from_static(n), v.parse().unwrap())).collect()
    }

    #[test]
    fn version_names_are_swifts() {
        assert_eq!(internal_timestamp(170_000_000_012_345), "1700000000.12345");
        assert_eq!(internal_timestamp(150_000), "0000000001.50000");
        assert_eq!(internal_timestamp(-5), "0000000000.00000");
        assert_eq!(versions_prefix("myobject"), "008myobject/");
        // The length counts bytes, not characters.
        assert_eq!(versions_prefix("é"), "002é/");
        assert_eq!(version_name(&"x".repeat(1024), 100_000), format!("400{}/0000000001.00000", "x".repeat(1024)));
        // From the record's milliseconds.
        assert_eq!(version_name("o", 1_700_000_000_123 * 100), "001o/1700000000.12300");
    }

    #[test]
    fn container_headers_set_and_remove_the_setting() {
        let mut meta = HashMap::new();
        apply(&headers(&[("x-versions-location", "a%20b")]), &mut meta).unwrap();
        assert_eq!(meta.get(LOCATION_KEY).map(String::as_str), Some("a%20b"));
        assert_eq!(mode_of(&meta), Mode::Stack);
        apply(&headers(&[("x-history-location", "h")]), &mut meta).unwrap();
        assert_eq!((meta.get(LOCATION_KEY).map(String::as_str), mode_of(&meta)), (Some("h"), Mode::History));
        apply(&headers(&[]), &mut meta).unwrap();
        assert!(meta.contains_key(LOCATION_KEY));
        // A location wins over a removal in the same request.
        apply(&headers(&[("x-remove-history-location", "x"), ("x-history-location", "h2")]), &mut meta).unwrap();
        assert_eq!(meta.get(LOCATION_KEY).map(String::as_str), Some("h2"));
        // An empty removal header removes nothing.
        apply(&headers(&[("x-remove-versions-location", "")]), &mut meta).unwrap();
        assert!(meta.contains_key(LOCATION_KEY));
        apply(&headers(&[("x-remove-versions-location", "x")]), &mut meta).unwrap();
        assert!(meta.is_empty());
        apply(&headers(&[("x-versions-location", "v")]), &mut meta).unwrap();
        apply(&headers(&[("x-history-location", "")]), &mut meta).unwrap();
        assert!(meta.is_empty());
    }

    #[test]
    fn conflicting_or_malformed_locations_are_refused() {
        let status = |pairs: &[(&'static str, &str)]| requested_change(&headers(pairs)).err().map(|r| r.status());
        assert_eq!(status(&[("x-versions-location", "a"), ("x-history-location", "b")]), Some(StatusCode::BAD_REQUEST));
        assert_eq!(status(&[("x-versions-location", "a/b")]), Some(StatusCode::PRECONDITION_FAILED));
        assert_eq!(status(&[("x-versions-location", "a%2Fb")]), None);
        let change = |pairs: &[(&'static str, &str)]| requested_change(&headers(pairs)).ok();
        assert_eq!(
            change(&[("x-versions-location", "a"), ("x-history-location", "")]),
            Some(Change::Set("a".into(), Mode::Stack))
        );
        assert_eq!(
            change(&[("x-versions-location", ""), ("x-history-location", "b")]),
            Some(Change::Set("b".into(), Mode::History))
        );
    }
}
