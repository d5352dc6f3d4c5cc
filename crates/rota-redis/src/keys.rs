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

/// Schedule shard `shard`'s inbox, in the shard's hash tag `{s:<shard>}`
/// (see `schedules/`): replies there stay until the shard's owner
/// acknowledges them.
pub(crate) fn shard_inbox(prefix: &str, shard: u32) -> String {
    format!("{prefix}:{{s:{shard}}}:r")
}

/// Whether `address` is an inbox key under `prefix`: a client's,
/// `<prefix>:{c:<id>}:r` (see PROTOCOL.md; rota's own clients use a UUID as
/// the id, a client in another language any name), or the inbox of one of
/// the `shards` schedule shards, `<prefix>:{s:<n>}:r`. Nothing else may be
/// written to as a reply, since an address comes from the wire and could
/// name any key. No queue key has such a tag: service names hold no `:`,
/// and job queues' tags start with `j:`.
pub(crate) fn is_inbox(prefix: &str, address: &str, shards: u32) -> bool {
    let Some(rest) = address.strip_prefix(prefix) else {
        return false;
    };
    if rest.starts_with(":{c:") {
        return has_inbox_shape(address);
    }
    rest.strip_prefix(":{s:")
        .and_then(|r| r.strip_suffix("}:r"))
        .and_then(shard_number)
        .is_some_and(|n| n < shards)
}

/// Whether `address` ends like an inbox key, under any prefix: a client's,
/// `…:{c:<id>}:r` with an id of 1 to 128 ASCII letters, digits, `-`, `_` or
/// `.`, or a schedule shard's, `…:{s:<n>}:r`. The last check before a reply
/// is pushed, so that no address — however it got into a request or a job
/// — makes a reply land on a queue's own keys.
pub(crate) fn has_inbox_shape(address: &str) -> bool {
    shard_of_inbox(address).is_some()
        || address
            .rsplit_once(":{c:")
            .and_then(|(_, rest)| rest.strip_suffix("}:r"))
            .is_some_and(|id| {
                (1..=128).contains(&id.len())
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            })
}

/// The shard of an address shaped like a schedule shard's inbox,
/// `<prefix>:{s:<n>}:r` under any prefix (which holds no brace).
fn shard_of_inbox(address: &str) -> Option<u32> {
    let (prefix, rest) = address.rsplit_once(":{s:")?;
    if prefix.contains(['{', '}']) {
        return None;
    }
    shard_number(rest.strip_suffix("}:r")?)
}

/// `n` as a shard number, if it is one in plain decimal.
fn shard_number(n: &str) -> Option<u32> {
    let shard: u32 = n.parse().ok()?;
    (n == shard.to_string()).then_some(shard)
}

/// Whether replies pushed to `address` expire (`reply_ttl` after the
/// last): a client's inbox is gone some time after its client, but a
/// schedule shard's inbox belongs to the store, and its replies — the
/// outcomes of runs — stay until the shard's owner, whoever it is then,
/// acknowledges them.
pub(crate) fn inbox_expires(address: &str) -> bool {
    shard_of_inbox(address).is_none()
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
            &inbox("app", "0123456789abcdef0123456789abcdef"),
            64
        ));
        assert!(is_inbox("app", "app:{c:cli}:r", 64));
        assert!(is_inbox("app", &shard_inbox("app", 63), 64));
        for hostile in [
            "app:{billing}:q",
            "app:{j:jobs}:ring",
            "other:{c:cli}:r",
            "app:{c:}:r",
            "app:{c:a}b}:r",
            "app:{c:cli}:r:x",
            "app",
            "",
            "app:{s:64}:r",
            "app:{s:07}:r",
            "app:{s:-1}:r",
            "app:{s:1}:due",
            "app:{s:1}:s:x",
            "app:{s:all}:r",
            "other:{s:1}:r",
            "app:{s:1}:x:{s:2}:r",
        ] {
            assert!(!is_inbox("app", hostile, 64), "{hostile}");
        }
        assert!(has_inbox_shape("other:{c:cli}:r"));
        assert!(has_inbox_shape("other:{s:3}:r"));
        assert!(!has_inbox_shape("app:{billing}:q"));
        assert!(!has_inbox_shape("app:{s:3}:outbox"));
        assert!(!has_inbox_shape("app:{s:1}:x:{s:2}:r"));
    }

    #[test]
    fn only_client_inboxes_expire() {
        assert!(inbox_expires(&inbox("app", "x")));
        assert!(!inbox_expires(&shard_inbox("app", 5)));
    }
}
