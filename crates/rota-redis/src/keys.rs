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

/// Whether `address` is an inbox key under `prefix`, `<prefix>:{c:<id>}:r`
/// (see PROTOCOL.md; rota's own clients use a UUID as the id, a client in
/// another language any name): nothing else may be written to as a reply,
/// since an address comes from the wire and could name any key. No queue
/// key has such a tag: service names hold no `:`, and job queues' tags start
/// with `j:`.
pub(crate) fn is_inbox(prefix: &str, address: &str) -> bool {
    address
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with(":{c:") && has_inbox_shape(address))
}

/// Whether `address` ends like an inbox key, `…:{c:<id>}:r` with an id of
/// 1 to 128 ASCII letters, digits, `-`, `_` or `.`, under any prefix: the
/// last check before a reply is pushed, so that no address — however it got
/// into a request or a job — makes a reply land on a queue's own keys.
pub(crate) fn has_inbox_shape(address: &str) -> bool {
    address
        .rsplit_once(":{c:")
        .and_then(|(_, rest)| rest.strip_suffix("}:r"))
        .is_some_and(|id| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
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

    #[test]
    fn only_inbox_keys_of_the_prefix_are_inboxes() {
        assert!(is_inbox(
            "app",
            &inbox("app", "0123456789abcdef0123456789abcdef")
        ));
        assert!(is_inbox("app", "app:{c:cli}:r"));
        for hostile in [
            "app:{billing}:q",
            "app:{j:jobs}:ring",
            "other:{c:cli}:r",
            "app:{c:}:r",
            "app:{c:a}b}:r",
            "app:{c:cli}:r:x",
            "app",
            "",
        ] {
            assert!(!is_inbox("app", hostile), "{hostile}");
        }
        assert!(has_inbox_shape("other:{c:cli}:r"));
        assert!(!has_inbox_shape("app:{billing}:q"));
    }
}
