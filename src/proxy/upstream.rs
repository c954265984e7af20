//! The upstream side: the pooled clients (HTTP/1.1 or HTTP/2, plain or
//! TLS verified against the public roots and a route's own CA), the
//! upstream URI of a routed request, and what its failures mean.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{PathAndQuery, Uri};
use http::HeaderValue;
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
use crate::config::{RouteConfig, UpstreamProtocol, UpstreamReuse};

use super::kept::Parked;

pub(super) type Client =
    hyper_util::client::legacy::Client<HttpsConnector<TcpConnector>, super::trailers::Outbound>;

pub(super) type Connector = HttpsConnector<TcpConnector>;

/// Every route's upstream client: one per distinct protocol and CA, each
/// with its own connection pool; and for HTTP/1.1 upstreams, the
/// connections client connections keep ([`super::kept`]).
pub(super) struct Upstreams {
    clients: Vec<(Client, Connector)>,
    /// Route position in the config → its client.
    by_route: Vec<usize>,
    /// Route position → the upstream whose connections client connections
    /// keep, when they do (HTTP/1.1 upstreams, `upstream_reuse = "connection"`).
    kept_by_route: Vec<Option<usize>>,
    kept: Vec<KeptUpstream>,
    pub(super) parked: Arc<Parked>,
    /// The lean path's idle connections, one list per kept upstream.
    pub(super) lean_parked: Parked<super::lean::Upstream>,
    /// Every route that forwards does so to a kept plain HTTP/1.1
    /// upstream: the lean path need not look a request's route up to know
    /// it may forward it.
    pub(super) all_plain: bool,
}

/// An upstream (client kind, scheme and authority) that client
/// connections keep connections to.
pub(super) struct KeptUpstream {
    client: usize,
    /// Where to connect: `scheme://authority/`.
    pub(super) connect_to: Uri,
    /// The `Host` every request to it carries (rewrite moved the
    /// client's to `X-Forwarded-Host`).
    pub(super) host: HeaderValue,
    /// `host:port` to connect to, for a plain `http` upstream (the lean
    /// path speaks only to those).
    pub(super) plain: Option<String>,
}

impl Upstreams {
    pub(super) fn new(
        routes: &[RouteConfig],
        request_timeout: Duration,
        reuse: UpstreamReuse,
    ) -> Result<Self, String> {
        let mut kinds: Vec<(UpstreamProtocol, Option<PathBuf>)> = Vec::new();
        let mut clients = Vec::new();
        let mut by_route = Vec::with_capacity(routes.len());
        let mut kept: Vec<KeptUpstream> = Vec::new();
        let mut kept_by_route = Vec::with_capacity(routes.len());
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
            let keep = match (&r.upstream, reuse, r.upstream_protocol) {
                (Some(u), UpstreamReuse::Connection, UpstreamProtocol::Http1) => {
                    KeptUpstream::new(i, u)
                }
                _ => None,
            };
            kept_by_route.push(keep.map(|k| {
                kept.iter()
                    .position(|e| e.client == k.client && e.connect_to == k.connect_to)
                    .unwrap_or_else(|| {
                        kept.push(k);
                        kept.len() - 1
                    })
            }));
        }
        let all_plain = routes
            .iter()
            .zip(&kept_by_route)
            .all(|(r, k)| r.upstream.is_none() || k.is_some_and(|i| kept[i].plain.is_some()));
        if clients.is_empty() {
            clients.push(client(&UpstreamProtocol::Http1, None, request_timeout)?);
        }
        Ok(Self {
            clients,
            by_route,
            kept_by_route,
            parked: Arc::new(Parked::new(kept.len())),
            lean_parked: Parked::new(kept.len()),
            all_plain,
            kept,
        })
    }

    pub(super) fn client(&self, route: &Route) -> &Client {
        &self.clients[self.by_route.get(route.index).copied().unwrap_or(0)].0
    }

    /// The kept upstream of `route`, if its connections are kept.
    pub(super) fn kept(&self, route: &Route) -> Option<(usize, &KeptUpstream)> {
        let i = self.kept_by_route.get(route.index).copied().flatten()?;
        Some((i, &self.kept[i]))
    }

    /// A connector for a kept upstream's new connections.
    pub(super) fn connector(&self, upstream: &KeptUpstream) -> Connector {
        self.clients[upstream.client].1.clone()
    }
}

impl KeptUpstream {
    fn new(client: usize, upstream: &Uri) -> Option<Self> {
        let scheme = upstream.scheme()?.clone();
        let authority = upstream.authority()?.clone();
        // As hyper's pooled client writes it: the port only when it is not
        // the scheme's default.
        let default_port = if scheme == http::uri::Scheme::HTTPS {
            443
        } else {
            80
        };
        let host = match authority.port_u16() {
            Some(p) if p != default_port => format!("{}:{p}", authority.host()),
            _ => authority.host().to_string(),
        };
        let plain = (scheme == http::uri::Scheme::HTTP).then(|| {
            format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(80)
            )
        });
        Some(Self {
            client,
            plain,
            connect_to: Uri::builder()
                .scheme(scheme)
                .authority(authority)
                .path_and_query("/")
                .build()
                .ok()?,
            host: HeaderValue::from_str(&host).ok()?,
        })
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
) -> Result<(Client, Connector), String> {
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
    Ok((
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            // h2c is HTTP/2 with prior knowledge; h2 is negotiated by ALPN.
            .http2_only(*protocol != UpstreamProtocol::Http1)
            .build(connector.clone()),
        connector,
    ))
}

/// The upstream URI: route's upstream + (prefix-stripped) normalised path +
/// query. Reuses the incoming path-and-query when nothing changes.
/// `origin_form`: only the path and query, as a kept connection sends it
/// (the pooled client needs the scheme and authority to pick a connection).
pub(super) fn uri(
    route: &Route,
    target: &Target,
    path: &str,
    incoming: &Uri,
    origin_form: bool,
) -> Option<Uri> {
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
    if origin_form {
        return Some(Uri::from(pq));
    }
    absolute(target, pq)
}

/// `pq` on `target`'s scheme and authority.
pub(super) fn absolute(target: &Target, pq: PathAndQuery) -> Option<Uri> {
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
