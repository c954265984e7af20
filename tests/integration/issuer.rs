//! A real OIDC issuer for the federation tests: a loopback HTTP server
//! serving a discovery document and a JWKS it can rotate, break (500,
//! garbage, too large, hanging) and count fetches of; and the tokens it
//! signs, with any header and claims a test wants.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use jsonwebtoken::Algorithm;
use keygate::jwt::signing::{self, Signer};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// How the issuer answers for its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    Serve,
    Fail,
    Garbage,
    TooLarge,
    Hang,
}

struct Key {
    kid: String,
    alg: Algorithm,
    signer: Signer,
    jwk: Value,
}

struct State {
    keys: Vec<Key>,
    /// Kids published in the JWKS (a key may sign without being published).
    published: Vec<String>,
    mode: Mode,
}

#[derive(Clone)]
pub(crate) struct TestIssuer {
    pub(crate) url: String,
    state: Arc<Mutex<State>>,
    jwks_fetches: Arc<AtomicUsize>,
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl TestIssuer {
    /// An issuer with one published ES256 key, `k1`.
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let issuer = TestIssuer {
            url: format!("http://{addr}"),
            state: Arc::new(Mutex::new(State {
                keys: Vec::new(),
                published: Vec::new(),
                mode: Mode::Serve,
            })),
            jwks_fetches: Arc::new(AtomicUsize::new(0)),
        };
        issuer.add_key(Algorithm::ES256, "k1", true);
        let served = issuer.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let served = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let served = served.clone();
                        async move { Ok::<_, std::convert::Infallible>(served.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        issuer
    }

    /// The JWKS as a file's content (for `jwks_file` issuers).
    pub(crate) fn jwks(&self) -> Value {
        let s = self.state.lock().unwrap();
        let keys: Vec<Value> = s
            .keys
            .iter()
            .filter(|k| s.published.contains(&k.kid))
            .map(|k| k.jwk.clone())
            .collect();
        json!({ "keys": keys })
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let mode = self.state.lock().unwrap().mode.clone();
        let path = req.uri().path().to_string();
        let body = match path.as_str() {
            "/.well-known/openid-configuration" => {
                json!({ "issuer": self.url, "jwks_uri": format!("{}/jwks", self.url) }).to_string()
            }
            "/jwks" => {
                self.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                match mode {
                    Mode::Serve => self.jwks().to_string(),
                    Mode::Fail => {
                        return Response::builder()
                            .status(StatusCode::INTERNAL_SERVER_ERROR)
                            .body(Full::new(Bytes::from_static(b"oops")))
                            .unwrap()
                    }
                    Mode::Garbage => "<html>not json</html>".into(),
                    Mode::TooLarge => {
                        format!("{{\"keys\": [], \"pad\": \"{}\"}}", "x".repeat(300_000))
                    }
                    Mode::Hang => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        String::new()
                    }
                }
            }
            _ => {
                return Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            }
        };
        Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    }

    /// A new key; `publish`: listed in the JWKS.
    pub(crate) fn add_key(&self, alg: Algorithm, kid: &str, publish: bool) {
        let (der, jwk) = signing::generate(alg, kid).unwrap();
        let signer = Signer::from_pkcs8(alg, &der).unwrap();
        let mut s = self.state.lock().unwrap();
        s.keys.push(Key {
            kid: kid.into(),
            alg,
            signer,
            jwk,
        });
        if publish {
            s.published.push(kid.into());
        }
    }

    /// Publishes only `kid` from now on (a rotation).
    pub(crate) fn publish_only(&self, kid: &str) {
        self.state.lock().unwrap().published = vec![kid.into()];
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    pub(crate) fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// A token signed by key `kid` with exactly this header and these claims.
    pub(crate) fn sign_raw(&self, kid: &str, header: &Value, claims: &Value) -> String {
        let s = self.state.lock().unwrap();
        let key = s.keys.iter().find(|k| k.kid == kid).unwrap();
        let input = format!("{}.{}", b64(header), b64(claims));
        let sig = key.signer.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// A token signed by `kid` (with its algorithm), these claims.
    pub(crate) fn sign(&self, kid: &str, claims: &Value) -> String {
        let alg = {
            let s = self.state.lock().unwrap();
            s.keys.iter().find(|k| k.kid == kid).unwrap().alg
        };
        let header = json!({ "alg": signing::algorithm_name(alg), "kid": kid, "typ": "JWT" });
        self.sign_raw(kid, &header, claims)
    }

    /// The claims of a good token for `sub`, plus `extra`.
    pub(crate) fn claims(&self, sub: &str, extra: Value) -> Value {
        let mut c = json!({
            "iss": self.url, "sub": sub, "aud": ["keygate"],
            "iat": now(), "exp": now() + 600,
        });
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                c.insert(k.clone(), v.clone());
            }
        }
        c
    }

    /// A good token for `sub` (key `k1`), with `extra` claims.
    pub(crate) fn token(&self, sub: &str, extra: Value) -> String {
        self.sign("k1", &self.claims(sub, extra))
    }
}
