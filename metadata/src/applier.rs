//! The single writer: one thread takes commands from a bounded queue, applies them in order, and
//! makes each group durable with one WAL sync before answering any command of the group.
//!
//! Answering only after the sync matters for failed commands too: their outcome may depend on an
//! earlier, not yet durable command of the same group.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::command::{Applied, Command, apply};
use crate::error::MetadataError;
use crate::store::Store;

/// Commands waiting to be applied; beyond this, submitters wait (back-pressure).
pub const QUEUE_DEPTH: usize = 1024;
/// Commands sharing one WAL sync at most; bounds the latency one sync adds to the first of them.
pub const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<Result<Applied, MetadataError>>;

enum Job {
    // Boxed: commands are large and the queue holds up to QUEUE_DEPTH of them.
    Apply(Box<Command>, Reply),
    Stop,
}

/// Submits commands: to the local applier thread, or to the Raft group this replica belongs to.
/// Cheap to clone.
#[derive(Clone)]
pub struct Applier {
    route: Route,
}

#[derive(Clone)]
enum Route {
    Local(mpsc::Sender<Job>),
    Replicated(crate::raft::Replication),
}

/// Owns the applier thread; [`ApplierThread::stop`] ends it after the commands queued before.
pub struct ApplierThread {
    tx: mpsc::Sender<Job>,
    thread: JoinHandle<()>,
}

fn stopped() -> MetadataError {
    MetadataError::Unavailable("the metadata write path is stopped".into())
}

impl Applier {
    pub fn start(store: Arc<Store>) -> Result<(Applier, ApplierThread), MetadataError> {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let thread = std::thread::Builder::new()
            .name("metadata-applier".into())
            .spawn(move || run(&store, rx))
            .map_err(|e| MetadataError::Internal(format!("cannot start the applier thread: {e}")))?;
        Ok((Applier { route: Route::Local(tx.clone()) }, ApplierThread { tx, thread }))
    }

    /// Commands go through the Raft group of `replication`.
    pub fn replicated(replication: crate::raft::Replication) -> Applier {
        Applier { route: Route::Replicated(replication) }
    }

    /// Applies `command`; returns once its effect is durable (on a majority of the replicas).
    pub async fn submit(&self, command: Command) -> Result<Applied, MetadataError> {
        match &self.route {
            Route::Local(tx) => {
                let (reply, response) = oneshot::channel();
                tx.send(Job::Apply(Box::new(command), reply)).await.map_err(|_| stopped())?;
                response.await.map_err(|_| stopped())?
            }
            Route::Replicated(replication) => replication.submit(command).await,
        }
    }
}

impl ApplierThread {
    pub async fn stop(self) {
        // A send error means the thread has already ended.
        let _ = self.tx.send(Job::Stop).await;
        let thread = self.thread;
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => tracing::error!("the applier thread panicked"),
            Err(e) => tracing::error!(error = %e, "cannot join the applier thread"),
        }
    }
}

fn run(store: &Store, mut rx: mpsc::Receiver<Job>) {
    let mut group: Vec<(Box<Command>, Reply)> = Vec::with_capacity(MAX_GROUP);
    let mut stopping = false;
    while !stopping {
        match rx.blocking_recv() {
            None | Some(Job::Stop) => break,
            Some(Job::Apply(command, reply)) => group.push((command, reply)),
        }
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(Job::Apply(command, reply)) => group.push((command, reply)),
                Ok(Job::Stop) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let before = store.db().latest_sequence_number();
        let results: Vec<(Reply, Result<Applied, MetadataError>)> =
            group.drain(..).map(|(command, reply)| (reply, apply(store, *command))).collect();
        let synced = if store.db().latest_sequence_number() == before { Ok(()) } else { store.sync_wal() };
        match synced {
            Ok(()) => {
                for (reply, result) in results {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                // After a failed fsync the WAL's state on disk is unknown (the kernel may have
                // dropped the dirty pages): refuse all further writes rather than acknowledge
                // writes that may not survive a crash.
                tracing::error!(error = %e, "WAL sync failed; the metadata write path stops");
                for (reply, _) in results {
                    let _ = reply.send(Err(MetadataError::Unavailable(format!("WAL sync failed: {e}"))));
                }
                break;
            }
        }
    }
    rx.close();
    while let Ok(job) = rx.try_recv() {
        if let Job::Apply(_, reply) = job {
            let _ = reply.send(Err(stopped()));
        }
    }
}

#[cfg(test)]
mod tests {
    use coffer_proto::pb::metadata::BucketRecord;

    use super::*;

    fn create(name: String) -> Command {
        Command::CreateBucket { bucket: BucketRecord { name, ..Default::default() } }
    }

    #[tokio::test]
    async fn concurrent_commands_are_applied_acknowledged_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Arc::new(Store::open(dir.path()).unwrap());
            let (applier, thread) = Applier::start(store.clone()).unwrap();
            let tasks: Vec<_> = (0..500)
                .map(|i| {
                    let applier = applier.clone();
                    tokio::spawn(async move { applier.submit(create(format!("b{i:03}"))).await })
                })
                .collect();
            for task in tasks {
                task.await.unwrap().unwrap();
            }
            let again = applier.submit(create("b000".into())).await;
            assert!(matches!(again, Err(MetadataError::BucketAlreadyOwnedByYou(_))));
            thread.stop().await;
            assert!(matches!(applier.submit(create("late".into())).await, Err(MetadataError::Unavailable(_))));
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.list_buckets().unwrap().len(), 500);
    }
}
