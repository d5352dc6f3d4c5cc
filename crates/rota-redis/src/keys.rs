//! The key layout (see `docs/PROTOCOL.md`).

/// The keys of one service; all share the hash tag `{service}`.
#[derive(Debug, Clone)]
pub(crate) struct ServiceKeys {
    pub(crate) queue: String,
    pub(crate) dead: String,
    pub(crate) lease_prefix: String,
}

/// The consumer group every server of a service joins.
pub(crate) const GROUP: &str = "g";

impl ServiceKeys {
    pub(crate) fn new(prefix: &str, service: &str) -> Self {
        Self {
            queue: format!("{prefix}:{{{service}}}:q"),
            dead: format!("{prefix}:{{{service}}}:dead"),
            lease_prefix: format!("{prefix}:{{{service}}}:lease:"),
        }
    }

    pub(crate) fn lease(&self, consumer: &str) -> String {
        format!("{}{consumer}", self.lease_prefix)
    }
}

/// A client's reply inbox, in a hash tag of its own.
pub(crate) fn inbox(prefix: &str, client: &str) -> String {
    format!("{prefix}:{{c:{client}}}:r")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_keys_share_one_hash_tag() {
        let k = ServiceKeys::new("app", "billing");
        assert_eq!(k.queue, "app:{billing}:q");
        assert_eq!(k.dead, "app:{billing}:dead");
        assert_eq!(k.lease("c1"), "app:{billing}:lease:c1");
        assert_eq!(inbox("app", "x"), "app:{c:x}:r");
    }
}
