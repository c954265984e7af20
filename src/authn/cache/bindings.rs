//! Federated identities as the hot path reads them: by subject, each with
//! its issuer, its claim conditions and the principal of its account.
//! Replaced per account as replication applies it; each subject's list is
//! swapped whole, so a request never sees a binding half-removed, and an
//! account's update never briefly drops a binding that stays.

use std::collections::BTreeSet;
use std::sync::Arc;

use dashmap::DashMap;
use uuid::Uuid;

use super::super::principal::Principal;

/// One live binding.
#[derive(Debug)]
pub(crate) struct BindingEntry {
    /// A trusted issuer's name, or `x509`.
    pub(crate) issuer: Box<str>,
    pub(crate) subject: Box<str>,
    pub(crate) claims: Vec<(String, String)>,
    pub(crate) principal: Arc<Principal>,
}

/// Which bindings a verified identity matches.
#[derive(Debug)]
pub(crate) enum Matched {
    None,
    One(Arc<BindingEntry>),
    /// Bindings of several accounts (the first of each).
    Several(Vec<Arc<BindingEntry>>),
}

#[derive(Default)]
pub(crate) struct Bindings {
    by_subject: DashMap<Box<str>, Arc<[Arc<BindingEntry>]>>,
    /// Each account's bound subjects, to replace them.
    by_account: DashMap<Uuid, Vec<Box<str>>>,
}

impl Bindings {
    /// Makes `live` the account's bindings (empty: it has none, or is not
    /// open).
    pub(crate) fn replace(&self, account: Uuid, live: Vec<Arc<BindingEntry>>) {
        let old = self
            .by_account
            .remove(&account)
            .map(|(_, s)| s)
            .unwrap_or_default();
        let subjects: BTreeSet<Box<str>> = old
            .into_iter()
            .chain(live.iter().map(|b| b.subject.clone()))
            .collect();
        for subject in &subjects {
            let mut list: Vec<Arc<BindingEntry>> = self
                .by_subject
                .get(subject)
                .map(|l| {
                    l.iter()
                        .filter(|b| b.principal.account_id != account)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            list.extend(live.iter().filter(|b| b.subject == *subject).cloned());
            if list.is_empty() {
                self.by_subject.remove(subject);
            } else {
                self.by_subject.insert(subject.clone(), list.into());
            }
        }
        if !live.is_empty() {
            self.by_account
                .insert(account, live.iter().map(|b| b.subject.clone()).collect());
        }
    }

    /// The bindings of `issuer` for `subject` whose every claim condition
    /// `has` confirms, by account.
    pub(crate) fn matching(
        &self,
        issuer: &str,
        subject: &str,
        has: impl Fn(&str, &str) -> bool,
    ) -> Matched {
        let Some(list) = self.by_subject.get(subject).map(|l| Arc::clone(l.value())) else {
            return Matched::None;
        };
        let mut found = list.iter().filter(|b| {
            &*b.issuer == issuer && b.claims.iter().all(|(name, value)| has(name, value))
        });
        let Some(first) = found.next() else {
            return Matched::None;
        };
        let mut several: Vec<Arc<BindingEntry>> = Vec::new();
        for b in found {
            if b.principal.account_id != first.principal.account_id
                && !several
                    .iter()
                    .any(|s| s.principal.account_id == b.principal.account_id)
            {
                several.push(Arc::clone(b));
            }
        }
        if several.is_empty() {
            Matched::One(Arc::clone(first))
        } else {
            several.insert(0, Arc::clone(first));
            Matched::Several(several)
        }
    }
}
