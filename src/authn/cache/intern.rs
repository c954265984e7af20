//! Scope-set interning: accounts with the same scopes share one
//! [`ScopeSet`], so a million keys hold a handful of sets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::scope::ScopeSet;

#[derive(Default)]
pub(crate) struct Interner {
    /// Joined scopes → the shared set.
    sets: Mutex<HashMap<Box<str>, Arc<ScopeSet>>>,
    /// Stored scopes JSON → its set (the initial load parses each distinct
    /// text once).
    json: Mutex<HashMap<Box<str>, Arc<ScopeSet>>>,
}

impl Interner {
    pub(crate) fn intern(&self, scopes: &[String]) -> Arc<ScopeSet> {
        let joined = scopes.join(" ");
        let make = || Arc::new(ScopeSet::new(scopes));
        match self.sets.lock() {
            Ok(mut sets) => Arc::clone(sets.entry(joined.into_boxed_str()).or_insert_with(make)),
            Err(_) => make(),
        }
    }

    /// A scope set from its stored JSON text, parsed once per distinct text.
    pub(crate) fn intern_json(&self, json: &str) -> Arc<ScopeSet> {
        if let Some(found) = self.json.lock().ok().and_then(|m| m.get(json).cloned()) {
            return found;
        }
        let scopes: Vec<String> = serde_json::from_str(json).unwrap_or_default();
        let set = self.intern(&scopes);
        if let Ok(mut m) = self.json.lock() {
            m.insert(json.into(), Arc::clone(&set));
        }
        set
    }
}
