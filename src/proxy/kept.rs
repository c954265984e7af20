//! The upstream connection a client's HTTP/1.1 connection keeps.
//!
//! A request forwarded through a shared pool crosses tasks twice: it is
//! handed to the task driving the pooled connection, and its response is
//! handed back, each a wake-up and a trip through the scheduler, plus the
//! pool's lookup and return. Here a client connection instead keeps one
//! upstream connection of its own (hyper's `client::conn`), driven on the
//! client connection's task beside it ([`crate::listener::Side`]): request
//! and response pass within one task, and the next request on the client
//! connection finds its upstream connection without a lookup.
//!
//! When the client connection ends, an idle upstream connection is parked
//! ([`Parked`]) for the next client connection to the same upstream, so
//! short client connections do not cost an upstream handshake each. A
//! parked connection is not polled; it is looked at when taken (an upstream
//! that closed it meanwhile is seen then) and by the proxy's housekeeping
//! ([`Parked::sweep`]), and closed after [`PARKED_FOR`]. One left
//! mid-exchange settles on a task of its own first ([`retire`]).
//!
//! HTTP/2 upstreams, WebSocket handshakes and client connections that
//! speak HTTP/2 use the shared pool, as does any request that finds its
//! connection busy.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::client::conn::http1;
use hyper_rustls::MaybeHttpsStream;

use super::connector::Tcp;
use super::trailers::Outbound;
use crate::listener::Side;

pub(super) type Sender = http1::SendRequest<Outbound>;
pub(super) type Connection = http1::Connection<MaybeHttpsStream<Tcp>, Outbound>;

/// A parked connection older than this is closed rather than used: well
/// under the keep-alive timeouts upstream servers commonly use (60–75 s),
/// so keygate closes first.
const PARKED_FOR: Duration = Duration::from_secs(50);
/// Parked connections kept per upstream at most.
const MAX_PARKED: usize = 1024;

/// An idle upstream connection and its sender.
pub(super) struct Pair {
    sender: Sender,
    conn: Pin<Box<Connection>>,
}

/// An idle upstream connection, as [`Parked`] keeps it.
pub(super) trait Idle {
    /// Whether the connection can carry a request now: looked at once
    /// (an upstream's close is read here), with no one to wake.
    fn usable(&mut self) -> bool;
}

impl Idle for Pair {
    fn usable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.conn.as_mut().poll(&mut cx).is_pending() && self.sender.is_ready()
    }
}

/// Idle upstream connections between client connections, one list per
/// upstream (see [`super::upstream::Upstreams`]): hyper's (`Pair`), or the
/// lean path's plain ones.
pub(super) struct Parked<T = Pair> {
    lists: Vec<Mutex<VecDeque<(T, Instant)>>>,
}

impl<T: Idle> Parked<T> {
    pub(super) fn new(upstreams: usize) -> Self {
        Self {
            lists: (0..upstreams).map(|_| Mutex::default()).collect(),
        }
    }

    fn list(&self, pool: usize) -> Option<MutexGuard<'_, VecDeque<(T, Instant)>>> {
        self.lists
            .get(pool)
            .map(|l| l.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The most recently parked connection to `pool` that is still usable.
    pub(super) fn take(&self, pool: usize) -> Option<T> {
        let now = Instant::now();
        loop {
            let (mut pair, since) = self.list(pool)?.pop_back()?;
            if now.duration_since(since) > PARKED_FOR {
                // The rest are older still.
                let stale = std::mem::take(&mut *self.list(pool)?);
                drop(stale);
                return None;
            }
            if pair.usable() {
                return Some(pair);
            }
        }
    }

    /// Closes parked connections that are too old or that their upstream
    /// closed (housekeeping: a connection the upstream closed would
    /// otherwise hold its socket until the next client took it).
    pub(super) fn sweep(&self) {
        let now = Instant::now();
        for pool in 0..self.lists.len() {
            let Some(parked) = self.list(pool).map(|mut l| std::mem::take(&mut *l)) else {
                continue;
            };
            // Looked at (and the dead closed) outside the lock.
            let alive: VecDeque<_> = parked
                .into_iter()
                .filter_map(|(mut pair, since)| {
                    (now.duration_since(since) <= PARKED_FOR && pair.usable())
                        .then_some((pair, since))
                })
                .collect();
            if let Some(mut list) = self.list(pool) {
                // Parked meanwhile: newer, so after the survivors.
                let newer = std::mem::replace(&mut *list, alive);
                list.extend(newer);
            }
        }
    }

    /// Parks `pair` if it is idle; hands it back if not.
    pub(super) fn park(&self, pool: usize, mut pair: T) -> Result<(), T> {
        if !pair.usable() {
            return Err(pair);
        }
        let Some(mut list) = self.list(pool) else {
            return Ok(());
        };
        if list.len() >= MAX_PARKED {
            let oldest = list.pop_front();
            list.push_back((pair, Instant::now()));
            drop(list);
            drop(oldest);
        } else {
            list.push_back((pair, Instant::now()));
        }
        Ok(())
    }
}

/// One client connection's upstream connection.
pub struct Kept {
    shared: Arc<Shared>,
}

struct Shared {
    slot: Mutex<Slot>,
    parked: Arc<Parked>,
}

#[derive(Default)]
struct Slot {
    /// Which upstream the connection goes to.
    pool: usize,
    /// Out while a request is being handed over.
    sender: Option<Sender>,
    conn: Option<Pin<Box<Connection>>>,
    /// The driver is on the client connection's task.
    driven: bool,
}

/// What a request finds.
pub(super) enum Checkout {
    /// A ready sender to `pool`; give it back with [`Kept::give_back`].
    Ready(Sender),
    /// No connection to that upstream: open one and [`Kept::install`] it.
    Connect,
    /// The kept connection is busy (or not yet idle): use the shared pool.
    Busy,
}

impl Kept {
    pub(super) fn new(parked: Arc<Parked>) -> Self {
        Self {
            shared: Arc::new(Shared {
                slot: Mutex::default(),
                parked,
            }),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.shared.slot()
    }

    /// The sender to use for a request to `pool`; a parked connection
    /// taken is driven from now on by `side`'s task.
    pub(super) fn checkout(&self, pool: usize, side: &Side) -> Checkout {
        let mut slot = self.slot();
        if slot.conn.is_some() && slot.pool == pool {
            return match slot.sender.take() {
                Some(s) if s.is_ready() => Checkout::Ready(s),
                Some(s) if !s.is_closed() => {
                    slot.sender = Some(s);
                    Checkout::Busy
                }
                Some(_) => {
                    slot.conn = None;
                    Checkout::Connect
                }
                None => Checkout::Busy,
            };
        }
        // Another upstream, or none yet: retire what is kept.
        let (from, old) = (slot.pool, slot.take_pair());
        slot.conn = None;
        drop(slot);
        if let Some(old) = old {
            retire(&self.shared.parked, from, old);
        }
        match self.shared.parked.take(pool) {
            Some(pair) => {
                self.keep(pool, pair.conn, side);
                Checkout::Ready(pair.sender)
            }
            None => Checkout::Connect,
        }
    }

    /// A new connection to `pool`, driven from now on by `side`'s task.
    pub(super) fn install(&self, pool: usize, conn: Connection, side: &Side) {
        self.keep(pool, Box::pin(conn), side);
    }

    fn keep(&self, pool: usize, conn: Pin<Box<Connection>>, side: &Side) {
        let mut slot = self.slot();
        let old = slot.take_pair();
        slot.pool = pool;
        slot.conn = Some(conn);
        let start = !std::mem::replace(&mut slot.driven, true);
        drop(slot);
        drop(old);
        if start {
            side.run(Driver(Arc::clone(&self.shared)));
        }
    }

    /// Puts the sender back once its request is handed over.
    pub(super) fn give_back(&self, pool: usize, sender: Sender) {
        let mut slot = self.slot();
        if slot.pool == pool && slot.sender.is_none() && slot.conn.is_some() {
            slot.sender = Some(sender);
        }
    }
}

impl Shared {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Slot {
    fn take_pair(&mut self) -> Option<Pair> {
        match (self.sender.take(), self.conn.take()) {
            (Some(sender), Some(conn)) => Some(Pair { sender, conn }),
            _ => None,
        }
    }
}

/// Drives the kept connection on the client connection's task; parks it
/// when the client connection ends.
struct Driver(Arc<Shared>);

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut slot = self.0.slot();
        if let Some(conn) = slot.conn.as_mut() {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
                slot.conn = None;
                slot.sender = None;
            }
        }
        // Never done: a later request may install another connection.
        Poll::Pending
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let (pool, pair) = {
            let mut slot = self.0.slot();
            (slot.pool, slot.take_pair())
        };
        if let Some(pair) = pair {
            retire(&self.0.parked, pool, pair);
        }
    }
}

/// A connection its client connection lets go: parked if idle. One
/// mid-exchange (its last answer's end not yet seen here, or its client
/// gone while the answer was on the way) would, closed at once, be lost to
/// the next client, and an answer still arriving would reset it under the
/// upstream: it settles on a task of its own.
fn retire(parked: &Arc<Parked>, pool: usize, pair: Pair) {
    if let Err(pair) = parked.park(pool, pair) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(settle(Arc::clone(parked), pool, pair));
        }
    }
}

/// How long a connection left mid-exchange may take to finish it.
const SETTLE: Duration = Duration::from_secs(2);

/// Drives a connection left mid-exchange until it is idle (then parked) or
/// closed; one that does not settle within [`SETTLE`] is closed without a
/// reset ([`linger`]).
async fn settle(parked: Arc<Parked>, pool: usize, mut pair: Pair) {
    let idle = tokio::time::timeout(
        SETTLE,
        std::future::poll_fn(|cx| {
            if pair.conn.as_mut().poll(cx).is_ready() {
                return Poll::Ready(false);
            }
            match pair.sender.poll_ready(cx) {
                Poll::Ready(ready) => Poll::Ready(ready.is_ok()),
                Poll::Pending => Poll::Pending,
            }
        }),
    )
    .await;
    let pair = match idle {
        Ok(true) => match parked.park(pool, pair) {
            Ok(()) => return,
            Err(pair) => pair,
        },
        Ok(false) | Err(_) => pair,
    };
    // Closed, or not settling: what the upstream still sends is read
    // before the socket goes, so it never meets a reset.
    linger(pair.conn).await;
}

/// How long a connection given up is drained before it is dropped
/// whatever it holds.
const LINGER: Duration = Duration::from_secs(2);

/// Closes a connection given up mid-exchange without resetting it: our
/// side's FIN, then whatever the upstream still sends is read and
/// discarded until it closes too (at most [`LINGER`]).
async fn linger(conn: Pin<Box<Connection>>) {
    let mut io = Pin::into_inner(conn).into_parts().io;
    let drained = async {
        // Already shut down by hyper if it closed the connection itself.
        let _ =
            std::future::poll_fn(|cx| hyper::rt::Write::poll_shutdown(Pin::new(&mut io), cx)).await;
        let mut scratch = [0u8; 4096];
        loop {
            let mut buf = hyper::rt::ReadBuf::new(&mut scratch);
            std::future::poll_fn(|cx| {
                hyper::rt::Read::poll_read(Pin::new(&mut io), cx, buf.unfilled())
            })
            .await
            .ok()?;
            if buf.filled().is_empty() {
                return Some(());
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drained).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioIo;

    fn parked_len(p: &Parked) -> usize {
        p.list(0).map_or(0, |l| l.len())
    }

    /// A connection to a listener that accepts and holds it: the pair, and
    /// the accepted socket (dropping it closes the upstream's side).
    async fn pair() -> (Pair, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let io = MaybeHttpsStream::Http(Tcp(TokioIo::new(client.unwrap())));
        let (sender, conn) = http1::handshake(io).await.unwrap();
        (
            Pair {
                sender,
                conn: Box::pin(conn),
            },
            accepted.unwrap().0,
        )
    }

    #[tokio::test]
    async fn a_parked_connection_its_upstream_closed_is_swept_and_never_taken() {
        let parked = Parked::new(1);
        let (open, _held) = pair().await;
        let (closing, upstream_side) = pair().await;
        assert!(parked.park(0, open).is_ok());
        assert!(parked.park(0, closing).is_ok());
        assert_eq!(parked_len(&parked), 2);
        parked.sweep();
        assert_eq!(parked_len(&parked), 2, "both are open and fresh");

        drop(upstream_side);
        // Wait for the close to be readable, then for the sweep to see it.
        let mut swept = false;
        for _ in 0..500 {
            parked.sweep();
            if parked_len(&parked) == 1 {
                swept = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(swept, "the closed connection stayed parked");
        // What is left is the open one, and taking it works.
        assert!(parked.take(0).is_some());
        assert!(parked.take(0).is_none());
    }
}
