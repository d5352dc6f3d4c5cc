//! The scheduler's tests that kill, all at once: three schedulers and two
//! workers — child processes, this test binary re-run — over one Redis that
//! writes every command to its append-only file before answering. They run
//! 1,000 schedules of four tenants while a chaos loop SIGKILLs a scheduler
//! or a worker at random moments and starts it again (or freezes a
//! scheduler past its leases, then thaws it), once kills every scheduler
//! together, and once kills Redis and starts it again on the same files.
//! One kind of schedule runs its jobs on a queue that keeps no finished
//! record, so that a job enqueued again after its run finished runs again
//! and shows. Then, from the run histories, the job records and the workers'
//! own logs of each handler's start and end:
//!
//! * **no occurrence fired twice**: each is in its schedule's history once,
//!   its job ran to success once, no attempt was delivered twice, and no
//!   job ran that no history dispatched;
//! * **none was missed outside its missed-run policy**: every occurrence of
//!   the trigger is in the history, fired or skipped, and each skip is one
//!   the schedule's policies call for;
//! * **no two runs of a skip schedule overlapped**, nor two attempts of one
//!   run;
//! * **every after-completion gap is at least the interval** (the next
//!   occurrence is exactly the interval after the last run finished).
//!
//! A run killed mid-way with its worker is delivered again (`attempt + 1`):
//! a retry of the same occurrence, not a second fire. Its handler logged a
//! start and no end; the end counted for it is the moment the worker was
//! killed.
//!
//! `ROTA_CHAOS_SECS` sets how long the chaos lasts (20 s by default; CI
//! runs 60) and `ROTA_CHAOS_SEED` its random moments (printed by each run,
//! to replay one).

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rota::jobs::{JobContext, JobError, QueueOptions, Worker, WorkerOptions};
use rota::schedules::{
    CatchUp, JobTemplate, Missed, NewSchedule, Overlap, RunRecord, RunState, Schedule, Scheduler,
    SchedulerOptions, Schedules, Trigger,
};
use rota_core::jobs::{
    AttemptOutcome, JobId, JobRecord, JobState, JobStore, QueuePolicy, Retention,
};
use rota_core::schedules::{MAX_HISTORY, Skip, parse_run_id, run_job_id};
use rota_redis::{RedisBroker, RedisOptions};
use support::{Child, RedisServer, child_env};

const PREFIX: &str = "chaos";
const Q: &str = "chaos";
/// A queue that keeps no finished job: a job enqueued again after its run
/// finished (a stale scheduler's late enqueue) runs again, as attempt 1.
const TRIMMED: &str = "chaos-trimmed";
const TENANTS: usize = 4;
const SCHEDULERS: usize = 3;
const WORKERS: usize = 2;
/// A window longer than any run of this test: nothing is too late.
const NEVER_LATE_MS: u64 = 3_600_000;
/// The short catch-up window of the `window` schedules.
const WINDOW_MS: u64 = 1_500;
/// The interval of the after-completion schedules.
const CHAIN_EVERY_MS: i64 = 1_000;
const SECOND_MS: i64 = 1_000;

/// The kinds of schedule, each with its policies made explicit so that
/// what they allow to be skipped can be checked exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Every second; every missed occurrence is caught up, runs may
    /// overlap: none may be missing.
    CatchUpAll,
    /// Every second; only the latest missed occurrence is caught up, the
    /// others are skipped.
    CatchUpOnce,
    /// Every second; missed occurrences are caught up only while younger
    /// than [`WINDOW_MS`].
    Window,
    /// After completion, every [`CHAIN_EVERY_MS`], with runs longer than
    /// that.
    Chain,
    /// Every second, skip on overlap, with runs longer than that.
    Skip,
}

impl Kind {
    const EACH: [Kind; 5] = [
        Kind::CatchUpAll,
        Kind::CatchUpOnce,
        Kind::Window,
        Kind::Chain,
        Kind::Skip,
    ];

    fn prefix(self) -> &'static str {
        match self {
            Kind::CatchUpAll => "all",
            Kind::CatchUpOnce => "once",
            Kind::Window => "window",
            Kind::Chain => "chain",
            Kind::Skip => "skip",
        }
    }

    /// How many of the 1,000.
    fn count(self) -> usize {
        match self {
            Kind::CatchUpAll => 250,
            Kind::CatchUpOnce => 150,
            Kind::Window => 100,
            Kind::Chain => 250,
            Kind::Skip => 250,
        }
    }

    /// How long a run's handler takes.
    fn job_ms(self) -> u64 {
        match self {
            Kind::CatchUpAll | Kind::CatchUpOnce | Kind::Window => 50,
            Kind::Chain => 1_300,
            Kind::Skip => 2_500,
        }
    }

    /// The queue of its runs: the catch-up-once ones go to the queue that
    /// keeps no finished job, where only the workers' logs witness them.
    fn queue(self) -> &'static str {
        match self {
            Kind::CatchUpOnce => TRIMMED,
            _ => Q,
        }
    }

    fn of(id: &str) -> Kind {
        let prefix = id.split_once('-').map_or(id, |(p, _)| p);
        Kind::EACH
            .into_iter()
            .find(|k| k.prefix() == prefix)
            .unwrap_or_else(|| panic!("no kind of schedule {id}"))
    }

    fn missed(self) -> Missed {
        let (window, catch_up) = match self {
            Kind::CatchUpOnce | Kind::Chain => (NEVER_LATE_MS, CatchUp::Once),
            Kind::Window => (WINDOW_MS, CatchUp::All { max: 1_000 }),
            Kind::CatchUpAll | Kind::Skip => (NEVER_LATE_MS, CatchUp::All { max: 1_000 }),
        };
        let mut missed = Missed::default();
        missed.catch_up_window_ms = window;
        missed.catch_up = catch_up;
        missed
    }

    /// Schedule number `n` of this kind, its occurrences from `start` to
    /// `end`.
    fn schedule(self, n: usize, start: Timestamp, end: Timestamp) -> NewSchedule {
        let trigger = match self {
            Kind::Chain => Trigger::after_completion(SignedDuration::from_millis(CHAIN_EVERY_MS)),
            _ => Trigger::cron("* * * * * *"),
        }
        .starting(start)
        .ending(end);
        let job = JobTemplate::new(
            self.queue(),
            "work",
            serde_json::json!({ "ms": self.job_ms() }),
        );
        let overlap = match self {
            Kind::Skip => Overlap::Skip,
            _ => Overlap::AllowAll,
        };
        NewSchedule::new(format!("tenant-{}", n % TENANTS), job, trigger)
            .id(format!("{}-{n}", self.prefix()))
            .overlap(overlap)
            .missed(self.missed())
    }
}

fn chaos_secs() -> u64 {
    let secs = std::env::var("ROTA_CHAOS_SECS").ok().map_or(20, |s| {
        s.parse().expect("ROTA_CHAOS_SECS: a number of seconds")
    });
    // Each occurrence takes at most one entry of a history, which keeps
    // MAX_HISTORY: all of them must fit for the history to tell.
    assert!(
        (5..=90).contains(&secs) && (secs as usize) < MAX_HISTORY,
        "ROTA_CHAOS_SECS: from 5 to 90 (a schedule's history keeps {MAX_HISTORY} runs)"
    );
    secs
}

fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

fn options(url: &str) -> RedisOptions {
    RedisOptions::new(url).prefix(PREFIX)
}

// -- The child processes --

/// Child: a scheduler, until it is killed.
#[test]
#[ignore = "the child process of another test"]
fn child_chaos_scheduler() {
    let (Some(url), Some(name)) = (child_env("REDIS"), child_env("NAME")) else {
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        // Started again during an outage, it waits for Redis.
        let store = RedisBroker::connect_waiting(options(&url)).await.unwrap();
        let _scheduler = Scheduler::new(store)
            .options(
                SchedulerOptions::default()
                    .name(name)
                    .lease(Duration::from_secs(1))
                    .poll(Duration::from_millis(50)),
            )
            .spawn();
        println!("ready");
        std::future::pending::<()>().await;
    });
}

/// Child: a worker whose handlers sleep the `ms` of their payload, writing
/// each start and end to its own log file.
#[test]
#[ignore = "the child process of another test"]
fn child_chaos_worker() {
    let (Some(url), Some(log)) = (child_env("REDIS"), child_env("LOG")) else {
        return;
    };
    let log = Arc::new(Log::create(Path::new(&log)));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = RedisBroker::connect_waiting(options(&url)).await.unwrap();
        let queue = QueueOptions::default()
            .concurrency(2_048)
            .claim_wait(Duration::from_millis(50))
            .lease(Duration::from_secs(2));
        let _worker = Worker::new(store)
            .options(WorkerOptions::default().concurrency(2_048))
            .queue(Q, queue.clone())
            .queue(TRIMMED, queue)
            .handle("work", move |ctx: JobContext, p: serde_json::Value| {
                let log = Arc::clone(&log);
                async move {
                    let mut span = Span::begin(log, &ctx);
                    let ms = p["ms"].as_u64().unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    span.ok = true;
                    Ok::<_, JobError>(())
                }
            })
            .spawn();
        println!("ready");
        std::future::pending::<()>().await;
    });
}

/// A worker's log: one line per handler start and end, each written whole
/// with one `write` to a file opened for appending, so a SIGKILL loses no
/// line written before it.
struct Log(Mutex<File>);

impl Log {
    fn create(path: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("the worker's log");
        Self(Mutex::new(file))
    }

    fn line(&self, line: String) {
        let mut file = self.0.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(line.as_bytes())
            .expect("writing the worker's log");
    }
}

/// A handler running: logs its start when made, its end when dropped — when
/// the handler returns, or when the worker drops it (its lease lost).
struct Span {
    log: Arc<Log>,
    what: String,
    ok: bool,
}

impl Span {
    fn begin(log: Arc<Log>, ctx: &JobContext) -> Self {
        let what = format!("{} {} {}", ctx.id(), ctx.run_id(), ctx.attempt());
        log.line(format!("start {what} {}\n", now_ms()));
        Self {
            log,
            what,
            ok: false,
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        let how = if self.ok { "ok" } else { "dropped" };
        self.log
            .line(format!("end {} {} {how}\n", self.what, now_ms()));
    }
}

// -- The fleet of children --

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Scheduler,
    Worker,
}

/// One process started in a slot: its log (workers), and when it was
/// killed.
struct Life {
    role: Role,
    log: Option<PathBuf>,
    /// When the chaos killed it (Unix ms); `None` if it lived to the end.
    killed_ms: Option<i64>,
}

struct Slot {
    role: Role,
    child: Option<Child>,
    life: usize,
}

/// The schedulers and workers, each slot started again after each kill.
/// Dropping it kills them all.
struct Fleet {
    url: String,
    dir: PathBuf,
    slots: Vec<Slot>,
    lives: Vec<Life>,
}

impl Fleet {
    fn new(url: String, dir: PathBuf) -> Self {
        let roles = std::iter::repeat_n(Role::Scheduler, SCHEDULERS)
            .chain(std::iter::repeat_n(Role::Worker, WORKERS));
        Self {
            url,
            dir,
            slots: roles
                .map(|role| Slot {
                    role,
                    child: None,
                    life: 0,
                })
                .collect(),
            lives: Vec::new(),
        }
    }

    /// Starts the process of slot `slot`.
    fn start(&mut self, slot: usize) {
        let n = self.lives.len();
        let role = self.slots[slot].role;
        let (child, log) = match role {
            Role::Scheduler => {
                let name = format!("scheduler-{slot}-{n}");
                let env = [("REDIS", self.url.as_str()), ("NAME", &name)];
                (Child::spawn("child_chaos_scheduler", &env), None)
            }
            Role::Worker => {
                let log = self.dir.join(format!("worker-{slot}-{n}.log"));
                let env = [("REDIS", self.url.as_str()), ("LOG", log.to_str().unwrap())];
                let child = Child::spawn("child_chaos_worker", &env);
                (child, Some(log))
            }
        };
        self.lives.push(Life {
            role,
            log,
            killed_ms: None,
        });
        self.slots[slot].child = Some(child);
        self.slots[slot].life = n;
    }

    /// SIGKILLs the process of slot `slot`.
    fn kill(&mut self, slot: usize) {
        if let Some(mut child) = self.slots[slot].child.take() {
            child.kill();
            self.lives[self.slots[slot].life].killed_ms = Some(now_ms());
        }
    }

    /// Freezes (SIGSTOP) the process of slot `slot`.
    fn freeze(&self, slot: usize) {
        if let Some(child) = &self.slots[slot].child {
            child.freeze();
        }
    }

    /// Lets the process of slot `slot` run again (SIGCONT).
    fn thaw(&self, slot: usize) {
        if let Some(child) = &self.slots[slot].child {
            child.thaw();
        }
    }

    /// Waits until each process started says it is ready.
    async fn ready(&mut self) {
        for slot in &mut self.slots {
            let child = slot.child.as_mut().expect("started");
            let ready = child
                .wait_for(Duration::from_secs(60), |l| l == "ready")
                .await;
            assert!(ready.is_some(), "a {:?} never got ready", slot.role);
        }
    }

    /// Kills every process at the end, without counting it as a kill of
    /// the chaos: a handler still running then ran after its run settled.
    fn stop(&mut self) {
        for slot in &mut self.slots {
            if let Some(mut child) = slot.child.take() {
                child.kill();
            }
        }
    }
}

// -- The test --

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedulers_workers_and_redis_killed_at_random_neither_double_nor_miss_a_run() {
    let secs = chaos_secs();
    let seed = std::env::var("ROTA_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("chaos for {secs} s, ROTA_CHAOS_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut server = RedisServer::start_durable();
    let store = RedisBroker::connect_with(options(&server.url()))
        .await
        .expect("connect");
    // Every job record of one queue is kept, to be read at the end; none of
    // the other.
    for (queue, keep) in [(Q, 10_000_000), (TRIMMED, 0)] {
        let retention = Retention::default().max_finished(keep);
        store
            .set_policy(queue, QueuePolicy::default().retention(retention))
            .await
            .unwrap();
    }
    let schedules = Schedules::new(store.clone());
    // The occurrences: every second from a few seconds ahead (the processes
    // start meanwhile) to the end of the chaos.
    let start = Timestamp::from_millisecond((now_ms() / SECOND_MS + 5) * SECOND_MS).unwrap();
    let end = start + SignedDuration::from_secs(secs as i64);
    let mut all = Vec::new();
    for kind in Kind::EACH {
        all.extend((0..kind.count()).map(|n| kind.schedule(n, start, end)));
    }
    assert_eq!(all.len(), 1_000);
    for chunk in all.chunks(100) {
        schedules.upsert_many(chunk.to_vec()).await.unwrap();
    }

    let logs = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::new(server.url(), logs.path().to_owned());
    for slot in 0..SCHEDULERS + WORKERS {
        fleet.start(slot);
    }
    fleet.ready().await;
    sleep_until(start.as_millisecond()).await;

    // The chaos: a process killed at a random moment and started again a
    // random while later; once, every scheduler at the same time; once,
    // Redis.
    let span = (secs as i64) * SECOND_MS;
    let redis_at = start.as_millisecond() + span * rng.random_range(30..55) / 100;
    let all_at = start.as_millisecond() + span * rng.random_range(65..85) / 100;
    let (mut redis_done, mut all_done) = (false, false);
    let (mut kills, mut freezes) = (0, 0);
    // Until the last occurrence, and both the restart and the kill of every
    // scheduler done (on a slow machine they may come after it).
    while now_ms() < end.as_millisecond() || !redis_done || !all_done {
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..900))).await;
        if !redis_done && now_ms() >= redis_at {
            redis_done = true;
            let down = now_ms();
            server.kill();
            tokio::time::sleep(Duration::from_millis(rng.random_range(500..2_000))).await;
            tokio::task::block_in_place(|| server.restart());
            println!("Redis down from {down} to {} ms", now_ms());
        } else if !all_done && now_ms() >= all_at {
            all_done = true;
            for slot in 0..SCHEDULERS {
                fleet.kill(slot);
            }
            kills += SCHEDULERS;
            tokio::time::sleep(Duration::from_millis(rng.random_range(2_000..3_500))).await;
            for slot in 0..SCHEDULERS {
                fleet.start(slot);
            }
        } else if rng.random_ratio(1, 5) {
            // A scheduler frozen past its leases (a long pause, a stalled
            // VM): the others take its shards over, and when it thaws its
            // writes are fenced.
            let slot = rng.random_range(0..SCHEDULERS);
            fleet.freeze(slot);
            freezes += 1;
            tokio::time::sleep(Duration::from_millis(rng.random_range(1_500..3_000))).await;
            fleet.thaw(slot);
        } else {
            let slot = rng.random_range(0..SCHEDULERS + WORKERS);
            fleet.kill(slot);
            kills += 1;
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..1_000))).await;
            fleet.start(slot);
        }
    }
    println!("{kills} kills, {freezes} schedulers frozen");

    // Settle: every schedule's trigger ended and its last run finished.
    let settled = settle(&schedules, Duration::from_secs(120 + secs)).await;
    fleet.stop();
    println!(
        "settled {} ms after the last occurrence",
        now_ms() - end.as_millisecond()
    );

    let handlers = read_logs(&fleet.lives);
    let mut findings = Findings::default();
    let mut stats: BTreeMap<Kind, Stats> = BTreeMap::new();
    let mut dispatched_jobs = HashSet::new();
    let histories = histories(&schedules, &store, &settled).await;
    for (s, runs, records) in &histories {
        let kind = Kind::of(&s.id);
        let st = stats.entry(kind).or_default();
        check_schedule(
            kind,
            s,
            runs,
            records,
            &handlers,
            start,
            end,
            &mut findings,
            st,
        );
        dispatched_jobs.extend(runs.iter().filter_map(|r| r.job));
    }
    check_handlers(&handlers, &dispatched_jobs, &mut findings);
    for (kind, st) in &stats {
        println!("{kind:?}: {st:?}");
    }
    println!(
        "{} handler attempts, {} cut by a kill",
        handlers.values().map(Vec::len).sum::<usize>(),
        handlers
            .values()
            .flatten()
            .filter(|a| matches!(a.end, End::Killed(_)))
            .count()
    );
    findings.assert_none();
}

async fn sleep_until(ms: i64) {
    let wait = u64::try_from(ms - now_ms()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

/// Waits until no schedule has an occurrence coming or a run running;
/// returns them all.
async fn settle(schedules: &Schedules, within: Duration) -> Vec<Schedule> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let all = list_all(schedules).await;
        let busy: Vec<&Schedule> = all
            .iter()
            .filter(|s| {
                s.progress.next.is_some()
                    || !s.progress.running.is_empty()
                    || !s.progress.waiting.is_empty()
            })
            .collect();
        if busy.is_empty() {
            assert_eq!(all.len(), 1_000, "schedules went missing");
            return all;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{} schedules never settled, such as {}: {:?}",
            busy.len(),
            busy[0].id,
            busy[0].progress
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What `read` answers, read again while it fails (a connection that
/// Redis's restart broke fails one call before it connects again).
async fn retrying<T, E: std::fmt::Debug, F: Future<Output = Result<T, E>>>(
    what: &str,
    mut read: impl FnMut() -> F,
) -> T {
    let mut tries = 0;
    loop {
        match read().await {
            Ok(v) => return v,
            Err(_) if tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
}

async fn list_all(schedules: &Schedules) -> Vec<Schedule> {
    let mut all = Vec::new();
    for t in 0..TENANTS {
        let tenant = format!("tenant-{t}");
        let mut after: Option<String> = None;
        loop {
            let page = retrying("list schedules", || {
                schedules.list(&tenant, after.as_deref(), 500)
            })
            .await;
            all.extend(page.schedules);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    all
}

/// Each schedule with its history (oldest first) and the records of the
/// jobs it dispatched, by occurrence.
async fn histories(
    schedules: &Schedules,
    store: &RedisBroker,
    settled: &[Schedule],
) -> Vec<(Schedule, Vec<RunRecord>, HashMap<i64, Option<JobRecord>>)> {
    let mut out = Vec::with_capacity(settled.len());
    for chunk in settled.chunks(50) {
        let mut tasks = Vec::new();
        for s in chunk {
            let (s, schedules, store) = (s.clone(), schedules.clone(), store.clone());
            tasks.push(tokio::spawn(async move {
                let mut runs =
                    retrying("read a history", || schedules.runs(&s.id, MAX_HISTORY)).await;
                runs.reverse();
                let mut records = HashMap::new();
                let queue = Kind::of(&s.id).queue();
                for r in runs.iter().filter(|_| queue != TRIMMED) {
                    if let Some(job) = r.job {
                        let record = retrying("read a job", || store.job(queue, job)).await;
                        records.insert(r.occurrence_ms, record);
                    }
                }
                (s, runs, records)
            }));
        }
        for task in tasks {
            out.push(task.await.expect("reading a history"));
        }
    }
    out
}

// -- What the workers logged --

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The handler returned.
    Ok(i64),
    /// The worker dropped it (its lease lost).
    Dropped(i64),
    /// Its worker was SIGKILLed then.
    Killed(i64),
    /// Still running when everything had settled.
    Running,
}

impl End {
    fn at(self) -> i64 {
        match self {
            End::Ok(t) | End::Dropped(t) | End::Killed(t) => t,
            End::Running => i64::MAX,
        }
    }
}

/// One attempt of a job, as a worker logged it.
#[derive(Debug, Clone)]
struct Handled {
    run: String,
    attempt: u32,
    start: i64,
    end: End,
    worker: usize,
}

/// Every attempt logged, by job, in the order they started.
fn read_logs(lives: &[Life]) -> HashMap<JobId, Vec<Handled>> {
    let mut by_job: HashMap<JobId, Vec<Handled>> = HashMap::new();
    for (n, life) in lives.iter().enumerate() {
        let Some(path) = &life.log else { continue };
        assert_eq!(life.role, Role::Worker);
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut open: HashMap<(JobId, u32), Handled> = HashMap::new();
        let mut done = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let job = JobId::parse(f[1]).expect("a job id");
            let attempt: u32 = f[3].parse().expect("an attempt");
            let at: i64 = f[4].parse().expect("an instant");
            match f[0] {
                "start" => {
                    let h = Handled {
                        run: f[2].to_owned(),
                        attempt,
                        start: at,
                        end: End::Running,
                        worker: n,
                    };
                    assert!(open.insert((job, attempt), h).is_none(), "{line}");
                }
                "end" => {
                    let mut h = open.remove(&(job, attempt)).expect("a start first");
                    h.end = if f[5] == "ok" {
                        End::Ok(at)
                    } else {
                        End::Dropped(at)
                    };
                    done.push((job, h));
                }
                _ => panic!("a log line {line:?}"),
            }
        }
        for ((job, _), mut h) in open {
            if let Some(killed) = life.killed_ms {
                h.end = End::Killed(killed);
            }
            done.push((job, h));
        }
        for (job, h) in done {
            by_job.entry(job).or_default().push(h);
        }
    }
    for attempts in by_job.values_mut() {
        attempts.sort_by_key(|h| (h.start, h.attempt));
    }
    by_job
}

// -- The checks --

/// What broke, by property.
#[derive(Default)]
struct Findings(BTreeMap<&'static str, Vec<String>>);

impl Findings {
    fn add(&mut self, property: &'static str, detail: String) {
        self.0.entry(property).or_default().push(detail);
    }

    fn assert_none(&self) {
        let broken: Vec<_> = self.0.iter().collect();
        if broken.is_empty() {
            return;
        }
        let mut report = String::new();
        for (property, details) in broken {
            report.push_str(&format!("\n{property}: {} times, such as", details.len()));
            for d in details.iter().take(5) {
                report.push_str(&format!("\n    {d}"));
            }
        }
        panic!("the chaos broke guarantees:{report}");
    }
}

const FIRED_TWICE: &str = "an occurrence fired twice";
const MISSED: &str = "an occurrence missed outside its missed-run policy";
const OVERLAP: &str = "two runs of a skip schedule overlapped";
const GAP: &str = "an after-completion gap shorter than its interval";
const AT_ONCE: &str = "two attempts of one run ran at the same time";
const UNFINISHED: &str = "a run did not end as it should";

/// A run of the queue that keeps no record, started as attempt 1 again
/// after every earlier attempt ended: its job enqueued anew after the run
/// finished and its record was trimmed — the double fire a job id alone
/// cannot dedupe (a re-sent outbox entry, an owner waking up past its
/// lease). Counted as a fire twice, named apart to say which way.
const ENQUEUED_AGAIN: &str =
    "a finished run's job enqueued again after its record was trimmed, and run again";

#[derive(Debug, Default)]
struct Stats {
    schedules: usize,
    fired: usize,
    skipped_missed: u64,
    skipped_overlap: u64,
    retried: usize,
    rerun_unsettled: usize,
    /// When the handlers of those retried after they returned returned.
    rerun_returned: Option<(i64, i64)>,
}

/// How the history handled one occurrence.
#[derive(Debug, Clone, Copy)]
enum Handling {
    Fired { at_ms: i64 },
    Skipped { why: Skip, at_ms: i64, last_ms: i64 },
}

#[allow(clippy::too_many_arguments)]
fn check_schedule(
    kind: Kind,
    s: &Schedule,
    runs: &[RunRecord],
    records: &HashMap<i64, Option<JobRecord>>,
    handlers: &HashMap<JobId, Vec<Handled>>,
    start: Timestamp,
    end: Timestamp,
    findings: &mut Findings,
    stats: &mut Stats,
) {
    let id = &s.id;
    stats.schedules += 1;
    // Each occurrence handled once: fired, or skipped (a skipped entry may
    // stand for a range of them, every second).
    let mut handled: BTreeMap<i64, Handling> = BTreeMap::new();
    let (mut fired, mut missed, mut overlapped) = (0, 0, 0);
    let mut entries: Vec<(i64, Handling)> = Vec::new();
    for r in runs {
        match (r.state, r.job, r.skipped) {
            (RunState::Skipped(why), None, Some((last, count))) => {
                let span = (last - r.occurrence_ms) / SECOND_MS + 1;
                if kind == Kind::Chain || span != count as i64 {
                    findings.add(
                        MISSED,
                        format!("{id}: a skip of {count} from {} to {last}", r.occurrence_ms),
                    );
                }
                let how = Handling::Skipped {
                    why,
                    at_ms: r.at_ms,
                    last_ms: last,
                };
                entries.extend(
                    (r.occurrence_ms..=last)
                        .step_by(SECOND_MS as usize)
                        .map(|o| (o, how)),
                );
                match why {
                    Skip::Missed => missed += count,
                    _ => overlapped += count,
                }
            }
            (_, Some(job), None) => {
                fired += 1;
                entries.push((r.occurrence_ms, Handling::Fired { at_ms: r.at_ms }));
                if job != run_job_id(id, r.occurrence_ms) {
                    findings.add(
                        FIRED_TWICE,
                        format!(
                            "{id}: occurrence {} ran as job {job}, not its own",
                            r.occurrence_ms
                        ),
                    );
                }
                if r.state != RunState::Finished(JobState::Succeeded) {
                    findings.add(
                        UNFINISHED,
                        format!("{id}: run {} settled {:?}", r.occurrence_ms, r.state),
                    );
                }
                check_job(
                    id,
                    r,
                    records.get(&r.occurrence_ms).cloned().flatten(),
                    handlers,
                    findings,
                    stats,
                );
            }
            _ => findings.add(UNFINISHED, format!("{id}: a history entry {r:?}")),
        }
    }
    for (occurrence, how) in entries {
        if handled.insert(occurrence, how).is_some() {
            findings.add(
                FIRED_TWICE,
                format!("{id}: occurrence {occurrence} is in its history twice"),
            );
        }
    }
    stats.fired += fired;
    stats.skipped_missed += missed;
    stats.skipped_overlap += overlapped;
    let c = s.progress.counts;
    if (c.fired, c.skipped_missed, c.skipped_overlap) != (fired as u64, missed, overlapped) {
        findings.add(
            FIRED_TWICE,
            format!(
                "{id}: counts {c:?} but its history has {fired} fired, {missed} missed, \
                 {overlapped} overlapping"
            ),
        );
    }

    // Overlap policy: only skip schedules skip for overlap.
    for (o, how) in &handled {
        if let Handling::Skipped {
            why: Skip::Overlap, ..
        } = how
            && kind != Kind::Skip
        {
            findings.add(
                MISSED,
                format!("{id}: {o} skipped for overlap under allow-all"),
            );
        }
    }

    if kind == Kind::Chain {
        check_chain(s, runs, handlers, start, end, findings);
        return;
    }
    // A cron of every second: each second from the first (the start, or the
    // first second after the schedule was created) to the end is handled.
    let first = start
        .as_millisecond()
        .max((s.created_ms + SECOND_MS - 1) / SECOND_MS * SECOND_MS);
    let expected: Vec<i64> = (first..=end.as_millisecond())
        .step_by(SECOND_MS as usize)
        .collect();
    for o in &expected {
        if !handled.contains_key(o) {
            findings.add(
                MISSED,
                format!("{id}: occurrence {o} is not in its history"),
            );
        }
    }
    for o in handled.keys() {
        if expected.binary_search(o).is_err() {
            findings.add(
                FIRED_TWICE,
                format!("{id}: occurrence {o} is not one of its trigger's"),
            );
        }
    }
    // Missed-run policy: which skips it allows, and which fires.
    for (&o, how) in &handled {
        let problem = match *how {
            Handling::Fired { at_ms } => {
                let window = s.missed.catch_up_window_ms as i64;
                (o < at_ms - window)
                    .then(|| format!("fired at {at_ms}, outside its window of {window} ms"))
            }
            Handling::Skipped {
                why: Skip::Missed,
                at_ms,
                last_ms,
            } => disallowed_miss(s.missed, &handled, o, at_ms, last_ms),
            Handling::Skipped { .. } => None,
        };
        if let Some(problem) = problem {
            findings.add(MISSED, format!("{id}: {o} {problem}"));
        }
    }
    if kind == Kind::Skip {
        check_no_overlap(s, runs, records, handlers, findings);
    }
}

/// Why occurrence `o`, skipped as missed at `at_ms` with the others up to
/// `last_ms`, should not have been, if it should not: catching all up, only
/// those older than the window are skipped; catching one up, the latest due
/// fires in the same commit and the others are skipped.
fn disallowed_miss(
    missed: Missed,
    handled: &BTreeMap<i64, Handling>,
    o: i64,
    at_ms: i64,
    last_ms: i64,
) -> Option<String> {
    let window = missed.catch_up_window_ms as i64;
    if o < at_ms - window {
        return None;
    }
    if let CatchUp::All { .. } = missed.catch_up {
        return Some(format!(
            "skipped as missed at {at_ms}, inside its window of {window} ms"
        ));
    }
    let latest = last_ms + SECOND_MS;
    match handled.get(&latest) {
        Some(Handling::Fired { at_ms: fired_at }) if *fired_at == at_ms && latest <= at_ms => None,
        other => Some(format!(
            "skipped as missed at {at_ms}, but the latest due, {latest}, went {other:?}"
        )),
    }
}

/// The job of run `r`: its record says it succeeded, once; the workers'
/// logs say one attempt ran to its end.
fn check_job(
    id: &str,
    r: &RunRecord,
    record: Option<JobRecord>,
    handlers: &HashMap<JobId, Vec<Handled>>,
    findings: &mut Findings,
    stats: &mut Stats,
) {
    let job = r.job.expect("a run's job");
    let o = r.occurrence_ms;
    let logged = handlers.get(&job).map_or(&[][..], Vec::as_slice);
    if Kind::of(id).queue() == TRIMMED {
        // No record: the logs alone say it ran to its end (and, with the
        // checks of every job, that no attempt of it ran twice).
        if !logged.iter().any(|h| matches!(h.end, End::Ok(_))) {
            findings.add(UNFINISHED, format!("{id}: no worker ran {o} to its end"));
        }
        return;
    }
    let Some(record) = record else {
        findings.add(UNFINISHED, format!("{id}: run {o} has no job record"));
        return;
    };
    let succeeded: Vec<u32> = record
        .attempts
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::Succeeded)
        .map(|a| a.attempt)
        .collect();
    let last = record.attempts.last().map(|a| a.attempt);
    if record.state != JobState::Succeeded
        || succeeded.len() != 1
        || last != succeeded.first().copied()
        || record.job.run_id != format!("{id}@{o}")
    {
        findings.add(
            FIRED_TWICE,
            format!(
                "{id}: the job of {o} is {:?} after attempts {:?}",
                record.state, record.attempts
            ),
        );
        return;
    }
    let k = succeeded[0];
    if k > 1 {
        stats.retried += 1;
    }
    if !logged
        .iter()
        .any(|h| h.attempt == k && matches!(h.end, End::Ok(_)))
    {
        let what = format!(
            "{id}: attempt {k} of the job of {o} succeeded, by its record, but no worker \
             ran it to its end: {logged:?}"
        );
        findings.add(FIRED_TWICE, what);
    }
    for h in logged {
        if h.attempt > k {
            findings.add(
                FIRED_TWICE,
                format!(
                    "{id}: the job of {o} ran again (attempt {}) after attempt {k} succeeded",
                    h.attempt
                ),
            );
        } else if h.attempt < k && matches!(h.end, End::Ok(_)) {
            // The handler returned but its worker could not settle the
            // attempt before its lease lapsed (Redis was away): the job was
            // delivered again — the same occurrence, retried.
            stats.rerun_unsettled += 1;
            let at = h.end.at();
            stats.rerun_returned = Some(
                stats
                    .rerun_returned
                    .map_or((at, at), |(a, b)| (a.min(at), b.max(at))),
            );
            let outcome = record
                .attempts
                .iter()
                .find(|a| a.attempt == h.attempt)
                .map(|a| &a.outcome);
            if matches!(outcome, Some(AttemptOutcome::Succeeded)) {
                findings.add(FIRED_TWICE, format!("{id}: the job of {o} succeeded twice"));
            }
        }
    }
}

/// A skip schedule's runs, from the first start of each to the last end
/// (a killed attempt ending when its worker was killed), never overlap;
/// nor do they by the job records.
fn check_no_overlap(
    s: &Schedule,
    runs: &[RunRecord],
    records: &HashMap<i64, Option<JobRecord>>,
    handlers: &HashMap<JobId, Vec<Handled>>,
    findings: &mut Findings,
) {
    let mut logged: Vec<(i64, i64, i64)> = Vec::new();
    let mut recorded: Vec<(i64, i64, i64)> = Vec::new();
    for r in runs {
        let Some(job) = r.job else { continue };
        if let Some(h) = handlers.get(&job).filter(|h| !h.is_empty()) {
            let first = h.iter().map(|h| h.start).min().unwrap_or(0);
            let last = h.iter().map(|h| h.end.at()).max().unwrap_or(0);
            logged.push((first, last, r.occurrence_ms));
        }
        if let Some(Some(record)) = records.get(&r.occurrence_ms)
            && let (Some(a), Some(done)) = (record.attempts.first(), record.finished_at_ms)
        {
            recorded.push((a.started_at_ms as i64, done as i64, r.occurrence_ms));
        }
    }
    for (spans, by) in [
        (&mut logged, "the workers' logs"),
        (&mut recorded, "the job records"),
    ] {
        spans.sort_unstable();
        for pair in spans.windows(2) {
            if pair[1].0 < pair[0].1 {
                findings.add(
                    OVERLAP,
                    format!(
                        "{}: by {by}, run {} ran {:?} and run {} {:?}",
                        s.id,
                        pair[0].2,
                        (pair[0].0, pair[0].1),
                        pair[1].2,
                        (pair[1].0, pair[1].1)
                    ),
                );
            }
        }
    }
}

/// An after-completion schedule: it fired at its start, then each run the
/// interval after the previous one finished (exactly, by the history; at
/// least, by the workers' logs), until the next would pass the end.
fn check_chain(
    s: &Schedule,
    runs: &[RunRecord],
    handlers: &HashMap<JobId, Vec<Handled>>,
    start: Timestamp,
    end: Timestamp,
    findings: &mut Findings,
) {
    let id = &s.id;
    let mut fired: Vec<&RunRecord> = runs.iter().filter(|r| r.job.is_some()).collect();
    fired.sort_by_key(|r| r.occurrence_ms);
    let first = start.as_millisecond().max(s.created_ms);
    match fired.first() {
        Some(r) if r.occurrence_ms == first => {}
        other => findings.add(
            MISSED,
            format!(
                "{id}: its first run is {:?}, not at {first}",
                other.map(|r| r.occurrence_ms)
            ),
        ),
    }
    for pair in fired.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        let Some(finished) = before.finished_ms else {
            continue;
        };
        if after.occurrence_ms != finished + CHAIN_EVERY_MS {
            let gap = after.occurrence_ms - finished;
            let what = if gap < CHAIN_EVERY_MS { GAP } else { MISSED };
            findings.add(
                what,
                format!(
                    "{id}: run {} came {gap} ms after run {} finished",
                    after.occurrence_ms, before.occurrence_ms
                ),
            );
        }
        let ended = handlers
            .get(&before.job.unwrap())
            .and_then(|h| h.iter().map(|h| h.end.at()).max());
        let began = handlers
            .get(&after.job.unwrap())
            .and_then(|h| h.iter().map(|h| h.start).min());
        if let (Some(ended), Some(began)) = (ended, began)
            && began - ended < CHAIN_EVERY_MS
        {
            findings.add(
                GAP,
                format!(
                    "{id}: by the workers' logs, run {} began {} ms after run {} ended",
                    after.occurrence_ms,
                    began - ended,
                    before.occurrence_ms
                ),
            );
        }
    }
    if let Some(last) = fired.last()
        && let Some(finished) = last.finished_ms
        && finished + CHAIN_EVERY_MS <= end.as_millisecond()
    {
        findings.add(
            MISSED,
            format!(
                "{id}: no run after {} (finished {finished}), before the end",
                last.occurrence_ms
            ),
        );
    }
}

/// Across all jobs: no attempt delivered twice, attempts of one job never at
/// once, none still running after everything settled, and no job that no
/// history dispatched.
fn check_handlers(
    handlers: &HashMap<JobId, Vec<Handled>>,
    dispatched: &HashSet<JobId>,
    findings: &mut Findings,
) {
    for (job, attempts) in handlers {
        let run = &attempts[0].run;
        match parse_run_id(run) {
            Some((id, o)) if run_job_id(id, o) == *job && dispatched.contains(job) => {}
            _ => findings.add(
                FIRED_TWICE,
                format!("job {job} of run {run} ran, dispatched by no history"),
            ),
        }
        let mut seen = HashSet::new();
        for (n, h) in attempts.iter().enumerate() {
            // See ENQUEUED_AGAIN.
            let anew = h.attempt == 1
                && parse_run_id(run).is_some_and(|(id, _)| Kind::of(id).queue() == TRIMMED)
                && attempts[..n].iter().all(|e| e.end.at() <= h.start);
            if !seen.insert(h.attempt) {
                let what = if anew { ENQUEUED_AGAIN } else { FIRED_TWICE };
                findings.add(
                    what,
                    format!(
                        "{run}: attempt {} was delivered twice: {attempts:?}",
                        h.attempt
                    ),
                );
            }
            if h.end == End::Running {
                findings.add(
                    FIRED_TWICE,
                    format!(
                        "{run}: attempt {} still ran after every run settled (worker life {})",
                        h.attempt, h.worker
                    ),
                );
            }
        }
        for pair in attempts.windows(2) {
            if pair[1].start < pair[0].end.at() {
                findings.add(AT_ONCE, format!("{run}: {pair:?}"));
            }
        }
    }
}
