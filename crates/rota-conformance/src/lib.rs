//! The conformance suites every rota backend passes, and the support its
//! integration tests share.
//!
//! * [`rpc`] — calls: what every [`Broker`](rota_core::rpc::Broker) does;
//!   [`rpc_tests!`] generates one test per check.
//! * [`jobs`] — jobs: what every [`JobStore`](rota_core::jobs::JobStore)
//!   does; [`jobs_tests!`] generates one test per check.
//! * [`support`] — a private `redis-server` (temp dir, free port; kill and
//!   restart it) and child processes to SIGKILL mid-work.
//!
//! A backend's test file is one line per suite:
//!
//! ```ignore
//! rota_conformance::rpc_tests!(async { ((), my_backend::connect().await) });
//! rota_conformance::jobs_tests!(async { ((), my_backend::connect().await) });
//! ```
//!
//! The suites are plain async functions over the store traits, so a backend
//! may also call a single check from a test of its own.

pub mod jobs;
pub mod rpc;
pub mod support;
