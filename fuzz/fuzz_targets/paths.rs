//! Path normalisation and routing. A path that is admitted is normalised
//! (no dot segments, no empty segments), normalising it again changes
//! nothing, and it reaches the same route however it is read again.
#![no_main]

use std::sync::OnceLock;

use keygate::config::Config;
use keygate::proxy::routing::normalise;
use keygate::proxy::RouteTable;
use libfuzzer_sys::fuzz_target;

fn table() -> &'static RouteTable {
    static T: OnceLock<RouteTable> = OnceLock::new();
    T.get_or_init(|| {
        let toml = r#"
[[routes]]
name = "orders"
prefix = "/orders"
upstream = "http://127.0.0.1:9000"
[[routes]]
name = "admin"
prefix = "/orders/admin"
upstream = "http://127.0.0.1:9001"
[[routes]]
name = "Reports"
prefix = "/Reports/v1"
upstream = "http://127.0.0.1:9002"
[[routes]]
name = "root"
prefix = "/"
upstream = "http://127.0.0.1:9003"
public = true
"#;
        let config = Config::from_toml(toml, &Default::default()).unwrap();
        RouteTable::new(&config.routes)
    })
}

fuzz_target!(|raw: &str| {
    let table = table();
    let Ok((path, route)) = table.resolve(raw) else {
        return;
    };
    assert!(path.starts_with('/'), "{raw:?} -> {path:?}");
    for segment in path.split('/').skip(1) {
        assert!(segment != "." && segment != "..", "{raw:?} -> {path:?}");
    }
    assert!(!path.contains("//"), "{raw:?} -> {path:?}");
    let again = normalise(&path).expect("a normalised path normalises");
    assert_eq!(again, path, "normalising twice changed {raw:?}");
    let (_, route_again) = table.resolve(&path).expect("a resolved path resolves");
    assert_eq!(
        route.map(|r| r.index),
        route_again.map(|r| r.index),
        "{raw:?}"
    );
});
