//! The OpenAPI 3.1 description of the native `/v1` API, served at
//! `/openapi.json`. It is generated from the handlers themselves: each
//! carries its `#[utoipa::path]`, its request and response types derive
//! their schemas, and the router is built from the same declarations
//! (`utoipa_axum::routes!`), so a route cannot exist without its
//! description.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{
    Array, ArrayBuilder, Object, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{RefOr, Required};
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
        (name = "federated-identities", description = "Identities keygate did not issue (a trusted issuer's JWT subject, a client certificate's SPIFFE id) bound to an account; exchanged at /oauth2/token or accepted on routes with accept_issuers"),
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

/// What `manage::validate` accepts as a name: no control character (Unicode
/// `Cc`, what `char::is_control` means) and at least one character that is
/// not white space (what `str::trim` removes), written out so every regex
/// dialect (ECMA-262, Python, Rust) reads it alike. Anchored with `^`…`$` and
/// free of `\n`, so Python's `$`-before-newline cannot matter.
const NAME_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*\
    [^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]\
    [^\\u0000-\\u001F\\u007F-\\u009F]*$";

fn text(nullable: bool, max: usize, description: &str) -> Object {
    let kind = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(NAME_PATTERN))
        .description(Some(description))
        .build()
}

const NAME: &str = "1 to 255 characters, not all white space, no control characters";

/// A required name, as `manage::validate::valid_name` checks it.
pub(super) fn name() -> Object {
    text(false, 255, NAME)
}

/// An optional name (`null` or absent: unchanged, or the default).
pub(super) fn optional_name() -> Object {
    text(true, 255, NAME)
}

/// An organization's abbreviation (`null` clears it).
pub(super) fn abbreviation() -> Object {
    text(
        true,
        32,
        "1 to 32 characters, not all white space, no control characters",
    )
}

/// Scopes: at most 100, each 1–128 visible ASCII characters.
fn scope_list(nullable: bool) -> Array {
    let kind = if nullable {
        SchemaType::from_iter([Type::Array, Type::Null])
    } else {
        SchemaType::Type(Type::Array)
    };
    ArrayBuilder::new()
        .schema_type(kind)
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[!-~]{1,128}$")),
        )
        .max_items(Some(100))
        .description(Some(
            "What the account may do, e.g. `[\"orders:read\"]`: at most 100 scopes, each 1 to \
             128 visible ASCII characters",
        ))
        .build()
}

/// An account's scopes at creation.
pub(super) fn scopes() -> Array {
    scope_list(false)
}

/// An account's new scopes (`null` or absent: unchanged).
pub(super) fn optional_scopes() -> Array {
    scope_list(true)
}

/// An organization's longest credential lifetime (`null` or absent: none,
/// or unchanged), exactly as `manage` reads it.
pub(super) fn lifetime() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some("^[1-9][0-9]{0,5}[dhm]$"))
        .description(Some(
            "The longest a key or credential made in the organization may live: days, hours \
             or minutes, e.g. `\"90d\"`; each must then carry an `expires_at` within it. \
             Platform admins only",
        ))
        .build()
}

/// A key's or credential's client addresses: 1 to 100 CIDRs or bare
/// addresses (`null` or absent: any address, or unchanged).
pub(super) fn cidrs() -> Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(43))
                .description(Some("a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or an address")),
        )
        .min_items(Some(1))
        .max_items(Some(100))
        .description(Some(
            "Client addresses (resolved through `trusted_proxies`) the credential may be used \
             from; elsewhere 403 `address_not_allowed`",
        ))
        .build()
}

/// A key's or credential's scopes: a subset of its account's (`null` or
/// absent: the account's).
pub(super) fn narrower_scopes() -> Array {
    let mut a = scope_list(true);
    a.description = Some(
        "A subset of the account's scopes: what this credential may do (default: all of the \
         account's)"
            .into(),
    );
    a
}

/// A rate limit as `config::RateSpec` reads it, in its canonical form
/// (`null` or absent: none, or unchanged).
pub(super) fn rate() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some("^[1-9][0-9]{0,8}/[smh]( burst [1-9][0-9]{0,8})?$"))
        .description(Some(
            "e.g. `\"100/s\"`, `\"50/m burst 10\"`: per second, minute or hour",
        ))
        .build()
}

/// An account's metadata at creation, as `manage::validate` bounds it.
pub(super) fn metadata() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(32))
        .description(Some(
            "Free-form JSON object: at most 32 keys, 16 KiB as text",
        ))
        .build()
}

/// Completes the generated document with what the derive cannot say.
///
/// A body none of whose fields is required may be left out altogether: the
/// native API reads an empty body as `{}` (`extract::JsonBody`), so such a
/// body is documented as optional. Derived from the schemas themselves, so
/// operations added later follow the rule without being listed.
pub(super) fn finish(doc: &mut utoipa::openapi::OpenApi) {
    let schemas = doc
        .components
        .as_ref()
        .map(|c| c.schemas.clone())
        .unwrap_or_default();
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            optional_body_when_nothing_required(op, &schemas);
        }
    }
}

fn optional_body_when_nothing_required(
    op: &mut Operation,
    schemas: &std::collections::BTreeMap<String, RefOr<Schema>>,
) {
    let Some(body) = op.request_body.as_mut() else {
        return;
    };
    let nothing_required = body.content.values().all(|c| {
        let schema = match &c.schema {
            Some(RefOr::Ref(r)) => r
                .ref_location
                .rsplit('/')
                .next()
                .and_then(|name| schemas.get(name)),
            other => other.as_ref(),
        };
        matches!(schema, Some(RefOr::T(Schema::Object(o))) if o.required.is_empty())
    });
    if nothing_required {
        body.required = Some(Required::False);
    }
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
