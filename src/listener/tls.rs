//! TLS for a listener, with rustls (aws-lc-rs): the certificate and key
//! (PEM), optional client certificates (mTLS) against `client_ca`, ALPN
//! `h2` and `http/1.1`. The files are read again on SIGHUP and when they
//! change on disk; a new configuration serves new handshakes while live
//! connections keep the one they negotiated. Sessions resume across a
//! reload only while the client CAs stay the same. A file that no longer loads
//! leaves the last good configuration in place, and says so. Handshakes
//! that fail are accounted for by the listener's [`FailedHandshakes`],
//! which lives here because only a TLS listener has any.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::sync::watch;

use super::handshake::FailedHandshakes;
use crate::config::{ClientAuth, TlsConfig};

/// Why a TLS configuration could not be built; names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(path: &Path, problem: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

/// A listener's TLS: the server configuration in force, swapped whole on
/// reload, and the handshakes it refused.
pub struct Tls {
    settings: TlsConfig,
    current: ArcSwap<ServerConfig>,
    /// The client CAs `current` trusts, to tell whether a reload changed
    /// who may connect (only reloads read it).
    client_cas: Mutex<ClientCas>,
    failures: FailedHandshakes,
}

/// The trust anchors for client certificates, as read from `client_ca`.
type ClientCas = Option<Vec<CertificateDer<'static>>>;

impl Tls {
    pub fn load(settings: &TlsConfig, failures: FailedHandshakes) -> Result<Arc<Self>, TlsError> {
        let (config, cas) = build(settings)?;
        Ok(Arc::new(Self {
            settings: settings.clone(),
            current: ArcSwap::from_pointee(config),
            client_cas: Mutex::new(cas),
            failures,
        }))
    }

    /// Where a failed handshake is logged and counted.
    pub fn failures(&self) -> &FailedHandshakes {
        &self.failures
    }

    /// The configuration new handshakes use.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// Reads the files again; keeps the current configuration on failure.
    pub fn reload(&self) -> bool {
        match build(&self.settings) {
            Ok((mut fresh, cas)) => {
                let mut current_cas = self.client_cas.lock().unwrap_or_else(|e| e.into_inner());
                // SECURITY: a resumed session skips client-certificate
                // verification, so sessions (and the tickets that name them)
                // carry over only while the client CAs are the same. Under
                // a new policy `fresh` keeps its own empty session cache:
                // every client verifies its certificate again.
                if *current_cas == cas {
                    fresh.session_storage = self.current.load().session_storage.clone();
                    fresh.ticketer = self.current.load().ticketer.clone();
                } else {
                    tracing::info!("client CAs changed; TLS sessions made before will not resume");
                }
                *current_cas = cas;
                self.current.store(Arc::new(fresh));
                tracing::info!(cert = %self.settings.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS reload failed; keeping the previous certificate");
                false
            }
        }
    }

    /// Reloads on SIGHUP, and when a file's modification time changes
    /// (checked every `every`), until `shutdown` flips.
    pub async fn watch(self: Arc<Self>, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut seen = self.stamps();
        let mut tick = tokio::time::interval(every);
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<()>();
            tokio::select! {
                () = hangup => {
                    self.reload();
                    seen = self.stamps();
                }
                _ = tick.tick() => {
                    let now = self.stamps();
                    if now != seen {
                        // Reload only once the files are readable; a
                        // half-written pair is retried on the next tick.
                        if self.reload() {
                            seen = now;
                        }
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
    }

    fn stamps(&self) -> Vec<Option<SystemTime>> {
        let s = &self.settings;
        [Some(&s.cert), Some(&s.key), s.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if chain.is_empty() {
        return Err(file_error(path, "holds no PEM certificate"));
    }
    Ok(chain)
}

fn build(s: &TlsConfig) -> Result<(ServerConfig, ClientCas), TlsError> {
    let provider = provider();
    let chain = certificates(&s.cert)?;
    let key = PrivateKeyDer::from_pem_file(&s.key).map_err(|e| file_error(&s.key, e))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut cas = None;
    let builder = match &s.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            let anchors = certificates(ca)?;
            for c in &anchors {
                roots.add(c.clone()).map_err(|e| file_error(ca, e))?;
            }
            cas = Some(anchors);
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match s.client_auth {
                ClientAuth::Required => verifier,
                // A client without a certificate is let in; one with an
                // untrusted certificate still fails the handshake.
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| file_error(ca, e))?)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        file_error(
            &s.key,
            format!("does not match the certificate or is unusable: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((config, cas))
}

/// The subject of a verified client certificate in RFC 4514's string form
/// (e.g. `CN=billing,O=Acme,C=US`; see [`super::subject`]).
/// The SPIFFE id of a verified client certificate: its one `spiffe://`
/// URI SAN (an X.509-SVID has exactly one; a certificate with several is
/// none of them).
pub(crate) fn peer_spiffe_id(conn: &rustls::ServerConnection) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let der = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut ids = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(u) if u.starts_with("spiffe://") => Some(*u),
        _ => None,
    });
    let id = ids.next()?;
    if ids.next().is_some() || id.len() > 2048 {
        return None;
    }
    Some(id.to_string())
}

pub(crate) fn peer_subject(conn: &rustls::ServerConnection) -> Option<String> {
    let der = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(super::subject::rfc4514(cert.subject()))
}
