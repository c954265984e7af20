//! Wires the subsystems together and owns their lifecycle: open the store,
//! serve the admin listener (so `/healthz` answers while loading), load the
//! cache, bootstrap the first admin, then serve the public listener. Stops
//! everything gracefully on [`Running::shutdown`]. What a person is told
//! once it is up is [`summary`]'s.

pub mod summary;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::admin::{self, AdminState};
use crate::authn::{Authenticator, Cache};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, Http1Engine};
use crate::console;
use crate::decision::{self, Decider};
use crate::events::leaks::Leaks;
use crate::jwt::upstream::UpstreamTokens;
use crate::jwt::{signing, KeyRing, Minter, Verifier};
use crate::listener::{
    ClientAddr, ConnInfo, FailedHandshakes, Listener, Options, Tls, TrustedProxies,
};
use crate::manage::{self, Manager};
use crate::proxy::{self, Beside, Proxy, RouteTable};
use crate::ratelimit::RateLimits;
use crate::replicate::Syncer;
use crate::secret::ApiKeyFormat;
use crate::secret_scanning;
use crate::store::{self, Store};
use crate::telemetry::metrics::{self, Metrics};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("store")]
    Store(#[from] store::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("bootstrap of the first admin failed: {0}")]
    Bootstrap(#[source] manage::Error),
    #[error("{key}: {source}")]
    Tls {
        key: &'static str,
        #[source]
        source: crate::listener::tls::TlsError,
    },
    #[error("{0}")]
    Upstream(String),
    /// A trusted issuer's keys could not be set up (a bad `jwks_file`).
    #[error("{0}")]
    Federation(String),
}

/// Largest request head on either listener; larger answers 431. Above
/// 64 KiB so an oversized token still gets its 401 `invalid_token` (the
/// credential itself is refused past 4 KiB, before any crypto).
const MAX_HEAD_BYTES: usize = 128 * 1024;
/// How often TLS files are checked for changes (SIGHUP reloads at once).
const TLS_RELOAD_CHECK: Duration = Duration::from_secs(2);

/// A started keygate.
pub struct Running {
    public_addr: SocketAddr,
    admin_addr: SocketAddr,
    decision_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    store: Arc<dyn Store>,
    bootstrap_key: Option<Zeroizing<String>>,
    grace: Duration,
    facts: summary::Facts,
}

impl Running {
    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The decision listener's address, when `[decision] listen` is set.
    pub fn decision_addr(&self) -> Option<SocketAddr> {
        self.decision_addr
    }

    /// The generated bootstrap admin key, if this start created one. Taken
    /// once: the caller prints it and it is gone.
    pub fn take_bootstrap_key(&mut self) -> Option<Zeroizing<String>> {
        self.bootstrap_key.take()
    }

    /// The start-up summary (see [`summary::render`]); `program` is how
    /// keygate was invoked, for the command it suggests.
    pub fn summary(&self, program: &str) -> String {
        summary::render(&self.facts, program)
    }

    /// Stops accepting, drains in-flight requests (up to `shutdown_grace`),
    /// flushes usage records and closes the store.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let drain = async {
            for task in self.tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(self.grace + Duration::from_secs(1), drain)
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace elapsed; exiting with work in flight");
        }
        self.store.close().await;
    }
}

async fn bind(addr: SocketAddr) -> Result<Listener, StartError> {
    Listener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Starts keygate with the system clock.
pub async fn start(config: Config) -> Result<Running, StartError> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

pub async fn start_with_clock(config: Config, clock: SharedClock) -> Result<Running, StartError> {
    let metrics = if config.admin.metrics {
        Metrics::new()
    } else {
        Metrics::disabled()
    };
    let store = store::connect(
        config.store.url.expose(),
        metrics.counter(metrics::STORE_ERRORS, &[]),
    )
    .await?;
    let format = ApiKeyFormat::new(config.keys.prefix.clone());
    let max_staleness_ms =
        i64::try_from(config.store.max_staleness.as_millis()).unwrap_or(i64::MAX);
    let cache = Arc::new(Cache::new(max_staleness_ms));
    let ring = Arc::new(KeyRing::new());
    let federation = Arc::new(
        crate::authn::Federation::new(&config.trusted_issuers, &metrics)
            .map_err(|e| StartError::Federation(format!("trusted issuers' HTTP client: {e}")))?,
    );
    federation
        .load_files(clock.now_ms())
        .await
        .map_err(StartError::Federation)?;
    let authn = Arc::new(
        Authenticator::new(
            Arc::clone(&cache),
            Verifier::new(Arc::clone(&ring), config.tokens.issuer.clone()),
            config.rate_limit.failed_auth,
            format.clone(),
            Arc::clone(&clock),
        )
        .with_token_lifetime(config.tokens.max_ttl)
        .with_federation(Arc::clone(&federation))
        .with_metrics(&metrics),
    );
    let syncer = Arc::new(Syncer::new(
        Arc::clone(&cache),
        Arc::clone(&ring),
        Arc::clone(authn.usage()),
        Arc::clone(&store),
        Arc::clone(&clock),
        authn.token_horizon_ms(),
    ));
    let mut manager = Manager::new(
        Arc::clone(&store),
        Arc::clone(&syncer) as Arc<dyn manage::AfterCommit>,
        format,
        Arc::clone(&clock),
        config.tokens.max_ttl,
        config.rate_limit.default,
    );
    manager.set_trusted_issuers(
        config
            .trusted_issuers
            .iter()
            .map(|t| t.name.clone())
            .collect(),
    );
    let manager = Arc::new(manager);

    let public = bind(config.server.listen).await?;
    let admin = bind(config.admin.listen).await?;
    let decision = match &config.decision {
        Some(d) => Some(bind(d.listen).await?),
        None => None,
    };
    let public_addr = public.local_addr();
    let admin_addr = admin.local_addr();
    let decision_addr = decision.as_ref().map(Listener::local_addr);
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let trust = Arc::new(TrustedProxies::new(config.server.trusted_proxies.clone()));
    let tls =
        |key: &'static str, listener: &'static str, settings: &Option<crate::config::TlsConfig>| {
            settings
                .as_ref()
                .map(|s| {
                    Tls::load(s, FailedHandshakes::new(listener, &metrics))
                        .map_err(|source| StartError::Tls { key, source })
                })
                .transpose()
        };
    let public_tls = tls("server.tls_cert", "public", &config.server.tls)?;
    let admin_tls = tls("admin.tls_cert", "admin", &config.admin.tls)?;
    let decision_tls = match &config.decision {
        Some(d) => tls("decision.tls_cert", "decision", &d.tls)?,
        None => None,
    };
    for t in public_tls.iter().chain(&admin_tls).chain(&decision_tls) {
        tasks.push(tokio::spawn(
            Arc::clone(t).watch(TLS_RELOAD_CHECK, rx.clone()),
        ));
    }
    let options = |tls: Option<Arc<Tls>>| Options {
        header_read_timeout: config.server.header_read_timeout,
        max_head_bytes: MAX_HEAD_BYTES,
        tls,
        trust: Arc::clone(&trust),
        http1: None,
    };

    let minter = Arc::new(
        Minter::new(
            Arc::clone(&ring),
            config.tokens.issuer.clone(),
            config.tokens.ttl,
            config.tokens.max_ttl,
            Arc::clone(&clock),
        )
        .with_metrics(&metrics),
    );
    let limits = Arc::new(RateLimits::new(&config.rate_limit, &config.routes));
    if let Some(watch) = limits.watcher(rx.clone()) {
        tasks.push(tokio::spawn(watch));
    }
    let webhooks = Arc::new(crate::events::webhooks::Webhooks::new(
        Arc::clone(&manager),
        crate::events::target::Policy {
            allow_insecure: config.events.allow_insecure_targets,
        },
    ));
    let state = AdminState::new(admin::Inner {
        manager: Arc::clone(&manager),
        authn: Arc::clone(&authn),
        minter: Arc::clone(&minter),
        limits: Arc::clone(&limits),
        replica_id: syncer.replica_id(),
        clock: Arc::clone(&clock),
        tokens: config.tokens.clone(),
        metrics: Arc::clone(&metrics),
        metrics_token: config.admin.metrics_token.clone(),
        webhooks,
    });
    let console = console::ConsoleState::new(console::Console {
        manager: Arc::clone(&manager),
        authn: Arc::clone(&authn),
        clock: Arc::clone(&clock),
        replica_id: syncer.replica_id(),
        tokens: config.tokens.clone(),
        sessions: console::Sessions::new(
            config.admin.console_session_ttl,
            config.admin.tls.is_some(),
        ),
    });
    let router = admin::router(state)
        .merge(console::router(console))
        .layer(axum::middleware::from_fn(crate::listener::close_if_unread));
    tasks.push(tokio::spawn(admin.serve(
        options(admin_tls),
        move |conn: Arc<ConnInfo>| {
            let router = router.clone();
            hyper::service::service_fn(move |mut req: Request<Incoming>| {
                use tower::ServiceExt as _;
                // Failures are charged to the client's address.
                let client = ClientAddr(conn.client(req.headers()));
                req.extensions_mut().insert(client);
                // Absolute URLs in dialect answers (Waldur's `url`, `Link`).
                req.extensions_mut().insert(conn.scheme);
                router.clone().oneshot(req)
            })
        },
        rx.clone(),
        config.server.shutdown_grace,
    )));
    tracing::info!(%admin_addr, "admin listener up; loading credentials");

    let started = std::time::Instant::now();
    syncer.load().await?;
    tracing::info!(
        keys = cache.len(),
        revision = cache.freshness().revision(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "credential cache loaded"
    );
    let bootstrap_key = manager
        .bootstrap(config.bootstrap_admin_key.as_ref())
        .await
        .map_err(StartError::Bootstrap)?;
    manager
        .ensure_signing_key(
            signing::jwt_algorithm(config.tokens.algorithm),
            config.tokens.max_ttl,
        )
        .await
        .map_err(StartError::Bootstrap)?;

    tasks.push(tokio::spawn(
        Arc::clone(&syncer).run(config.store.poll_interval, rx.clone()),
    ));
    // Trusted issuers' keys: fetched now and on schedule, in the
    // background (an issuer that is down delays no start).
    tasks.push(tokio::spawn(
        Arc::clone(&federation).run(Arc::clone(&clock), rx.clone()),
    ));
    // What every open quota window has spent, before the first request.
    limits
        .metering()
        .load(store.as_ref(), clock.now_ms())
        .await?;
    tasks.push(tokio::spawn(Arc::clone(limits.metering()).run(
        Arc::clone(&store),
        Arc::clone(&clock),
        rx.clone(),
    )));
    let dispatcher = crate::events::Dispatcher::new(
        Arc::clone(&store),
        config.events.clone(),
        syncer.replica_id(),
        Arc::clone(&clock),
        &metrics,
    )
    .map_err(|e| StartError::Upstream(format!("webhook delivery TLS: {e}")))?;
    tasks.push(tokio::spawn(
        Arc::new(dispatcher).run(syncer.applied(), rx.clone()),
    ));
    tasks.push(tokio::spawn(crate::events::quota::run(
        Arc::clone(&manager),
        Arc::clone(limits.metering()),
        rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::events::expiry::run(
        Arc::clone(&manager),
        config.events.expiry_check_interval,
        rx.clone(),
    )));

    let oauth = crate::oauth::Endpoints::new(Arc::new(crate::oauth::OAuthState {
        minter: Arc::clone(&minter),
        authn: Arc::clone(&authn),
        manager: Arc::clone(&manager),
        limits: Arc::clone(&limits),
        clock: Arc::clone(&clock),
    }));
    // GitHub's secret-scanning partner endpoint, beside the OAuth ones.
    let scanning = config.secret_scanning.is_some();
    let oauth = match &config.secret_scanning {
        Some(sc) => oauth.merge(secret_scanning::router(Arc::new(
            secret_scanning::Scanning::new(
                sc,
                Leaks::new(Arc::clone(&manager), &config.keys.prefix, sc.action),
                &metrics,
            ),
        ))),
        None => oauth,
    };
    let oauth = Arc::new(oauth);
    let proxy = Arc::new(
        Proxy::new(
            &config,
            proxy::Parts {
                routes: RouteTable::new(&config.routes),
                authn: Arc::clone(&authn),
                limits: Arc::clone(&limits),
                upstream_tokens: UpstreamTokens::new(Arc::clone(&minter), Arc::clone(&clock)),
                metrics: Arc::clone(&metrics),
            },
        )
        .map_err(StartError::Upstream)?,
    );
    if let Some(listener) = decision {
        let decider = Arc::new(Decider::new(
            Arc::clone(&proxy),
            Arc::clone(&metrics),
            &config,
            MAX_HEAD_BYTES,
        ));
        let grpc = decision::grpc::server(Arc::clone(&decider));
        tasks.push(tokio::spawn(listener.serve(
            options(decision_tls),
            move |conn: Arc<ConnInfo>| {
                let decider = Arc::clone(&decider);
                let grpc = grpc.clone();
                hyper::service::service_fn(move |req: Request<Incoming>| {
                    let decider = Arc::clone(&decider);
                    let grpc = grpc.clone();
                    let conn = Arc::clone(&conn);
                    async move { decision::serve(&decider, &grpc, req, &conn).await }
                })
            },
            rx.clone(),
            config.server.shutdown_grace,
        )));
        if let Some(addr) = decision_addr {
            tracing::info!(%addr, "decision listener up");
        }
    }
    tasks.push(tokio::spawn(housekeep(
        Arc::clone(&limits),
        Arc::clone(&authn),
        Arc::clone(&proxy),
        Arc::clone(&metrics),
        rx.clone(),
    )));
    // The paths the OAuth endpoints (and secret scanning) answer beside
    // the routes, for both HTTP/1.1 servers.
    let beside_path =
        move |path: &str| crate::oauth::owns(path) || (scanning && path == secret_scanning::PATH);
    let mut public_options = options(public_tls);
    if config.server.http1_engine == Http1Engine::Lean {
        let lean = proxy::lean::Lean::new(
            Arc::clone(&proxy),
            beside_path,
            Some(Arc::clone(&oauth) as Arc<dyn proxy::BesideWhole>),
            config.server.header_read_timeout,
            MAX_HEAD_BYTES,
            &metrics,
        );
        public_options.http1 = Some(Arc::new(lean));
    }
    tasks.push(tokio::spawn(public.serve(
        public_options,
        move |conn: Arc<ConnInfo>| {
            let proxy = Arc::clone(&proxy);
            let oauth = Arc::clone(&oauth);
            let kept = Arc::new(proxy.kept());
            hyper::service::service_fn(move |mut req: Request<Incoming>| {
                let proxy = Arc::clone(&proxy);
                let conn = Arc::clone(&conn);
                let kept = Arc::clone(&kept);
                // The OAuth endpoints are an edge of their own, served
                // beside the routes; they charge failures to the client's
                // address.
                let path = req.uri().path();
                let beside = beside_path(path).then(|| {
                    let client = ClientAddr(conn.client(req.headers()));
                    req.extensions_mut().insert(client);
                    Arc::clone(&oauth)
                });
                async move {
                    Ok::<_, Infallible>(
                        proxy
                            .handle(
                                req,
                                &conn,
                                Some(&kept),
                                beside.as_deref().map(|b| b as &dyn Beside),
                            )
                            .await,
                    )
                }
            })
        },
        rx,
        config.server.shutdown_grace,
    )));
    // Only now: /readyz must not send traffic to a listener that is not yet
    // accepting (bootstrap and key setup run after the load).
    cache.freshness().set_ready();
    tracing::info!(%public_addr, routes = config.routes.len(), "public listener up");
    let facts = summary::Facts::new(
        &config,
        public_addr,
        admin_addr,
        decision_addr,
        cache.len(),
        cache.client_count(),
    );

    Ok(Running {
        public_addr,
        admin_addr,
        decision_addr,
        shutdown,
        tasks,
        store,
        bootstrap_key,
        grace: config.server.shutdown_grace,
        facts,
    })
}

/// Forgets state that carries no information any more (buckets that have
/// refilled, expired tokens), so memory follows active callers, not all
/// ever seen.
async fn housekeep(
    limits: Arc<RateLimits>,
    authn: Arc<Authenticator>,
    proxy: Arc<Proxy>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Often enough that a flood of distinct callers holds little state.
    let mut every = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = every.tick() => {
                limits.housekeep();
                authn.housekeep();
                proxy.housekeep();
                // Histogram samples into buckets: memory bounded between scrapes.
                metrics.upkeep();
            }
            _ = shutdown.changed() => break,
        }
    }
}
