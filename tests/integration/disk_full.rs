//! SQLite's disk filling up under the running binary: writes are refused
//! cleanly (503, nothing half written, nothing answered and then lost),
//! reads and authentication go on, and writes resume once space returns.
//!
//! The full disk is the process's file-size limit (`RLIMIT_FSIZE`, lowered
//! and raised again with util-linux's `prlimit`), so the test needs no
//! privileges; keygate ignores `SIGXFSZ` through the shell that starts it,
//! as a write past a full disk is an error, not a signal.

use std::process::Command;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;

use crate::crash::{boot, boot_as, Node};
use crate::servers::spawn_upstream;

fn set_file_size_limit(node: &Node, limit: &str) {
    let status = Command::new("prlimit")
        .arg("--pid")
        .arg(node.pid().to_string())
        .arg(format!("--fsize={limit}:"))
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success(), "prlimit --fsize={limit} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disk_full_refuses_writes_cleanly_serves_reads_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keygate.db");
    let store = format!("sqlite://{}", db.display());
    let (upstream, _) = spawn_upstream().await;
    let mut shell = Command::new("bash");
    shell.args([
        "-c",
        "trap '' XFSZ; exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_keygate"),
    ]);
    let node = boot_as(dir.path(), &store, upstream, shell).await;
    let (status, org) = node
        .call("POST", "/v1/organizations", Some(json!({ "name": "full" })))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{org}");
    let org = org["id"].as_str().unwrap().to_string();
    let (status, account) = node
        .call(
            "POST",
            "/v1/service-accounts",
            Some(json!({ "organization_id": org, "name": "before" })),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let key = account["api_key"]["value"].as_str().unwrap().to_string();

    // Room for a few more writes, then none.
    let largest = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
        .map(|m| m.len())
        .max()
        .unwrap();
    set_file_size_limit(&node, &(largest + 256 * 1024).to_string());
    let description = "x".repeat(1000);
    let (mut answered, mut refused) = (Vec::new(), Vec::new());
    for i in 0..300 {
        let name = format!("during-{i}");
        let body = json!({ "organization_id": org, "name": name, "description": description });
        let (status, body) = node
            .call("POST", "/v1/service-accounts", Some(body))
            .await
            .expect("keygate answers while its disk is full");
        match status {
            StatusCode::CREATED => answered.push(name),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
                refused.push(name);
            }
            other => panic!("write answered {other}: {body}"),
        }
        if refused.len() >= 20 {
            break;
        }
    }
    assert!(
        refused.len() >= 20,
        "the disk never filled ({} written)",
        answered.len()
    );
    // Reads and authentication go on.
    assert_eq!(node.key_status(&key).await, StatusCode::OK);
    let listed = names(&node, &org).await;
    for name in &answered {
        assert!(listed.contains(name), "answered {name} is not listed");
    }

    // Space returns: writes resume by themselves.
    set_file_size_limit(&node, "unlimited");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = json!({ "organization_id": org, "name": "after" });
        let (status, body) = node
            .call("POST", "/v1/service-accounts", Some(body))
            .await
            .unwrap();
        if status == StatusCode::CREATED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes never resumed: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // And what the store holds after a restart is exactly what was answered.
    drop(node);
    let node = boot(dir.path(), &store, upstream).await;
    let listed = names(&node, &org).await;
    for name in &answered {
        assert!(listed.contains(name), "answered {name} lost");
    }
    for name in &refused {
        assert!(!listed.contains(name), "refused {name} was written");
    }
    assert!(listed.contains(&"after".to_string()));
    assert_eq!(node.key_status(&key).await, StatusCode::OK);
    eprintln!(
        "disk full: {} writes answered before it filled, {} refused, recovered",
        answered.len(),
        refused.len()
    );
}

async fn names(node: &Node, org: &str) -> Vec<String> {
    let (status, page) = node
        .call(
            "GET",
            &format!("/v1/service-accounts?organization_id={org}&limit=100"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}
