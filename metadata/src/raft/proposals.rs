//! Callers waiting for the outcome of the commands this replica proposed. The outcome is computed
//! by the state machine when the entry is applied (on every replica alike) and handed over here
//! only where a caller waits for it.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::command::Applied;
use crate::error::MetadataError;

pub type Outcome = Result<Applied, MetadataError>;

#[derive(Default)]
pub struct Proposals {
    waiting: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
}

impl Proposals {
    /// A fresh proposal id and the receiver of its outcome. The map holds at most one entry per
    /// write in flight: the batcher's queue and its proposals in flight bound them (a caller
    /// reserves its place in the queue before it registers).
    pub fn register(&self) -> (u64, oneshot::Receiver<Outcome>) {
        let (tx, rx) = oneshot::channel();
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let id = rand::random::<u64>();
            if let std::collections::hash_map::Entry::Vacant(slot) = waiting.entry(id) {
                slot.insert(tx);
                return (id, rx);
            }
        }
    }

    /// The proposal will not be applied (it was refused before reaching the log).
    pub fn forget(&self, id: u64) {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    /// Fails the proposal with `error` if its caller still waits: its entry ended without
    /// delivering its outcome (not committed, or not in time).
    pub fn fail(&self, id: u64, error: impl FnOnce() -> MetadataError) {
        let waiter = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        if let Some(waiter) = waiter {
            let _ = waiter.send(Err(error()));
        }
    }

    pub fn deliver(&self, id: u64, outcome: Outcome) {
        let waiter = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        if let Some(waiter) = waiter {
            // The caller may have gone (timeout); the command is applied all the same.
            let _ = waiter.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_reach_their_waiter_once() {
        let proposals = Proposals::default();
        let (id, mut rx) = proposals.register();
        proposals.deliver(id + 1, Ok(Applied::Done));
        assert!(rx.try_recv().is_err());
        proposals.deliver(id, Ok(Applied::Done));
        assert_eq!(rx.try_recv().unwrap().unwrap(), Applied::Done);
        let (id, mut rx) = proposals.register();
        proposals.forget(id);
        assert!(rx.try_recv().is_err());
        let (id, mut rx) = proposals.register();
        proposals.fail(id, || MetadataError::Unavailable("no quorum".into()));
        assert!(matches!(rx.try_recv().unwrap(), Err(MetadataError::Unavailable(_))));
        proposals.fail(id, || unreachable!("failed once only"));
        let (id, mut rx) = proposals.register();
        proposals.deliver(id, Ok(Applied::Done));
        proposals.fail(id, || unreachable!("an outcome delivered is final"));
        assert_eq!(rx.try_recv().unwrap().unwrap(), Applied::Done);
    }
}
