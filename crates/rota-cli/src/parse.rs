//! Reading instants and durations given on the command line, each error
//! naming the flag and showing what to write.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rota_core::jobs::JobState;

use crate::error::{Failure, Result};

/// An RFC 3339 instant.
pub(crate) fn instant(flag: &str, s: &str) -> Result<Timestamp> {
    s.parse().map_err(|e| {
        Failure::invalid(format!(
            "{flag} {s:?} is not an instant: {e}; write RFC 3339, e.g. 2026-12-01T09:00:00Z"
        ))
    })
}

/// A duration such as `500ms`, `30s` or `1h30m`, of either sign.
pub(crate) fn signed_duration(flag: &str, s: &str) -> Result<SignedDuration> {
    s.parse().map_err(|e| {
        Failure::invalid(format!(
            "{flag} {s:?} is not a duration: {e}; write e.g. 500ms, 30s, 15m, 1h30m"
        ))
    })
}

/// A duration that is not negative.
pub(crate) fn duration(flag: &str, s: &str) -> Result<Duration> {
    Duration::try_from(signed_duration(flag, s)?)
        .map_err(|_| Failure::invalid(format!("{flag} {s:?} must not be negative")))
}

/// A duration longer than zero.
pub(crate) fn positive_duration(flag: &str, s: &str) -> Result<Duration> {
    let d = duration(flag, s)?;
    if d.is_zero() {
        return Err(Failure::invalid(format!(
            "{flag} {s:?} must be longer than zero"
        )));
    }
    Ok(d)
}

/// A job state by its name (`queued`, `dead`, …), for clap.
pub(crate) fn job_state(s: &str) -> std::result::Result<JobState, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
        format!(
            "{s:?} is not a job state; use scheduled, queued, running, succeeded, failed, \
             cancelled or dead"
        )
    })
}
