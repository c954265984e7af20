//! The lean HTTP/1.1 path (`server.http1_engine = "lean"`, the default):
//! the common request is served without hyper, every other one handed to
//! hyper with the rest of its connection; requests pipelined, bodies in
//! pieces, and every framing an upstream may answer with, read one way.
//!
//! The client here is a raw socket, so the test sees the bytes keygate
//! writes; the upstream is a raw server answering each path with a framing
//! of its own, so keygate's reading of each is what is tested.

use std::net::SocketAddr;

use http::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::observability::scrape;
use crate::support::Harness;

/// An upstream answering each path with its own framing; `/echo` answers
/// with the head it received and the length of the body.
async fn spawn_framings() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some((head, body)) = read_request(&mut s, &mut buf).await {
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    let answer = framing(&path, &head, &body);
                    if s.write_all(&answer).await.is_err() {
                        return;
                    }
                    if path.ends_with("/eof") || path.ends_with("/bad-chunk") {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn framing(path: &str, head: &str, body: &[u8]) -> Vec<u8> {
    let last = path.rsplit('/').next().unwrap_or("");
    let fixed: &str = match last {
        "chunked" => "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 9\r\n\r\n",
        "eof" => "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the upstream closes",
        "interim" => "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok",
        "both" => "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "two-lengths" => "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
        "switch" => "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
        "bad-chunk" => "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        "hop" => "HTTP/1.1 200 OK\r\nconnection: x-secret, keep-alive\r\nx-secret: 1\r\nkeep-alive: timeout=5\r\nx-request-id: forged\r\ncontent-length: 2\r\n\r\nok",
        _ => {
            let body = serde_json::json!({"head": head, "body_len": body.len()}).to_string();
            return format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes();
        }
    };
    fixed.as_bytes().to_vec()
}

/// One request (head, and a `Content-Length` body) from `s`.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let chunked = head.lines().any(|l| {
                l.split_once(':').is_some_and(|(k, v)| {
                    k.eq_ignore_ascii_case("transfer-encoding") && v.trim() == "chunked"
                })
            });
            buf.drain(..end + 4);
            if chunked {
                return Some((head, read_chunked(s, buf).await?));
            }
            while buf.len() < len {
                let mut chunk = [0u8; 8192];
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf.drain(..len).collect();
            return Some((head, body));
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A chunked request body (no trailers), decoded.
async fn read_chunked(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        while !buf.windows(2).any(|w| w == b"\r\n") {
            let mut chunk = [0u8; 8192];
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let i = buf.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&buf[..i]).ok()?, 16).ok()?;
        while buf.len() < i + 2 + size + 2 {
            let mut chunk = [0u8; 8192];
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        body.extend_from_slice(&buf[i + 2..i + 2 + size]);
        buf.drain(..i + 2 + size + 2);
        if size == 0 {
            return Some(body);
        }
    }
}

/// A response as the client read it.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Names lower-cased, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A raw client connection to keygate.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn to(addr: SocketAddr) -> Raw {
        Raw {
            s: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// More bytes; false when keygate closed the connection.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.s.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Some(line);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    async fn fields(&mut self) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                return Some(out);
            }
            let (k, v) = line.split_once(':').expect("a field line");
            out.push((k.to_ascii_lowercase(), v.trim().to_string()));
        }
    }

    /// The next response, read strictly; `None` when the connection ended
    /// before a whole one. `head`: the request was a HEAD.
    async fn answer(&mut self, head: bool) -> Option<Answer> {
        let status_line = self.line().await?;
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
        let status: u16 = parts.next()?.parse().ok()?;
        let headers = self.fields().await?;
        let mut a = Answer {
            status,
            headers,
            body: Vec::new(),
            trailers: Vec::new(),
        };
        if head || status == 204 || status == 304 {
            return Some(a);
        }
        if a.header("transfer-encoding") == Some("chunked") {
            assert!(a.header("content-length").is_none(), "{a:?}");
            loop {
                let size = usize::from_str_radix(&self.line().await?, 16).expect("a size line");
                if size == 0 {
                    a.trailers = self.fields().await?;
                    return Some(a);
                }
                a.body.extend(self.exact(size).await?);
                assert_eq!(self.exact(2).await?, b"\r\n");
            }
        }
        let len: usize = a
            .header("content-length")
            .expect("a framed answer")
            .parse()
            .unwrap();
        a.body = self.exact(len).await?;
        Some(a)
    }

    /// Whether keygate closed the connection (nothing more arrives).
    async fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill().await
    }
}

const KEYGATE_ROUTE: &str = r#"
[[routes]]
name = "raw"
prefix = "/raw"
upstream = "http://{RAW}"
public = true
"#;

async fn start() -> Harness {
    let raw = spawn_framings().await;
    Harness::start(&KEYGATE_ROUTE.replace("{RAW}", &raw.to_string())).await
}

fn lean_counts(s: &crate::observability::Scrape) -> (f64, f64) {
    (
        s.get("keygate_lean_requests_total", &[]),
        s.get("keygate_lean_handoffs_total", &[]),
    )
}

/// Whether this run serves HTTP/1.1 on the lean path (CI runs these tests
/// again with `http1_engine = "hyper"`, where the framing checks hold too).
fn lean_on() -> bool {
    std::env::var("KEYGATE_TEST_HTTP1_ENGINE").map_or(true, |v| v == "lean")
}

#[tokio::test]
async fn common_requests_stay_on_the_lean_path_and_the_rest_go_to_hyper_mid_connection() {
    let h = start().await;
    let before = lean_counts(&scrape(&h).await);
    let mut c = Raw::to(h.public_addr()).await;
    c.write(b"GET /raw/echo HTTP/1.1\r\nhost: k\r\n\r\n").await;
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.status, 200);
    // A chunked request body is hyper's: the connection goes there, and
    // serves the request and the ones after it.
    c.write(b"POST /raw/echo HTTP/1.1\r\nhost: k\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /raw/echo HTTP/1.1\r\nhost: k\r\n\r\n").await;
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["body_len"], 3);
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.status, 200);
    let after = lean_counts(&scrape(&h).await);
    if lean_on() {
        assert_eq!(after.0 - before.0, 1.0, "lean requests");
        assert_eq!(after.1 - before.1, 1.0, "hand-offs");
    } else {
        assert_eq!(after, (0.0, 0.0));
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_each_on_its_own() {
    let h = start().await;
    let org = h.create_org("lean-pipe").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;
    let mut c = Raw::to(h.public_addr()).await;
    let reqs = format!(
        "GET /orders/1 HTTP/1.1\r\nhost: k\r\nauthorization: Bearer {key}\r\n\r\n\
         GET /orders/2 HTTP/1.1\r\nhost: k\r\nauthorization: Bearer kg_wrong\r\n\r\n\
         POST /raw/echo HTTP/1.1\r\nhost: k\r\ncontent-length: 5\r\n\r\nhello\
         GET /nowhere HTTP/1.1\r\nhost: k\r\n\r\n\
         GET /raw/echo HTTP/1.1\r\nhost: k\r\n\r\n"
    );
    c.write(reqs.as_bytes()).await;
    let mut ids = Vec::new();
    for (i, want) in [200, 401, 200, 404, 200].into_iter().enumerate() {
        let a = c.answer(false).await.unwrap();
        assert_eq!(a.status, want, "{a:?}");
        ids.push(a.header("x-request-id").unwrap().to_string());
        // The POST reached the raw upstream with its body, and the GET
        // after it arrived as a request of its own.
        if i == 2 || i == 4 {
            let j = a.json();
            let head = j["head"].as_str().unwrap();
            let (method, len) = if i == 2 { ("POST ", 5) } else { ("GET ", 0) };
            assert!(head.starts_with(method), "{j}");
            assert_eq!(j["body_len"], len, "{j}");
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "one request id each");
}

#[tokio::test]
async fn a_body_in_pieces_reaches_the_upstream_whole_and_the_connection_goes_on() {
    let h = start().await;
    let mut c = Raw::to(h.public_addr()).await;
    let body = vec![b'x'; 100_000];
    c.write(b"POST /raw/echo HTTP/1.1\r\nhost: k\r\ncontent-length: 100000\r\n\r\nxx")
        .await;
    for piece in body[2..].chunks(7_001) {
        c.write(piece).await;
        tokio::task::yield_now().await;
    }
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["body_len"], 100_000);
    c.write(b"GET /raw/echo HTTP/1.1\r\nhost: k\r\n\r\n").await;
    assert_eq!(c.answer(false).await.unwrap().status, 200);
}

#[tokio::test]
async fn every_upstream_framing_reaches_the_client_framed_one_way() {
    let h = start().await;
    let mut c = Raw::to(h.public_addr()).await;
    // Chunked: re-framed, extensions dropped; trailers only when asked for.
    c.write(b"GET /raw/chunked HTTP/1.1\r\nhost: k\r\n\r\n")
        .await;
    let a = c.answer(false).await.unwrap();
    assert_eq!((a.status, a.body.as_slice()), (200, &b"hello world"[..]));
    assert!(a.trailers.is_empty(), "{a:?}");
    c.write(b"GET /raw/chunked HTTP/1.1\r\nhost: k\r\nte: trailers\r\n\r\n")
        .await;
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.body, b"hello world");
    if lean_on() {
        assert_eq!(a.trailers, [("x-sum".to_string(), "9".to_string())]);
    }
    // Both framings: Transfer-Encoding wins, the length is not passed on.
    c.write(b"GET /raw/both HTTP/1.1\r\nhost: k\r\n\r\n").await;
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.body, b"abc");
    // Interim answers are dropped.
    c.write(b"GET /raw/interim HTTP/1.1\r\nhost: k\r\n\r\n")
        .await;
    let a = c.answer(false).await.unwrap();
    assert_eq!((a.status, a.body.as_slice()), (201, &b"ok"[..]));
    assert!(a.header("link").is_none());
    // Hop-by-hop fields stay behind, the ones `Connection` names too, and
    // the request id is keygate's.
    c.write(b"GET /raw/hop HTTP/1.1\r\nhost: k\r\nx-request-id: mine-1\r\n\r\n")
        .await;
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.status, 200);
    for gone in ["x-secret", "keep-alive"] {
        assert!(a.header(gone).is_none(), "{gone}: {a:?}");
    }
    assert_eq!(a.all("x-request-id"), ["mine-1"]);
    // Until the upstream closes: chunked to the client, whose connection
    // carries on.
    c.write(b"GET /raw/eof HTTP/1.1\r\nhost: k\r\n\r\n").await;
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.body, b"until the upstream closes");
    c.write(b"HEAD /raw/echo HTTP/1.1\r\nhost: k\r\n\r\n").await;
    let a = c.answer(true).await.unwrap();
    assert_eq!(a.status, 200);
    assert!(a.header("content-length").is_some(), "{a:?}");
    c.write(b"GET /raw/echo HTTP/1.1\r\nhost: k\r\nconnection: close\r\n\r\n")
        .await;
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.header("connection"), Some("close"));
    assert!(c.closed().await);
}

#[tokio::test]
async fn an_upstream_answer_that_reads_two_ways_is_a_bad_gateway() {
    let h = start().await;
    let mut c = Raw::to(h.public_addr()).await;
    for path in ["two-lengths", "switch"] {
        c.write(format!("GET /raw/{path} HTTP/1.1\r\nhost: k\r\n\r\n").as_bytes())
            .await;
        let a = c.answer(false).await.unwrap();
        assert_eq!(a.status, 502, "{path}: {a:?}");
    }
    // Framing that breaks mid-body: the head has gone, so the client's
    // connection is closed before the answer completes.
    c.write(b"GET /raw/bad-chunk HTTP/1.1\r\nhost: k\r\n\r\n")
        .await;
    assert!(c.answer(false).await.is_none());
    let mut c = Raw::to(h.public_addr()).await;
    c.write(b"GET /raw/echo HTTP/1.1\r\nhost: k\r\n\r\n").await;
    assert_eq!(c.answer(false).await.unwrap().status, 200);
}

#[tokio::test]
async fn a_refusal_before_the_body_closes_and_a_slow_head_is_dropped() {
    let h = Harness::start_with(
        crate::support::test_store().await,
        "",
        &[("KEYGATE_SERVER__HEADER_READ_TIMEOUT", "500ms")],
    )
    .await;
    let mut c = Raw::to(h.public_addr()).await;
    c.write(b"POST /orders/1 HTTP/1.1\r\nhost: k\r\nauthorization: Bearer kg_no\r\ncontent-length: 50\r\n\r\n").await;
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.status, StatusCode::UNAUTHORIZED.as_u16());
    assert_eq!(a.header("connection"), Some("close"));
    assert!(c.closed().await);
    // Half a head, then nothing: dropped after the head timeout, with no
    // answer.
    let mut c = Raw::to(h.public_addr()).await;
    c.write(b"GET /open/x HTTP/1.1\r\nhost: k\r\n").await;
    assert!(c.closed().await);
    // A whole request after an idle spell shorter than that is served.
    let mut c = Raw::to(h.public_addr()).await;
    c.write(b"GET /open/x HTTP/1.1\r\nhost: k\r\n\r\n").await;
    assert_eq!(c.answer(false).await.unwrap().status, 200);
    c.write(b"GET /open/y HTTP/1.1\r\nhost: k\r\n\r\n").await;
    assert_eq!(c.answer(false).await.unwrap().status, 200);
}

/// How the upstream's side of one connection ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// Its answer written whole, then the peer closed (FIN).
    Closed,
    /// Its write or read failed: the peer reset the connection.
    Reset,
}

#[tokio::test]
async fn a_client_that_leaves_mid_answer_costs_the_upstream_no_reset() {
    // An upstream whose every answer is 4 MB, which reports how each of
    // its connections ended.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    let (tx, mut ended) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut how = Ended::Closed;
                while read_request(&mut s, &mut buf).await.is_some() {
                    let body = vec![b'z'; 4 << 20];
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                    if s.write_all(head.as_bytes()).await.is_err()
                        || s.write_all(&body).await.is_err()
                    {
                        how = Ended::Reset;
                        break;
                    }
                }
                let mut rest = [0u8; 64];
                if how == Ended::Closed && s.read(&mut rest).await.is_err() {
                    how = Ended::Reset;
                }
                let _ = tx.send(how);
            });
        }
    });
    let h = Harness::start(&KEYGATE_ROUTE.replace("{RAW}", &up.to_string())).await;
    let mut c = Raw::to(h.public_addr()).await;
    c.write(b"GET /raw/big HTTP/1.1\r\nhost: k\r\n\r\n").await;
    let status = c.line().await.unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // Gone after the head, most of the body unread.
    drop(c);
    assert_eq!(ended.recv().await, Some(Ended::Closed));
}

#[tokio::test]
async fn the_token_endpoint_is_answered_on_the_lean_path_and_too_large_a_form_by_hyper() {
    let h = start().await;
    let (_, id, secret) = crate::oauth::client(&h, &["orders:read"]).await;
    let auth = crate::oauth::basic(&id, &secret);
    let form = "grant_type=client_credentials&audience=orders-api";
    let before = lean_counts(&scrape(&h).await);
    let mut c = Raw::to(h.public_addr()).await;
    // A token request, then a request with the token, pipelined.
    c.write(
        format!(
            "POST /oauth2/token HTTP/1.1\r\nhost: k\r\nauthorization: {auth}\r\n\
             content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{form}\
             POST /oauth2/token HTTP/1.1\r\nhost: k\r\nauthorization: {auth}\r\n\
             content-type: application/x-www-form-urlencoded\r\ncontent-length: 9\r\n\r\ngrant_typ",
            form.len()
        )
        .as_bytes(),
    )
    .await;
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.header("x-request-id").is_some());
    let token = a.json()["access_token"].as_str().unwrap().to_string();
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(a.json()["error"], "invalid_request");
    c.write(
        format!("GET /orders/1 HTTP/1.1\r\nhost: k\r\nauthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert_eq!(c.answer(false).await.unwrap().status, 200);
    // A form past the endpoint's limit: hyper's, which refuses it.
    let big = format!("grant_type=client_credentials&pad={}", "x".repeat(20_000));
    c.write(
        format!(
            "POST /oauth2/token HTTP/1.1\r\nhost: k\r\nauthorization: {auth}\r\n\
             content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{big}",
            big.len()
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(c.answer(false).await.unwrap().status, 413);
    let after = lean_counts(&scrape(&h).await);
    if lean_on() {
        assert_eq!(after.0 - before.0, 3.0, "lean requests");
        assert_eq!(after.1 - before.1, 1.0, "hand-offs");
    }
}

/// An upstream that answers 413 as soon as it has a request's head, and
/// then, on `/raw/close`, closes without reading the body, or on
/// `/raw/hold`, keeps the connection open and reads nothing more.
async fn spawn_early_refuser() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if !matches!(s.read(&mut byte).await, Ok(1)) {
                        return;
                    }
                    head.push(byte[0]);
                }
                let hold = String::from_utf8_lossy(&head).contains(" /raw/hold ");
                let answer = b"HTTP/1.1 413 Content Too Large\r\ncontent-type: text/plain\r\ncontent-length: 8\r\n\r\ntoo big!";
                if s.write_all(answer).await.is_err() || !hold {
                    return;
                }
                // Held open, unread, until the test's runtime ends.
                std::future::pending::<()>().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_upstream_that_answers_before_the_body_is_sent_is_heard_and_both_connections_end() {
    // Lean path only: on hyper's path the closing upstream's answer is a
    // 502, and the holding one's 413 arrives but the client's connection
    // stays open while the client sends.
    if !lean_on() {
        return;
    }
    let up = spawn_early_refuser().await;
    // Far more body than the socket buffers between client and upstream
    // hold: keygate cannot finish sending it before it must read the answer.
    let len = 64 << 20;
    let h = Harness::start_with(
        crate::support::test_store().await,
        &KEYGATE_ROUTE.replace("{RAW}", &up.to_string()),
        &[("KEYGATE_SERVER__MAX_BODY_BYTES", &(len * 2).to_string())],
    )
    .await;
    for path in ["/raw/close", "/raw/hold"] {
        let c = TcpStream::connect(h.public_addr()).await.unwrap();
        let (mut rd, mut wr) = c.into_split();
        let head = format!("POST {path} HTTP/1.1\r\nhost: k\r\ncontent-length: {len}\r\n\r\n");
        let writer = tokio::spawn(async move {
            wr.write_all(head.as_bytes()).await.unwrap();
            let piece = vec![b'b'; 64 << 10];
            let mut sent = 0;
            while sent < len {
                // keygate stops reading once the answer is in: expected.
                if wr.write_all(&piece).await.is_err() {
                    break;
                }
                sent += piece.len();
            }
            wr
        });
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        // Everything keygate writes, until it closes the connection.
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 413 "),
            "{path}: the upstream's answer, not a gateway error: {text:?}"
        );
        assert!(text.ends_with("\r\n\r\ntoo big!"), "{path}: {text:?}");
        assert!(
            text.to_ascii_lowercase()
                .contains("\r\nconnection: close\r\n"),
            "{path}: the body was left unread, so the connection ends: {text:?}"
        );
        writer.abort();
    }
    // A request after them is served on a fresh upstream connection.
    let mut c = Raw::to(h.public_addr()).await;
    c.write(b"POST /raw/close HTTP/1.1\r\nhost: k\r\ncontent-length: 3\r\n\r\nabc")
        .await;
    assert_eq!(c.answer(false).await.unwrap().status, 413);
}

/// An upstream that answers every request but `/raw/vanish`, which it
/// reads whole and then closes the connection without answering.
async fn spawn_vanisher() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some((head, body)) = read_request(&mut s, &mut buf).await {
                    if head.contains(" /raw/vanish ") {
                        return;
                    }
                    if s.write_all(&framing("/raw/echo", &head, &body))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_kept_upstream_that_closes_after_a_long_body_is_a_bad_gateway_not_a_truncated_retry() {
    // A kept connection that fails with nothing received is tried again on
    // a fresh one only when the whole request is still at hand. A body
    // longer than one read is not: sent again, the head would go with part
    // of its body, and the upstream would wait for the rest until keygate
    // timed out (504).
    let up = spawn_vanisher().await;
    let h = Harness::start(&KEYGATE_ROUTE.replace("{RAW}", &up.to_string())).await;
    let mut c = Raw::to(h.public_addr()).await;
    c.write(b"GET /raw/first HTTP/1.1\r\nhost: k\r\n\r\n").await;
    assert_eq!(c.answer(false).await.unwrap().status, 200);
    // On the kept connection, far more body than keygate reads at once.
    let len = 1 << 20;
    let mut req = format!("POST /raw/vanish HTTP/1.1\r\nhost: k\r\ncontent-length: {len}\r\n\r\n")
        .into_bytes();
    req.extend(std::iter::repeat_n(b'v', len));
    c.write(&req).await;
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.status, StatusCode::BAD_GATEWAY.as_u16(), "{a:?}");
}
