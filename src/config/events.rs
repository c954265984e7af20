//! `[events]` (webhook delivery) and `[secret_scanning]` (the GitHub
//! partner endpoint): as written, and validated into typed values. GitHub's
//! public-keys document is read and parsed here, once, at load.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::problems::Problems;
use super::RateSpec;

pub(super) const EVENTS_KEYS: &[&str] = &[
    "allow_insecure_targets",
    "retry_first",
    "retry_for",
    "lease",
    "timeout",
    "poll_interval",
    "concurrency",
    "per_target",
    "expiry_check_interval",
    "keep_deliveries",
];

pub(super) const SECRET_SCANNING_KEYS: &[&str] =
    &["public_keys_file", "action", "rate_limit", "max_body_bytes"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawEvents {
    pub(crate) allow_insecure_targets: bool,
    pub(crate) retry_first: String,
    pub(crate) retry_for: String,
    pub(crate) lease: String,
    pub(crate) timeout: String,
    pub(crate) poll_interval: String,
    pub(crate) concurrency: u32,
    pub(crate) per_target: u32,
    pub(crate) expiry_check_interval: String,
    pub(crate) keep_deliveries: String,
}

impl Default for RawEvents {
    fn default() -> Self {
        Self {
            allow_insecure_targets: false,
            retry_first: "5s".into(),
            retry_for: "24h".into(),
            lease: "60s".into(),
            timeout: "10s".into(),
            poll_interval: "1s".into(),
            concurrency: 32,
            per_target: 4,
            expiry_check_interval: "5m".into(),
            keep_deliveries: "30d".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecretScanning {
    pub(crate) public_keys_file: Option<PathBuf>,
    #[serde(default = "default_action")]
    pub(crate) action: String,
    #[serde(default = "default_report_rate")]
    pub(crate) rate_limit: String,
    #[serde(default = "default_report_bytes")]
    pub(crate) max_body_bytes: u64,
}

fn default_action() -> String {
    "revoke".into()
}

fn default_report_rate() -> String {
    "60/m burst 30".into()
}

fn default_report_bytes() -> u64 {
    1024 * 1024
}

/// Webhook delivery.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Also permit `http` targets and private, loopback or link-local
    /// addresses (internal receivers, tests).
    pub allow_insecure_targets: bool,
    /// Delay before the first retry; each next one doubles (with jitter).
    pub retry_first: Duration,
    /// How long an event is retried before it is marked failed.
    pub retry_for: Duration,
    /// How long a claimed delivery is this replica's; after it, another
    /// replica may take it over (a replica that died mid-delivery).
    pub lease: Duration,
    /// One attempt: connect, send, and the response head.
    pub timeout: Duration,
    /// Backstop to the change feed's push for new events and due retries.
    pub poll_interval: Duration,
    /// Deliveries in flight on this replica.
    pub concurrency: usize,
    /// Deliveries in flight to one webhook on this replica.
    pub per_target: usize,
    /// How often keys about to expire are looked for.
    pub expiry_check_interval: Duration,
    /// Delivered and failed deliveries are forgotten this long after they
    /// were enqueued (the deliveries log does not grow without end).
    pub keep_deliveries: Duration,
}

/// What a reported live key comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakAction {
    Revoke,
    /// Audited and emitted as `api_key.leaked`, left working.
    Report,
}

/// One key of GitHub's public-keys document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanningKey {
    pub key_identifier: String,
    /// The uncompressed P-256 point (65 bytes) of the PEM key.
    pub point: Vec<u8>,
}

/// The GitHub secret-scanning partner endpoint.
#[derive(Debug, Clone)]
pub struct SecretScanningConfig {
    pub keys: Vec<ScanningKey>,
    pub action: LeakAction,
    /// Reports per client address.
    pub rate_limit: RateSpec,
    pub max_body_bytes: u64,
}

pub(super) fn events(p: &mut Problems, e: &RawEvents) -> EventsConfig {
    let c = EventsConfig {
        allow_insecure_targets: e.allow_insecure_targets,
        retry_first: p.duration("events.retry_first", &e.retry_first),
        retry_for: p.duration("events.retry_for", &e.retry_for),
        lease: p.duration("events.lease", &e.lease),
        timeout: p.duration("events.timeout", &e.timeout),
        poll_interval: p.duration("events.poll_interval", &e.poll_interval),
        concurrency: e.concurrency as usize,
        per_target: e.per_target as usize,
        expiry_check_interval: p.duration("events.expiry_check_interval", &e.expiry_check_interval),
        keep_deliveries: p.duration("events.keep_deliveries", &e.keep_deliveries),
    };
    if c.keep_deliveries < c.retry_for {
        p.push(
            "events.keep_deliveries",
            "must be at least events.retry_for",
        );
    }
    if c.retry_first > Duration::from_secs(5) {
        p.push("events.retry_first", "must be at most 5s");
    }
    if c.retry_for < c.retry_first {
        p.push("events.retry_for", "must be at least events.retry_first");
    }
    // A lease shorter than an attempt would hand a delivery in flight to
    // another replica: two deliveries for one event as a rule.
    if c.lease <= c.timeout {
        p.push("events.lease", "must be longer than events.timeout");
    }
    if !(1..=1024).contains(&e.concurrency) {
        p.push("events.concurrency", "must be between 1 and 1024");
    }
    if e.per_target == 0 || e.per_target > e.concurrency {
        p.push(
            "events.per_target",
            "must be between 1 and events.concurrency",
        );
    }
    c
}

pub(super) fn secret_scanning(
    p: &mut Problems,
    s: Option<&RawSecretScanning>,
) -> Option<SecretScanningConfig> {
    let s = s?;
    let action = match s.action.as_str() {
        "revoke" => LeakAction::Revoke,
        "report" => LeakAction::Report,
        other => {
            p.push(
                "secret_scanning.action",
                format_args!("{other:?} is not one of revoke, report"),
            );
            LeakAction::Revoke
        }
    };
    if s.max_body_bytes == 0 {
        p.push(
            "secret_scanning.max_body_bytes",
            "must be greater than zero",
        );
    }
    let keys = match &s.public_keys_file {
        None => {
            p.push(
                "secret_scanning.public_keys_file",
                "is required: GitHub's public-keys document (https://api.github.com/meta/public_keys/secret_scanning)",
            );
            Vec::new()
        }
        Some(path) => match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| parse_public_keys(&b))
        {
            Ok(keys) => keys,
            Err(e) => {
                p.push(
                    "secret_scanning.public_keys_file",
                    format_args!("{}: {e}", path.display()),
                );
                Vec::new()
            }
        },
    };
    Some(SecretScanningConfig {
        keys,
        action,
        rate_limit: p
            .rate("secret_scanning.rate_limit", &s.rate_limit)
            .unwrap_or(RateSpec {
                count: 60,
                per: Duration::from_secs(60),
                burst: 30,
            }),
        max_body_bytes: s.max_body_bytes,
    })
}

/// The DER prefix of every P-256 SubjectPublicKeyInfo: SEQUENCE, the
/// algorithm (id-ecPublicKey, prime256v1), and the BIT STRING header of the
/// 65-byte uncompressed point that follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[derive(Deserialize)]
struct KeysDocument {
    public_keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
struct KeyEntry {
    key_identifier: String,
    key: String,
}

/// GitHub's public-keys document as GitHub serves it:
/// `{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}`.
/// Every key must be an ECDSA P-256 public key.
pub(crate) fn parse_public_keys(doc: &[u8]) -> Result<Vec<ScanningKey>, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::SubjectPublicKeyInfoDer;
    let doc: KeysDocument =
        serde_json::from_slice(doc).map_err(|e| format!("not a public-keys document ({e})"))?;
    if doc.public_keys.is_empty() {
        return Err("holds no public key".into());
    }
    doc.public_keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let der = SubjectPublicKeyInfoDer::from_pem_slice(k.key.as_bytes())
                .map_err(|_| format!("public_keys[{i}].key is not a PEM public key"))?;
            let der: &[u8] = der.as_ref();
            match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
                Some(point) if point.len() == 65 && point[0] == 0x04 => Ok(ScanningKey {
                    key_identifier: k.key_identifier,
                    point: point.to_vec(),
                }),
                _ => Err(format!("public_keys[{i}].key is not an ECDSA P-256 key")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn problems(toml: &str) -> String {
        match Config::from_toml(toml, &Default::default()) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_hold_and_bad_settings_are_named_all_at_once() {
        let c = Config::from_toml("", &Default::default()).unwrap();
        assert!(!c.events.allow_insecure_targets);
        assert!(c.secret_scanning.is_none());
        let text = problems(
            "[events]\nretry_first = \"10s\"\nlease = \"5s\"\ntimeout = \"10s\"\n\
             concurrency = 0\nkeep_deliveries = \"1h\"\nnope = 1\n",
        );
        assert!(text.contains("events.nope: unknown key"), "{text}");
        let text = problems(
            "[events]\nretry_first = \"10s\"\nlease = \"5s\"\ntimeout = \"10s\"\n\
             concurrency = 0\nkeep_deliveries = \"1h\"\n",
        );
        for key in [
            "events.retry_first",
            "events.lease",
            "events.concurrency",
            "events.per_target",
            "events.keep_deliveries",
        ] {
            assert!(text.contains(key), "{key} not named in {text}");
        }
        let text = problems("[secret_scanning]\naction = \"shrug\"\n");
        assert!(text.contains("secret_scanning.action"), "{text}");
        assert!(text.contains("secret_scanning.public_keys_file"), "{text}");
    }

    #[test]
    fn a_public_keys_document_needs_p256_keys() {
        assert!(super::parse_public_keys(b"{}").is_err());
        assert!(super::parse_public_keys(br#"{"public_keys": []}"#).is_err());
        // An Ed25519 SPKI in PEM: a public key, not a P-256 one.
        let ed = r#"{"public_keys": [{"key_identifier": "a", "is_current": true, "key":
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"}]}"#;
        let err = super::parse_public_keys(ed.as_bytes()).unwrap_err();
        assert!(err.contains("not an ECDSA P-256 key"), "{err}");
    }
}
