//! Interning: accounts with the same scopes share one [`ScopeSet`], and
//! credentials of accounts alike one [`Profile`], so a million keys hold a
//! handful of each.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::authn::principal::Profile;
use crate::scope::ScopeSet;

#[derive(Default)]
pub(crate) struct Interner {
    /// Joined scopes → the shared set.
    sets: Mutex<HashMap<Box<str>, Arc<ScopeSet>>>,
    /// Stored scopes JSON → its set (the initial load parses each distinct
    /// text once).
    json: Mutex<HashMap<Box<str>, Arc<ScopeSet>>>,
    /// The profiles of cached principals (a set: a profile is its own key).
    profiles: Mutex<HashSet<Arc<Profile>>>,
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

    /// The shared profile equal to `p`.
    pub(crate) fn profile(&self, p: Profile) -> Arc<Profile> {
        let Ok(mut set) = self.profiles.lock() else {
            return Arc::new(p);
        };
        if let Some(found) = set.get(&p) {
            return Arc::clone(found);
        }
        let p = Arc::new(p);
        set.insert(Arc::clone(&p));
        p
    }

    /// Forgets the profiles no cached principal holds any more (their
    /// accounts changed or are gone).
    pub(crate) fn prune_profiles(&self) {
        if let Ok(mut set) = self.profiles.lock() {
            set.retain(|p| Arc::strong_count(p) > 1);
        }
    }

    /// Profiles held.
    #[cfg(test)]
    pub(crate) fn profile_count(&self) -> usize {
        self.profiles.lock().map_or(0, |s| s.len())
    }
}
