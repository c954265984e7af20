//! The OpenAPI 3.1 description of the native `/v1` API, served at
//! `/openapi.json`. It is generated from the handlers themselves: each
//! carries its `#[utoipa::path]`, its request and response types derive
//! their schemas, and the router is built from the same declarations
//! (`utoipa_axum::routes!`), so a route cannot exist without its
//! description.

use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use super::error::{ErrorBody, ErrorDetail};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keygate admin API",
        description = "Organizations, projects, service accounts, their API keys and OAuth client \
                       credentials, signing keys, audit events, replicas and webhooks. Authenticate with \
                       `Authorization: Bearer <admin or owner API key, or a keygate JWT>`. Every \
                       write answers `X-Keygate-Revision`. Errors are \
                       `{\"error\":{\"type\",\"code\",\"message\",\"param\"}}`.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Bearer),
    tags(
        (name = "organizations"),
        (name = "projects"),
        (name = "service-accounts"),
        (name = "api-keys"),
        (name = "client-credentials", description = "OAuth 2.0 client credentials, exchanged at the public listener's /oauth2/token"),
        (name = "signing-keys", description = "The keys JWTs are signed with, published at /.well-known/jwks.json"),
        (name = "audit"),
        (name = "replicas"),
        (name = "webhooks", description = "Events out of keygate, signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)"),
    )
)]
pub struct AdminApi;

/// The one security scheme: a bearer credential (an API key or a keygate JWT).
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some("An admin or owner API key (kg_…), or a keygate JWT".into());
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The refusals any `/v1` operation may answer, all in the one error shape.
#[allow(dead_code)] // Only its derived description is used.
#[derive(IntoResponses)]
pub(super) enum Refusals {
    /// A parameter or the body is invalid; `param` names it.
    #[response(status = 400)]
    Invalid(ErrorBody),
    /// No credential, or an invalid one (`WWW-Authenticate: Bearer`).
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// The caller may not do this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such thing, or not one the caller can see.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// A name already taken, or a concurrent change.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// Too many failed authentications from this address (`Retry-After`).
    #[response(status = 429)]
    Throttled(ErrorBody),
    /// The store is unreachable, or credential data is stale; retry.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

fn string_enum(values: &[&str], description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .build()
}

/// A service account's role.
pub(super) fn role() -> Object {
    string_enum(
        &["owner", "member"],
        "`owner` manages its organization's accounts; `member` only calls APIs",
    )
}

/// A service account's derived state.
pub(super) fn account_state() -> Object {
    string_enum(
        &["active", "disabled", "expired", "closed"],
        "Derived from enabled, expires_at and closure",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_the_bearer_scheme() {
        let doc = super::super::openapi_document();
        let json: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert!(json["openapi"].as_str().unwrap().starts_with("3.1"));
        assert_eq!(
            json["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert!(json["paths"]["/v1/service-accounts/{id}"]["patch"].is_object());
        assert!(AdminApi::openapi().info.title.contains("keygate"));
    }
}
