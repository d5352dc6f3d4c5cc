//! `--http URL`: each job is a JSON POST to a service that runs it. The
//! contract (see `docs/workers.md`):
//!
//! * the body: `{"id", "tenant", "queue", "kind", "attempt", "run_id",
//!   "timeout_ms", "deadline", "schedule", "occurrence", "payload"}` — the
//!   last four `null` when they do not apply;
//! * 2xx: succeeded, the response body (at most `max_output` bytes) is the
//!   result — as JSON if it is JSON, else as a string;
//! * 429 or 503: retry, after the `Retry-After` it names (seconds or an
//!   HTTP date), else by the retry policy's backoff;
//! * any other 5xx, a connection refused or reset, a timeout: retry, by
//!   the backoff;
//! * any other status: failed for good, with the start of the body as the
//!   reason.
//!
//! One client serves every job: connections are pooled and kept alive.

use std::time::Duration;

use rota::jobs::{JobContext, JobError};
use rota_core::schedules::parse_run_id;

use crate::error::{Code, Failure, Result};
use crate::exec::Head;
use crate::output::ms_time;

/// How much of an error response is kept as the reason.
const REASON: usize = 2048;

/// A service that runs jobs.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    url: reqwest::Url,
    max_output: usize,
    timeout: Duration,
}

impl Http {
    pub(crate) fn new(url: &str, max_output: usize, timeout: Duration) -> Result<Self> {
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            Failure::new(
                Code::Usage,
                format!("--http {url:?} is not a URL: {e}; write e.g. http://localhost:8080/jobs"),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(Failure::new(
                Code::Usage,
                format!("--http {url:?} must be an http:// or https:// URL with a host"),
            ));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("rota/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::new(Code::Failure, format!("cannot make an HTTP client: {e}")))?;
        Ok(Self {
            client,
            url: parsed,
            max_output,
            timeout,
        })
    }

    /// Says, at start, whether the service answers at all: a worker whose
    /// service is down keeps running (its jobs are retried), but says so.
    pub(crate) async fn probe(&self) {
        let url = &self.url;
        match self
            .client
            .head(url.clone())
            .timeout(Duration::from_secs(3))
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) => {
                eprintln!(
                    "rota worker: {url} does not answer ({}); its jobs will be retried with \
                     backoff until it does",
                    root(&e)
                );
            }
        }
    }

    /// Runs one job.
    pub(crate) async fn run(&self, ctx: JobContext) -> Result<serde_json::Value, JobError> {
        let job = ctx.job();
        let payload: serde_json::Value = serde_json::from_slice(&job.payload)
            .map_err(|e| JobError::fatal(format!("the payload is not JSON: {e}")))?;
        let run = parse_run_id(&job.run_id);
        let timeout = job.timeout_ms.map_or(self.timeout, Duration::from_millis);
        let body = serde_json::json!({
            "id": job.id,
            "tenant": job.tenant,
            "queue": job.queue,
            "kind": job.kind,
            "attempt": job.attempt,
            "run_id": job.run_id,
            "timeout_ms": u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            "deadline": job.deadline.map(|d| ms_time(d.as_unix_ms() as i64)),
            "schedule": run.map(|(s, _)| s),
            "occurrence": run.map(|(_, at)| ms_time(at)),
            "payload": payload,
        });
        let sent = self
            .client
            .post(self.url.clone())
            .json(&body)
            .timeout(timeout)
            .send();
        let response = tokio::select! {
            r = sent => r.map_err(|e| JobError::retry(format!("{}: {}", self.url, root(&e))))?,
            () = ctx.cancellation().cancelled() => {
                return Err(JobError::retry("stopped: the job was cancelled or the worker is stopping"));
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        let body = read(response, self.max_output).await;
        if status.is_success() {
            return Ok(body.result());
        }
        let reason: String = String::from_utf8_lossy(body.kept())
            .trim()
            .chars()
            .take(REASON)
            .collect();
        let what = if reason.is_empty() {
            format!("{} answered {status}", self.url)
        } else {
            format!("{} answered {status}: {reason}", self.url)
        };
        match status.as_u16() {
            429 | 503 => {
                let e = JobError::retry(what);
                Err(match retry_after {
                    Some(d) => e.after(d),
                    None => e,
                })
            }
            500..=599 => Err(JobError::retry(what)),
            _ => Err(JobError::fatal(what)),
        }
    }
}

/// The body, at most `limit` bytes of it (the rest read and dropped).
async fn read(mut response: reqwest::Response, limit: usize) -> Head {
    let mut head = Head::new(limit);
    while let Ok(Some(chunk)) = response.chunk().await {
        head.push(&chunk);
    }
    head
}

/// A `Retry-After` value: seconds, or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(86_400)));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = at.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The innermost cause of a request's failure (what reqwest wraps).
fn root(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_timeout() {
        return "timed out".into();
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("30"), Some(Duration::from_secs(30)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn only_http_urls_with_a_host_are_taken() {
        let t = Duration::from_secs(1);
        assert!(Http::new("http://localhost:8080/jobs", 10, t).is_ok());
        assert!(Http::new("https://jobs.example/run", 10, t).is_ok());
        assert!(Http::new("ftp://h/x", 10, t).is_err());
        assert!(Http::new("localhost:8080", 10, t).is_err());
        assert!(Http::new("not a url", 10, t).is_err());
    }
}
