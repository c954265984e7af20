//! The upstream side: the pooled clients (HTTP/1.1 or HTTP/2, plain or
//! TLS verified against the public roots and a route's own CA), the
//! upstream URI of a routed request, and what its failures mean.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{PathAndQuery, Uri};
use http_body_util::LengthLimitError;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use super::connector::TcpConnector;
use super::routing::Target;
use super::Route;
use crate::config::{RouteConfig, UpstreamProtocol};

pub(super) type Client =
    hyper_util::client::legacy::Client<HttpsConnector<TcpConnector>, super::trailers::Outbound>;

/// Every route's upstream client: one per distinct protocol and CA, each
/// with its own connection pool.
pub(super) struct Upstreams {
    clients: Vec<Client>,
    /// Route position in the config → its client.
    by_route: Vec<usize>,
}

impl Upstreams {
    pub(super) fn new(routes: &[RouteConfig], request_timeout: Duration) -> Result<Self, String> {
        let mut kinds: Vec<(UpstreamProtocol, Option<PathBuf>)> = Vec::new();
        let mut clients = Vec::new();
        let mut by_route = Vec::with_capacity(routes.len());
        for r in routes {
            let kind = (r.upstream_protocol, r.upstream_ca.clone());
            let i = match kinds.iter().position(|k| *k == kind) {
                Some(i) => i,
                None => {
                    clients.push(
                        client(&kind.0, kind.1.as_ref(), request_timeout)
                            .map_err(|e| format!("routes \"{}\": upstream_ca: {e}", r.name))?,
                    );
                    kinds.push(kind);
                    kinds.len() - 1
                }
            };
            by_route.push(i);
        }
        if clients.is_empty() {
            clients.push(client(&UpstreamProtocol::Http1, None, request_timeout)?);
        }
        Ok(Self { clients, by_route })
    }

    pub(super) fn client(&self, route: &Route) -> &Client {
        &self.clients[self.by_route.get(route.index).copied().unwrap_or(0)]
    }
}

/// The public roots, plus the PEM certificates in `ca`.
fn tls(ca: Option<&PathBuf>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: holds no PEM certificate", path.display()));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(
        ClientConfig::builder_with_provider(
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

fn client(
    protocol: &UpstreamProtocol,
    ca: Option<&PathBuf>,
    request_timeout: Duration,
) -> Result<Client, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(request_timeout.min(Duration::from_secs(10))));
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls(ca)?)
        .https_or_http();
    let connector = match protocol {
        UpstreamProtocol::Http1 => https.enable_http1().wrap_connector(TcpConnector(http)),
        UpstreamProtocol::H2c | UpstreamProtocol::H2 => {
            https.enable_http2().wrap_connector(TcpConnector(http))
        }
    };
    Ok(
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            // h2c is HTTP/2 with prior knowledge; h2 is negotiated by ALPN.
            .http2_only(*protocol != UpstreamProtocol::Http1)
            .build(connector),
    )
}

/// The upstream URI: route's upstream + (prefix-stripped) normalised path +
/// query. Reuses the incoming path-and-query when nothing changes.
pub(super) fn uri(route: &Route, target: &Target, path: &str, incoming: &Uri) -> Option<Uri> {
    let rest = if route.strip_prefix && route.prefix != "/" {
        match &path[route.prefix.len()..] {
            "" => "/",
            r => r,
        }
    } else {
        path
    };
    let pq = if target.base.is_empty() && rest == incoming.path() {
        incoming
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"))
    } else {
        let query = incoming.query();
        let mut s = String::with_capacity(
            target.base.len() + rest.len() + query.map_or(0, |q| q.len() + 1),
        );
        s.push_str(&target.base);
        s.push_str(rest);
        if let Some(q) = query {
            s.push('?');
            s.push_str(q);
        }
        PathAndQuery::from_maybe_shared(bytes::Bytes::from(s)).ok()?
    };
    Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query(pq)
        .build()
        .ok()
}

/// Whether a client error was the request body outgrowing `max_body_bytes`.
pub(super) fn is_body_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}
