//! Problems found while validating a configuration, gathered so that every
//! one is reported at once, each naming its key; and the readers of scalar
//! values (addresses, durations, rates, TLS settings) that add to them.
//! Used by `validate` and `routes` alike, and importing neither.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{ClientAuth, RateSpec, TlsConfig};

pub(super) struct Problems(pub(super) Vec<String>);

impl Problems {
    pub(super) fn push(&mut self, key: &str, msg: impl std::fmt::Display) {
        self.0.push(format!("{key}: {msg}"));
    }

    pub(super) fn addr(&mut self, key: &str, s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|_| {
            self.push(
                key,
                format_args!("{s:?} is not an address like 127.0.0.1:8080"),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    pub(super) fn duration(&mut self, key: &str, s: &str) -> Duration {
        match humantime::parse_duration(s) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.push(key, "must be greater than zero");
                Duration::from_secs(1)
            }
            Err(_) => {
                self.push(
                    key,
                    format_args!("{s:?} is not a duration like \"250ms\", \"30s\" or \"5m\""),
                );
                Duration::from_secs(1)
            }
        }
    }

    /// A listener's TLS keys, checked together: both files or neither, a
    /// client CA only with a certificate, `client_auth` only with a CA.
    pub(super) fn tls(
        &mut self,
        section: &str,
        cert: Option<&PathBuf>,
        key: Option<&PathBuf>,
        client_ca: Option<&PathBuf>,
        client_auth: Option<&str>,
    ) -> Option<TlsConfig> {
        let client_auth = match client_auth {
            None | Some("required") => ClientAuth::Required,
            Some("optional") => ClientAuth::Optional,
            Some(other) => {
                self.push(
                    &format!("{section}.client_auth"),
                    format_args!("{other:?} is not one of required, optional"),
                );
                ClientAuth::Required
            }
        };
        match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: client_ca.cloned(),
                client_auth,
            }),
            (None, None) => {
                if client_ca.is_some() {
                    self.push(
                        &format!("{section}.client_ca"),
                        "needs tls_cert and tls_key",
                    );
                }
                None
            }
            (Some(_), None) => {
                self.push(&format!("{section}.tls_key"), "is required with tls_cert");
                None
            }
            (None, Some(_)) => {
                self.push(&format!("{section}.tls_cert"), "is required with tls_key");
                None
            }
        }
    }

    pub(super) fn rate(&mut self, key: &str, s: &str) -> Option<RateSpec> {
        RateSpec::parse(s).map_err(|e| self.push(key, e)).ok()
    }
}
