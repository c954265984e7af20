//! The token endpoint as real OAuth clients meet it: the `oauth2` crate
//! with either client authentication method, and the per-address limit on
//! failed client authentication.

use http::StatusCode;

use crate::oauth::{basic, client, verify};
use crate::support::{header, Harness};

/// The `oauth2` crate's HTTP client hook, over hyper.
async fn oauth2_http(req: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, std::io::Error> {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let (parts, body) = req.into_parts();
    let res = client
        .request(http::Request::from_parts(
            parts,
            Full::new(bytes::Bytes::from(body)),
        ))
        .await
        .map_err(std::io::Error::other)?;
    let (parts, body) = res.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok(http::Response::from_parts(parts, bytes.to_vec()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_oauth2_client_gets_a_token_with_either_auth_method() {
    use oauth2::basic::BasicClient;
    use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};

    let h = Harness::start("").await;
    let (account, id, secret) = client(&h, &["orders:read", "orders:write"]).await;
    // Everything from discovery, as a client configured by issuer would.
    let (_, _, meta) = h
        .proxy("GET", "/.well-known/oauth-authorization-server", &[])
        .await;
    let advertised = meta["token_endpoint"].as_str().unwrap();
    let token_url = advertised.replace("127.0.0.1:8080", &h.public_addr().to_string());
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let oauth = BasicClient::new(ClientId::new(id.clone()))
            .set_client_secret(ClientSecret::new(secret.clone()))
            .set_auth_type(auth.clone())
            .set_token_uri(TokenUrl::new(token_url.clone()).unwrap());
        let token = oauth
            .exchange_client_credentials()
            .add_scope(Scope::new("orders:read".into()))
            .request_async(&oauth2_http)
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e:?}"));
        assert!(token.refresh_token().is_none());
        assert_eq!(token.scopes().unwrap()[0].as_str(), "orders:read");
        let (_, claims) = verify(
            &h,
            token.access_token().secret(),
            meta["issuer"].as_str().unwrap(),
        )
        .await;
        assert_eq!(claims["sub"], account.as_str());
    }
    // And the library surfaces keygate's RFC 6749 errors as such.
    let bad = BasicClient::new(ClientId::new(id))
        .set_client_secret(ClientSecret::new("kgs_wrong".into()))
        .set_token_uri(TokenUrl::new(token_url).unwrap());
    let err = bad
        .exchange_client_credentials()
        .request_async(&oauth2_http)
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("invalid_client"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_client_authentication_is_limited_per_address() {
    let h = Harness::start("[rate_limit]\nfailed_auth = \"3/h\"\n").await;
    let (_, id, secret) = client(&h, &["orders:read"]).await;
    let cc = "grant_type=client_credentials";
    for _ in 0..3 {
        let (status, _, _) = h
            .form(
                "/oauth2/token",
                cc,
                &[("authorization", &basic(&id, "kgs_guess"))],
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, hdrs, body) = h
        .form(
            "/oauth2/token",
            cc,
            &[("authorization", &basic(&id, "kgs_guess"))],
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(header(&hdrs, "retry-after").parse::<u64>().unwrap() >= 1);
    // Failing secrets stay refused; the right secret still gets a token.
    let (status, _, _) = h
        .form(
            "/oauth2/token",
            cc,
            &[("authorization", &basic(&id, "kgs_guess"))],
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _, _) = h
        .form(
            "/oauth2/token",
            cc,
            &[("authorization", &basic(&id, &secret))],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}
