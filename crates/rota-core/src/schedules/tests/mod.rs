//! Tests of triggers: every instant is given, none is read from a clock.

use jiff::{SignedDuration, Timestamp};

use super::{Plan, Trigger};

mod bounds;
mod cron;
mod dst;
mod invalid;
mod kinds;
mod progress;
mod wire;

/// An instant from its RFC 3339 form.
fn t(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

fn plan(trigger: Trigger) -> Plan {
    trigger.plan().unwrap_or_else(|e| panic!("{e}"))
}

/// The first `n` occurrence instants of `trigger` after `after`, in UTC.
fn fires(trigger: Trigger, after: &str, n: usize) -> Vec<String> {
    plan(trigger)
        .fire_times_after(t(after))
        .take(n)
        .map(|o| o.at.to_string())
        .collect()
}

/// The first `n` occurrences of a cron expression in `tz` after `after`.
fn cron_fires(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
    fires(Trigger::cron_in(expr, tz), after, n)
}

#[test]
fn plans_and_triggers_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Plan>();
    send_sync::<Trigger>();
    send_sync::<super::TriggerError>();
}
