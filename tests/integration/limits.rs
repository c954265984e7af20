//! Limits under load, against the real binary: slowloris and connection
//! floods on both listeners, a request with 10,000 headers, a 1 GiB body
//! streamed at a route with `max_body_bytes`. keygate keeps serving other
//! clients, with bounded memory; the figures each prints are the ones in
//! benches/README.md.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::crash::{boot_as, Node};
use http_body_util::BodyExt;

/// keygate's resident memory, from /proc.
fn rss_mib(node: &Node) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.pid())).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

/// An upstream that reads every request body to its end before answering,
/// as an upload endpoint does.
async fn draining_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let read = req.into_body().collect().await.map(|b| b.to_bytes().len());
                        let body = format!("{read:?}");
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(body)),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn start(env: &[(&str, &str)]) -> (tempfile::TempDir, Node, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("keygate.db").display());
    let upstream = draining_upstream().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_keygate"));
    command.envs(env.iter().copied());
    let node = boot_as(dir.path(), &store, upstream, command).await;
    let (_, org) = node
        .call(
            "POST",
            "/v1/organizations",
            Some(json!({ "name": "limits" })),
        )
        .await
        .unwrap();
    let body = json!({ "organization_id": org["id"], "name": "steady" });
    let (status, account) = node
        .call("POST", "/v1/service-accounts", Some(body))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let key = account["api_key"]["value"].as_str().unwrap().to_string();
    (dir, node, key)
}

/// p50, p99 and max of `samples`, in milliseconds.
fn spread(samples: &mut [Duration]) -> (f64, f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99), at(1.0))
}

/// `n` requests from a well-behaved client, alternating the proxy and the
/// admin API; every one must succeed.
async fn steady(node: &Node, key: &str, n: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        if i % 2 == 0 {
            assert_eq!(node.key_status(key).await, StatusCode::OK);
        } else {
            let (status, body) = node
                .call("GET", "/v1/organizations", None)
                .await
                .expect("admin answers");
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        took.push(started.elapsed());
    }
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_and_connection_floods_on_both_listeners_leave_other_clients_served() {
    let (_dir, node, key) = start(&[("KEYGATE_SERVER__HEADER_READ_TIMEOUT", "2s")]).await;
    let quiet = spread(&mut steady(&node, &key, 200).await);
    let rss_before = rss_mib(&node);

    // 200 connections per listener: half send a request head one byte every
    // 100 ms and never finish it, half connect and say nothing.
    let mut attackers = Vec::new();
    for addr in [node.public, node.admin] {
        for i in 0..200 {
            attackers.push(tokio::spawn(async move {
                // A connect the backlog refused is no slow connection held.
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    return Some(Duration::ZERO);
                };
                let opened = Instant::now();
                let head = b"GET /orders/1 HTTP/1.1\r\nHost: x\r\nX-Slow: ";
                let mut buf = [0u8; 256];
                for n in 0.. {
                    if i % 2 == 0 {
                        let byte = head.get(n).copied().unwrap_or(b'a');
                        if s.write_all(&[byte]).await.is_err() {
                            return Some(opened.elapsed());
                        }
                    }
                    // Closed (EOF or reset) or answered (408): dropped.
                    match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
                        Ok(_) => return Some(opened.elapsed()),
                        Err(_) if opened.elapsed() > Duration::from_secs(30) => {
                            eprintln!("kept: {addr} kind {} after {n} bytes", i % 2);
                            return None;
                        }
                        Err(_) => {}
                    }
                }
                None
            }));
        }
    }
    let under_attack = spread(&mut steady(&node, &key, 200).await);
    let rss_during = rss_mib(&node);
    let mut dropped_after = Vec::new();
    for a in attackers {
        dropped_after.push(
            a.await
                .unwrap()
                .expect("a slow connection was kept past 30 s"),
        );
    }
    let dropped = spread(&mut dropped_after);
    let after = spread(&mut steady(&node, &key, 200).await);
    let rss_after = rss_mib(&node);
    eprintln!(
        "slowloris/flood, 400 connections: normal client p50/p99/max ms quiet {quiet:.1?}, \
         under attack {under_attack:.1?}, after {after:.1?}; slow connections dropped after \
         p50/p99/max ms {dropped:.0?}; RSS MiB {rss_before:.1} -> {rss_during:.1} -> {rss_after:.1}"
    );
    // header_read_timeout = 2 s: every slow head is cut, none much later.
    assert!(dropped.2 < 5_000.0, "{dropped:?}");
    assert!(
        under_attack.1 < 1_000.0,
        "normal clients slowed to {under_attack:?}"
    );
    assert!(
        rss_during - rss_before < 64.0,
        "RSS {rss_before} -> {rss_during} MiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_ten_thousand_headers_is_refused_on_both_listeners() {
    let (_dir, node, key) = start(&[]).await;
    let mut head = String::from("GET /orders/1 HTTP/1.1\r\nHost: x\r\n");
    for i in 0..10_000 {
        head.push_str(&format!("X-H{i}: v\r\n"));
    }
    head.push_str("\r\n");
    for addr in [node.public, node.admin] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // keygate may answer and close before it has read it all.
        let _ = s.write_all(head.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{addr}: {answer}"
        );
    }
    assert_eq!(node.key_status(&key).await, StatusCode::OK);
    let (status, _) = node.call("GET", "/v1/organizations", None).await.unwrap();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_streamed_at_a_limited_route_is_cut_off_with_bounded_memory() {
    const LIMIT: u64 = 1 << 20;
    let limit = LIMIT.to_string();
    let (_dir, node, key) = start(&[("KEYGATE_SERVER__MAX_BODY_BYTES", &limit)]).await;
    let rss_before = rss_mib(&node);
    let mut s = TcpStream::connect(node.public).await.unwrap();
    let head = format!(
        "POST /orders/upload HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // 1 GiB in 64 KiB chunks, until keygate stops taking it.
    let chunk = vec![b'k'; 64 * 1024];
    let framed = [
        format!("{:x}\r\n", chunk.len()).into_bytes(),
        chunk,
        b"\r\n".to_vec(),
    ]
    .concat();
    let started = Instant::now();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (mut reader, mut writer) = s.into_split();
    let counted = std::sync::Arc::clone(&sent);
    let pump = tokio::spawn(async move {
        while counted.load(Ordering::SeqCst) < 1 << 30 {
            if writer.write_all(&framed).await.is_err() {
                return;
            }
            counted.fetch_add(64 * 1024, Ordering::SeqCst);
        }
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut answer)).await;
    let rss_during = rss_mib(&node);
    pump.abort();
    let sent = sent.load(Ordering::SeqCst);
    let answer = String::from_utf8_lossy(&answer);
    eprintln!(
        "1 GiB body at a 1 MiB limit: answered {:?} after {:?}, {} MiB taken; RSS MiB {rss_before:.1} -> {rss_during:.1}",
        answer.lines().next(),
        started.elapsed(),
        sent >> 20
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        sent < 256 << 20,
        "keygate read {sent} bytes past a 1 MiB limit"
    );
    assert!(
        rss_during - rss_before < 64.0,
        "RSS {rss_before} -> {rss_during} MiB"
    );
    // Others are served meanwhile and after.
    assert_eq!(node.key_status(&key).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_inside_the_http2_preface_is_dropped_at_header_read_timeout() {
    let (_dir, node, key) = start(&[("KEYGATE_SERVER__HEADER_READ_TIMEOUT", "1s")]).await;
    for addr in [node.public, node.admin] {
        // 16 of the preface's 24 bytes, then silence.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "{addr} kept a stalled HTTP/2 preface for 5 s"
        );
        let held = started.elapsed();
        assert!(
            held >= Duration::from_millis(900),
            "{addr} dropped it early: {held:?}"
        );
        // A whole preface is still HTTP/2, answered with SETTINGS at once.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .expect("SETTINGS within 2 s")
            .unwrap();
        assert!(
            n >= 9 && buf[3] == 0x4,
            "not a SETTINGS frame: {:?}",
            &buf[..n]
        );
    }
    assert_eq!(node.key_status(&key).await, StatusCode::OK);
}
