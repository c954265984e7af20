//! GitHub's secret-scanning partner endpoint on the public listener: a
//! signed report of a key made in the test revokes it before the answer
//! (the proxy refuses it right after), is audited and emitted as
//! `api_key.leaked`; a bad or unknown signature is 401 and revokes nothing;
//! garbage is `false_positive`; reports are rate-limited and size-limited.

use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::StatusCode;
use serde_json::{json, Value};

use crate::events::{brisk, subscribe};
use crate::receiver::{Answer, Receiver};
use crate::support::{send, Harness};

const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A stand-in for GitHub: a P-256 key pair, published as GitHub publishes
/// its keys.
pub(crate) struct GitHub {
    key: EcdsaKeyPair,
    pub(crate) id: String,
    _dir: tempfile::TempDir,
    pub(crate) keys_file: std::path::PathBuf,
}

impl GitHub {
    pub(crate) fn new() -> GitHub {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(key.public_key().as_ref());
        let b64 = STANDARD.encode(&spki);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        );
        let id = format!("{:x}", rand_id());
        let other = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let mut other_spki = P256_SPKI_PREFIX.to_vec();
        other_spki.extend_from_slice(other.public_key().as_ref());
        let other_pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&other_spki)
        );
        let doc = json!({ "public_keys": [
            { "key_identifier": "retired", "key": other_pem, "is_current": false },
            { "key_identifier": id, "key": pem, "is_current": true },
        ]});
        let dir = tempfile::tempdir().unwrap();
        let keys_file = dir.path().join("github-keys.json");
        std::fs::write(&keys_file, doc.to_string()).unwrap();
        GitHub {
            key,
            id,
            _dir: dir,
            keys_file,
        }
    }

    pub(crate) fn config(&self, extra: &str) -> String {
        format!(
            "{}\n[secret_scanning]\npublic_keys_file = \"{}\"\n{extra}\n",
            brisk(),
            self.keys_file.display()
        )
    }

    pub(crate) fn sign(&self, body: &[u8]) -> String {
        let sig = self.key.sign(&SystemRandom::new(), body).unwrap();
        STANDARD.encode(sig.as_ref())
    }
}

fn rand_id() -> u128 {
    uuid::Uuid::new_v4().as_u128()
}

/// Posts a report with the given signature headers.
pub(crate) async fn report(
    h: &Harness,
    body: &[u8],
    key_id: &str,
    signature: &str,
) -> (StatusCode, Value) {
    let (status, _, answer) = send(
        &h.client,
        h.public_addr(),
        "POST",
        "/secret-scanning/github",
        &[
            ("content-type", "application/json"),
            ("github-public-key-identifier", key_id),
            ("github-public-key-signature", signature),
        ],
        body.to_vec(),
    )
    .await;
    (status, answer)
}

fn tokens(tokens: &[&str]) -> Vec<u8> {
    let items: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({
                "token": t,
                "type": "keygate_api_key",
                "url": "https://github.com/octo/leaky/blob/main/.env",
                "source": "content",
            })
        })
        .collect();
    serde_json::to_vec(&items).unwrap()
}

#[tokio::test]
async fn a_signed_report_revokes_the_key_before_it_is_answered() {
    let gh = GitHub::new();
    let h = Harness::start(&gh.config("")).await;
    let r = Receiver::start(Answer::FailFirst(0)).await;
    let (_, secret) = subscribe(&h, &r.url(), &["api_key.leaked"]).await;
    let org = h.create_org("leaky").await;
    let (account, key) = h.create_account(&org, &["orders:read"]).await;
    assert_eq!(h.key_status(StatusCode::OK, &key).await, StatusCode::OK);

    let mut typo = key.clone().into_bytes();
    typo[5] = if typo[5] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    let unknown = keygate::secret::ApiKeyFormat::new("kg").generate_key();
    let body = tokens(&[&key, "kg_garbage", &typo, &unknown.value]);

    // A bad signature (another body's) and an unknown key: 401, nothing revoked.
    let (status, _) = report(&h, &body, &gh.id, &gh.sign(b"[]")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = report(&h, &body, "retired", &gh.sign(&body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = report(&h, &body, "nope", &gh.sign(&body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = report(&h, &body, &gh.id, "not base64!").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.key_status(StatusCode::OK, &key).await, StatusCode::OK);

    let started = Instant::now();
    let (status, answer) = report(&h, &body, &gh.id, &gh.sign(&body)).await;
    // Right after the answer, this replica refuses the key.
    assert_eq!(
        h.key_status(StatusCode::UNAUTHORIZED, &key).await,
        StatusCode::UNAUTHORIZED
    );
    let to_refusal = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{answer}");
    let labels: Vec<(&str, &str)> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["token_raw"].as_str().unwrap(),
                a["label"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            (key.as_str(), "true_positive"),
            ("kg_garbage", "false_positive"),
            (typo.as_str(), "false_positive"),
            (unknown.value.as_str(), "false_positive"),
        ]
    );
    assert_eq!(answer[0]["token_type"], "keygate_api_key");
    eprintln!("leak report → refusal at the proxy: {to_refusal:?}");

    let leaked = r
        .wait_for_type("api_key.leaked", Duration::from_secs(10))
        .await;
    assert!(leaked.verifies(&secret));
    let data = &leaked.json()["data"];
    assert_eq!(data["service_account_id"], json!(account));
    assert_eq!(data["revoked"], true);
    assert_eq!(data["url"], "https://github.com/octo/leaky/blob/main/.env");
    assert!(
        !leaked.json().to_string().contains(&key),
        "the key itself was sent"
    );
    let (_, _, audit) = h.admin("GET", "/v1/audit-events?limit=100", None).await;
    assert!(
        audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "api_key.leaked"),
        "{audit}"
    );
}

#[tokio::test]
async fn in_report_mode_a_leaked_key_keeps_working_but_is_reported() {
    let gh = GitHub::new();
    let h = Harness::start(&gh.config("action = \"report\"")).await;
    let org = h.create_org("reported").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;
    let body = tokens(&[&key]);
    let (status, answer) = report(&h, &body, &gh.id, &gh.sign(&body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer[0]["label"], "true_positive");
    assert_eq!(h.key_status(StatusCode::OK, &key).await, StatusCode::OK);
}

#[tokio::test]
async fn reports_are_limited_per_address_and_in_size() {
    let gh = GitHub::new();
    let h = Harness::start(&gh.config("rate_limit = \"5/m burst 3\"\nmax_body_bytes = 4096")).await;
    let big = tokens(&vec!["kg_garbage"; 200]);
    assert!(big.len() > 4096);
    let (status, _) = report(&h, &big, &gh.id, &gh.sign(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let body = tokens(&["kg_garbage"]);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(report(&h, &body, &gh.id, &gh.sign(&body)).await.0);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

#[tokio::test]
async fn the_endpoint_exists_only_when_configured() {
    let h = Harness::start("").await;
    let (status, _) = report(&h, b"[]", "x", "y").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn a_keys_file_that_is_not_github_s_document_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    std::fs::write(
        &path,
        r#"{"public_keys": [{"key_identifier": "a", "key": "nope"}]}"#,
    )
    .unwrap();
    let toml = format!(
        "[secret_scanning]\npublic_keys_file = \"{}\"\n",
        path.display()
    );
    let err = keygate::config::Config::from_toml(&toml, &Default::default()).unwrap_err();
    assert!(
        err.to_string().contains("secret_scanning.public_keys_file"),
        "{err}"
    );
    let err =
        keygate::config::Config::from_toml("[secret_scanning]\n", &Default::default()).unwrap_err();
    assert!(err.to_string().contains("is required"), "{err}");
}

#[test]
fn keygate_secret_pattern_prints_the_key_format_for_scanners() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["secret-pattern", "--prefix", "acme"])
        .env_remove("KEYGATE_KEYS__PREFIX")
        .output()
        .unwrap();
    assert!(out.status.success());
    let pattern = String::from_utf8(out.stdout).unwrap();
    assert_eq!(pattern.trim(), r"\bacmes?_[0-9A-Za-z]{32}_[0-9A-Za-z]{6}\b");
    // A key of that prefix has exactly that shape.
    let key = keygate::secret::ApiKeyFormat::new("acme").generate_key();
    let (prefix, rest) = key.value.split_once('_').unwrap();
    let (random, checksum) = rest.split_once('_').unwrap();
    assert_eq!(prefix, "acme");
    assert!(random.len() == 32 && random.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(checksum.len() == 6 && checksum.bytes().all(|b| b.is_ascii_alphanumeric()));
}

#[tokio::test]
async fn a_leaked_client_secret_ends_its_credential() {
    let gh = GitHub::new();
    let h = Harness::start(&gh.config("")).await;
    let (_, id, secret) = crate::oauth::client(&h, &["orders:read"]).await;
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let (status, ..) = h.form("/oauth2/token", &form, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let body = tokens(&[&secret]);
    let (status, answer) = report(&h, &body, &gh.id, &gh.sign(&body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer[0]["label"], "true_positive");
    let (status, _, refused) = h.form("/oauth2/token", &form, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"], "invalid_client");
    let (_, _, audit) = h.admin("GET", "/v1/audit-events?limit=100", None).await;
    let leaked = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "credential.leaked")
        .cloned()
        .unwrap_or_else(|| panic!("no credential.leaked in {audit}"));
    assert!(!leaked.to_string().contains(&secret));
}

/// SECURITY: a token whose checksum fails is answered without the store —
/// shown with the store cut off: garbage is still labelled at once, while
/// a well-formed token (which needs the lookup) is a 503 GitHub retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_labelled_without_the_store() {
    let Some(url) = crate::support::pg_schema_url().await else {
        return;
    };
    let pg: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let cable = crate::support::Cable::to(pg).await;
    let via_cable = url.replace("127.0.0.1:5432", &cable.addr.to_string());
    let gh = GitHub::new();
    let h = Harness::start_with(Some(via_cable), &gh.config(""), &[]).await;
    let real = keygate::secret::ApiKeyFormat::new("kg").generate_key();
    let mut typo = real.value.as_bytes().to_vec();
    typo[10] = if typo[10] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8(typo).unwrap();
    cable.cut();
    let garbage = tokens(&["kg_garbage", &typo, "ghp_notours"]);
    let (status, answer) = report(&h, &garbage, &gh.id, &gh.sign(&garbage)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["label"] == "false_positive"));
    let lookup = tokens(&[&real.value]);
    let (status, _) = report(&h, &lookup, &gh.id, &gh.sign(&lookup)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    cable.restore();
}
