//! The journal of one key: the state after the last acknowledged write, and the writes started since that were not
//! acknowledged (failed, timed out, cut off by a kill, or still in flight), each of which may or may not have taken
//! effect.
//!
//! Every write replaces the whole object (PUT, CompleteMultipartUpload) or removes it (DELETE), and only one operation
//! per key is in flight at a time, so applying any in-order subset of the unacknowledged writes to the acknowledged
//! state leaves either that state or the effect of one of them. A read may therefore see exactly these states; an
//! acknowledged write resets the set.

use std::collections::VecDeque;
use std::fmt;

use super::content::Version;

/// Writes remembered per key to explain a mismatch (which older write the bytes came from).
const HISTORY: usize = 64;

/// The state of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Absent,
    Present(Version),
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Absent => write!(f, "absent"),
            State::Present(v) => write!(f, "{v}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Put,
    Multipart,
    Delete,
}

impl WriteKind {
    pub fn name(self) -> &'static str {
        match self {
            WriteKind::Put => "PUT",
            WriteKind::Multipart => "multipart",
            WriteKind::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    InFlight,
    Acked,
    /// Not acknowledged: the error code the client saw.
    Failed(String),
}

/// One write to a key.
#[derive(Debug, Clone)]
pub struct Write {
    /// Run-wide write number.
    pub id: u64,
    pub kind: WriteKind,
    pub effect: State,
    pub outcome: Outcome,
    /// Seconds into the run when it started.
    pub at: f64,
}

impl fmt::Display for Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {} at {:.1}s", self.id, self.kind.name(), self.at)?;
        if let State::Present(v) = &self.effect {
            write!(f, " of {v}")?;
        }
        match &self.outcome {
            Outcome::InFlight => write!(f, " (in flight)"),
            Outcome::Acked => write!(f, " (acknowledged)"),
            Outcome::Failed(code) => write!(f, " (not acknowledged: {code})"),
        }
    }
}

/// What a read saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Absent,
    /// `md5` is `None` when the read had no body (HEAD); `etag` is `None` when the answer carried none.
    Present {
        len: u64,
        md5: Option<String>,
        etag: Option<String>,
    },
}

impl Observed {
    fn matches(&self, state: &State) -> bool {
        match (self, state) {
            (Observed::Absent, State::Absent) => true,
            (Observed::Present { len, md5, etag }, State::Present(v)) => {
                *len == v.len && md5.as_ref().is_none_or(|m| *m == v.md5) && etag.as_ref().is_none_or(|e| *e == v.etag)
            }
            _ => false,
        }
    }

    /// Same bytes, ignoring the ETag.
    fn same_bytes(&self, version: &Version) -> bool {
        matches!(self, Observed::Present { len, md5: Some(m), .. } if *len == version.len && *m == version.md5)
    }
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observed::Absent => write!(f, "404 NoSuchKey"),
            Observed::Present { len, md5, etag } => {
                write!(f, "{len} B")?;
                if let Some(m) = md5 {
                    write!(f, " md5 {m}")?;
                }
                match etag {
                    Some(e) => write!(f, " etag {e}"),
                    None => write!(f, " no etag"),
                }
            }
        }
    }
}

/// How a read settled a key whose journal had unacknowledged writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Nothing was pending.
    Certain,
    /// The acknowledged state is what is stored: no unacknowledged write took effect.
    NoneTookEffect,
    /// This unacknowledged write took effect.
    TookEffect(u64),
}

#[derive(Debug, Clone)]
pub struct KeyJournal {
    acked: State,
    /// The write that made `acked` (None: the key was never written).
    acked_by: Option<u64>,
    /// Writes since `acked` not (yet) acknowledged, oldest first.
    pending: Vec<Write>,
    history: VecDeque<Write>,
    /// Bumped by every change, so a listing can tell whether a key stood still while it ran.
    version: u64,
}

impl Default for KeyJournal {
    fn default() -> Self {
        KeyJournal::new()
    }
}

impl KeyJournal {
    pub fn new() -> KeyJournal {
        KeyJournal { acked: State::Absent, acked_by: None, pending: Vec::new(), history: VecDeque::new(), version: 0 }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    #[cfg(test)]
    pub fn acked(&self) -> &State {
        &self.acked
    }

    /// Unacknowledged writes since the acknowledged state (including one in flight).
    #[cfg(test)]
    pub fn pending(&self) -> &[Write] {
        &self.pending
    }

    /// A write is about to be sent: from now on its effect is allowed.
    pub fn begin(&mut self, id: u64, kind: WriteKind, effect: State, at: f64) {
        let write = Write { id, kind, effect, outcome: Outcome::InFlight, at };
        self.pending.push(write.clone());
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(write);
        self.version += 1;
    }

    /// The write `id` ended: acknowledged (`Ok`) or not (`Err(code)`).
    pub fn finish(&mut self, id: u64, result: Result<(), String>) {
        let outcome = match &result {
            Ok(()) => Outcome::Acked,
            Err(code) => Outcome::Failed(code.clone()),
        };
        if let Some(w) = self.history.iter_mut().rev().find(|w| w.id == id) {
            w.outcome = outcome.clone();
        }
        match result {
            Ok(()) => {
                if let Some(write) = self.pending.iter().find(|w| w.id == id) {
                    self.acked = write.effect.clone();
                    self.acked_by = Some(id);
                }
                self.pending.clear();
            }
            Err(_) => {
                if let Some(w) = self.pending.iter_mut().find(|w| w.id == id) {
                    w.outcome = outcome;
                }
            }
        }
        self.version += 1;
    }

    /// Every state a read may see now.
    pub fn allowed(&self) -> impl Iterator<Item = &State> {
        std::iter::once(&self.acked).chain(self.pending.iter().map(|w| &w.effect))
    }

    pub fn may_be_absent(&self) -> bool {
        self.allowed().any(|s| *s == State::Absent)
    }

    pub fn may_be_present(&self) -> bool {
        self.allowed().any(|s| matches!(s, State::Present(_)))
    }

    /// Whether `seen` is one of the allowed states; the error explains why not.
    pub fn check(&self, seen: &Observed) -> Result<(), String> {
        if self.allowed().any(|s| seen.matches(s)) { Ok(()) } else { Err(self.explain(seen)) }
    }

    /// Fixes the state a read saw as the acknowledged one (only once nothing is in flight and `seen` is allowed).
    pub fn resolve(&mut self, seen: &Observed) -> Result<Resolution, String> {
        self.check(seen)?;
        if self.pending.is_empty() {
            return Ok(Resolution::Certain);
        }
        // Later writes win a tie: two writes of the same bytes are indistinguishable anyway.
        let resolution = match self.pending.iter().rev().find(|w| seen.matches(&w.effect)) {
            Some(w) if !seen.matches(&self.acked) => {
                self.acked = w.effect.clone();
                self.acked_by = Some(w.id);
                Resolution::TookEffect(w.id)
            }
            _ => Resolution::NoneTookEffect,
        };
        self.pending.clear();
        self.version += 1;
        Ok(resolution)
    }

    /// A remembered write of this key whose bytes are `md5`, newest first.
    pub fn find_write(&self, len: u64, md5: &str) -> Option<&Write> {
        self.history.iter().rev().find(|w| matches!(&w.effect, State::Present(v) if v.len == len && v.md5 == md5))
    }

    /// The acknowledged state and the unacknowledged writes since.
    pub fn describe(&self) -> String {
        let mut text = match self.acked_by {
            Some(id) => format!("acknowledged state {} (write #{id})", self.acked),
            None => format!("acknowledged state {} (never written)", self.acked),
        };
        if self.pending.is_empty() {
            text.push_str(", no unacknowledged writes since");
        } else {
            let list: Vec<String> = self.pending.iter().map(Write::to_string).collect();
            text.push_str(&format!(", unacknowledged since: [{}]", list.join("; ")));
        }
        text
    }

    /// Why `seen` is not allowed: what was seen, what was allowed, and which write the bytes belong to if any.
    pub fn explain(&self, seen: &Observed) -> String {
        let mut text = format!("saw {seen}; {}", self.describe());
        if let Observed::Present { len, md5: Some(md5), etag } = seen {
            if let Some(state) = self.allowed().find_map(|s| match s {
                State::Present(v) if seen.same_bytes(v) => Some(v),
                _ => None,
            }) {
                text.push_str(&format!("; the bytes are right but the ETag {etag:?} should be {}", state.etag));
            } else if let Some(w) = self.find_write(*len, md5) {
                text.push_str(&format!("; the bytes are those of older write {w}"));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(seed: u64, len: usize) -> Version {
        Version::put(seed, len).0
    }

    fn seen(v: &Version) -> Observed {
        Observed::Present { len: v.len, md5: Some(v.md5.clone()), etag: Some(v.etag.clone()) }
    }

    fn put(j: &mut KeyJournal, id: u64, v: &Version, result: Result<(), String>) {
        j.begin(id, WriteKind::Put, State::Present(v.clone()), 0.0);
        j.finish(id, result);
    }

    fn delete(j: &mut KeyJournal, id: u64, result: Result<(), String>) {
        j.begin(id, WriteKind::Delete, State::Absent, 0.0);
        j.finish(id, result);
    }

    fn failed() -> Result<(), String> {
        Err("Connection".into())
    }

    #[test]
    fn a_fresh_key_is_absent() {
        let j = KeyJournal::new();
        assert!(j.check(&Observed::Absent).is_ok());
        assert!(j.check(&seen(&version(1, 10))).is_err());
        assert!(j.may_be_absent() && !j.may_be_present());
    }

    #[test]
    fn an_acknowledged_put_is_the_only_state() {
        let mut j = KeyJournal::new();
        let (a, b) = (version(1, 100), version(2, 100));
        put(&mut j, 1, &a, Ok(()));
        assert!(j.check(&seen(&a)).is_ok());
        let err = j.check(&Observed::Absent).expect_err("404 after an acknowledged PUT");
        assert!(err.contains("404") && err.contains("write #1"), "{err}");
        put(&mut j, 2, &b, Ok(()));
        assert!(j.check(&seen(&b)).is_ok());
        let err = j.check(&seen(&a)).expect_err("superseded version");
        assert!(err.contains("older write #1 PUT"), "{err}");
        assert!(!j.may_be_absent() && j.may_be_present());
    }

    #[test]
    fn unacknowledged_writes_may_or_may_not_have_taken_effect() {
        let mut j = KeyJournal::new();
        let (a, b, c) = (version(1, 100), version(2, 200), version(3, 300));
        put(&mut j, 1, &a, Ok(()));
        put(&mut j, 2, &b, failed());
        delete(&mut j, 3, failed());
        put(&mut j, 4, &c, Err("HTTP503".into()));
        for ok in [seen(&a), seen(&b), Observed::Absent, seen(&c)] {
            assert!(j.check(&ok).is_ok(), "{ok}");
        }
        assert!(j.check(&seen(&version(9, 100))).is_err());
        assert_eq!(j.pending().len(), 3);
        assert!(j.may_be_absent() && j.may_be_present());
        let err = j.check(&seen(&version(9, 1))).expect_err("unknown bytes");
        assert!(err.contains("#2 PUT") && err.contains("#3 DELETE") && err.contains("HTTP503"), "{err}");
    }

    #[test]
    fn an_acknowledgement_resets_the_set() {
        let mut j = KeyJournal::new();
        let (a, b) = (version(1, 100), version(2, 200));
        put(&mut j, 1, &a, failed());
        assert!(j.check(&seen(&a)).is_ok() && j.check(&Observed::Absent).is_ok());
        delete(&mut j, 2, Ok(()));
        assert!(j.check(&Observed::Absent).is_ok());
        assert!(j.check(&seen(&a)).is_err(), "the failed PUT is superseded by the acknowledged DELETE");
        assert!(j.pending().is_empty());
        put(&mut j, 3, &b, Ok(()));
        assert!(j.check(&Observed::Absent).is_err());
    }

    #[test]
    fn an_operation_in_flight_is_allowed() {
        let mut j = KeyJournal::new();
        let a = version(1, 100);
        let before = j.version();
        j.begin(1, WriteKind::Put, State::Present(a.clone()), 0.0);
        assert_ne!(j.version(), before);
        assert!(j.check(&seen(&a)).is_ok() && j.check(&Observed::Absent).is_ok());
        j.finish(1, Ok(()));
        assert!(j.check(&Observed::Absent).is_err());
    }

    #[test]
    fn wrong_lengths_bytes_and_etags_are_mismatches() {
        let mut j = KeyJournal::new();
        let a = version(1, 100);
        put(&mut j, 1, &a, Ok(()));
        let short = Observed::Present { len: 99, md5: Some(a.md5.clone()), etag: Some(a.etag.clone()) };
        assert!(j.check(&short).is_err());
        let other = Observed::Present { len: 100, md5: Some(version(2, 100).md5), etag: Some(a.etag.clone()) };
        assert!(j.check(&other).is_err());
        let bad_etag = Observed::Present { len: 100, md5: Some(a.md5.clone()), etag: Some("x".into()) };
        let err = j.check(&bad_etag).expect_err("wrong etag");
        assert!(err.contains("ETag"), "{err}");
        // A HEAD sees no bytes: the length and ETag must fit.
        assert!(j.check(&Observed::Present { len: 100, md5: None, etag: Some(a.etag.clone()) }).is_ok());
        assert!(j.check(&Observed::Present { len: 101, md5: None, etag: Some(a.etag.clone()) }).is_err());
        assert!(j.check(&Observed::Present { len: 100, md5: None, etag: None }).is_ok());
    }

    #[test]
    fn multipart_versions_match_by_their_etag() {
        let mut j = KeyJournal::new();
        let (m, _) = Version::multipart(4, &[300, 20]);
        j.begin(1, WriteKind::Multipart, State::Present(m.clone()), 0.0);
        j.finish(1, Ok(()));
        assert!(j.check(&seen(&m)).is_ok());
        let plain = Observed::Present { len: m.len, md5: Some(m.md5.clone()), etag: Some(m.md5.clone()) };
        assert!(j.check(&plain).is_err());
    }

    #[test]
    fn a_read_resolves_the_journal() {
        let mut j = KeyJournal::new();
        let (a, b) = (version(1, 100), version(2, 200));
        put(&mut j, 1, &a, Ok(()));
        assert_eq!(j.resolve(&seen(&a)), Ok(Resolution::Certain));
        put(&mut j, 2, &b, failed());
        delete(&mut j, 3, failed());
        assert_eq!(j.resolve(&seen(&b)), Ok(Resolution::TookEffect(2)));
        assert_eq!(*j.acked(), State::Present(b.clone()));
        assert!(j.pending().is_empty() && j.check(&seen(&a)).is_err());
        delete(&mut j, 4, failed());
        assert_eq!(j.resolve(&seen(&b)), Ok(Resolution::NoneTookEffect));
        assert!(j.check(&Observed::Absent).is_err());
        delete(&mut j, 5, failed());
        assert!(j.resolve(&seen(&a)).is_err(), "a state that is not allowed resolves nothing");
        assert_eq!(j.pending().len(), 1);
        assert_eq!(j.resolve(&Observed::Absent), Ok(Resolution::TookEffect(5)));
    }
}
