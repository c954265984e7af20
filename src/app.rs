//! Wires the subsystems together and owns their lifecycle: open the store,
//! serve the admin listener (so `/healthz` answers while loading), load the
//! cache, bootstrap the first admin, then serve the public listener. Stops
//! everything gracefully on [`Running::shutdown`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::admin::{self, AdminState};
use crate::cache::sync::Syncer;
use crate::cache::Cache;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::credential::ApiKeyFormat;
use crate::manage::{self, Manager};
use crate::proxy::{self, Proxy, RouteTable};
use crate::ratelimit::Limits;
use crate::store::{self, Store};
use crate::token::{keys, KeyRing, Minter, TokenVerifier};

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
}

/// A started keygate.
pub struct Running {
    public_addr: SocketAddr,
    admin_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    store: Arc<dyn Store>,
    bootstrap_key: Option<Zeroizing<String>>,
    grace: std::time::Duration,
}

impl Running {
    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The generated bootstrap admin key, if this start created one. Taken
    /// once: the caller prints it and it is gone.
    pub fn take_bootstrap_key(&mut self) -> Option<Zeroizing<String>> {
        self.bootstrap_key.take()
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
        if tokio::time::timeout(self.grace + std::time::Duration::from_secs(1), drain)
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace elapsed; exiting with work in flight");
        }
        self.store.close().await;
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn local(l: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, StartError> {
    l.local_addr()
        .map_err(|source| StartError::Bind { addr, source })
}

/// Starts keygate with the system clock.
pub async fn start(config: Config) -> Result<Running, StartError> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

pub async fn start_with_clock(config: Config, clock: SharedClock) -> Result<Running, StartError> {
    let store = store::connect(config.store.url.expose()).await?;
    let format = ApiKeyFormat::new(config.keys.prefix.clone());
    let max_staleness_ms =
        i64::try_from(config.store.max_staleness.as_millis()).unwrap_or(i64::MAX);
    let cache = Arc::new(Cache::new(format.clone(), max_staleness_ms));
    let ring = Arc::new(KeyRing::new());
    let syncer = Arc::new(Syncer::new(
        Arc::clone(&cache),
        Arc::clone(&ring),
        Arc::clone(&store),
        Arc::clone(&clock),
    ));
    let manager = Arc::new(Manager::new(
        Arc::clone(&store),
        Arc::clone(&syncer),
        format,
        Arc::clone(&clock),
        config.tokens.max_ttl,
    ));

    let public = bind(config.server.listen).await?;
    let admin = bind(config.admin.listen).await?;
    let public_addr = local(&public, config.server.listen)?;
    let admin_addr = local(&admin, config.admin.listen)?;
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = Vec::new();

    let mut limits = Limits::new(config.rate_limit.default, config.rate_limit.failed_auth);
    let routes = RouteTable::new(&config.routes, &mut limits);
    let limits = Arc::new(limits);

    let state = AdminState::new(
        Arc::clone(&manager),
        Arc::clone(&cache),
        Arc::clone(&limits),
        Arc::clone(&clock),
        config.tokens.clone(),
    );
    let mut admin_rx = rx.clone();
    let admin_app =
        admin::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tasks.push(tokio::spawn(async move {
        let serve = axum::serve(admin, admin_app).with_graceful_shutdown(async move {
            let _ = admin_rx.changed().await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "admin listener failed");
        }
    }));
    tracing::info!(%admin_addr, "admin listener up; loading credentials");

    let started = std::time::Instant::now();
    syncer.load().await?;
    tracing::info!(
        keys = cache.len(),
        revision = cache.revision(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "credential cache loaded"
    );
    let bootstrap_key = state
        .manager
        .bootstrap(config.bootstrap_admin_key.as_ref())
        .await
        .map_err(StartError::Bootstrap)?;

    state
        .manager
        .ensure_signing_key(
            keys::jwt_algorithm(config.tokens.algorithm),
            config.tokens.max_ttl,
        )
        .await
        .map_err(StartError::Bootstrap)?;

    tasks.push(tokio::spawn(
        Arc::clone(&syncer).run(config.store.poll_interval, rx.clone()),
    ));
    let verifier = Arc::new(TokenVerifier::new(
        Arc::clone(&ring),
        config.tokens.issuer.clone(),
    ));
    let minter = Arc::new(Minter::new(
        Arc::clone(&ring),
        config.tokens.issuer.clone(),
        config.tokens.ttl,
        config.tokens.max_ttl,
        Arc::clone(&clock),
    ));
    let oauth = crate::oauth::router(Arc::new(crate::oauth::OAuthState {
        minter: Arc::clone(&minter),
        verifier: Arc::clone(&verifier),
        manager: Arc::clone(&manager),
        cache: Arc::clone(&cache),
        limits: Arc::clone(&limits),
        clock: Arc::clone(&clock),
    }));
    let proxy = Arc::new(Proxy::new(
        &config,
        proxy::Parts {
            routes,
            oauth,
            verifier: Arc::clone(&verifier),
            minter: Arc::clone(&minter),
            limits: Arc::clone(&limits),
            cache: Arc::clone(&cache),
            clock: Arc::clone(&clock),
        },
    ));
    tasks.push(tokio::spawn(housekeep(
        Arc::clone(&limits),
        Arc::clone(&verifier),
        Arc::clone(&proxy),
        Arc::clone(&clock),
        rx.clone(),
    )));
    tasks.push(tokio::spawn(proxy::server::serve(
        public,
        proxy,
        rx,
        config.server.shutdown_grace,
    )));
    // Only now: /readyz must not send traffic to a listener that is not yet
    // accepting (bootstrap and key setup run after the load).
    cache.set_ready();
    tracing::info!(%public_addr, routes = config.routes.len(), "public listener up");

    Ok(Running {
        public_addr,
        admin_addr,
        shutdown,
        tasks,
        store,
        bootstrap_key,
        grace: config.server.shutdown_grace,
    })
}

/// Forgets rate-limit state that carries no information any more (buckets
/// that have refilled), so memory follows active principals, not all ever seen.
async fn housekeep(
    limits: Arc<Limits>,
    verifier: Arc<TokenVerifier>,
    proxy: Arc<Proxy>,
    clock: SharedClock,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = every.tick() => {
                limits.housekeep();
                verifier.sweep(clock.now_ms());
                proxy.sweep();
            }
            _ = shutdown.changed() => break,
        }
    }
}
