//! Listing a queue's jobs, one state at a time, a page per call.
//!
//! A listing reads the indexes a queue keeps anyway (its scheduled set, its
//! lanes, its holders, its finished and dead lists), so it costs nothing
//! while no one lists. The order is the state's own:
//!
//! | state | order |
//! |---|---|
//! | scheduled | soonest due first |
//! | queued | partition by partition (by name), each in the store's order |
//! | running | the store's order |
//! | succeeded, failed, cancelled | the latest finished first |
//! | dead | the latest dead-lettered first |
//!
//! A page holds at most [`JobQuery::limit`] jobs and, while more may follow,
//! an opaque cursor to pass back in [`JobQuery::after`]. A store reads a
//! bounded number of entries per call, so a page that filters by tenant may
//! be short — even empty — and still have a cursor: keep asking until it
//! has none. Each page is read at one instant: a job that changes state
//! between pages may be missed or shown twice, as in the counts.

use serde::{Deserialize, Serialize};

use super::model::{JobRecord, JobState};
use super::validate::validate_tenant;
use crate::error::BrokerError;

/// Most jobs one page may ask for.
pub const MAX_PAGE: usize = 1000;

/// Longest cursor a store accepts back.
pub const MAX_CURSOR_LEN: usize = 1024;

/// Which of a queue's jobs [`JobStore::list_jobs`](super::JobStore::list_jobs)
/// returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobQuery {
    /// The state listed.
    pub state: JobState,
    /// Only this tenant's jobs, if set.
    pub tenant: Option<String>,
    /// The cursor of the page before, if any.
    pub after: Option<String>,
    /// Most jobs in the page, 1 to [`MAX_PAGE`].
    pub limit: usize,
}

impl JobQuery {
    /// The first page of jobs in `state`, up to 100 of them.
    pub fn new(state: JobState) -> Self {
        Self {
            state,
            tenant: None,
            after: None,
            limit: 100,
        }
    }

    /// Only `tenant`'s jobs.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// The page after the one whose cursor this is.
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.after = Some(cursor.into());
        self
    }

    /// At most `limit` jobs.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Checks the query before a store reads anything: a limit in range, a
    /// tenant that is a tenant's name, a cursor of a sane length (each
    /// store checks its form).
    pub fn validate(&self) -> Result<(), BrokerError> {
        if self.limit == 0 || self.limit > MAX_PAGE {
            return Err(BrokerError::Invalid(format!(
                "limit is {}; ask for 1 to {MAX_PAGE} jobs a page",
                self.limit
            )));
        }
        if let Some(tenant) = &self.tenant {
            validate_tenant(tenant)?;
        }
        if let Some(cursor) = &self.after
            && (cursor.is_empty() || cursor.len() > MAX_CURSOR_LEN)
        {
            return Err(bad_cursor());
        }
        Ok(())
    }
}

/// The error of a cursor that no page of this listing handed out.
pub fn bad_cursor() -> BrokerError {
    BrokerError::Invalid(
        "cursor is not one this listing handed out; start again without one".into(),
    )
}

/// A page of jobs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct JobPage {
    /// The jobs, in the state's order.
    pub jobs: Vec<JobRecord>,
    /// Where the next page starts, while more may follow.
    pub next: Option<String>,
}

impl JobPage {
    /// A page of `jobs`, followed by the page at `next`.
    pub fn new(jobs: Vec<JobRecord>, next: Option<String>) -> Self {
        Self { jobs, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_checked_before_any_read() {
        let ok = JobQuery::new(JobState::Queued);
        assert!(ok.validate().is_ok());
        for bad in [
            ok.clone().limit(0),
            ok.clone().limit(MAX_PAGE + 1),
            ok.clone().tenant("a b"),
            ok.clone().tenant(""),
            ok.clone().after(""),
            ok.clone().after("x".repeat(MAX_CURSOR_LEN + 1)),
        ] {
            assert!(
                matches!(bad.validate(), Err(BrokerError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
