//! The live API keys: each principal found by its key's SHA-256, which the
//! principal holds itself, so the table holds one pointer per key.
//!
//! At a million keys the table has 2^21 slots whatever its shards (it grows
//! by doubling, and 1M > 7/8 of 2^20); a slot of (hash, pointer) would be
//! 40 bytes, 84 MB in all, where a pointer is 8, 17 MB, and the hash moves
//! into the principal once per key instead of once per slot.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::hasher::BuildIdentity;
use crate::authn::principal::Principal;
use crate::secret::KeyHash;

/// A key's principal, equal to another and hashed by the key's hash alone.
struct Keyed(Arc<Principal>);

impl Borrow<KeyHash> for Keyed {
    fn borrow(&self) -> &KeyHash {
        self.0.key_hash()
    }
}

// Consistent with `Borrow`: exactly as the `KeyHash` it borrows as.
impl Hash for Keyed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.key_hash().hash(state);
    }
}

impl PartialEq for Keyed {
    fn eq(&self, other: &Self) -> bool {
        self.0.key_hash() == other.0.key_hash()
    }
}

impl Eq for Keyed {}

pub(super) struct Keys(DashMap<Keyed, (), BuildIdentity>);

impl Keys {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self(DashMap::with_capacity_and_hasher(capacity, BuildIdentity))
    }

    pub(super) fn get(&self, hash: &KeyHash) -> Option<Arc<Principal>> {
        // The shard guard lives only for this expression; never across an await.
        self.0.get(hash).map(|e| Arc::clone(&e.key().0))
    }

    /// Caches `p` under its key's hash, replacing the principal there in
    /// one step (a key being updated is never briefly missing).
    pub(super) fn insert(&self, p: Arc<Principal>) {
        match self.0.entry(Keyed(p)) {
            // `insert` on a map keeps the old key: the principal is the key.
            Entry::Occupied(o) => {
                o.replace_entry(());
            }
            Entry::Vacant(v) => {
                v.insert(());
            }
        }
    }

    pub(super) fn remove(&self, hash: &KeyHash) {
        self.0.remove(hash);
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::authn::principal::{AccountFacts, CredentialKind};
    use crate::scope::ScopeSet;
    use crate::store::Role;

    fn principal(hash: KeyHash) -> Arc<Principal> {
        Arc::new(Principal::new(AccountFacts {
            credential_id: Uuid::now_v7(),
            key_hash: Some(hash),
            kind: CredentialKind::ApiKey,
            account_id: Uuid::now_v7(),
            organization_id: Uuid::now_v7(),
            project_id: None,
            role: Role::Member,
            scopes: Arc::new(ScopeSet::empty()),
            account_expires_at: None,
            credential_expires_at: None,
            rate_limit: None,
            source: Uuid::nil(),
            allowed_cidrs: None,
        }))
    }

    #[test]
    fn a_key_cached_again_is_found_with_its_new_principal() {
        let keys = Keys::with_capacity(0);
        let (a, b) = (KeyHash::of("kg_a"), KeyHash::of("kg_b"));
        let (first, second) = (principal(a), principal(a));
        keys.insert(Arc::clone(&first));
        keys.insert(principal(b));
        keys.insert(Arc::clone(&second));
        assert_eq!(keys.len(), 2);
        let found = keys.get(&a).unwrap();
        assert!(Arc::ptr_eq(&found, &second));
        // The replaced principal is no longer held by the table.
        drop(found);
        assert_eq!(Arc::strong_count(&first), 1);
        keys.remove(&a);
        assert!(keys.get(&a).is_none());
        assert!(keys.get(&b).is_some());
    }
}
