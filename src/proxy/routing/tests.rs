//! Route matching and path readings, against a small table.

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

fn table() -> RouteTable {
    let c = crate::config::Config::from_toml(
        r#"
[[routes]]
name = "orders"
prefix = "/orders"
upstream = "http://127.0.0.1:1"
[[routes]]
name = "order-items"
prefix = "/orders/items"
upstream = "http://127.0.0.1:2"
[[routes]]
name = "admin"
prefix = "/admin"
upstream = "http://127.0.0.1:3"
"#,
        &HashMap::new(),
    )
    .unwrap();
    RouteTable::new(&c.routes)
}

#[test]
fn longest_prefix_on_segment_boundary_wins() {
    let t = table();
    assert_eq!(t.find("/orders/items/1").unwrap().name, "order-items");
    assert_eq!(t.find("/orders/1").unwrap().name, "orders");
    assert_eq!(t.find("/orders").unwrap().name, "orders");
    assert!(t.find("/ordersx").is_none());
    assert!(t.find("/").is_none());
}

#[test]
fn traversal_in_any_encoding_is_refused() {
    for p in [
        "/orders/../admin",
        "/orders/%2e%2e/admin",
        "/orders/%2E./x",
        "/orders/.%2e",
    ] {
        assert_eq!(normalise(p).unwrap_err(), PathError::Traversal, "{p}");
    }
}

#[test]
fn clean_paths_are_borrowed_and_dirty_ones_cleaned() {
    assert!(matches!(
        normalise("/orders/1?x").unwrap(),
        Cow::Borrowed(_)
    ));
    assert_eq!(normalise("//orders/./1").unwrap(), "/orders/1");
    assert_eq!(normalise("/orders/%2e/1/").unwrap(), "/orders/1/");
    assert_eq!(normalise("/a%20b").unwrap(), "/a%20b");
}

#[test]
fn encoded_slash_that_changes_route_is_refused() {
    let t = table();
    assert_eq!(
        t.resolve("/orders%2fitems/1").unwrap_err(),
        PathError::EncodedSlash
    );
    // Same route either way: allowed (ids with encoded slashes).
    assert_eq!(
        t.resolve("/orders/a%2Fb").unwrap().1.unwrap().name,
        "orders"
    );
}

#[test]
fn segment_parameters_that_change_the_route_are_refused() {
    let t = table();
    for p in [
        "/orders/items;/1",
        "/orders/items;x=1/1",
        "/orders/items%3Bx/1",
    ] {
        assert_eq!(t.resolve(p).unwrap_err(), PathError::SegmentParams, "{p}");
    }
    // Parameters that leave the route alone pass as they are.
    let (path, route) = t.resolve("/orders/1;v=2").unwrap();
    assert_eq!(
        (path.as_ref(), route.unwrap().name.as_str()),
        ("/orders/1;v=2", "orders")
    );
}

#[test]
fn a_spelling_that_reaches_another_route_case_insensitively_is_refused() {
    let t = table();
    assert_eq!(t.resolve("/orders/ITEMS/1").unwrap_err(), PathError::Case);
    assert_eq!(t.resolve("/Orders/x").unwrap_err(), PathError::Case);
    // Upper case that reaches the same route anyway is fine.
    assert_eq!(t.resolve("/orders/ABC").unwrap().1.unwrap().name, "orders");
}

#[test]
fn scopes_fall_back_to_star() {
    let c = crate::config::Config::from_toml(
        "[[routes]]\nname = \"a\"\nprefix = \"/a\"\nupstream = \"http://127.0.0.1:1\"\nscopes = { GET = [\"r\"], \"*\" = [\"w\"] }\n",
        &HashMap::new(),
    )
    .unwrap();
    let t = RouteTable::new(&c.routes);
    let r = t.find("/a").unwrap();
    assert_eq!(r.required_scopes("GET"), Some(&["r".to_string()][..]));
    assert_eq!(r.required_scopes("DELETE"), Some(&["w".to_string()][..]));
}

#[test]
fn unlisted_methods_are_refused_and_head_follows_get() {
    let c = crate::config::Config::from_toml(
        "[[routes]]\nname = \"a\"\nprefix = \"/a\"\nupstream = \"http://127.0.0.1:1\"\nscopes = { GET = [\"r\"] }\n[[routes]]\nname = \"b\"\nprefix = \"/b\"\nupstream = \"http://127.0.0.1:1\"\n",
        &HashMap::new(),
    )
    .unwrap();
    let t = RouteTable::new(&c.routes);
    let a = t.find("/a").unwrap();
    assert_eq!(a.required_scopes("DELETE"), None);
    assert_eq!(a.required_scopes("HEAD"), Some(&["r".to_string()][..]));
    // No scopes at all: any authenticated account, any method.
    assert_eq!(
        t.find("/b").unwrap().required_scopes("DELETE"),
        Some(&[][..])
    );
}

#[test]
fn encoded_unreserved_characters_route_as_themselves() {
    let t = table();
    let (path, route) = t.resolve("/orders/%69tems/1").unwrap();
    assert_eq!(path, "/orders/items/1");
    assert_eq!(route.unwrap().name, "order-items");
    assert_eq!(t.resolve("/%61dmin/x").unwrap().1.unwrap().name, "admin");
    // Reserved escapes stay encoded.
    assert_eq!(normalise("/a%20b%3F").unwrap(), "/a%20b%3F");
    assert_eq!(normalise("/caf%C3%A9/%7e").unwrap(), "/caf%C3%A9/~");
}

/// Found by the `paths` fuzz target: decoding `%65` next to a stray `%2`
/// assembled a `%2e`, so `/orders/%2%65%2%65/admin` left keygate as
/// `/orders/%2e%2e/admin` — a dot-dot segment for the upstream to decode.
#[test]
fn malformed_escapes_are_refused_before_decoding() {
    for p in [
        "/orders/%2%65%2%65/admin",
        "/]%3%37/o",
        "/orders/%",
        "/orders/%4",
        "/orders/%zz",
        "/orders/%%32%65",
    ] {
        assert_eq!(normalise(p).unwrap_err(), PathError::BadEscape, "{p}");
    }
    assert_eq!(normalise("/orders/%25/x").unwrap(), "/orders/%25/x");
}

proptest! {
    #[test]
    fn normalising_twice_changes_nothing(p in "(/[a-z.%2e56]{0,5}){0,5}") {
        if let Ok(once) = normalise(&p) {
            prop_assert_eq!(normalise(&once).unwrap(), once.clone());
        }
    }


    #[test]
    fn normalised_paths_never_contain_dot_segments(p in "(/[a-z.%2e]{0,4}){0,6}") {
        if let Ok(n) = normalise(&p) {
            prop_assert!(n.starts_with('/'));
            prop_assert!(!n.split('/').any(|s| matches!(dots(s), 1 | 2)));
            prop_assert!(!n.contains("//"));
        }
    }
}
