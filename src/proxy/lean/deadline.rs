//! A deadline that moves with every request without touching the timer
//! wheel: moving it later only records the new instant; the timer, armed
//! for an earlier one, wakes then, finds the deadline moved and re-arms
//! once. A busy connection re-arms about once per timeout, not once per
//! request (hyper's per-request timers cost a wheel insert and removal
//! each).

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

pub(super) struct Deadline {
    sleep: Pin<Box<Sleep>>,
    at: Instant,
    every: Duration,
}

impl Deadline {
    /// A deadline `every` from each [`Deadline::restart`].
    pub(super) fn new(every: Duration) -> Self {
        let at = Instant::now() + every;
        Self {
            sleep: Box::pin(tokio::time::sleep_until(at)),
            at,
            every,
        }
    }

    /// The deadline is now `every` from now.
    pub(super) fn restart(&mut self) {
        self.at = Instant::now() + self.every;
        // Earlier than the timer is armed for (a clock that went back, or
        // a first use): re-arm now, or it would fire late.
        if self.at < self.sleep.deadline() {
            self.sleep.as_mut().reset(self.at);
        }
    }

    /// Resolves once the deadline has passed.
    pub(super) async fn passed(&mut self) {
        loop {
            self.sleep.as_mut().await;
            if Instant::now() >= self.at {
                return;
            }
            self.sleep.as_mut().reset(self.at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_restarted_deadline_passes_no_sooner_than_a_period_after_its_restart() {
        let period = Duration::from_millis(200);
        let mut d = Deadline::new(period);
        // Half a period on, restarted: the timer armed for the first
        // deadline fires, and the wait must go on past it.
        tokio::time::sleep(period / 2).await;
        d.restart();
        let restarted = Instant::now();
        d.passed().await;
        assert!(restarted.elapsed() >= period, "{:?}", restarted.elapsed());
        // Past, it stays passed.
        d.passed().await;
    }
}
