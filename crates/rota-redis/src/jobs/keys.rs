//! The keys of one queue, and the function calls that name them.

use crate::call::Call;
use crate::scripts::JOBS;

/// The keys every job function is given first, in the order `common.lua`
/// reads them.
const FIXED: [&str; 18] = [
    "ring",
    "seq",
    "sched",
    "psched",
    "run",
    "grp",
    "waiting",
    "wants",
    "finished",
    "fin",
    "dead",
    "keys",
    "kof",
    "consumers",
    "tidy",
    "tomb",
    "capped",
    "policy",
];

/// The keys of one queue, all under `<prefix>:{j:<queue>}:`.
#[derive(Debug, Clone)]
pub(crate) struct QueueKeys {
    base: String,
}

impl QueueKeys {
    pub(crate) fn new(prefix: &str, queue: &str) -> Self {
        Self {
            base: format!("{prefix}:{{j:{queue}}}:"),
        }
    }

    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }

    pub(crate) fn job(&self, id: impl std::fmt::Display) -> String {
        format!("{}job:{id}", self.base)
    }

    /// A lane, by its name: a list of queued jobs.
    pub(crate) fn lane(&self, name: &str) -> String {
        format!("{}ready:{name}", self.base)
    }

    /// A grouped partition's claimable lanes.
    pub(crate) fn lanes_of(&self, partition: &str) -> String {
        format!("{}lanes:{partition}", self.base)
    }

    /// The lanes of `tenant` that are parked.
    pub(crate) fn parked(&self, tenant: &str) -> String {
        format!("{}parked:{tenant}", self.base)
    }

    pub(crate) fn held(&self, consumer: &str) -> String {
        format!("{}held:{consumer}", self.base)
    }

    pub(crate) fn lease(&self, consumer: &str) -> String {
        format!("{}lease:{consumer}", self.base)
    }

    /// The held jobs of `consumer` whose cancellation was asked for.
    pub(crate) fn cancels(&self, consumer: &str) -> String {
        format!("{}cancels:{consumer}", self.base)
    }

    pub(crate) fn handoff(&self, consumer: &str) -> String {
        format!("{}handoff:{consumer}", self.base)
    }

    /// A call of job function `function` with the fixed keys and, as the
    /// first argument, the base (for the keys a function derives from what
    /// it reads); the caller adds the function's own keys and arguments.
    pub(crate) fn call(&self, function: &str) -> Call {
        let mut call = Call::new(&JOBS, function);
        for name in FIXED {
            call.key(self.key(name));
        }
        call.arg(&self.base);
        call
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_keeps_its_keys_under_one_hash_tag() {
        let k = QueueKeys::new("app", "mail");
        assert_eq!(k.key("ring"), "app:{j:mail}:ring");
        assert_eq!(k.job("x"), "app:{j:mail}:job:x");
        assert_eq!(k.held("c1"), "app:{j:mail}:held:c1");
        assert_eq!(k.handoff("c1"), "app:{j:mail}:handoff:c1");
        assert_eq!(k.lease("c1"), "app:{j:mail}:lease:c1");
    }

    #[test]
    fn every_key_a_function_derives_from_the_base_is_in_the_queue_slot() {
        use redis::cluster_routing::Slot;
        // The tag closes inside the base, whatever the names after it hold.
        for queue in ["mail", "a}b", "a{b", "{x}", "q:1"] {
            let k = QueueKeys::new("app", queue);
            let slot = Slot::for_key(k.key("ring"));
            for derived in [
                k.job("x"),
                k.lane("p:{t}:0"),
                k.lanes_of("}p"),
                k.parked("t{"),
                k.held("c"),
                k.lease("c"),
                k.cancels("c"),
                k.handoff("c"),
                format!("{}anything{{else}}", k.key("")),
            ] {
                assert_eq!(Slot::for_key(&derived), slot, "{queue}: {derived}");
            }
        }
    }
}
