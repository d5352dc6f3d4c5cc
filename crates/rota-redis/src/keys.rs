//! The key layout (see `docs/PROTOCOL.md`).

/// The keys of one service; all share the hash tag `{service}`.
#[derive(Debug, Clone)]
pub(crate) struct ServiceKeys {
    pub(crate) queue: String,
    pub(crate) dead: String,
    pub(crate) lease_prefix: String,
    /// The latest epoch granted per lease name.
    pub(crate) epochs: String,
}

/// The consumer group every server of a service joins.
pub(crate) const GROUP: &str = "g";

impl ServiceKeys {
    pub(crate) fn new(prefix: &str, service: &str) -> Self {
        Self {
            queue: format!("{prefix}:{{{service}}}:q"),
            dead: format!("{prefix}:{{{service}}}:dead"),
            lease_prefix: format!("{prefix}:{{{service}}}:lease:"),
            epochs: format!("{prefix}:{{{service}}}:epochs"),
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

/// Whether `address` is an inbox key under `prefix`, as [`inbox`] makes
/// them (the client id a simple UUID): nothing else may be written to as a
/// reply, since an address comes from the wire and could name any key.
pub(crate) fn is_inbox(prefix: &str, address: &str) -> bool {
    address
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix(":{c:"))
        .and_then(|rest| rest.strip_suffix("}:r"))
        .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
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
