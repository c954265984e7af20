//! Scopes: the strings that grant access to routes, held as sets that many
//! principals share. Plain data; which scopes a route requires is the
//! proxy's business, who may grant which is `manage`'s.

use bytes::Bytes;

/// A set of scopes. Accounts with the same scopes share one (the cache
/// interns them), so a principal carries a pointer, not a list.
#[derive(Debug)]
pub struct ScopeSet {
    list: Box<[Box<str>]>,
    /// Space-separated, ready to be sent as a header value without formatting.
    joined: Bytes,
}

impl ScopeSet {
    pub fn new<S: AsRef<str>>(scopes: &[S]) -> Self {
        let list: Box<[Box<str>]> = scopes.iter().map(|s| s.as_ref().into()).collect();
        Self {
            joined: Bytes::from(list.join(" ")),
            list,
        }
    }

    /// From a space-separated list (a token's `scope` claim).
    pub fn from_joined(scope: &str) -> Self {
        let words: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        Self::new(&words)
    }

    pub fn empty() -> Self {
        Self {
            list: Box::new([]),
            joined: Bytes::new(),
        }
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.list.iter().any(|s| &**s == scope)
    }

    /// Whether every scope of `other` is in this set.
    pub fn covers<'a>(&self, mut other: impl Iterator<Item = &'a str>) -> bool {
        other.all(|s| self.contains(s))
    }

    pub fn joined(&self) -> &Bytes {
        &self.joined
    }

    /// [`Self::joined`] as a string of its own (a token's `scope`): one
    /// allocation.
    pub fn to_joined_string(&self) -> String {
        // `joined` is made from a `String` in `new`: UTF-8, so this copies.
        String::from_utf8_lossy(&self.joined).into_owned()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|s| &**s)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_form_round_trips_and_ignores_extra_spaces() {
        let s = ScopeSet::from_joined(" a  b ");
        assert_eq!(&s.joined()[..], b"a b");
        assert_eq!(s.to_joined_string(), "a b");
        assert!(s.contains("a") && s.contains("b") && !s.contains("c"));
        assert!(s.covers(["a"].into_iter()));
        assert!(!s.covers(["a", "c"].into_iter()));
        assert!(ScopeSet::empty().is_empty());
    }
}
