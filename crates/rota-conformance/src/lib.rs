//! The conformance suites every rota backend passes, and the support its
//! integration tests share.
//!
//! * [`rpc`] — calls: what every [`Broker`] does;
//!   [`rpc_tests!`] generates one test per check.
//! * [`jobs`] — jobs: what every [`JobStore`]
//!   does; [`jobs_tests!`] generates one test per check.
//! * [`schedules`] — schedules: what every [`ScheduleStore`] does;
//!   [`schedules_tests!`] generates one test per check.
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
pub mod schedules;
pub mod support;

use rota_core::Inboxes;
use rota_core::jobs::JobStore;
use rota_core::rpc::Broker;
use rota_core::schedules::ScheduleStore;

/// What the calls suite checks: a backend's [`Broker`] and the reply
/// [`Inboxes`] calls answer into.
pub trait RpcBackend: Broker + Inboxes {}

impl<T: Broker + Inboxes> RpcBackend for T {}

/// What the jobs suite checks: a backend's [`JobStore`] and the reply
/// [`Inboxes`] job outcomes reach.
pub trait JobBackend: JobStore + Inboxes {}

impl<T: JobStore + Inboxes> JobBackend for T {}

/// What the schedules suite checks: a backend's [`ScheduleStore`], with
/// the [`JobStore`] its runs go to and the [`Inboxes`] their outcomes
/// reach.
pub trait ScheduleBackend: ScheduleStore + JobStore + Inboxes {}

impl<T: ScheduleStore + JobStore + Inboxes> ScheduleBackend for T {}
