//! Sends each metadata call to the Raft group that owns what it is about (issue 11, step 2; see
//! docs/design/metadata-sharding.md): calls on one (bucket, key) to the group owning that key,
//! listings to the group owning their effective start, everything else to group 0, by the range
//! table group 0 keeps (`MetadataRaft.RangeTable`, see `range_table`). Each group is reached through
//! its own [`LeaderRouter`] over its voters' URLs; a call for range group g carries
//! [`GROUP_HEADER`]` : g`.
//!
//! The table is loaded on the first call, refreshed in the background at most every
//! [`REFRESH_EVERY`], and at once (at most every [`MIN_REFRESH_GAP`], one refresh at a time) when a
//! group answers `WrongRange` or "group N is not open on this replica" — both refusals before the
//! call ran, so the call is then resent to the group the fresh table names, at most
//! [`MAX_REROUTES`] times. While the table has no range groups, calls pass straight to group 0's
//! router without being decoded: a cluster without range groups pays nothing per call.
//! A call that already carries [`GROUP_HEADER`] (an operator addressing a group) is sent to that
//! group as it is.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};

use crate::error::{ErrorCode, RemoteError};
use crate::leader_router::LeaderRouter;
use crate::metadata_client::{ClientConfig, GROUP_HEADER, MetadataChannel, lazy_channel, limit};
use crate::pb::metadata::metadata_raft_client::MetadataRaftClient;
use crate::pb::metadata::{
    ListObjectVersionsRequest, ListObjectVersionsResponse, ListObjectsRequest, ListObjectsResponse, ListUploadsRequest,
    ListUploadsResponse, RangeTableRequest,
};
use crate::range_table::{RangeTable, route};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HttpRequest = http::Request<tonic::body::Body>;
type HttpResponse = http::Response<tonic::body::Body>;

/// How old the table may get before a call refreshes it in the background.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// Forced refreshes (after a misrouted call) are at least this far apart.
pub const MIN_REFRESH_GAP: Duration = Duration::from_millis(100);
/// Resends of one misrouted call at most. The waits between them grow by [`MIN_REFRESH_GAP`]
/// (0.1 s, 0.2 s, …: 2.1 s in all), enough to ride through a split, whose right half is refused by
/// the parent until group 0 records the new group (see `metadata::split`; about a second for a
/// range of a few thousand keys in a debug build).
pub const MAX_REROUTES: u32 = 6;
/// Pages one listing follows across range ends at most (see [`list_across_ranges`]).
const MAX_RANGE_HOPS: usize = 64;

#[derive(Clone)]
pub struct GroupRouter {
    state: Arc<State>,
}

struct State {
    config: ClientConfig,
    /// Group 0's router: the configured endpoints.
    zero: LeaderRouter,
    /// Group 0's `MetadataRaft`, for the range table.
    directory: MetadataRaftClient<MetadataChannel>,
    table: RwLock<Arc<RangeTable>>,
    /// Each range group's router, with the URLs it was built over.
    routers: RwLock<HashMap<u64, (Vec<String>, LeaderRouter)>>,
    /// Set once the first fetch has run (whatever its outcome).
    first: tokio::sync::OnceCell<()>,
    /// When the table was last fetched (or a fetch failed, or a background fetch was started).
    fetched_at: std::sync::Mutex<Instant>,
    /// Held across a fetch: one runs at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl GroupRouter {
    pub fn new(zero: LeaderRouter, config: ClientConfig) -> GroupRouter {
        let directory = MetadataRaftClient::new(limit(zero.clone(), &config))
            .max_decoding_message_size(crate::limits::MAX_MESSAGE_BYTES);
        GroupRouter {
            state: Arc::new(State {
                config,
                zero,
                directory,
                table: RwLock::default(),
                routers: RwLock::default(),
                first: tokio::sync::OnceCell::new(),
                fetched_at: std::sync::Mutex::new(Instant::now()),
                fetching: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The table as last fetched (empty before the first fetch).
    pub fn table(&self) -> Arc<RangeTable> {
        self.state.current()
    }

    /// Every group (0 first), by the table as a call would use it now.
    pub async fn groups(&self) -> Vec<u64> {
        self.state.table_for_call().await.groups()
    }
}

impl State {
    fn current(&self) -> Arc<RangeTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Fetches the table from group 0's leader. A service without the call (a lone metadata
    /// service, which has no range groups) has an empty table; on any other failure the old
    /// table stays (the next refresh tries again).
    async fn fetch(&self) {
        match self.directory.clone().range_table(RangeTableRequest {}).await {
            Ok(response) => {
                let table = Arc::new(RangeTable::from_pb(response.into_inner()));
                *self.table.write().unwrap_or_else(|e| e.into_inner()) = table;
            }
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::default();
            }
            Err(status) => tracing::debug!(error = %status, "could not refresh the metadata range table"),
        }
    }

    /// The table for a call: fetched first if never fetched; refreshed in the background when old.
    async fn table_for_call(self: &Arc<Self>) -> Arc<RangeTable> {
        // A cancelled first fetch leaves the cell empty: the next call fetches.
        self.first.get_or_init(|| self.refresh_now()).await;
        let due = {
            let mut fetched = self.fetched_at.lock().unwrap_or_else(|e| e.into_inner());
            let due = fetched.elapsed() >= REFRESH_EVERY;
            if due {
                // Marked now: calls meanwhile neither wait nor start another fetch.
                *fetched = Instant::now();
            }
            due
        };
        if due {
            let state = self.clone();
            tokio::spawn(async move { state.refresh_now().await });
        }
        self.current()
    }

    /// One fetch at a time.
    async fn refresh_now(&self) {
        let _one = self.fetching.lock().await;
        self.fetch().await;
        *self.fetched_at.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// After a misrouted call: a fresh table, unless one was fetched just now.
    async fn refresh(&self) -> Arc<RangeTable> {
        let one = self.fetching.lock().await;
        let recent = self.fetched_at.lock().unwrap_or_else(|e| e.into_inner()).elapsed() < MIN_REFRESH_GAP;
        if !recent {
            self.fetch().await;
            *self.fetched_at.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
        drop(one);
        self.current()
    }

    /// Group `group`'s router: group 0's, or one over the group's replicas in `table` (rebuilt
    /// when they changed). `None` for a group the table does not know.
    fn router(&self, group: u64, table: &RangeTable) -> Option<LeaderRouter> {
        if group == 0 {
            return Some(self.zero.clone());
        }
        let replicas = table.replicas(group)?;
        if let Some((urls, router)) = self.routers.read().unwrap_or_else(|e| e.into_inner()).get(&group)
            && urls.as_slice() == replicas
        {
            return Some(router.clone());
        }
        let channels = replicas
            .iter()
            .filter_map(|url| lazy_channel(url, &self.config).ok().map(|channel| (url.clone(), channel)))
            .collect::<Vec<_>>();
        if channels.is_empty() {
            return None;
        }
        let router = LeaderRouter::new(channels, self.config.clone());
        self.routers.write().unwrap_or_else(|e| e.into_inner()).insert(group, (replicas.to_vec(), router.clone()));
        Some(router)
    }
}

/// The request message of a unary gRPC body: after the 5-byte frame header (flag, length).
/// `None` for a compressed or malformed frame (such a call goes to group 0).
fn message(body: &[u8]) -> Option<&[u8]> {
    let (&compressed, rest) = body.split_first()?;
    let (length, message) = rest.split_first_chunk::<4>()?;
    (compressed == 0 && u32::from_be_bytes(*length) as usize == message.len()).then_some(message)
}

/// Whether the answer says the call reached a group that does not own what it is about (a
/// trailers-only error, as the metadata service's refusals are): the caller's table is stale.
fn misrouted(response: &HttpResponse) -> bool {
    let Some(status) = tonic::Status::from_header_map(response.headers()) else { return false };
    if status.code() == tonic::Code::Ok {
        return false;
    }
    let error = RemoteError::from(status);
    error.code == ErrorCode::WrongRange
        || (error.code == ErrorCode::Unavailable && error.message.contains("is not open on this replica"))
}

fn rebuild(parts: &http::request::Parts, body: Bytes, group: u64) -> HttpRequest {
    let mut request = crate::leader_router::rebuild(parts, body);
    if group != 0 {
        request.headers_mut().insert(GROUP_HEADER, http::HeaderValue::from(group));
    }
    request
}

impl Service<HttpRequest> for GroupRouter {
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<HttpResponse, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // As the leader router: readiness is awaited per call on the chosen channel.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            let mut table = state.table_for_call().await;
            // Addressed by the caller: sent as it is.
            let addressed = request.headers().get(GROUP_HEADER).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if let Some(group) = addressed {
                let router = state.router(group, &table).unwrap_or_else(|| state.zero.clone());
                return router.oneshot(request).await;
            }
            if table.is_empty() {
                return state.zero.clone().oneshot(request).await;
            }
            let (parts, body) = request.into_parts();
            // Metadata calls are unary: one message, bounded by the encoder's MAX_MESSAGE_BYTES.
            let body = body.collect().await.map_err(|e| Box::new(e) as BoxError)?.to_bytes();
            let route = message(&body).map_or(crate::range_table::Route::Directory, |m| route(parts.uri.path(), m));
            if route == crate::range_table::Route::Every {
                return every_group(&state, &table, &parts, body).await;
            }
            let mut reroutes = 0;
            loop {
                let group = table.group_of(&route);
                let router = match state.router(group, &table) {
                    Some(router) => router,
                    None => {
                        // A group without usable replica URLs: nothing to send to.
                        let status = RemoteError::new(
                            ErrorCode::Unavailable,
                            format!("metadata group {group} has no reachable replica in the range table"),
                        );
                        return Ok(status.into_status().into_http());
                    }
                };
                let response = router.oneshot(rebuild(&parts, body.clone(), group)).await?;
                if reroutes >= MAX_REROUTES || !misrouted(&response) {
                    return Ok(response);
                }
                reroutes += 1;
                // A group being created is opened by its replicas within a few hundred ms.
                tokio::time::sleep(MIN_REFRESH_GAP * reroutes).await;
                table = state.refresh().await;
            }
        })
    }
}

/// Sends one call to every group in `table`, one after the other: the first refusal or failure is
/// the answer (the caller resends the whole call; what the call does is idempotent), else group
/// 0's.
async fn every_group(
    state: &Arc<State>,
    table: &RangeTable,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<HttpResponse, BoxError> {
    let mut first: Option<HttpResponse> = None;
    for group in table.groups() {
        let Some(router) = state.router(group, table) else {
            let status = RemoteError::new(
                ErrorCode::Unavailable,
                format!("metadata group {group} has no reachable replica in the range table"),
            );
            return Ok(status.into_status().into_http());
        };
        let response = router.oneshot(rebuild(parts, body.clone(), group)).await?;
        // A failure is trailers-only: its status is in the headers.
        if tonic::Status::from_header_map(response.headers()).is_some_and(|s| s.code() != tonic::Code::Ok) {
            return Ok(response);
        }
        first.get_or_insert(response);
    }
    first.ok_or_else(|| "a range table without group 0".into())
}

/// A listing whose pages can stop at the end of one metadata group's part of the key space
/// (`resume_at`): `ListObjects` (forward), `ListObjectVersions` and `ListUploads`.
pub trait RangeListing: Clone {
    type Page;
    /// The page size asked for.
    fn limit(&self) -> usize;
    /// The request for what follows `page`, from `start_at`, for `remaining` more entries: it
    /// resumes after `page`'s last entry (or where this request did, if `page` is empty).
    fn after(&self, page: &Self::Page, start_at: String, remaining: u32) -> Self;
    fn entries(page: &Self::Page) -> usize;
    /// Takes the page's `resume_at` when it is truncated there.
    fn take_resume(page: &mut Self::Page) -> Option<String>;
    /// Appends `more`, which follows `page`: its entries, markers and truncation.
    fn append(page: &mut Self::Page, more: Self::Page);
}

fn take_resume(truncated: bool, resume_at: &mut String) -> Option<String> {
    (truncated && !resume_at.is_empty()).then(|| std::mem::take(resume_at))
}

fn or_previous(next: &str, previous: &str) -> String {
    if next.is_empty() { previous } else { next }.to_string()
}

impl RangeListing for ListObjectsRequest {
    type Page = ListObjectsResponse;

    fn limit(&self) -> usize {
        self.max_keys as usize
    }

    fn after(&self, page: &ListObjectsResponse, start_at: String, remaining: u32) -> Self {
        let start_after = or_previous(&page.next_marker, &self.start_after);
        ListObjectsRequest { start_after, start_at, max_keys: remaining, ..self.clone() }
    }

    fn entries(page: &ListObjectsResponse) -> usize {
        page.objects.len() + page.common_prefixes.len()
    }

    fn take_resume(page: &mut ListObjectsResponse) -> Option<String> {
        take_resume(page.is_truncated, &mut page.resume_at)
    }

    fn append(page: &mut ListObjectsResponse, more: ListObjectsResponse) {
        page.objects.extend(more.objects);
        page.common_prefixes.extend(more.common_prefixes);
        page.is_truncated = more.is_truncated;
        page.resume_at = more.resume_at;
        page.next_marker = or_previous(&more.next_marker, &page.next_marker);
    }
}

impl RangeListing for ListObjectVersionsRequest {
    type Page = ListObjectVersionsResponse;

    fn limit(&self) -> usize {
        self.max_keys as usize
    }

    fn after(&self, page: &ListObjectVersionsResponse, start_at: String, remaining: u32) -> Self {
        let (key_marker, version_id_marker) = if page.next_key_marker.is_empty() {
            (self.key_marker.clone(), self.version_id_marker.clone())
        } else {
            (page.next_key_marker.clone(), page.next_version_id_marker.clone())
        };
        ListObjectVersionsRequest { key_marker, version_id_marker, start_at, max_keys: remaining, ..self.clone() }
    }

    fn entries(page: &ListObjectVersionsResponse) -> usize {
        page.versions.len() + page.common_prefixes.len()
    }

    fn take_resume(page: &mut ListObjectVersionsResponse) -> Option<String> {
        take_resume(page.is_truncated, &mut page.resume_at)
    }

    fn append(page: &mut ListObjectVersionsResponse, more: ListObjectVersionsResponse) {
        page.versions.extend(more.versions);
        page.common_prefixes.extend(more.common_prefixes);
        page.is_truncated = more.is_truncated;
        page.resume_at = more.resume_at;
        // The service clears the markers of a last page; a page that was not the last keeps its own.
        if more.is_truncated && !more.next_key_marker.is_empty() {
            page.next_key_marker = more.next_key_marker;
            page.next_version_id_marker = more.next_version_id_marker;
        } else if !page.is_truncated {
            page.next_key_marker.clear();
            page.next_version_id_marker.clear();
        }
    }
}

impl RangeListing for ListUploadsRequest {
    type Page = ListUploadsResponse;

    fn limit(&self) -> usize {
        self.max_uploads as usize
    }

    fn after(&self, page: &ListUploadsResponse, start_at: String, remaining: u32) -> Self {
        let (key_marker, upload_id_marker) = if page.next_key_marker.is_empty() {
            (self.key_marker.clone(), self.upload_id_marker.clone())
        } else {
            (page.next_key_marker.clone(), page.next_upload_id_marker.clone())
        };
        ListUploadsRequest { key_marker, upload_id_marker, start_at, max_uploads: remaining, ..self.clone() }
    }

    fn entries(page: &ListUploadsResponse) -> usize {
        page.uploads.len() + page.common_prefixes.len()
    }

    fn take_resume(page: &mut ListUploadsResponse) -> Option<String> {
        take_resume(page.is_truncated, &mut page.resume_at)
    }

    fn append(page: &mut ListUploadsResponse, more: ListUploadsResponse) {
        page.uploads.extend(more.uploads);
        page.common_prefixes.extend(more.common_prefixes);
        page.is_truncated = more.is_truncated;
        page.resume_at = more.resume_at;
        if !more.next_key_marker.is_empty() {
            page.next_key_marker = more.next_key_marker;
            page.next_upload_id_marker = more.next_upload_id_marker;
        }
    }
}

/// A page that stopped where one group's part of the key space ended (`resume_at`) is filled from
/// the groups that follow, so that callers see pages as one group would give them: up to the page
/// size, markers naming the last entry, truncated when more follow. `call` sends one request
/// (through a routed client, which picks the group).
pub async fn list_across_ranges<Q, F, Fut>(request: Q, first: Q::Page, call: F) -> Result<Q::Page, tonic::Status>
where
    Q: RangeListing,
    F: Fn(Q) -> Fut,
    Fut: Future<Output = Result<Q::Page, tonic::Status>>,
{
    let mut page = first;
    for _ in 0..MAX_RANGE_HOPS {
        let entries = Q::entries(&page);
        if entries >= request.limit() {
            break;
        }
        let Some(start_at) = Q::take_resume(&mut page) else { break };
        let next = request.after(&page, start_at, (request.limit() - entries) as u32);
        let more = call(next).await?;
        Q::append(&mut page, more);
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_hold_one_uncompressed_message() {
        assert_eq!(message(&[0, 0, 0, 0, 2, 7, 8]), Some(&[7u8, 8][..]));
        assert_eq!(message(&[0, 0, 0, 0, 0]), Some(&[][..]));
        assert_eq!(message(&[1, 0, 0, 0, 1, 7]), None, "compressed");
        assert_eq!(message(&[0, 0, 0, 0, 3, 7]), None, "short");
        assert_eq!(message(&[0, 0]), None);
    }

    #[test]
    fn refusals_that_mean_a_stale_table() {
        let answer = |e: RemoteError| e.into_status().into_http();
        assert!(misrouted(&answer(RemoteError::new(ErrorCode::WrongRange, "k is outside [a, b)"))));
        assert!(misrouted(&answer(RemoteError::new(
            ErrorCode::Unavailable,
            "metadata group 3 is not open on this replica"
        ))));
        assert!(!misrouted(&answer(RemoteError::new(ErrorCode::Unavailable, "no quorum"))));
        assert!(!misrouted(&answer(RemoteError::new(ErrorCode::NoSuchKey, "k"))));
        assert!(!misrouted(&http::Response::new(tonic::body::Body::empty())));
    }

    #[tokio::test]
    async fn short_pages_are_filled_from_the_next_range() {
        use crate::pb::metadata::ObjectSummary;
        let summary = |k: &str| ObjectSummary { key: k.into(), ..Default::default() };
        let request = ListObjectsRequest { bucket: "b".into(), max_keys: 3, ..Default::default() };
        // Group A ended at "m" after one key; group B has "m1", "m2", "m3".
        let first = ListObjectsResponse {
            objects: vec![summary("a")],
            is_truncated: true,
            next_marker: "a".into(),
            resume_at: "m".into(),
            ..Default::default()
        };
        let seen = std::sync::Mutex::new(Vec::new());
        let page = list_across_ranges(request, first, |next| {
            seen.lock().unwrap().push((next.start_after.clone(), next.start_at.clone(), next.max_keys));
            async move {
                Ok(ListObjectsResponse {
                    objects: vec![summary("m1"), summary("m2")],
                    is_truncated: true,
                    next_marker: "m2".into(),
                    ..Default::default()
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(seen.into_inner().unwrap(), [("a".to_string(), "m".to_string(), 2)]);
        let keys: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["a", "m1", "m2"]);
        assert!(page.is_truncated && page.resume_at.is_empty());
        assert_eq!(page.next_marker, "m2");
    }
}
