//! The kill scheduler: every `--kill-every` (jittered ±50%) one service, chosen at random by role (gateway,
//! metadata, repair, blobnode; a blobnode or metadata replica at random among them), is killed with SIGKILL, left
//! down for a random 0–2 s, started again with the same arguments, and waited for until the cluster is ready again
//! (for a metadata group also: every replica following one leader, and a write getting through) before the next
//! interval begins. One victim at a time, so never more than one blobnode is down, and a group of three keeps a
//! majority except while a killed leader is being replaced.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::cluster::{Cluster, Victim};
use super::tally::Tally;

/// Longest a victim stays down before it is started again.
pub const MAX_DOWNTIME: Duration = Duration::from_secs(2);
/// How long a restarted service may take until the cluster is ready again.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One planned kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kill {
    /// Wait this long (after the cluster is ready again) before killing.
    pub after: Duration,
    pub victim: Victim,
    /// Leave the victim down this long.
    pub downtime: Duration,
}

/// The random part of the schedule, reproducible from a seed.
pub struct KillPlan {
    rng: SmallRng,
    mean: Duration,
    blobnodes: usize,
    metadata_replicas: usize,
}

impl KillPlan {
    pub fn new(seed: u64, mean: Duration, blobnodes: usize, metadata_replicas: usize) -> KillPlan {
        KillPlan { rng: SmallRng::seed_from_u64(seed), mean, blobnodes, metadata_replicas }
    }

    pub fn next_kill(&mut self) -> Kill {
        let after = self.mean.mul_f64(self.rng.random_range(0.5..1.5));
        let role = if self.blobnodes == 0 { self.rng.random_range(0..3) } else { self.rng.random_range(0..4) };
        let victim = match role {
            0 => Victim::Gateway,
            // No draw for a single service, so that a seed repeats the schedule of runs before replication.
            1 if self.metadata_replicas > 1 => Victim::Metadata(self.rng.random_range(0..self.metadata_replicas)),
            1 => Victim::Metadata(0),
            2 => Victim::Repair,
            _ => Victim::Blobnode(self.rng.random_range(0..self.blobnodes)),
        };
        let downtime = MAX_DOWNTIME.mul_f64(self.rng.random_range(0.0..=1.0));
        Kill { after, victim, downtime }
    }
}

/// Kills and restarts services until `until`. Returns early with an error only when the cluster does not come back
/// (the error carries the log tails); a service exiting on its own is restarted and reported in `tally`.
pub async fn run(
    cluster: &mut Cluster,
    plan: &mut KillPlan,
    until: Instant,
    start: Instant,
    tally: &Tally,
) -> anyhow::Result<()> {
    loop {
        let kill = plan.next_kill();
        let at = Instant::now() + kill.after;
        if at >= until {
            tokio::time::sleep_until(until.into()).await;
            return Ok(());
        }
        tokio::time::sleep_until(at.into()).await;
        let report = |victim: Victim, status: std::process::ExitStatus| {
            let what = format!("{victim} exited by itself ({status}) at {:.1}s", start.elapsed().as_secs_f64());
            eprintln!("crash: {what}");
            tally.unexpected_exit(what);
        };
        // Something that died on its own is started again before anything else is killed.
        let exited = cluster.reap();
        if !exited.is_empty() {
            for (victim, status) in exited {
                report(victim, status);
            }
            cluster.spawn_missing()?;
            cluster.wait_ready(READY_TIMEOUT, report).await?;
        }
        cluster.kill(kill.victim).await?;
        tally.kill(kill.victim.role());
        let killed_at = start.elapsed().as_secs_f64();
        tokio::time::sleep(kill.downtime).await;
        cluster.spawn(kill.victim)?;
        let restarted = Instant::now();
        cluster.wait_ready(READY_TIMEOUT, report).await?;
        eprintln!(
            "crash: [{killed_at:6.1}s] kill -9 {}, down {:.1}s, ready {:.1}s after restart",
            kill.victim,
            kill.downtime.as_secs_f64(),
            restarted.elapsed().as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn kills_are_jittered_around_the_mean() {
        let mean = Duration::from_secs(5);
        let mut plan = KillPlan::new(1, mean, 6, 1);
        let kills: Vec<Kill> = (0..2000).map(|_| plan.next_kill()).collect();
        for k in &kills {
            assert!(k.after >= mean / 2 && k.after < mean * 3 / 2, "{k:?}");
            assert!(k.downtime <= MAX_DOWNTIME, "{k:?}");
        }
        let average = kills.iter().map(|k| k.after.as_secs_f64()).sum::<f64>() / kills.len() as f64;
        assert!((average - 5.0).abs() < 0.2, "average interval {average}");
        let down = kills.iter().map(|k| k.downtime.as_secs_f64()).sum::<f64>() / kills.len() as f64;
        assert!((down - 1.0).abs() < 0.1, "average downtime {down}");
    }

    #[test]
    fn every_service_gets_killed_roles_evenly() {
        let mut plan = KillPlan::new(2, Duration::from_secs(5), 6, 1);
        let mut by_victim: BTreeMap<Victim, u32> = BTreeMap::new();
        let mut by_role: BTreeMap<&str, u32> = BTreeMap::new();
        for _ in 0..3000 {
            let victim = plan.next_kill().victim;
            *by_victim.entry(victim).or_default() += 1;
            *by_role.entry(victim.role()).or_default() += 1;
        }
        assert_eq!(by_victim.len(), 9, "gateway, metadata, repair and six blobnodes: {by_victim:?}");
        for (role, n) in &by_role {
            assert!((600..900).contains(n), "{role}: {n} of 3000");
        }
        assert!(by_victim.keys().all(|v| !matches!(v, Victim::Blobnode(i) if *i >= 6)));
        assert!(by_victim.contains_key(&Victim::Metadata(0)), "the single metadata service is metadata0");
    }

    #[test]
    fn every_metadata_replica_gets_killed_and_the_role_keeps_its_share() {
        let mut plan = KillPlan::new(4, Duration::from_secs(5), 6, 3);
        let mut by_victim: BTreeMap<Victim, u32> = BTreeMap::new();
        let mut by_role: BTreeMap<&str, u32> = BTreeMap::new();
        for _ in 0..3000 {
            let victim = plan.next_kill().victim;
            *by_victim.entry(victim).or_default() += 1;
            *by_role.entry(victim.role()).or_default() += 1;
        }
        assert_eq!(by_victim.len(), 11, "gateway, repair, three replicas and six blobnodes: {by_victim:?}");
        for (role, n) in &by_role {
            assert!((600..900).contains(n), "{role}: {n} of 3000");
        }
        for i in 0..3 {
            let n = by_victim.get(&Victim::Metadata(i)).copied().unwrap_or(0);
            assert!((180..330).contains(&n), "metadata{i}: {n} of ~250");
        }
        assert!(by_victim.keys().all(|v| !matches!(v, Victim::Metadata(i) if *i >= 3)));
        assert_eq!((Victim::Metadata(2).to_string().as_str(), Victim::Metadata(2).role()), ("metadata2", "metadata"));
    }

    #[test]
    fn a_single_metadata_service_keeps_the_schedule_of_a_seed() {
        // Drawing a replica only for a group: the same seed kills the same victims as before replication.
        let draw = |replicas| {
            let mut plan = KillPlan::new(9, Duration::from_secs(5), 6, replicas);
            (0..200).map(|_| plan.next_kill()).collect::<Vec<_>>()
        };
        let (single, group) = (draw(1), draw(3));
        assert!(single.iter().all(|k| !matches!(k.victim, Victim::Metadata(i) if i > 0)));
        let first_replica_kill = group.iter().position(|k| matches!(k.victim, Victim::Metadata(_))).expect("one");
        assert_eq!(
            single[..first_replica_kill],
            group[..first_replica_kill],
            "the schedules agree until the first replica is drawn"
        );
    }

    #[test]
    fn a_seed_repeats_the_schedule() {
        let draw = |seed| {
            let mut plan = KillPlan::new(seed, Duration::from_secs(3), 4, 3);
            (0..50).map(|_| plan.next_kill()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn without_blobnodes_only_the_other_roles_are_chosen() {
        let mut plan = KillPlan::new(3, Duration::from_secs(1), 0, 1);
        assert!((0..200).all(|_| !matches!(plan.next_kill().victim, Victim::Blobnode(_))));
    }
}
