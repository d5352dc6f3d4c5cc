//! Absolute deadlines.
//!
//! A deadline travels as milliseconds since the Unix epoch, so that every
//! process that sees a request agrees on the instant it expires, however long
//! the request waited in a queue. Clocks of the machines involved are assumed
//! to be synchronised to well within a deadline's length (NTP).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// An absolute instant, in milliseconds since the Unix epoch, after which a
/// call's result is of no use to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Deadline(u64);

impl Deadline {
    /// The deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        Self(now_ms().saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)))
    }

    /// A deadline at `ms` milliseconds since the Unix epoch.
    pub const fn from_unix_ms(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_unix_ms(self) -> u64 {
        self.0
    }

    /// Time left until the deadline, or `None` when it has passed.
    pub fn remaining(self) -> Option<Duration> {
        let now = now_ms();
        (self.0 > now).then(|| Duration::from_millis(self.0 - now))
    }

    /// Whether the deadline has passed.
    pub fn has_passed(self) -> bool {
        self.remaining().is_none()
    }
}

/// Milliseconds since the Unix epoch, by the system clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_in_the_future_has_time_left() {
        let d = Deadline::after(Duration::from_secs(10));
        let left = d.remaining().expect("time left");
        assert!(left > Duration::from_secs(9) && left <= Duration::from_secs(10));
        assert!(!d.has_passed());
    }

    #[test]
    fn a_deadline_in_the_past_has_passed() {
        let d = Deadline::from_unix_ms(now_ms() - 1);
        assert!(d.has_passed());
        assert_eq!(d.remaining(), None);
    }
}
