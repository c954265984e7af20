//! Config parsing and validation: any text is a config or a list of
//! problems naming keys — never a panic; and an accepted config's routes
//! are normalised.
#![no_main]

use std::collections::HashMap;

use keygate::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match Config::from_toml(text, &HashMap::new()) {
        Ok(config) => {
            for r in &config.routes {
                assert!(r.prefix.starts_with('/'));
                assert!(r.prefix == "/" || !r.prefix.ends_with('/'));
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
