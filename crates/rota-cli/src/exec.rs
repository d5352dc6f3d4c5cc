//! `--exec CMD`: each job runs as a process of its own, in a process group
//! of its own. The contract with the program (see `docs/workers.md`):
//!
//! * its standard input is the job's payload (JSON);
//! * its environment names the job: `ROTA_JOB_ID`, `ROTA_TENANT`,
//!   `ROTA_QUEUE`, `ROTA_KIND`, `ROTA_ATTEMPT`, `ROTA_RUN_ID`,
//!   `ROTA_TIMEOUT_MS`, `ROTA_DEADLINE` (RFC 3339, when the job has one),
//!   and `ROTA_SCHEDULE` and `ROTA_OCCURRENCE` (RFC 3339) when it is a
//!   schedule's run;
//! * exit 0: succeeded, its standard output (at most `max_output` bytes) is
//!   the result — as JSON if it is JSON, else as a string;
//! * exit 75 (`EX_TEMPFAIL`): retry, after the delay of a last standard
//!   error line `retry-after: <seconds or duration>` if there is one, else
//!   by the retry policy's backoff;
//! * any other exit, or a signal: failed for good, with the tail of its
//!   standard error as the reason.
//!
//! The job's timeout, its cancellation, or the worker's shutdown kill the
//! whole process group, so nothing the command started outlives the job.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rota::jobs::{JobContext, JobError};
use rota_core::schedules::parse_run_id;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::error::{Code, Failure, Result};
use crate::output::ms_time;

/// The exit code that asks for a retry (`EX_TEMPFAIL` of sysexits.h).
pub(crate) const RETRY_EXIT: i32 = 75;

/// How much of standard error is kept for the reason of a failure.
const STDERR_TAIL: usize = 4096;

/// How long the pipes may stay open once the process group was killed.
const PIPES_CLOSE: Duration = Duration::from_secs(2);

/// A command that runs jobs.
#[derive(Debug, Clone)]
pub(crate) struct Exec {
    command: String,
    max_output: usize,
    /// The attempt timeout it is run under, told to the program.
    timeout: Duration,
}

impl Exec {
    /// Runs `command` with `sh -c`; refused at once if its program is not
    /// found, rather than failing every job.
    pub(crate) fn new(command: &str, max_output: usize, timeout: Duration) -> Result<Self> {
        let program = command.split_whitespace().next().ok_or_else(|| {
            Failure::new(
                Code::Usage,
                "--exec is empty; give a command, e.g. --exec ./job.sh",
            )
        })?;
        if which(program).is_none() {
            return Err(Failure::new(
                Code::NotFound,
                format!(
                    "--exec: {program:?} is not found (neither a file nor a program on PATH); \
                     give a path to an executable, e.g. --exec ./job.sh"
                ),
            ));
        }
        Ok(Self {
            command: command.to_owned(),
            max_output,
            timeout,
        })
    }

    /// Runs one job.
    pub(crate) async fn run(&self, ctx: JobContext) -> Result<serde_json::Value, JobError> {
        let job = ctx.job();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&self.command)
            .env("ROTA_JOB_ID", job.id.to_string())
            .env("ROTA_TENANT", &job.tenant)
            .env("ROTA_QUEUE", &job.queue)
            .env("ROTA_KIND", &job.kind)
            .env("ROTA_ATTEMPT", job.attempt.to_string())
            .env("ROTA_RUN_ID", &job.run_id)
            .env(
                "ROTA_TIMEOUT_MS",
                job.timeout_ms
                    .unwrap_or(u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX))
                    .to_string(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(deadline) = job.deadline {
            cmd.env("ROTA_DEADLINE", ms_time(deadline.as_unix_ms() as i64));
        }
        if let Some((schedule, occurrence)) = parse_run_id(&job.run_id) {
            cmd.env("ROTA_SCHEDULE", schedule)
                .env("ROTA_OCCURRENCE", ms_time(occurrence));
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| JobError::retry(format!("cannot start {:?}: {e}", self.command)))?;
        // Whatever ends this call — the exit, the timeout dropping it, a
        // cancellation — ends the group.
        let _group = child.id().map(Group);
        let payload = job.payload.clone();
        let mut stdin = child.stdin.take();
        let feed = tokio::spawn(async move {
            if let Some(stdin) = stdin.as_mut() {
                // A program that does not read its input closes the pipe.
                let _ = stdin.write_all(&payload).await;
            }
        });
        let out = child
            .stdout
            .take()
            .map(|o| tokio::spawn(head(o, self.max_output)));
        let err = child
            .stderr
            .take()
            .map(|e| tokio::spawn(tail(e, STDERR_TAIL)));
        let status = tokio::select! {
            s = child.wait() => s.map_err(|e| JobError::retry(format!("waiting for the command: {e}")))?,
            () = ctx.cancellation().cancelled() => {
                return Err(JobError::retry("stopped: the job was cancelled or the worker is stopping"));
            }
        };
        drop(_group);
        feed.abort();
        let stdout = match out {
            Some(t) => tokio::time::timeout(PIPES_CLOSE, t)
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        }
        .unwrap_or_else(|| Head::new(0));
        let stderr = match err {
            Some(t) => tokio::time::timeout(PIPES_CLOSE, t)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let stderr = String::from_utf8_lossy(&stderr).trim_end().to_owned();
        match status.code() {
            Some(0) => Ok(stdout.result()),
            Some(RETRY_EXIT) => {
                let mut e = JobError::retry(reason("asked to retry (exit 75)", &stderr));
                if let Some(delay) = retry_after(&stderr) {
                    e = e.after(delay);
                }
                Err(e)
            }
            Some(code) => Err(JobError::fatal(reason(&format!("exit {code}"), &stderr))),
            None => Err(JobError::fatal(reason(
                &format!("killed by a signal ({status})"),
                &stderr,
            ))),
        }
    }
}

/// A process group, killed when this is dropped.
struct Group(u32);

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0) {
            // The group may be gone already; nothing to do then.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The first bytes of an output, up to a limit, and how many more it had:
/// what is kept of a command's stdout or a service's response.
pub(crate) struct Head {
    kept: Vec<u8>,
    dropped: u64,
    limit: usize,
}

impl Head {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            kept: Vec::new(),
            dropped: 0,
            limit,
        }
    }

    /// Keeps what fits of `chunk` and counts the rest.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        let room = self.limit.saturating_sub(self.kept.len()).min(chunk.len());
        self.kept.extend_from_slice(&chunk[..room]);
        self.dropped += (chunk.len() - room) as u64;
    }

    /// What was kept.
    pub(crate) fn kept(&self) -> &[u8] {
        &self.kept
    }

    /// The job's result: the output as JSON if it is JSON, else as a
    /// string; cut, it says how much was left out.
    pub(crate) fn result(&self) -> serde_json::Value {
        result(&self.kept, self.dropped)
    }
}

/// The first `limit` bytes of `r`, read to its end (so that the program is
/// never blocked on a full pipe).
async fn head(mut r: impl AsyncRead + Unpin, limit: usize) -> Head {
    let mut head = Head::new(limit);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return head,
            Ok(n) => head.push(&buf[..n]),
        }
    }
}

/// The last `limit` bytes of `r`, read to its end.
async fn tail(mut r: impl AsyncRead + Unpin, limit: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > limit {
                    kept.drain(..kept.len() - limit);
                }
            }
        }
    }
}

/// The result of a job from its standard output.
fn result(stdout: &[u8], truncated: u64) -> serde_json::Value {
    if truncated > 0 {
        let text = String::from_utf8_lossy(stdout);
        return serde_json::json!({
            "output": text,
            "truncated_bytes": truncated,
        });
    }
    let text = String::from_utf8_lossy(stdout);
    let text = text.trim();
    if text.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

fn reason(what: &str, stderr: &str) -> String {
    if stderr.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {stderr}")
    }
}

/// The delay of a last line `retry-after: <seconds or duration>`.
fn retry_after(stderr: &str) -> Option<Duration> {
    let line = stderr.lines().last()?.trim();
    let (key, value) = line.split_once(':')?;
    if !key.trim().eq_ignore_ascii_case("retry-after") {
        return None;
    }
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let d: jiff::SignedDuration = value.parse().ok()?;
    Duration::try_from(d).ok()
}

/// Where `program` is: a path that exists, or a file of that name on PATH.
fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return p.is_file().then(|| p.to_path_buf());
    }
    // Shell built-ins and keywords a command line may start with.
    if matches!(
        program,
        "exec"
            | "exit"
            | "echo"
            | "printf"
            | "cat"
            | "sleep"
            | "true"
            | "false"
            | "test"
            | "["
            | "cd"
            | "set"
            | "read"
    ) {
        return Some(PathBuf::from(program));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_from_the_last_line_of_stderr() {
        assert_eq!(
            retry_after("busy\nretry-after: 30"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Retry-After: 1.5"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after("retry-after: 2m"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(retry_after("retry-after: soon"), None);
        assert_eq!(retry_after("retry-after: -1"), None);
        assert_eq!(retry_after("retry-after: 30\nthen more"), None);
        assert_eq!(retry_after(""), None);
    }

    #[test]
    fn output_becomes_the_result() {
        assert_eq!(result(b"{\"a\": 1}\n", 0), serde_json::json!({"a": 1}));
        assert_eq!(result(b"done\n", 0), serde_json::json!("done"));
        assert_eq!(result(b"  \n", 0), serde_json::Value::Null);
        assert_eq!(
            result(b"{\"a\":", 7),
            serde_json::json!({"output": "{\"a\":", "truncated_bytes": 7})
        );
    }

    #[test]
    fn a_program_that_does_not_exist_is_refused_up_front() {
        let t = Duration::from_secs(1);
        assert!(Exec::new("/no/such/program --flag", 10, t).is_err());
        assert!(Exec::new("no-such-program-anywhere", 10, t).is_err());
        assert!(Exec::new("", 10, t).is_err());
        assert!(Exec::new("sh -c 'exit 0'", 10, t).is_ok());
        assert!(Exec::new("echo hi", 10, t).is_ok());
    }
}
