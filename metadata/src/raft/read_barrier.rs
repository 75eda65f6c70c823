//! Linearizable reads without one heartbeat round per read: readers that arrive while a barrier
//! (openraft's `ensure_linearizable`) is running wait for the next one, which then serves all of
//! them at once. A barrier serves only readers that were waiting before it started — one that
//! started earlier could miss a write acknowledged between its start and the read's arrival.

use std::sync::{Arc, Mutex};

use openraft::BasicNode;
use tokio::sync::oneshot;

use super::types::Raft;
use crate::error::MetadataError;

/// Why a barrier failed, in a form every waiter can get a copy of.
#[derive(Debug, Clone)]
enum Refusal {
    NotLeader(Option<String>),
    Unavailable(String),
}

impl From<Refusal> for MetadataError {
    fn from(refusal: Refusal) -> MetadataError {
        match refusal {
            Refusal::NotLeader(leader) => MetadataError::NotLeader { leader },
            Refusal::Unavailable(why) => MetadataError::Unavailable(format!("raft: {why}")),
        }
    }
}

type Waiter = oneshot::Sender<Result<(), Refusal>>;

#[derive(Default)]
struct State {
    running: bool,
    waiting: Vec<Waiter>,
}

#[derive(Clone, Default)]
pub struct ReadBarrier {
    state: Arc<Mutex<State>>,
}

impl ReadBarrier {
    /// Returns once a barrier that started after this call confirmed the leadership and the
    /// state machine applied everything committed before it.
    pub async fn wait(&self, raft: &Raft) -> Result<(), MetadataError> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.waiting.push(tx);
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            tokio::spawn(run(self.state.clone(), raft.clone()));
        }
        match rx.await {
            Ok(result) => result.map_err(MetadataError::from),
            Err(_) => Err(MetadataError::Unavailable("the read barrier stopped".into())),
        }
    }
}

/// Runs barriers back to back while readers wait; each serves the readers queued before it.
async fn run(state: Arc<Mutex<State>>, raft: Raft) {
    loop {
        let batch = {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            if state.waiting.is_empty() {
                state.running = false;
                return;
            }
            std::mem::take(&mut state.waiting)
        };
        let result = match raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.forward_to_leader::<BasicNode>() {
                Some(forward) => Refusal::NotLeader(forward.leader_node.as_ref().map(|n| n.addr.clone())),
                None => Refusal::Unavailable(e.to_string()),
            }),
        };
        for waiter in batch {
            // A reader that gave up (its call was cancelled) is simply not answered.
            let _ = waiter.send(result.clone());
        }
    }
}
