//! One metadata replica's channel with a load figure for tower's power-of-two-choices balancer
//! (`tower::balance::p2c`): the peak-weighted moving average of its answer times, times the calls
//! in flight plus one (tower's `PeakEwma` idea). Unlike `PeakEwma`, a refusal (the not-leader
//! answer), a failed call or a call dropped unanswered counts as a [`PENALTY`]-long answer — so a
//! replica that is down, stopped or too stale to serve is avoided rather than looking fast — and
//! the figure fades back towards [`DEFAULT_RTT`] with time even while no call reaches the replica,
//! so an avoided replica is tried again a few seconds later.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tonic::transport::Channel;
use tower::Service;
use tower::load::Load;

use crate::metadata_client::NOT_LEADER_HEADER;

type HttpRequest = http::Request<tonic::body::Body>;
type HttpResponse = http::Response<tonic::body::Body>;

/// What an unknown replica is assumed to take.
const DEFAULT_RTT: Duration = Duration::from_millis(1);
/// What a refused, failed or abandoned call counts as.
const PENALTY: Duration = Duration::from_secs(1);
/// How fast the figure fades towards the default: a penalty is within 10× of it after ~5 s.
const DECAY: Duration = Duration::from_secs(1);

/// The moving average, in nanoseconds.
#[derive(Debug)]
struct Estimate {
    rtt_ns: f64,
    updated: Instant,
}

impl Estimate {
    fn new(now: Instant) -> Estimate {
        Estimate { rtt_ns: nanos(DEFAULT_RTT), updated: now }
    }

    /// The figure at `now`: the last one, faded towards the default for the time since.
    fn at(&self, now: Instant) -> f64 {
        let weight = (-now.saturating_duration_since(self.updated).as_secs_f64() / DECAY.as_secs_f64()).exp();
        let default = nanos(DEFAULT_RTT);
        default + (self.rtt_ns - default) * weight
    }

    /// A longer answer than the figure replaces it at once (peak); a shorter one moves it.
    fn sample(&mut self, rtt: Duration, now: Instant) {
        let current = self.at(now);
        let sample = nanos(rtt);
        self.rtt_ns = if sample > current { sample } else { (current + sample) / 2.0 };
        self.updated = now;
    }
}

fn nanos(d: Duration) -> f64 {
    d.as_nanos() as f64
}

#[derive(Debug)]
struct Shared {
    estimate: Mutex<Estimate>,
    in_flight: AtomicUsize,
}

/// A replica's channel that keeps its own load figure.
#[derive(Clone)]
pub struct LoadedReplica {
    channel: Channel,
    shared: Arc<Shared>,
}

impl LoadedReplica {
    pub fn new(channel: Channel) -> LoadedReplica {
        let shared = Shared { estimate: Mutex::new(Estimate::new(Instant::now())), in_flight: AtomicUsize::new(0) };
        LoadedReplica { channel, shared: Arc::new(shared) }
    }
}

/// The load figure: comparable between replicas, lower is better.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Cost(f64);

impl Load for LoadedReplica {
    type Metric = Cost;

    fn load(&self) -> Cost {
        let rtt = self.shared.estimate.lock().unwrap_or_else(|e| e.into_inner()).at(Instant::now());
        Cost(rtt * (self.shared.in_flight.load(Ordering::Relaxed) + 1) as f64)
    }
}

/// One call in flight; records its outcome once, a penalty if dropped unanswered.
struct InFlight {
    shared: Arc<Shared>,
    sent: Instant,
    recorded: bool,
}

impl InFlight {
    fn start(shared: Arc<Shared>) -> InFlight {
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { shared, sent: Instant::now(), recorded: false }
    }

    fn record(&mut self, served: bool) {
        let now = Instant::now();
        let rtt = if served { now.saturating_duration_since(self.sent) } else { PENALTY };
        self.shared.estimate.lock().unwrap_or_else(|e| e.into_inner()).sample(rtt, now);
        self.recorded = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.recorded {
            self.record(false);
        }
        self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Service<HttpRequest> for LoadedReplica {
    type Response = HttpResponse;
    type Error = tonic::transport::Error;
    type Future = BoxFuture<'static, Result<HttpResponse, tonic::transport::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.channel.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let mut in_flight = InFlight::start(self.shared.clone());
        let answer = self.channel.call(request);
        Box::pin(async move {
            let result = answer.await;
            let served = matches!(&result, Ok(response) if !response.headers().contains_key(NOT_LEADER_HEADER));
            in_flight.record(served);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_penalty_stands_out_at_once_and_fades_with_time() {
        let start = Instant::now();
        let mut estimate = Estimate::new(start);
        estimate.sample(Duration::from_millis(2), start);
        assert!((estimate.at(start) - 2e6).abs() < 1.0, "a longer answer is taken at once");
        estimate.sample(PENALTY, start);
        assert!(estimate.at(start) > nanos(PENALTY) / 2.0);
        let later = start + 8 * DECAY;
        assert!(estimate.at(later) < nanos(Duration::from_millis(2)), "{}", estimate.at(later));
        assert!(estimate.at(later) >= nanos(DEFAULT_RTT));
        let faded = estimate.at(later);
        estimate.sample(Duration::from_micros(500), later);
        assert!(estimate.at(later) < faded, "shorter answers pull it down");
    }

    #[tokio::test]
    async fn calls_in_flight_and_abandoned_calls_raise_the_load() {
        let channel = crate::metadata_client::lazy_channel("http://127.0.0.1:1", &Default::default()).unwrap();
        let replica = LoadedReplica::new(channel);
        let idle = replica.load();
        let first = InFlight::start(replica.shared.clone());
        assert!(replica.load() > idle, "one call in flight");
        drop(first);
        assert!(replica.load().0 > nanos(PENALTY) / 2.0, "a call dropped unanswered counts as a penalty");
    }
}
