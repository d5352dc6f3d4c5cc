//! When a failed job runs again.

use std::time::Duration;

use rand::Rng;

/// Retries of a job kind: how many attempts, and how long to wait between
/// them (exponential backoff with jitter, capped).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included; `None` (the default) for the
    /// queue's [`QueuePolicy::max_attempts`](rota_core::jobs::QueuePolicy),
    /// which also bounds redeliveries after a worker died. A job's own
    /// maximum comes first.
    pub max_attempts: Option<u32>,
    /// Wait after the first failure.
    pub base: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Growth of the wait per attempt.
    pub factor: f64,
    /// Fraction of each wait drawn at random (0 to 1), so that jobs failing
    /// together do not retry together.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// The queue's attempts (25 unless set), from 1 s doubling to at most
    /// 1 h, ±20 % jitter.
    fn default() -> Self {
        Self {
            max_attempts: None,
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600),
            factor: 2.0,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt.
    pub fn none() -> Self {
        Self {
            max_attempts: Some(1),
            ..Self::default()
        }
    }

    /// Sets the attempts in all.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n.max(1));
        self
    }

    /// Sets the first wait and the cap.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base = base;
        self.max = max.max(base);
        self
    }

    /// Sets the jitter fraction.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// The wait after attempt `attempt` (from 1) failed.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.factor.powi(attempt.saturating_sub(1).min(64) as i32);
        let raw = self.base.as_secs_f64() * exp;
        let capped = raw.min(self.max.as_secs_f64());
        let spread = capped * self.jitter;
        let jittered = if spread > 0.0 {
            capped - spread + rand::rng().random_range(0.0..=2.0 * spread)
        } else {
            capped
        };
        Duration::from_secs_f64(jittered.clamp(0.0, self.max.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_and_cap() {
        let p = RetryPolicy::default()
            .backoff(Duration::from_secs(1), Duration::from_secs(60))
            .jitter(0.2);
        for (attempt, nominal) in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0)] {
            let d = p.delay(attempt).as_secs_f64();
            assert!(
                (nominal * 0.8..=nominal * 1.2).contains(&d),
                "{attempt}: {d}"
            );
        }
        assert!(p.delay(40) <= Duration::from_secs(60));
        assert!(p.delay(u32::MAX) <= Duration::from_secs(60));
        let exact = p.jitter(0.0);
        assert_eq!(exact.delay(3), Duration::from_secs(4));
    }
}
