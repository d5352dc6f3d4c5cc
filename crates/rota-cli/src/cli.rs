//! The command line: every command, its flags and its examples.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use rota_core::jobs::JobState;

use crate::config::LogFormat;

const EXIT_CODES: &str = "\
Exit codes:
  0   done
  1   failed (the message says why)
  2   the command line is wrong
  3   not found (a schedule id, a file)
  4   invalid input (a cron expression, a time zone, a line of a file)
  5   conflict (the id exists already, or it changed meanwhile)
  69  the store cannot be reached
  78  the configuration is wrong (the config file, a database that is not rota's)

Configuration: flags win over ROTA_* environment variables, which win over
the config file (--config, ROTA_CONFIG, or ~/.config/rota/rota.toml), which
wins over the defaults. `rota config` prints what is in effect.";

/// rota: recurring jobs per tenant. Schedules decide when; workers run the
/// jobs; the store (an embedded file by default, or Redis) holds both.
#[derive(Debug, Parser)]
#[command(name = "rota", version, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The config file (TOML).
    #[arg(long, global = true, env = "ROTA_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The embedded store's file [default: ~/.local/share/rota/rota.db].
    #[arg(long, global = true, env = "ROTA_DB", value_name = "FILE")]
    pub(crate) db: Option<PathBuf>,
    /// Use Redis at this URL instead of the embedded store
    /// (redis://[:password@]host[:port][/db], rediss:// for TLS;
    /// redis+cluster://host:port[,host:port…] for a Redis Cluster).
    #[arg(long, global = true, env = "ROTA_REDIS", value_name = "URL")]
    pub(crate) redis: Option<String>,
    /// The prefix of rota's keys on Redis [default: rota].
    #[arg(long, global = true, env = "ROTA_PREFIX")]
    pub(crate) prefix: Option<String>,
    /// How log lines are written (to stderr); their level comes from RUST_LOG.
    #[arg(long, global = true, env = "ROTA_LOG_FORMAT", value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// Print JSON (for scripts) instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Manage schedules.
    #[command(subcommand)]
    Schedules(Box<SchedulesCommand>),
    /// Enqueue, show and cancel background jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Dead jobs: list, requeue, purge.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// How many jobs queues hold, per state, in all and per partition.
    #[command(after_help = "\
Examples:
  rota queues
  rota queues --queue reports --queue sync --json")]
    Queues {
        /// A queue (repeat for more) [default: every queue].
        #[arg(long = "queue", value_name = "QUEUE")]
        queues: Vec<String>,
    },
    /// The run history of a schedule, newest first.
    #[command(after_help = "Example:\n  rota runs acme-nightly --limit 20")]
    Runs {
        /// The schedule's id.
        id: String,
        /// The most runs shown.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Run the scheduler, workers and the HTTP API in one process on the
    /// embedded store.
    #[command(after_help = "\
Examples:
  rota up --demo
  rota up --queue reports --queue sync --exec ./run-job.sh --concurrency 4
  rota up --demo --listen 127.0.0.1:8080")]
    Up(UpArgs),
    /// Serve the HTTP API (and /openapi.json) over the store.
    #[command(after_help = "\
Examples:
  rota api --redis redis://localhost:6379 --listen 0.0.0.0:7070
  curl -H \"Authorization: Bearer $TOKEN\" localhost:7070/v1/schedules?tenant=acme

Off this machine (a --listen address that is not loopback) the API needs
tokens: `rota token new` makes one and prints the [[api.tokens]] entry for
the config file.")]
    Api {
        #[command(flatten)]
        listen: ListenArgs,
        /// Stop after this many seconds.
        #[arg(long = "for", value_name = "SECONDS")]
        secs: Option<u64>,
    },
    /// API tokens: make one, or hash one for the config file.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Run a scheduler (as many as needed: they share the schedules' shards).
    #[command(after_help = "Example:\n  rota scheduler --redis redis://localhost:6379")]
    Scheduler {
        /// Stop after this many seconds.
        #[arg(long = "for", value_name = "SECONDS")]
        secs: Option<u64>,
    },
    /// Run a worker: each job of its queues runs as a command, or as an HTTP call.
    #[command(after_help = "\
Examples:
  rota worker --redis redis://localhost:6379 --queue reports --exec ./run-job.sh
  rota worker --queue sync --exec 'python3 sync.py' --concurrency 8 --timeout 10m
  rota worker --queue hooks --http http://localhost:8080/jobs

The command gets the payload on stdin and the job in ROTA_* environment
variables; exit 0 succeeds (stdout is the result), exit 75 retries (a last
stderr line `retry-after: 30` sets the delay), anything else fails.
An --http service gets a JSON POST per job; 2xx succeeds (the body is the
result), 429/503 retry after Retry-After, other 5xx and connection errors
retry with backoff, other 4xx fail. See docs/workers.md.")]
    Worker {
        /// A queue to take jobs from (repeat for more).
        #[arg(long = "queue", required = true, value_name = "QUEUE")]
        queues: Vec<String>,
        #[command(flatten)]
        run: RunArgs,
        /// Stop after this many seconds.
        #[arg(long = "for", value_name = "SECONDS")]
        secs: Option<u64>,
    },
    /// Print a shell's completion script for rota.
    #[command(after_help = "\
Examples:
  rota completions bash > ~/.local/share/bash-completion/completions/rota
  rota completions zsh > ~/.zfunc/_rota")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the configuration in effect, secrets redacted.
    #[command(after_help = "Example:\n  ROTA_REDIS=redis://:secret@localhost rota config")]
    Config,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SchedulesCommand {
    /// Create a schedule.
    #[command(after_help = "\
Examples:
  rota schedules add --tenant acme --queue reports --kind nightly --cron '0 2 * * *' --tz Europe/Lisbon
  rota schedules add --tenant acme --queue sync --kind crm --every 15m --after-completion --id acme-crm
  rota schedules add --tenant acme --queue mail --kind digest --at 2026-12-01T09:00:00Z \\
      --payload '{\"list\": \"weekly\"}'")]
    Add(AddArgs),
    /// List a tenant's schedules, by id.
    #[command(after_help = "Example:\n  rota schedules list --tenant acme --limit 100")]
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Start after this id (the `next` of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// The most schedules shown.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show a schedule.
    #[command(after_help = "Example:\n  rota schedules show acme-crm --json")]
    Show {
        /// The schedule's id.
        id: String,
    },
    /// Change a schedule: each flag given replaces that part of it.
    #[command(
        after_help = "Example:\n  rota schedules update acme-crm --every 30m --after-completion --overlap skip"
    )]
    Update(UpdateArgs),
    /// Pause a schedule: nothing fires until it resumes.
    #[command(after_help = "Example:\n  rota schedules pause acme-crm")]
    Pause {
        /// The schedule's id.
        id: String,
    },
    /// Resume a schedule; occurrences missed while paused follow its missed-run policy.
    #[command(after_help = "Example:\n  rota schedules resume acme-crm")]
    Resume {
        /// The schedule's id.
        id: String,
    },
    /// Run a schedule now, outside its trigger (its overlap policy applies).
    #[command(after_help = "Example:\n  rota schedules trigger acme-crm")]
    Trigger {
        /// The schedule's id.
        id: String,
    },
    /// Delete a schedule; runs already running go on.
    #[command(after_help = "Example:\n  rota schedules rm acme-crm")]
    Rm {
        /// The schedule's id.
        id: String,
    },
    /// Create or replace schedules from a file of JSON lines (one schedule a
    /// line, each with its id): every line is checked first, and a bad one
    /// is named by its number with nothing imported. Importing again is safe.
    #[command(after_help = "\
Examples:
  rota schedules import schedules.jsonl
  rota schedules export --tenant acme > acme.jsonl && rota --redis redis://prod schedules import acme.jsonl

A line: {\"id\": \"acme-nightly\", \"tenant\": \"acme\", \"job\": {\"queue\": \"reports\", \"kind\": \"nightly\", \"payload\": {}},
         \"trigger\": {\"kind\": \"cron\", \"expr\": \"0 2 * * *\", \"tz\": \"Europe/Lisbon\"}}")]
    Import {
        /// The file (`-` for standard input).
        file: PathBuf,
    },
    /// Write tenants' schedules as JSON lines, as import reads them.
    #[command(
        after_help = "Example:\n  rota schedules export --tenant acme --tenant globex > schedules.jsonl"
    )]
    Export {
        /// A tenant (repeat for more).
        #[arg(long = "tenant", required = true, value_name = "TENANT")]
        tenants: Vec<String>,
    },
    /// Print the next fire instants of a cron expression, in UTC, one a line.
    #[command(after_help = "\
Examples:
  rota schedules preview '30 2 * * *' --tz America/New_York --after 2026-03-07T00:00:00Z --count 3
  rota schedules preview @hourly --count 5")]
    Preview {
        /// A cron expression: 5 fields, 6 with seconds first, or @hourly, @daily, …
        expr: String,
        /// The IANA time zone it is read in.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Fire instants after this one (RFC 3339) [default: now].
        #[arg(long)]
        after: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 10)]
        count: usize,
    },
}

/// What a schedule runs and when: the flags of `add`.
#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// Its tenant.
    #[arg(long)]
    pub(crate) tenant: String,
    /// Its id [default: generated].
    #[arg(long)]
    pub(crate) id: Option<String>,
    #[command(flatten)]
    pub(crate) when: When,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    #[command(flatten)]
    pub(crate) policy: PolicyArgs,
    /// Create it paused.
    #[arg(long)]
    pub(crate) paused: bool,
}

/// The flags of `update`: each given replaces that part.
#[derive(Debug, Args)]
pub(crate) struct UpdateArgs {
    /// The schedule's id.
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) when: When,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    #[command(flatten)]
    pub(crate) policy: PolicyArgs,
}

/// When a schedule fires.
#[derive(Debug, Args)]
pub(crate) struct When {
    /// A cron expression (5 fields, 6 with seconds first, or @daily, …).
    #[arg(long, group = "trigger", value_name = "EXPR")]
    pub(crate) cron: Option<String>,
    /// The cron expression's IANA time zone [default: UTC].
    #[arg(long, requires = "cron", value_name = "ZONE")]
    pub(crate) tz: Option<String>,
    /// Every so long (e.g. 30s, 15m, 1h30m): at a fixed rate, or after
    /// each run finished with --after-completion.
    #[arg(long, group = "trigger", value_name = "DURATION")]
    pub(crate) every: Option<String>,
    /// With --every: the interval counts from when the previous run finished.
    #[arg(long, requires = "every")]
    pub(crate) after_completion: bool,
    /// Once, at this instant (RFC 3339).
    #[arg(long, group = "trigger", value_name = "TIME")]
    pub(crate) at: Option<String>,
    /// No occurrence before this instant (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub(crate) start: Option<String>,
    /// No occurrence after this instant (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub(crate) end: Option<String>,
    /// Delay each run by up to this much, at random (e.g. 30s).
    #[arg(long, value_name = "DURATION")]
    pub(crate) jitter: Option<String>,
    /// The most runs it has.
    #[arg(long, value_name = "N")]
    pub(crate) max_runs: Option<u64>,
}

/// The job a schedule runs.
#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    /// The queue its jobs go to.
    #[arg(long)]
    pub(crate) queue: Option<String>,
    /// The kind of job (which handler runs it).
    #[arg(long)]
    pub(crate) kind: Option<String>,
    /// The job's input, as JSON [default: {}].
    #[arg(long, value_name = "JSON")]
    pub(crate) payload: Option<String>,
    /// Higher runs first within its partition.
    #[arg(long)]
    pub(crate) priority: Option<i32>,
    /// The most each attempt may take (e.g. 5m).
    #[arg(long, value_name = "DURATION")]
    pub(crate) timeout: Option<String>,
    /// The most attempts of each run.
    #[arg(long, value_name = "N")]
    pub(crate) max_attempts: Option<u32>,
    /// The partition its jobs go to [default: the tenant].
    #[arg(long)]
    pub(crate) partition: Option<String>,
    /// A name for people.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// A label, key=value (repeat for more).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub(crate) labels: Vec<String>,
}

/// The overlap and missed-run policies.
#[derive(Debug, Args)]
pub(crate) struct PolicyArgs {
    /// When a run is due while the previous one still runs.
    #[arg(long, value_enum)]
    pub(crate) overlap: Option<OverlapArg>,
    /// With --overlap buffer-all: the most runs waiting.
    #[arg(long, value_name = "N")]
    pub(crate) buffer_max: Option<u32>,
    /// How late a missed run may still fire (e.g. 1m); older ones are skipped.
    #[arg(long, value_name = "DURATION")]
    pub(crate) catch_up_window: Option<String>,
    /// Within the window, fire the missed runs `once` or `all` (bounded by --catch-up-max).
    #[arg(long, value_enum)]
    pub(crate) catch_up: Option<CatchUpArg>,
    /// With --catch-up all: the most missed runs fired.
    #[arg(long, value_name = "N")]
    pub(crate) catch_up_max: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum OverlapArg {
    /// Skip it, and count it (the default).
    Skip,
    /// Run it when the running one finished; a later one replaces it.
    BufferOne,
    /// Run each in turn (bounded by --buffer-max).
    BufferAll,
    /// Run it anyway.
    AllowAll,
    /// Cancel the running one, then run it.
    CancelRunning,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum CatchUpArg {
    /// The latest missed run fires, once.
    Once,
    /// Each missed run fires, oldest first.
    All,
}

/// How a worker runs jobs.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Run each job as this command (`sh -c`), payload on stdin.
    #[arg(long, value_name = "COMMAND", conflicts_with = "http")]
    pub(crate) exec: Option<String>,
    /// Run each job by a JSON POST to this URL.
    #[arg(long, value_name = "URL")]
    pub(crate) http: Option<String>,
    /// Jobs run at once, per queue.
    #[arg(long, default_value_t = 10)]
    pub(crate) concurrency: usize,
    /// The most an attempt may take; then its whole process group is killed.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub(crate) timeout: String,
    /// The most bytes of a command's stdout (or a response's body) kept as
    /// the job's result.
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    pub(crate) max_output: usize,
}

/// The flags of `rota up`.
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Create a few tenants and schedules and show their runs live.
    #[arg(long)]
    pub(crate) demo: bool,
    #[command(flatten)]
    pub(crate) listen: ListenArgs,
    /// Do not serve the HTTP API.
    #[arg(long, conflicts_with = "listen")]
    pub(crate) no_api: bool,
    /// A queue the worker takes jobs from (repeat for more).
    #[arg(long = "queue", value_name = "QUEUE")]
    pub(crate) queues: Vec<String>,
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Stop after this many seconds.
    #[arg(long = "for", value_name = "SECONDS")]
    pub(crate) secs: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum JobsCommand {
    /// Enqueue a job (and, with --wait, wait for its outcome).
    #[command(after_help = "\
Examples:
  rota jobs enqueue --queue mail --tenant acme --kind welcome --payload '{\"user\": 42}'
  rota jobs enqueue --queue sync --tenant acme --kind crm --in 10m --key crm-acme-daily
  rota jobs enqueue --queue reports --tenant acme --kind nightly --wait 1m --json")]
    Enqueue(Box<EnqueueArgs>),
    /// Show a job: its state, attempts, result or reason.
    #[command(after_help = "Example:\n  rota jobs show --queue mail 0190f4c4-…")]
    Show {
        /// Its queue.
        #[arg(long)]
        queue: String,
        /// Its id.
        id: String,
    },
    /// List a queue's jobs in one state, a page at a time.
    #[command(after_help = "\
Examples:
  rota jobs list --queue mail
  rota jobs list --queue mail --state failed --tenant acme --limit 20
  rota jobs list --queue mail --state succeeded --json | jq -r .next")]
    List(ListArgs),
    /// Cancel a job: one not started never runs; a running one is stopped.
    #[command(after_help = "Example:\n  rota jobs cancel --queue mail 0190f4c4-…")]
    Cancel {
        /// Its queue.
        #[arg(long)]
        queue: String,
        /// Its id.
        id: String,
    },
}

/// The flags of `rota jobs enqueue`.
#[derive(Debug, Args)]
pub(crate) struct EnqueueArgs {
    /// The queue.
    #[arg(long)]
    pub(crate) queue: String,
    /// Whose job it is.
    #[arg(long)]
    pub(crate) tenant: String,
    /// The kind of job.
    #[arg(long)]
    pub(crate) kind: String,
    /// Its input, as JSON [default: {}].
    #[arg(long, value_name = "JSON")]
    pub(crate) payload: Option<String>,
    /// Its id (a UUID) [default: a fresh one].
    #[arg(long)]
    pub(crate) id: Option<String>,
    /// Run no sooner than this from now (e.g. 10m).
    #[arg(long = "in", value_name = "DURATION")]
    pub(crate) delay: Option<String>,
    /// Higher runs first within its partition.
    #[arg(long)]
    pub(crate) priority: Option<i32>,
    /// The most attempts.
    #[arg(long, value_name = "N")]
    pub(crate) max_attempts: Option<u32>,
    /// The most an attempt may take.
    #[arg(long, value_name = "DURATION")]
    pub(crate) timeout: Option<String>,
    /// Its partition [default: the tenant].
    #[arg(long)]
    pub(crate) partition: Option<String>,
    /// An idempotency key: enqueueing it again while the first is kept
    /// returns the first.
    #[arg(long)]
    pub(crate) key: Option<String>,
    /// Wait this long for its outcome; exit 0 only if it succeeded.
    #[arg(long, value_name = "DURATION")]
    pub(crate) wait: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// List a queue's dead jobs, the latest first.
    #[command(after_help = "\
Examples:
  rota dlq list --queue mail
  rota dlq list --queue mail --tenant acme --json")]
    List(DlqListArgs),
    /// Put a dead job back in its queue, for a fresh round of attempts.
    #[command(after_help = "Example:\n  rota dlq requeue --queue mail 0190f4c4-…")]
    Requeue {
        /// The queue.
        #[arg(long)]
        queue: String,
        /// The dead job's id.
        id: String,
    },
    /// Delete a queue's dead jobs.
    #[command(after_help = "Example:\n  rota dlq purge --queue mail")]
    Purge {
        /// The queue.
        #[arg(long)]
        queue: String,
    },
}

/// The flags of `rota jobs list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The state listed: scheduled, queued, running, succeeded, failed,
    /// cancelled or dead.
    #[arg(long, default_value = "queued", value_parser = crate::parse::job_state)]
    pub(crate) state: JobState,
    #[command(flatten)]
    pub(crate) page: PageArgs,
}

/// The flags of `rota dlq list`.
#[derive(Debug, Args)]
pub(crate) struct DlqListArgs {
    #[command(flatten)]
    pub(crate) page: PageArgs,
}

/// Which jobs of a queue a listing shows.
#[derive(Debug, Args)]
pub(crate) struct PageArgs {
    /// The queue.
    #[arg(long)]
    pub(crate) queue: String,
    /// Only this tenant's jobs.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// The most jobs shown.
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: usize,
    /// Start after this cursor (printed by the listing before).
    #[arg(long, value_name = "CURSOR")]
    pub(crate) after: Option<String>,
}

/// Where the HTTP API listens.
#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    /// The address the HTTP API listens on [default: 127.0.0.1:7070].
    #[arg(long, env = "ROTA_LISTEN", value_name = "ADDR")]
    pub(crate) listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Make a token: printed once; the config file keeps its hash only.
    #[command(after_help = "\
Examples:
  rota token new --name ops
  rota token new --name acme-portal --tenant acme >> tokens.txt")]
    New {
        /// What the token is for (logged when it is used).
        #[arg(long)]
        name: String,
        /// Limit it to this tenant [default: an administrator's token].
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Print the hash to configure for a token read from stdin.
    #[command(after_help = "Example:\n  printf %s \"$TOKEN\" | rota token hash")]
    Hash,
}
