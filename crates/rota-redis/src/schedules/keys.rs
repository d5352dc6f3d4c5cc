//! The keys of one shard and of all of them, the function calls that name
//! them, and the check of what goes into a key.

use rota_core::schedules::{MAX_NAME, ScheduleError};

use crate::call::Call;
use crate::scripts::SCHEDULES;

/// The keys every shard function is given first, in the order
/// `lua/schedules/common.lua` reads them.
const FIXED: [&str; 6] = ["lease", "due", "outbox", "r", "meta", "s"];

/// The keys of one shard, all under `<prefix>:{s:<n>}:`.
#[derive(Debug, Clone)]
pub(crate) struct ShardKeys {
    base: String,
}

impl ShardKeys {
    pub(crate) fn new(prefix: &str, shard: u32) -> Self {
        Self {
            base: format!("{prefix}:{{s:{shard}}}:"),
        }
    }

    /// One of the fixed keys.
    pub(crate) fn key(&self, name: &str) -> String {
        debug_assert!(FIXED.contains(&name));
        format!("{}{name}", self.base)
    }

    /// The shard's schedules: one hash, id → `<version> <tenant> <stored
    /// JSON>`.
    pub(crate) fn schedules(&self) -> String {
        self.key("s")
    }

    /// Schedule `id`'s run history.
    pub(crate) fn history(&self, id: &str) -> String {
        format!("{}h:{id}", self.base)
    }

    /// The ids of `tenant`'s schedules in this shard.
    pub(crate) fn tenant(&self, tenant: &str) -> String {
        format!("{}t:{tenant}", self.base)
    }

    /// A call of operation `op` of schedule function `function` with the
    /// fixed keys and, as the first arguments, the base (for the keys a
    /// function derives from what it reads) and the operation; the caller
    /// adds the function's own keys and arguments.
    pub(crate) fn call(&self, function: &str, op: &str) -> Call {
        let mut call = Call::new(&SCHEDULES, function);
        for name in FIXED {
            call.key(self.key(name));
        }
        call.arg(&self.base).arg(op);
        call
    }
}

/// A key of every shard's, under the hash tag `{s:all}` (no shard's tag:
/// those are numbers): `shards` (their number), `alive` (the schedulers).
pub(crate) fn all(prefix: &str, name: &str) -> String {
    format!("{prefix}:{{s:all}}:{name}")
}

/// Checks a schedule id or tenant before it becomes part of a key: 1 to
/// [`MAX_NAME`] bytes of ASCII letters, digits and `- _ . / : @`.
/// [`NewSchedule::validate`](rota_core::schedules::NewSchedule::validate)
/// is stricter; this is the store's own guard, so that no value — however
/// it reached the store — makes a key that leaves its shard's hash tag or
/// runs into another key (no braces, spaces or control characters).
pub(crate) fn check_part(field: &'static str, value: &str) -> Result<(), ScheduleError> {
    let fits = (1..=MAX_NAME).contains(&value.len())
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b':' | b'@')
        });
    if fits {
        Ok(())
    } else {
        Err(ScheduleError::Invalid {
            field,
            problem: format!(
                "{value:?} cannot be stored: 1 to {MAX_NAME} bytes of ASCII letters, digits, \
                 '-', '_', '.', '/', ':' or '@'"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_keeps_its_keys_under_one_hash_tag() {
        let k = ShardKeys::new("app", 7);
        assert_eq!(k.key("lease"), "app:{s:7}:lease");
        assert_eq!(k.key("r"), crate::keys::shard_inbox("app", 7));
        assert_eq!(k.schedules(), "app:{s:7}:s");
        assert_eq!(k.history("x"), "app:{s:7}:h:x");
        assert_eq!(k.tenant("t@1"), "app:{s:7}:t:t@1");
        assert_eq!(all("app", "alive"), "app:{s:all}:alive");
    }

    #[test]
    fn values_that_would_break_a_key_are_refused() {
        for bad in [
            "",
            "a}b",
            "{s:1}",
            "a b",
            "a\nb",
            "é",
            &"x".repeat(MAX_NAME + 1),
        ] {
            assert!(check_part("id", bad).is_err(), "{bad:?}");
        }
        for good in ["a", "tick-1", "a/b.c:d_e@f", &"x".repeat(MAX_NAME)] {
            assert!(check_part("id", good).is_ok(), "{good:?}");
        }
    }
}
