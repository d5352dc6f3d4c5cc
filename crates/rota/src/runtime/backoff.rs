//! Exponential backoff with "equal" jitter (half the step fixed, half
//! random), for reconnects and retries: never a retry at once, yet spread.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with jitter: each [`next_delay`](Backoff::next_delay) waits a
/// random time between half of and the full current step, and doubles the
/// step up to a ceiling.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    /// Backoff starting at `base` and never above `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            step: base,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// Starts over from the base step, after a success.
    pub fn reset(&mut self) {
        self.step = self.base;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(50), Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_ceiling_and_stay_jittered() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        for d in &delays[3..] {
            assert!(*d >= Duration::from_millis(400) && *d <= Duration::from_millis(800));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
