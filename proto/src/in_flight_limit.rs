//! A bound on a client's calls in flight that sheds the calls beyond it, and only those.
//!
//! Tower's `LoadShed` over a `ConcurrencyLimit` sheds a call whenever the stack below answers
//! `Pending` to `poll_ready`. But tokio's semaphores and channels (the concurrency limit's permits,
//! the channel's request buffer) also answer `Pending` when the calling task has used up its
//! cooperative-scheduling budget, which happens to a task that makes many calls in a row: the
//! deletes of one DeleteObjects request were shed as "service overloaded" on an idle server.
//! This layer sheds only when every permit is taken, checked with `try_acquire` (which spends no
//! budget); otherwise it waits for the service below like any caller.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::load_shed::error::Overloaded;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Wraps a service so that at most `limit` calls through it and its clones are in flight.
#[derive(Clone)]
pub struct InFlightLimitLayer {
    permits: Arc<Semaphore>,
}

impl InFlightLimitLayer {
    pub fn new(limit: usize) -> Self {
        InFlightLimitLayer { permits: Arc::new(Semaphore::new(limit.max(1))) }
    }
}

impl<S> tower::Layer<S> for InFlightLimitLayer {
    type Service = InFlightLimit<S>;

    fn layer(&self, inner: S) -> InFlightLimit<S> {
        InFlightLimit { inner, permits: Arc::clone(&self.permits), admission: Admission::Undecided }
    }
}

pub struct InFlightLimit<S> {
    inner: S,
    permits: Arc<Semaphore>,
    /// The decision for the next call, made in `poll_ready`.
    admission: Admission,
}

enum Admission {
    Undecided,
    Admitted(OwnedSemaphorePermit),
    Shed,
}

impl<S: Clone> Clone for InFlightLimit<S> {
    /// A clone shares the permits but not a decision already made for this one's next call.
    fn clone(&self) -> Self {
        InFlightLimit { inner: self.inner.clone(), permits: Arc::clone(&self.permits), admission: Admission::Undecided }
    }
}

impl<S, R> tower::Service<R> for InFlightLimit<S>
where
    S: tower::Service<R>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if matches!(self.admission, Admission::Undecided) {
            self.admission = match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => Admission::Admitted(permit),
                // Every permit is taken: this call is shed (answered at once by `call`).
                Err(_) => Admission::Shed,
            };
        }
        match self.admission {
            Admission::Shed => Poll::Ready(Ok(())),
            _ => self.inner.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, request: R) -> Self::Future {
        match std::mem::replace(&mut self.admission, Admission::Undecided) {
            Admission::Admitted(permit) => {
                let call = self.inner.call(request);
                Box::pin(async move {
                    let result = call.await.map_err(Into::into);
                    drop(permit);
                    result
                })
            }
            Admission::Shed => Box::pin(std::future::ready(Err(Overloaded::new().into()))),
            Admission::Undecided => {
                Box::pin(std::future::ready(Err("a call was made before the service was ready".into())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tower::{Service, ServiceExt};

    use super::*;

    /// Not ready on its first poll (as a tokio channel is once the task's budget is spent).
    #[derive(Clone)]
    struct NotReadyOnce {
        polls: Arc<AtomicUsize>,
    }

    impl Service<u32> for NotReadyOnce {
        type Response = u32;
        type Error = BoxError;
        type Future = std::future::Ready<Result<u32, BoxError>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            if self.polls.fetch_add(1, Ordering::Relaxed) == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: u32) -> Self::Future {
            std::future::ready(Ok(request))
        }
    }

    #[tokio::test]
    async fn a_service_that_is_briefly_not_ready_is_waited_for_not_shed() {
        let layer = InFlightLimitLayer::new(4);
        let service = tower::Layer::layer(&layer, NotReadyOnce { polls: Arc::default() });
        assert_eq!(service.oneshot(7).await.expect("not shed"), 7);
    }

    #[tokio::test]
    async fn calls_beyond_the_limit_are_shed_and_a_finished_call_frees_its_place() {
        let layer = InFlightLimitLayer::new(1);
        let inner = tower::service_fn(|done: tokio::sync::oneshot::Receiver<()>| async move {
            done.await.map_err(|e| Box::new(e) as BoxError)
        });
        let mut first = tower::Layer::layer(&layer, inner);
        let mut second = first.clone();
        let (finish, done) = tokio::sync::oneshot::channel();
        let running = first.ready().await.expect("ready").call(done);

        let (_never, waiting) = tokio::sync::oneshot::channel();
        let shed = second.ready().await.expect("ready").call(waiting).await;
        let error = shed.expect_err("the limit is taken");
        assert!(error.is::<Overloaded>(), "{error}");

        finish.send(()).expect("send");
        running.await.expect("the first call");
        let (finish, done) = tokio::sync::oneshot::channel();
        finish.send(()).expect("send");
        second.ready().await.expect("ready").call(done).await.expect("room again");
    }
}
