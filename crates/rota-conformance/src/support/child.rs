//! A test that kills a process: the test binary re-runs itself with one
//! ignored `child_*` test selected, reads what the child prints, and sends
//! it SIGKILL at the moment the test wants.
//!
//! ```ignore
//! #[test]
//! #[ignore = "the child process of another test"]
//! fn child_worker() {
//!     let Some(url) = rota_conformance::support::child_env("REDIS") else { return };
//!     // … run a worker, printing "done <id>" per job …
//! }
//!
//! let mut child = Child::spawn("child_worker", &[("REDIS", &url)]);
//! let done = child.collect(Duration::from_secs(60), 300, |l| l.starts_with("done ")).await;
//! child.kill(); // SIGKILL, with work in flight
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::sync::mpsc;

/// The prefix of the environment variables a child reads with [`child_env`].
const ENV_PREFIX: &str = "ROTA_TEST_CHILD_";

/// Reads `name` as passed to [`Child::spawn`]; `None` when this process is
/// not a child (the ignored test then returns at once).
pub fn child_env(name: &str) -> Option<String> {
    std::env::var(format!("{ENV_PREFIX}{name}")).ok()
}

/// A child process running one ignored test of this test binary.
/// Killed (SIGKILL) when dropped.
pub struct Child {
    process: std::process::Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Child {
    /// Starts this test binary with only `test` selected (it must be
    /// `#[ignore]`d), with each `(name, value)` readable by [`child_env`].
    pub fn spawn(test: &str, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(std::env::current_exe().expect("the test binary"));
        command
            .args(["--exact", test, "--ignored", "--nocapture"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (name, value) in env {
            command.env(format!("{ENV_PREFIX}{name}"), value);
        }
        let mut process = command.spawn().expect("re-running the test binary");
        let stdout = process.stdout.take().expect("piped stdout");
        // Unbounded: a child prints what its test makes it print, and the
        // reader stops when the child dies.
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { process, lines }
    }

    /// Waits up to `within` for a line that `matches`; returns it, or `None`
    /// when the time ran out or the child's output ended first.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        tokio::time::timeout(within, async {
            while let Some(line) = self.lines.recv().await {
                if matches(&line) {
                    return Some(line);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// Waits up to `within` until `n` lines `matches`; returns those seen
    /// (fewer than `n` when the time ran out or the output ended).
    pub async fn collect(
        &mut self,
        within: Duration,
        n: usize,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Vec<String> {
        let mut seen = Vec::new();
        let _ = tokio::time::timeout(within, async {
            while seen.len() < n {
                match self.lines.recv().await {
                    Some(line) if matches(&line) => seen.push(line),
                    Some(_) => {}
                    None => return,
                }
            }
        })
        .await;
        seen
    }

    /// Every line printed so far and not yet read.
    pub fn drain(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.lines.try_recv().ok()).collect()
    }

    /// Freezes the child (SIGSTOP): it holds whatever it held, renews
    /// nothing and writes nothing until [`Child::thaw`] — a process paused
    /// by a long GC, a stalled VM or a debugger.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen child run again (SIGCONT), unaware of the time it lost.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .arg(signal)
            .arg(self.process.id().to_string())
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill {signal} failed");
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}
