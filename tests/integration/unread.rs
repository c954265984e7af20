//! An answer given before the request body was read says
//! `Connection: close`: the connection cannot carry another request, and a
//! client that reused it would see it closed with no answer (a race that
//! made official clients fail now and then). Answers to requests whose
//! body was read keep the connection.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::Harness;

/// One raw HTTP/1.1 request with a body; the answer's head, lowercased.
async fn head_of(addr: SocketAddr, method: &str, path: &str, auth: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "closed before an answer: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_body_was_read_closes_the_connection() {
    let h = Harness::start("").await;
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(64 * 1024));
    // Refused before the body is read: admin (a bad key), proxy (a bad key).
    for (addr, path) in [
        (h.admin_addr(), "/v1/organizations"),
        (h.public_addr(), "/orders/1"),
    ] {
        let head = head_of(addr, "POST", path, "Bearer kg_nope", &big).await;
        assert!(head.starts_with("http/1.1 401"), "{head}");
        assert!(head.contains("connection: close"), "{path}: {head}");
    }
    // Read, then answered: the connection stays open for the next request.
    let auth = format!("Bearer {}", h.admin_key);
    let head = head_of(
        h.admin_addr(),
        "POST",
        "/v1/organizations",
        &auth,
        &format!("{{\"name\": \"{}\"}}", h.unique_name()),
    )
    .await;
    assert!(head.starts_with("http/1.1 201"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    // A refusal of a request with no body keeps it too.
    let head = head_of(
        h.admin_addr(),
        "GET",
        "/v1/organizations",
        "Bearer kg_nope",
        "",
    )
    .await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
}
