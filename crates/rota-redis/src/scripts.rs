//! The Lua scripts, loaded once per connection and invoked by SHA.

use std::sync::LazyLock;

use redis::Script;

const COMMON: &str = include_str!("lua/rpc/common.lua");

fn with_common(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

pub(crate) static ACK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/rpc/ack.lua")));
pub(crate) static RELEASE: LazyLock<Script> =
    LazyLock::new(|| with_common(include_str!("lua/rpc/release.lua")));
pub(crate) static BURY: LazyLock<Script> =
    LazyLock::new(|| with_common(include_str!("lua/rpc/bury.lua")));
pub(crate) static REAP: LazyLock<Script> =
    LazyLock::new(|| with_common(include_str!("lua/rpc/reap.lua")));
pub(crate) static REQUEUE_DEAD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/rpc/requeue_dead.lua")));

/// Grants a lease of any feature (see `lua/grant.lua`).
pub(crate) static GRANT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/grant.lua")));

const JOBS_COMMON: &str = include_str!("lua/jobs/common.lua");
const JOBS_TAKE: &str = include_str!("lua/jobs/take.lua");

/// The job functions, by name, and the file of each one's body.
const JOB_BODIES: [(&str, &str); 8] = [
    ("enqueue", include_str!("lua/jobs/enqueue.lua")),
    ("claim", include_str!("lua/jobs/claim.lua")),
    ("settle", include_str!("lua/jobs/settle.lua")),
    ("release", include_str!("lua/jobs/release.lua")),
    ("reap", include_str!("lua/jobs/reap.lua")),
    ("admin", include_str!("lua/jobs/admin.lua")),
    ("read", include_str!("lua/jobs/read.lua")),
    ("list", include_str!("lua/jobs/list.lua")),
];

const SCHEDULES_COMMON: &str = include_str!("lua/schedules/common.lua");

/// The schedule functions, by name, and the file of each one's body.
const SCHEDULE_BODIES: [(&str, &str); 5] = [
    ("lease", include_str!("lua/schedules/lease.lua")),
    ("write", include_str!("lua/schedules/write.lua")),
    ("commit", include_str!("lua/schedules/commit.lua")),
    ("shard", include_str!("lua/schedules/shard.lua")),
    ("heartbeat", include_str!("lua/schedules/heartbeat.lua")),
];

/// A library of Redis Functions: loaded once per server, its helpers
/// defined once, rather than with every call as a script's would be. The
/// library and its functions are named after a hash of the code, so
/// versions of rota sharing a Redis do not clash.
pub(crate) struct Library {
    /// The library's code, for `FUNCTION LOAD`.
    pub(crate) code: String,
    /// The prefix of its functions' names: `<name>_<hash>_`.
    pub(crate) prefix: String,
}

impl Library {
    /// A library named `name`: the helpers in `common`, then one function
    /// per body, registered as `<name>_<hash>_<function>`; each starts with
    /// a call of `setup(KEYS, ARGV)`, which `common` defines.
    fn new(name: &str, common: &[&str], bodies: &[(&str, &str)]) -> Self {
        let mut body = String::new();
        for part in common {
            body.push_str(part);
            body.push('\n');
        }
        for (function, code) in bodies {
            body.push_str(&format!(
                "redis.register_function('@PREFIX@{function}', function(KEYS, ARGV)\nsetup(KEYS, ARGV)\n{code}\nend)\n"
            ));
        }
        let hash = Script::new(&body).get_hash()[..12].to_owned();
        let prefix = format!("{name}_{hash}_");
        let code = format!(
            "#!lua name={name}_{hash}\n{}",
            body.replace("@PREFIX@", &prefix)
        );
        Self { code, prefix }
    }

    /// The name of function `name` (one of the library's bodies).
    pub(crate) fn function(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// The job functions (`lua/jobs/`).
pub(crate) static JOBS: LazyLock<Library> =
    LazyLock::new(|| Library::new("rota_jobs", &[JOBS_COMMON, JOBS_TAKE], &JOB_BODIES));

/// The schedule functions (`lua/schedules/`).
pub(crate) static SCHEDULES: LazyLock<Library> =
    LazyLock::new(|| Library::new("rota_sched", &[SCHEDULES_COMMON], &SCHEDULE_BODIES));
