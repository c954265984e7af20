//! `KEYGATE_<SECTION>__<KEY>` environment overrides, applied to the parsed TOML
//! tree before it is deserialized, so an override is validated like the file.
//!
//! The environment is passed in as a map: `serve` hands in the process
//! environment, tests hand in their own.

use std::collections::HashMap;

use toml::{Table, Value};

const PREFIX: &str = "KEYGATE_";

/// Applies every `KEYGATE_<SECTION>__<KEY>` variable to `tree`. A value that
/// parses as a TOML number, boolean or array (`["10.0.0.0/8"]`) is taken as
/// such; anything else is a string. Returns one message per variable that names no known section.
pub(crate) fn apply(
    tree: &mut Table,
    env: &HashMap<String, String>,
    sections: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut names: Vec<&String> = env.keys().filter(|k| k.starts_with(PREFIX)).collect();
    names.sort();
    for name in names {
        let Some((section, key)) = name[PREFIX.len()..].split_once("__") else {
            continue; // KEYGATE_CONFIG, KEYGATE_ADMIN_KEY: not overrides
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        if !sections.contains(&section.as_str()) || key.is_empty() {
            problems.push(format!(
                "{name}: no config key {section}.{key} (sections: {})",
                sections.join(", ")
            ));
            continue;
        }
        let raw = &env[name];
        let value = scalar(raw).unwrap_or_else(|| Value::String(raw.clone()));
        let entry = tree
            .entry(section.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        match entry {
            Value::Table(t) => {
                t.insert(key, value);
            }
            _ => problems.push(format!("{name}: [{section}] is not a table")),
        }
    }
    problems
}

fn scalar(raw: &str) -> Option<Value> {
    let doc: Table = toml::from_str(&format!("v = {raw}")).ok()?;
    match doc.get("v")? {
        v @ (Value::Integer(_) | Value::Boolean(_) | Value::Float(_) | Value::Array(_)) => {
            Some(v.clone())
        }
        _ => None,
    }
}
