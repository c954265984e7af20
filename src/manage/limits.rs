//! Which rate limits an actor may hand out. The delegation rule that holds
//! for scopes holds for limits: an owner sets a limit only at or below its
//! own effective limit (its account's own, else `[rate_limit].default`);
//! raising one is for platform admins. (Quotas, when they come, join here.)
//! Every dialect and `/v1` reach this through the account writes.

use super::validate::valid_rate;
use super::{from_store, Actor, Error, Manager, Result};
use crate::config::RateSpec;

impl Manager {
    /// `rate` validated, and allowed to `actor`. `None` clears the
    /// account's own limit, which leaves it `[rate_limit].default`: that
    /// too must be within the owner's own.
    pub(super) async fn delegable_rate(
        &self,
        actor: &Actor,
        rate: Option<String>,
    ) -> Result<Option<String>> {
        let rate = valid_rate(rate)?;
        if actor.admin {
            return Ok(rate);
        }
        // SECURITY: an owner's members must never outrun the owner, nor the
        // owner the limit the platform set for it.
        let Some(ceiling) = self.own_rate(actor).await? else {
            return Ok(rate); // the owner itself is not limited
        };
        let wanted = match rate.as_deref() {
            Some(s) => RateSpec::parse(s).ok(),
            None => self.default_rate,
        };
        match wanted {
            Some(w) if w.at_most(&ceiling) => Ok(rate),
            _ => Err(Error::Forbidden(
                "an owner may set a rate limit only at or below its own; raising one is for platform admins",
            )),
        }
    }

    /// The actor's effective limit, as the store has it now (a JWT actor
    /// does not carry it).
    async fn own_rate(&self, actor: &Actor) -> Result<Option<RateSpec>> {
        let own = self
            .store
            .account(actor.account_id)
            .await
            .map_err(|e| from_store(e, "service account"))?
            .and_then(|a| a.rate_limit)
            .and_then(|s| RateSpec::parse(&s).ok());
        Ok(own.or(self.default_rate))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::RateSpec;

    #[test]
    fn at_most_compares_rate_and_burst() {
        let r = |s: &str| RateSpec::parse(s).unwrap();
        assert!(r("10/s").at_most(&r("10/s")));
        assert!(r("600/m burst 10").at_most(&r("10/s")));
        assert!(!r("601/m burst 10").at_most(&r("10/s")));
        assert!(!r("100000/s").at_most(&r("100/s")));
        // As slow, but a burst larger than the ceiling's.
        assert!(!r("100/m").at_most(&r("10/s")));
        assert!(r("100/m burst 10").at_most(&r("10/s")));
    }
}
