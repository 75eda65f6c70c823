//! Bounded-staleness reads: a `List*` call that carries [`MAX_STALENESS_HEADER`] may be answered
//! without a read barrier — by a follower, or by the leader — when this replica can prove that its
//! state holds every write acknowledged more than that long ago. Everything else keeps the
//! linearizable path (`read_barrier`).
//!
//! The proof rests on the leader's quorum acknowledgements (openraft's `millis_since_quorum_ack`,
//! measured from when the acknowledged message was *sent*). A leader acknowledged by a majority at
//! `t` has applied every write it acknowledged, and — once it has applied an entry of its own term —
//! every write earlier leaders acknowledged; a later leader needs a vote from that majority, so it
//! acknowledged nothing before `t`. The leader stamps each AppendEntries with how long ago that was
//! ([`QUORUM_AGE_HEADER`]); a follower that accepts it notes `arrival − age` together with the
//! message's commit index, and may serve once it has applied that index, for as long as that point
//! is within the caller's bound. The leader dates its acknowledgement no later than the look at
//! openraft's metrics before the one that showed it (see `track_lease`), so neither scheduling
//! delays nor a stopped process make its lease look fresher. The message's transit time (normally
//! well under a millisecond; the leader gives up on one after its 250 ms timeout) is not measured
//! and adds to the bound: a follower stopped with an AppendEntries still unread would date that
//! proof from when it resumed.
//!
//! A follower never serves while it installs a snapshot (which clears its state and loads it in
//! several batches): the `MetadataRaft` service brackets every install, and a read that overlapped
//! one is refused after the fact.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::{BasicNode, RaftMetrics, ServerState};
use tokio::sync::watch;

use super::Replication;
use super::types::{LogId, NodeId, Vote};

pub use coffer_proto::stale_reads::MAX_STALENESS_HEADER;

/// On AppendEntries from the leader: milliseconds since a majority last acknowledged it.
pub const QUORUM_AGE_HEADER: &str = "x-coffer-quorum-age-ms";
/// Bounds larger than this are taken as this.
const MAX_BOUND: Duration = Duration::from_secs(60);
/// How long a follower waits for its state machine to reach a commit index it was told about.
const MAX_APPLY_WAIT: Duration = Duration::from_millis(200);
/// Contacts kept: enough to find a recent one whose commit index is already applied while entries
/// stream in.
const CONTACTS_KEPT: usize = 16;

/// The bound a call asks for, from its headers; `None` for a linearizable read.
pub fn requested_bound(headers: &http::HeaderMap) -> Option<Duration> {
    let ms: u64 = headers.get(MAX_STALENESS_HEADER)?.to_str().ok()?.trim().parse().ok()?;
    (ms > 0).then(|| Duration::from_millis(ms).min(MAX_BOUND))
}

/// An AppendEntries this replica accepted from a leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Contact {
    leader: NodeId,
    term: u64,
    /// The leader's commit index when it sent the message.
    commit: u64,
    /// Arrival minus the leader's quorum age: every write acknowledged before it is at or below `commit`.
    fresh_at: Instant,
}

/// The leader's own proof: when a majority last acknowledged it, in which term.
#[derive(Debug, Clone, Copy)]
struct Lease {
    term: u64,
    acked_at: Instant,
}

#[derive(Default)]
struct Inner {
    lease: Mutex<Option<Lease>>,
    contacts: Mutex<VecDeque<Contact>>,
    /// Snapshot installs begun, and those not finished (see `InstallGuard` for the order).
    installs_begun: AtomicU64,
    installs_running: AtomicU64,
}

/// What this replica knows about how fresh its state is. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Freshness {
    inner: Arc<Inner>,
}

/// Marks a snapshot install as running until dropped.
pub(crate) struct InstallGuard(Arc<Inner>);

impl Drop for InstallGuard {
    fn drop(&mut self) {
        self.0.installs_running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Freshness {
    /// Milliseconds since a majority acknowledged this replica as leader, for its AppendEntries;
    /// `None` unless it leads and has been acknowledged.
    pub(crate) fn quorum_age_ms(&self) -> Option<u64> {
        let lease = *self.inner.lease.lock().unwrap_or_else(|e| e.into_inner());
        // Rounded up: the follower must not think the proof fresher than it is.
        lease.map(|l| l.acked_at.elapsed().as_micros().div_ceil(1000) as u64)
    }

    /// Notes an AppendEntries from the leader of `term` that this replica accepted.
    pub(crate) fn heard_from_leader(&self, arrived: Instant, quorum_age_ms: u64, vote: &Vote, commit: Option<LogId>) {
        let Some(leader) = vote.leader_id().voted_for() else { return };
        let term = vote.leader_id().get_term();
        // Only a commit index of the leader's own term covers everything earlier leaders
        // acknowledged; a new leader learns the old commit index only with its first entry.
        let Some(commit) = commit.filter(|c| c.leader_id.get_term() == term) else { return };
        let Some(fresh_at) = arrived.checked_sub(Duration::from_millis(quorum_age_ms)) else { return };
        let contact = Contact { leader, term, commit: commit.index, fresh_at };
        let mut contacts = self.inner.contacts.lock().unwrap_or_else(|e| e.into_inner());
        if contacts.len() >= CONTACTS_KEPT {
            contacts.pop_front();
        }
        contacts.push_back(contact);
    }

    /// Brackets a snapshot install (call before it starts, drop after it ended).
    pub(crate) fn installing(&self) -> InstallGuard {
        // Running first, then begun; `Permit` reads them in the opposite order (see `holds`).
        self.inner.installs_running.fetch_add(1, Ordering::SeqCst);
        self.inner.installs_begun.fetch_add(1, Ordering::SeqCst);
        InstallGuard(self.inner.clone())
    }

    fn set_lease(&self, lease: Option<Lease>) {
        *self.inner.lease.lock().unwrap_or_else(|e| e.into_inner()) = lease;
    }

    fn lease(&self) -> Option<Lease> {
        *self.inner.lease.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn contacts(&self) -> Vec<Contact> {
        self.inner.contacts.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect()
    }

    /// Follows openraft's metrics: while this replica leads, when a majority last acknowledged it.
    ///
    /// openraft measures the age when it publishes the metrics, and this task may read them much
    /// later: after a scheduling delay, or after the whole process was stopped in between (a leader
    /// resumed after SIGSTOP once served listings eight seconds stale, dating an old acknowledgement
    /// from the moment it woke up). So the age is counted from this task's previous look instead: a
    /// value that is new since then was published after it, so the lease is never fresher than it is.
    /// It is older by at most the time between two publications (openraft publishes on every event,
    /// heartbeat responses included). The first value seen gives no lease.
    pub(crate) async fn track_lease(self, mut metrics: watch::Receiver<RaftMetrics<NodeId, BasicNode>>) {
        let mut previous_look: Option<Instant> = None;
        loop {
            // Taken before the value is read: anything published after this is left for the next look.
            let look = Instant::now();
            {
                let m = metrics.borrow_and_update();
                self.set_lease(lease_from(m.state, m.current_term, m.millis_since_quorum_ack, previous_look));
            }
            previous_look = Some(look);
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The parts of openraft's metrics a decision looks at.
#[derive(Debug, Clone, Copy)]
struct View {
    id: NodeId,
    state: ServerState,
    term: u64,
    leader: Option<NodeId>,
    applied: u64,
    /// The term of the last applied entry.
    applied_term: u64,
}

impl View {
    fn of(m: &RaftMetrics<NodeId, BasicNode>) -> View {
        View {
            id: m.id,
            state: m.state,
            term: m.current_term,
            leader: m.current_leader,
            applied: m.last_applied.map_or(0, |l| l.index),
            applied_term: m.last_applied.map_or(0, |l| l.leader_id.get_term()),
        }
    }
}

/// Why a replica would not serve a stale read; a bounded label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A candidate, or shutting down.
    NotFollowing,
    NoLeader,
    /// No recent enough message from the current leader.
    TooStale,
    /// The state machine did not reach the leader's commit index in time.
    ApplyLag,
    /// A snapshot install ran, or was running.
    Installing,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::NotFollowing => "not_following",
            Refusal::NoLeader => "no_leader",
            Refusal::TooStale => "too_stale",
            Refusal::ApplyLag => "apply_lag",
            Refusal::Installing => "installing",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Serve,
    /// Serve once `index` is applied, if that happens by `deadline`.
    WaitForApply {
        index: u64,
        deadline: Instant,
    },
    Refuse(Refusal),
}

/// The lease a metrics value proves: acknowledged by a majority `quorum_ack_ms` before it was
/// published, and it was published after `published_after`.
fn lease_from(
    state: ServerState,
    term: u64,
    quorum_ack_ms: Option<u64>,
    published_after: Option<Instant>,
) -> Option<Lease> {
    match (state, quorum_ack_ms, published_after) {
        // +1: openraft rounds the age down to whole milliseconds.
        (ServerState::Leader, Some(ms), Some(after)) => {
            after.checked_sub(Duration::from_millis(ms + 1)).map(|acked_at| Lease { term, acked_at })
        }
        _ => None,
    }
}

/// Whether the leader may answer without a barrier: a majority acknowledged it within `bound`, in
/// its current term, and it has applied an entry of that term (so everything before it).
fn leader_may_serve(view: &View, lease: Option<Lease>, now: Instant, bound: Duration) -> bool {
    view.state == ServerState::Leader
        && view.leader == Some(view.id)
        && view.applied_term == view.term
        && lease.is_some_and(|l| l.term == view.term && now.saturating_duration_since(l.acked_at) <= bound)
}

/// A follower's (or learner's) decision from the contacts it kept, oldest first.
fn follower_verdict(view: &View, contacts: &[Contact], now: Instant, bound: Duration) -> Verdict {
    if !matches!(view.state, ServerState::Follower | ServerState::Learner) {
        return Verdict::Refuse(Refusal::NotFollowing);
    }
    let Some(leader) = view.leader else { return Verdict::Refuse(Refusal::NoLeader) };
    let fresh: Vec<&Contact> = contacts
        .iter()
        .filter(|c| c.leader == leader && c.term == view.term && now.saturating_duration_since(c.fresh_at) <= bound)
        .collect();
    if fresh.iter().any(|c| c.commit <= view.applied) {
        return Verdict::Serve;
    }
    // The oldest fresh contact asks for the least; its proof expires first.
    match fresh.iter().min_by_key(|c| c.commit) {
        Some(c) => Verdict::WaitForApply { index: c.commit, deadline: c.fresh_at + bound },
        None => Verdict::Refuse(Refusal::TooStale),
    }
}

/// What the leader gate does with a call that accepts a stale answer.
pub enum StaleRead {
    /// Answer it, then ask the permit whether the answer still holds.
    Serve(Permit),
    /// This replica leads but cannot prove its lease: take the linearizable path.
    Linearizable,
    /// Refuse it (the caller falls back to the leader).
    Refused,
}

/// Leave to answer a stale read; checked again once the answer is computed.
pub struct Permit {
    freshness: Freshness,
    role: &'static str,
    installs_begun: u64,
}

impl Permit {
    /// Whether the answer is as good as the permit promised: no snapshot install ran meanwhile.
    /// Counts the served read when it is.
    pub fn holds(&self) -> bool {
        let inner = &self.freshness.inner;
        let clean = inner.installs_running.load(Ordering::SeqCst) == 0
            && inner.installs_begun.load(Ordering::SeqCst) == self.installs_begun;
        if clean {
            metrics::counter!("coffer_metadata_stale_reads_total", "role" => self.role).increment(1);
        } else {
            refused(Refusal::Installing);
        }
        clean
    }
}

fn refused(reason: Refusal) {
    metrics::counter!("coffer_metadata_stale_reads_refused_total", "reason" => reason.label()).increment(1);
}

impl Replication {
    /// Decides a read that accepts an answer up to `bound` stale. A follower waits at most
    /// `MAX_APPLY_WAIT` for its state machine.
    pub async fn stale_read(&self, bound: Duration) -> StaleRead {
        let mut metrics = self.raft.metrics();
        let give_up = tokio::time::Instant::now() + MAX_APPLY_WAIT;
        loop {
            let view = View::of(&metrics.borrow_and_update());
            let now = Instant::now();
            if view.state == ServerState::Leader {
                if leader_may_serve(&view, self.freshness.lease(), now, bound)
                    && let Some(permit) = self.permit("leader")
                {
                    return StaleRead::Serve(permit);
                }
                return StaleRead::Linearizable;
            }
            let deadline = match follower_verdict(&view, &self.freshness.contacts(), now, bound) {
                Verdict::Serve => {
                    return match self.permit("follower") {
                        Some(permit) => StaleRead::Serve(permit),
                        None => {
                            refused(Refusal::Installing);
                            StaleRead::Refused
                        }
                    };
                }
                Verdict::Refuse(reason) => {
                    refused(reason);
                    return StaleRead::Refused;
                }
                Verdict::WaitForApply { deadline, .. } => tokio::time::Instant::from_std(deadline).min(give_up),
            };
            // Wake on the next apply (any metrics change) and decide again.
            if tokio::time::timeout_at(deadline, metrics.changed()).await.map_or(true, |changed| changed.is_err()) {
                refused(Refusal::ApplyLag);
                return StaleRead::Refused;
            }
        }
    }

    /// `None` while a snapshot install runs.
    fn permit(&self, role: &'static str) -> Option<Permit> {
        // `begun` before `running`: an install that began before this read is seen running now or
        // counted in `begun` when the permit is checked (see `Freshness::installing`).
        let inner = &self.freshness.inner;
        let installs_begun = inner.installs_begun.load(Ordering::SeqCst);
        (inner.installs_running.load(Ordering::SeqCst) == 0).then(|| Permit {
            freshness: self.freshness.clone(),
            role,
            installs_begun,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_millis(1000);

    fn follower(applied: u64) -> View {
        View { id: 2, state: ServerState::Follower, term: 3, leader: Some(1), applied, applied_term: 3 }
    }

    fn contact(commit: u64, fresh_at: Instant) -> Contact {
        Contact { leader: 1, term: 3, commit, fresh_at }
    }

    #[test]
    fn a_follower_serves_what_it_applied_within_the_bound() {
        let now = Instant::now() + Duration::from_secs(10);
        let contacts = [contact(40, now - Duration::from_millis(300))];
        assert_eq!(follower_verdict(&follower(40), &contacts, now, BOUND), Verdict::Serve);
        assert_eq!(follower_verdict(&follower(41), &contacts, now, BOUND), Verdict::Serve);
    }

    #[test]
    fn a_follower_refuses_once_the_leader_is_silent_past_the_bound() {
        let now = Instant::now() + Duration::from_secs(10);
        let contacts = [contact(40, now - Duration::from_millis(1001))];
        assert_eq!(follower_verdict(&follower(40), &contacts, now, BOUND), Verdict::Refuse(Refusal::TooStale));
        assert_eq!(follower_verdict(&follower(40), &[], now, BOUND), Verdict::Refuse(Refusal::TooStale));
    }

    #[test]
    fn a_follower_behind_the_leaders_commit_waits_until_the_proof_expires() {
        let now = Instant::now() + Duration::from_secs(10);
        let old = now - Duration::from_millis(600);
        let contacts = [contact(40, old), contact(45, now - Duration::from_millis(100))];
        assert_eq!(
            follower_verdict(&follower(39), &contacts, now, BOUND),
            Verdict::WaitForApply { index: 40, deadline: old + BOUND }
        );
        // An older contact whose commit is applied is proof enough.
        assert_eq!(follower_verdict(&follower(42), &contacts, now, BOUND), Verdict::Serve);
    }

    #[test]
    fn only_the_current_leaders_messages_count() {
        let now = Instant::now() + Duration::from_secs(10);
        let recent = now - Duration::from_millis(100);
        let old_term = Contact { leader: 1, term: 2, commit: 10, fresh_at: recent };
        let other_leader = Contact { leader: 3, term: 3, commit: 10, fresh_at: recent };
        assert_eq!(
            follower_verdict(&follower(50), &[old_term, other_leader], now, BOUND),
            Verdict::Refuse(Refusal::TooStale)
        );
        let electing = View { leader: None, ..follower(50) };
        assert_eq!(follower_verdict(&electing, &[contact(1, recent)], now, BOUND), Verdict::Refuse(Refusal::NoLeader));
        let candidate = View { state: ServerState::Candidate, ..follower(50) };
        assert_eq!(
            follower_verdict(&candidate, &[contact(1, recent)], now, BOUND),
            Verdict::Refuse(Refusal::NotFollowing)
        );
    }

    #[test]
    fn the_leader_serves_only_on_a_recent_quorum_acknowledgement_of_its_own_term() {
        let now = Instant::now() + Duration::from_secs(10);
        let leader = View { id: 1, state: ServerState::Leader, term: 3, leader: Some(1), applied: 9, applied_term: 3 };
        let fresh = Some(Lease { term: 3, acked_at: now - Duration::from_millis(200) });
        assert!(leader_may_serve(&leader, fresh, now, BOUND));
        let stale = Some(Lease { term: 3, acked_at: now - Duration::from_millis(1500) });
        assert!(!leader_may_serve(&leader, stale, now, BOUND), "cut off from the majority");
        assert!(!leader_may_serve(&leader, None, now, BOUND));
        let other_term = Some(Lease { term: 2, acked_at: now });
        assert!(!leader_may_serve(&leader, other_term, now, BOUND));
        let new_leader = View { applied_term: 2, ..leader };
        assert!(!leader_may_serve(&new_leader, fresh, now, BOUND), "earlier terms' writes may not be applied yet");
    }

    #[test]
    fn contacts_keep_only_proofs_from_the_leaders_own_term() {
        let freshness = Freshness::default();
        let vote = openraft::Vote::new_committed(3, 1);
        let arrived = Instant::now();
        let commit = |term, index| Some(openraft::LogId::new(openraft::CommittedLeaderId::new(term, 1), index));
        freshness.heard_from_leader(arrived, 100, &vote, commit(2, 7));
        freshness.heard_from_leader(arrived, 100, &vote, None);
        assert!(freshness.contacts().is_empty(), "a new leader's inherited commit index proves nothing");
        freshness.heard_from_leader(arrived, 100, &vote, commit(3, 9));
        let kept = freshness.contacts();
        assert_eq!(kept.len(), 1);
        assert_eq!((kept[0].leader, kept[0].term, kept[0].commit), (1, 3, 9));
        assert_eq!(arrived.duration_since(kept[0].fresh_at), Duration::from_millis(100));
        for i in 0..40 {
            freshness.heard_from_leader(arrived + Duration::from_millis(i), 0, &vote, commit(3, 10 + i));
        }
        assert_eq!(freshness.contacts().len(), CONTACTS_KEPT, "bounded");
    }

    #[test]
    fn bounds_come_from_the_header() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(requested_bound(&headers), None);
        headers.insert(MAX_STALENESS_HEADER, "0".parse().unwrap());
        assert_eq!(requested_bound(&headers), None, "0 asks for a linearizable read");
        headers.insert(MAX_STALENESS_HEADER, "1500".parse().unwrap());
        assert_eq!(requested_bound(&headers), Some(Duration::from_millis(1500)));
        headers.insert(MAX_STALENESS_HEADER, "999999999".parse().unwrap());
        assert_eq!(requested_bound(&headers), Some(MAX_BOUND));
        headers.insert(MAX_STALENESS_HEADER, "soon".parse().unwrap());
        assert_eq!(requested_bound(&headers), None);
    }

    #[test]
    fn an_install_during_a_read_voids_its_permit() {
        let freshness = Freshness::default();
        let permit = |f: &Freshness| Permit {
            freshness: f.clone(),
            role: "follower",
            installs_begun: f.inner.installs_begun.load(Ordering::SeqCst),
        };
        let before = permit(&freshness);
        assert!(before.holds());
        let guard = freshness.installing();
        assert!(!before.holds(), "running");
        drop(guard);
        assert!(!before.holds(), "ran meanwhile");
        assert!(permit(&freshness).holds());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lease_read_late_is_dated_from_the_look_before_it_never_from_the_wake_up() {
        let leading = |ms: u64| {
            let mut m = RaftMetrics::<NodeId, BasicNode>::new_initial(1);
            m.state = ServerState::Leader;
            m.current_term = 3;
            m.millis_since_quorum_ack = Some(ms);
            m
        };
        let freshness = Freshness::default();
        let (tx, rx) = watch::channel(leading(0));
        let tracker = tokio::spawn(freshness.clone().track_lease(rx));
        tokio::task::yield_now().await;
        assert!(freshness.lease().is_none(), "the first value seen proves nothing about when it was published");
        // Published 100 ms after a majority acknowledged it; then the process stalls (this thread
        // blocks, so the tracker cannot run) before the tracker reads it.
        let published = Instant::now();
        tx.send_replace(leading(100));
        std::thread::sleep(Duration::from_millis(300));
        tokio::task::yield_now().await;
        let lease = freshness.lease().expect("a leader's lease");
        assert_eq!(lease.term, 3);
        assert!(lease.acked_at + Duration::from_millis(100) <= published, "{:?} too fresh", published - lease.acked_at);
        assert!(Instant::now() - lease.acked_at >= Duration::from_millis(400), "the stall counts against the lease");
        let view = View { id: 1, state: ServerState::Leader, term: 3, leader: Some(1), applied: 9, applied_term: 3 };
        assert!(!leader_may_serve(&view, Some(lease), Instant::now(), Duration::from_millis(300)));
        drop(tx);
        tracker.await.expect("tracker");
    }

    #[test]
    fn only_a_leader_with_a_publication_bound_has_a_lease() {
        let after = Instant::now();
        assert!(lease_from(ServerState::Follower, 3, Some(5), Some(after)).is_none());
        assert!(lease_from(ServerState::Leader, 3, None, Some(after)).is_none());
        assert!(lease_from(ServerState::Leader, 3, Some(5), None).is_none());
        let lease = lease_from(ServerState::Leader, 3, Some(5), Some(after)).expect("lease");
        assert_eq!(after - lease.acked_at, Duration::from_millis(6), "rounded-down age plus a millisecond");
    }
}
