//! Work a connection's requests leave to the connection's own task: the
//! proxy's upstream connection, driven with the same wake-ups as the
//! client's, so a proxied HTTP/1.1 exchange never crosses tasks. Polled
//! beside the connection until it finishes; dropped when the connection
//! ends, whatever it was doing.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One piece of side work at a time (a connection's requests run one after
/// another on HTTP/1.1, and only those hand work here).
#[derive(Default)]
pub struct Side {
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    work: Option<Work>,
    /// The connection task's, to wake when work arrives from elsewhere.
    waker: Option<Waker>,
}

impl std::fmt::Debug for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Side")
            .field("busy", &self.slot().work.is_some())
            .finish()
    }
}

impl Side {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `work` to the connection's task, in place of any before it
    /// (which is dropped).
    pub fn run(&self, work: impl Future<Output = ()> + Send + 'static) {
        let mut slot = self.slot();
        slot.work = Some(Box::pin(work));
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
    }

    /// Polls the work, if any, on the connection's task.
    pub(super) fn poll(&self, cx: &mut Context<'_>) {
        let mut slot = self.slot();
        match slot.work.as_mut() {
            Some(work) => {
                if work.as_mut().poll(cx).is_ready() {
                    slot.work = None;
                }
            }
            // Nothing yet; `run` may be called from a task of its own.
            None => {
                if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    slot.waker = Some(cx.waker().clone());
                }
            }
        }
    }

    /// Drops the work: the connection is over.
    pub(super) fn end(&self) {
        let work = {
            let mut slot = self.slot();
            slot.waker = None;
            slot.work.take()
        };
        // Dropped outside the lock: its drop may take locks of its own.
        drop(work);
    }
}

/// A connection's future with its side work polled beside it, on the same
/// task: side work first (a response that arrived upstream reaches its
/// request at once), then the connection, then side work again (a request
/// the connection just handed over is written at once).
pub(super) struct WithSide<'s, F> {
    pub(super) conn: Pin<&'s mut F>,
    pub(super) side: &'s Side,
}

impl<F: Future> Future for WithSide<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let side = self.side;
        side.poll(cx);
        match self.conn.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready(out),
            Poll::Pending => {
                side.poll(cx);
                Poll::Pending
            }
        }
    }
}
