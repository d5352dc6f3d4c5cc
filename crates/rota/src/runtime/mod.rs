//! What servers and workers share: holding a lease, writing finished work
//! in batches, and backing off.
//!
//! * [`backoff`] — [`Backoff`]: exponential delays with jitter.
//! * `lease` — the local lease clock, renewal and reaping loops.
//! * `combine` — flat-combined batch writes.
//! * `tenure` — one consumer's time holding its lease, and the loop that
//!   registers again after a lost lease.

pub mod backoff;
pub(crate) mod combine;
pub(crate) mod lease;
pub(crate) mod tenure;

pub use backoff::Backoff;
