//! A client's HTTP/1.1 connection keeps an upstream connection of its own:
//! its requests all go on it, another client connection never shares it
//! while it is in use, it is parked for the next client when the client
//! leaves, and an upstream that closes it, or never answers, costs the
//! client no more than that one request.
//!
//! The upstream here is a raw HTTP/1.1 server that answers every request
//! with the port of the connection it arrived on, so the test sees which
//! upstream connection carried what.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::Harness;

/// What the upstream saw.
#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    /// Connections the upstream closed itself (`/drop`).
    dropped: AtomicUsize,
    /// Connections that ended with a reset from keygate's side.
    resets: AtomicUsize,
    /// Connections whose handler is done, however they ended.
    ended: AtomicUsize,
    /// Connections that answered and wait for a next request.
    waiting: AtomicUsize,
    /// `/slow` answers sent whole.
    slow_answered: AtomicUsize,
}

/// Reads one request head (these requests have no body): `Ok(None)` when
/// the peer closed.
async fn try_read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<String>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Ok(Some(head));
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await? {
            0 => return Ok(None),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    try_read_head(s, buf).await.ok().flatten()
}

/// The upstream: `{"port", "nth", "host"}` for every request; `/close`
/// answers with `Connection: close`; `/drop` answers, then closes without
/// saying so; `/hang` never answers.
async fn spawn_peer() -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let counts = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut s, peer)) = listener.accept().await {
            counts.accepted.fetch_add(1, Ordering::SeqCst);
            let counts = Arc::clone(&counts);
            tokio::spawn(async move {
                serve_peer(&mut s, peer, &counts).await;
                counts.ended.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, seen)
}

async fn serve_peer(s: &mut TcpStream, peer: SocketAddr, counts: &Seen) {
    let mut buf = Vec::new();
    let mut nth = 0;
    loop {
        if nth > 0 {
            counts.waiting.fetch_add(1, Ordering::SeqCst);
        }
        let read = try_read_head(s, &mut buf).await;
        if nth > 0 {
            counts.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        let head = match read {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(e) => {
                if e.kind() == std::io::ErrorKind::ConnectionReset {
                    counts.resets.fetch_add(1, Ordering::SeqCst);
                }
                return;
            }
        };
        nth += 1;
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        let host = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("host").then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        if path.ends_with("/hang") {
            // Hold the connection, answer nothing.
            let _ = read_head(s, &mut buf).await;
            return;
        }
        let body = serde_json::json!({"port": peer.port(), "nth": nth, "host": host}).to_string();
        let close = path.ends_with("/close");
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n{}\r\n",
            body.len(),
            if close { "connection: close\r\n" } else { "" },
        );
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        if path.ends_with("/slow") {
            // The body a moment after the head: the client may be gone.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if s.write_all(body.as_bytes()).await.is_err() {
            return;
        }
        if path.ends_with("/slow") {
            // Time for a reset, if keygate's side answers the body with
            // one, to arrive before the next read.
            tokio::time::sleep(Duration::from_millis(100)).await;
            counts.slow_answered.fetch_add(1, Ordering::SeqCst);
        }
        if close || path.ends_with("/drop") {
            let _ = s.shutdown().await;
            counts.dropped.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
}

/// A raw keep-alive client connection to keygate.
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn open(addr: SocketAddr) -> Self {
        Self {
            s: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    /// `GET path`: the status and the JSON body.
    async fn get(&mut self, path: &str) -> (u16, Value) {
        let req = format!("GET {path} HTTP/1.1\r\nhost: keygate.test\r\n\r\n");
        self.s.write_all(req.as_bytes()).await.unwrap();
        let head = read_head(&mut self.s, &mut self.buf)
            .await
            .expect("keygate closed the connection before answering");
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .expect("content-length");
        while self.buf.len() < len {
            let mut chunk = [0u8; 4096];
            let n = self.s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed inside the body");
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body: Vec<u8> = self.buf.drain(..len).collect();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// The upstream port that carried a `GET path` answered 200.
    async fn port(&mut self, path: &str) -> u64 {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        body["port"].as_u64().unwrap()
    }
}

async fn start(peer: SocketAddr) -> Harness {
    Harness::start(&format!(
        r#"
[[routes]]
name = "peer"
prefix = "/peer"
upstream = "http://{peer}"
public = true
"#
    ))
    .await
}

/// Waits (up to 10 s) until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

fn kept_mode() -> bool {
    std::env::var("KEYGATE_TEST_UPSTREAM_REUSE").map_or(true, |v| v == "connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connection_keeps_its_upstream_connection_and_parks_it_when_it_leaves() {
    if !kept_mode() {
        return;
    }
    let (peer, seen) = spawn_peer().await;
    let h = start(peer).await;
    let mut first = Client::open(h.public_addr()).await;
    let p1 = first.port("/peer/a").await;
    for n in 2..=5 {
        let (status, body) = first.get("/peer/b").await;
        assert_eq!(status, 200);
        assert_eq!(
            body["port"].as_u64(),
            Some(p1),
            "request {n} changed connection"
        );
        assert_eq!(body["nth"].as_u64(), Some(n), "request {n}");
    }
    // The upstream is named in `Host`, as the pooled client names it.
    assert_eq!(first.get("/peer/c").await.1["host"], peer.to_string());
    // Another client connection, while the first is open: never its
    // upstream connection.
    let mut second = Client::open(h.public_addr()).await;
    let p2 = second.port("/peer/a").await;
    assert_ne!(p1, p2);
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 2);

    // The first client leaves: its upstream connection is parked, and a
    // later client connection is served on it with no new handshake.
    drop(first);
    let mut waiting = Vec::new();
    loop {
        let mut next = Client::open(h.public_addr()).await;
        if next.port("/peer/a").await == p1 {
            break;
        }
        // Not parked yet (keygate has not seen the close): keep this one
        // open so its own connection stays out of the parked list.
        waiting.push(next);
        assert!(
            waiting.len() < 200,
            "the first client's connection was never reused"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 2 + waiting.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_closes_or_hangs_costs_the_client_nothing_more() {
    let (peer, seen) = spawn_peer().await;
    let h = start(peer).await;
    let mut c = Client::open(h.public_addr()).await;

    // Closed with `Connection: close`, then closed without a word: the next
    // request on the same client connection goes on a new upstream
    // connection, with no error.
    let p1 = c.port("/peer/close").await;
    until("the upstream closed", || {
        seen.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    let p2 = c.port("/peer/a").await;
    assert_ne!(p1, p2);
    c.port("/peer/drop").await;
    until("the upstream dropped", || {
        seen.dropped.load(Ordering::SeqCst) == 2
    })
    .await;
    let p3 = c.port("/peer/a").await;
    assert_ne!(p2, p3);

    // A connection the upstream closes while it is parked is not handed
    // to the next client.
    let mut leaving = Client::open(h.public_addr()).await;
    leaving.port("/peer/drop").await;
    drop(leaving);
    until("the upstream dropped", || {
        seen.dropped.load(Ordering::SeqCst) == 3
    })
    .await;
    for _ in 0..3 {
        let mut next = Client::open(h.public_addr()).await;
        next.port("/peer/a").await;
    }

    // An upstream that never answers: 504 within request_timeout, and the
    // client's next request is served (on another connection).
    let (status, _) = c.get("/peer/hang").await;
    assert_eq!(status, 504);
    let p4 = c.port("/peer/a").await;
    assert_ne!(p3, p4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_answer_does_not_reset_the_upstream_connection() {
    if !kept_mode() {
        return;
    }
    let (peer, seen) = spawn_peer().await;
    let h = start(peer).await;
    // Clients that ask for one answer and hang up after its first bytes
    // (a health check reading the status line), while the upstream's body
    // is still on its way. This pins the property; the timing under which
    // the soak (benches/soak.sh) saw resets before connections left
    // mid-exchange were settled is not reproduced here, so this test
    // passes with or without `kept::retire`'s settling.
    for _ in 0..20 {
        let mut s = TcpStream::connect(h.public_addr()).await.unwrap();
        s.write_all(b"GET /peer/slow HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut status = [0u8; 12];
        s.read_exact(&mut status).await.unwrap();
        assert_eq!(&status, b"HTTP/1.1 200");
    }
    // Every upstream connection either waits, parked, for a next request or
    // was closed the way a client closes (its FIN, after what was sent was
    // read): the upstream never meets a reset.
    until("every answer sent and its connection settled", || {
        seen.slow_answered.load(Ordering::SeqCst) == 20
            && seen.ended.load(Ordering::SeqCst) + seen.waiting.load(Ordering::SeqCst)
                == seen.accepted.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(seen.resets.load(Ordering::SeqCst), 0);
    let mut next = Client::open(h.public_addr()).await;
    next.port("/peer/a").await;
}
