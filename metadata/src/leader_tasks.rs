//! The background work only the leader may do — the garbage collector, the lifecycle worker, the
//! expirer and the notification dispatcher each submit commands decided from what they read, and
//! two replicas doing it at once would double the work — started when this replica becomes the
//! leader and stopped when it stops being it. A lone metadata service is always the leader.

use std::sync::Arc;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::applier::Applier;
use crate::cluster::Cluster;
use crate::cluster_feed::ClusterFeed;
use crate::config::MetadataConfig;
use crate::gc::Collector;
use crate::store::Store;
use crate::{expiry, lifecycle, notify};

/// What the workers are built from; cloned into each start.
#[derive(Clone)]
pub struct Workers {
    pub store: Arc<Store>,
    pub applier: Applier,
    pub cluster: Arc<Cluster>,
    pub config: MetadataConfig,
    pub targets: notify::Targets,
    pub tls: Option<coffer_proto::grpc_tls::GrpcTls>,
    /// The group the workers are for (0: the directory, or a lone service), for the log.
    pub group: u64,
    /// A range group's workers: `cluster` is a copy of group 0's map (see `cluster_feed`).
    pub feed: Option<Arc<ClusterFeed>>,
    /// Group 0's replica, to ask (through group 0's voters, as they are when this replica starts
    /// leading) for a split when the group grows large (see `split_watch`); none for a lone
    /// service, which does not split.
    pub zero: Option<crate::raft::Replication>,
}

struct Running {
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Workers {
    fn start(&self) -> Running {
        let mut running = Running { stops: Vec::new(), tasks: Vec::new() };
        let config = &self.config;
        let mut spawn = |name: &'static str, run: Box<dyn FnOnce(oneshot::Receiver<()>) -> JoinHandle<()>>| {
            let (stop, stopped) = oneshot::channel();
            running.stops.push(stop);
            running.tasks.push((name, run(stopped)));
        };
        let collector = Collector::new(
            self.store.clone(),
            self.applier.clone(),
            self.cluster.clone(),
            config.gc_interval,
            self.tls.clone(),
        )
        .with_feed(self.feed.clone());
        spawn("garbage collector", Box::new(move |stop| tokio::spawn(collector.run(stop))));
        let lifecycle = lifecycle::Worker::new(
            self.store.clone(),
            self.applier.clone(),
            config.lifecycle_day_seconds,
            config.lifecycle_interval,
            config.gc_grace,
        );
        spawn("lifecycle", Box::new(move |stop| tokio::spawn(lifecycle.run(stop))));
        let expirer =
            expiry::Expirer::new(self.store.clone(), self.applier.clone(), config.lifecycle_interval, config.gc_grace);
        spawn("expiry", Box::new(move |stop| tokio::spawn(expirer.run(stop))));
        let dispatcher = notify::Dispatcher::new(self.store.clone(), self.applier.clone(), self.targets.clone());
        spawn("notification", Box::new(move |stop| tokio::spawn(dispatcher.run(stop))));
        let zero_urls: Vec<String> = self.zero.iter().flat_map(|zero| zero.voters()).map(|(_, url)| url).collect();
        if !zero_urls.is_empty() {
            let client = coffer_proto::metadata_client::ClientConfig { tls: self.tls.clone(), ..Default::default() };
            let watch = crate::split_watch::SplitWatch::new(
                self.store.clone(),
                self.group,
                config.range_split_keys,
                config.range_split_check,
                &zero_urls,
                &client,
            );
            match watch {
                Ok(watch) => spawn("split watch", Box::new(move |stop| tokio::spawn(watch.run(stop)))),
                Err(e) => tracing::error!(group = self.group, error = %e, "the range group cannot ask for splits"),
            }
        }
        running
    }

    /// The node table as the database has it now (a follower applied changes without it); a range
    /// group's, as group 0 has it now.
    async fn reload_cluster(&self) {
        if let Some(feed) = &self.feed {
            if let Err(e) = feed.refresh().await {
                tracing::warn!(error = %e, "cannot read group 0's cluster map yet");
            }
            return;
        }
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || Ok::<_, crate::MetadataError>((store.nodes()?, store.node_admin()?)))
            .await
        {
            Ok(Ok((nodes, admin))) => self.cluster.reload(nodes, admin, crate::now_unix_ms()),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot reload the node table"),
            Err(e) => tracing::error!(error = %e, "the node table task failed"),
        }
    }
}

impl Running {
    async fn stop(self) {
        for stop in self.stops {
            // A send error means the task already ended.
            let _ = stop.send(());
        }
        for (name, task) in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, task = name, "a leader task failed");
            }
        }
    }
}

/// Runs the workers while this replica leads (always, when `leadership` is `None`), until `stop`.
pub async fn supervise(
    workers: Workers,
    mut leadership: Option<watch::Receiver<bool>>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut running: Option<Running> = None;
    loop {
        let leading = leadership.as_ref().is_none_or(|l| *l.borrow());
        if leading && running.is_none() {
            if leadership.is_some() {
                tracing::info!(
                    group = workers.group,
                    "this replica leads the metadata group: starting the leader's background work"
                );
                workers.reload_cluster().await;
            }
            running = Some(workers.start());
        } else if !leading && let Some(work) = running.take() {
            tracing::info!(
                group = workers.group,
                "this replica no longer leads: stopping the leader's background work"
            );
            work.stop().await;
        }
        match leadership.as_mut() {
            None => {
                let _ = (&mut stop).await;
                break;
            }
            Some(changes) => tokio::select! {
                _ = &mut stop => break,
                changed = changes.changed() => if changed.is_err() { break },
            },
        }
    }
    if let Some(work) = running {
        work.stop().await;
    }
}
