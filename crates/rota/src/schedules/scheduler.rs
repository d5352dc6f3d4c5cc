//! The scheduler daemon: holds its share of the shards and works each one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rota_core::clock::SharedClock;
use rota_core::jobs::JobStore;
use rota_core::schedules::{ScheduleError, ScheduleStore, ShardLease};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::shard::ShardTask;

/// How a scheduler runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SchedulerOptions {
    /// Its name among the schedulers (unique; a fresh one by default).
    pub name: String,
    /// The lease on each shard it holds, renewed every third of it; a
    /// scheduler that dies leaves its shards to the others within it.
    pub lease: Duration,
    /// The longest a shard waits between looks at its due schedules (a run
    /// asked for by hand waits at most this long).
    pub poll: Duration,
    /// Cancelled to stop it: it gives its shards back.
    pub shutdown: CancellationToken,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            name: format!("scheduler-{}", uuid::Uuid::now_v7().simple()),
            lease: Duration::from_secs(6),
            poll: Duration::from_millis(250),
            shutdown: CancellationToken::new(),
        }
    }
}

impl SchedulerOptions {
    /// Names the scheduler.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Sets the shard lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }
    /// Sets the poll interval.
    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(1));
        self
    }
}

/// How late runs were dispatched: dispatch instant − occurrence instant,
/// in ms, as the benchmark and metrics read it.
#[derive(Debug, Default)]
pub struct Lateness {
    samples: Mutex<Vec<i64>>,
    count: AtomicU64,
}

impl Lateness {
    /// Most samples kept (the oldest go first).
    const KEEP: usize = 100_000;

    pub(super) fn record(&self, ms: i64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() >= Self::KEEP {
            s.drain(..Self::KEEP / 2);
        }
        s.push(ms);
    }

    /// Runs dispatched so far.
    pub fn dispatched(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The latest samples (ms), oldest first.
    pub fn samples(&self) -> Vec<i64> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Decides when schedules run: holds a fair share of the store's shards
/// under fenced leases (the schedulers alive split them), and for each
/// dispatches the runs that come due, as jobs, and follows their outcomes.
///
/// ```no_run
/// # async fn demo(store: rota_memory::MemoryBroker) -> Result<(), Box<dyn std::error::Error>> {
/// use rota::schedules::Scheduler;
/// let scheduler = Scheduler::new(store).spawn();
/// // ...
/// scheduler.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Scheduler {
    schedules: Arc<dyn ScheduleStore>,
    jobs: Arc<dyn JobStore>,
    clock: SharedClock,
    options: SchedulerOptions,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler of the schedules in `store`, dispatching their runs to
    /// its job queues.
    pub fn new<S: ScheduleStore + JobStore + Clone>(store: S) -> Self {
        let clock = JobStore::clock(&store);
        Self {
            schedules: Arc::new(store.clone()),
            jobs: Arc::new(store),
            clock,
            options: SchedulerOptions::default(),
        }
    }

    /// Sets the options.
    pub fn options(mut self, options: SchedulerOptions) -> Self {
        self.options = options;
        self
    }

    /// Starts it on the current runtime.
    pub fn spawn(self) -> SchedulerHandle {
        let shutdown = self.options.shutdown.clone();
        let lateness = Arc::new(Lateness::default());
        let owned = Arc::new(Mutex::new(HashMap::new()));
        let task = tokio::spawn(
            Membership {
                s: self,
                lateness: Arc::clone(&lateness),
                owned: Arc::clone(&owned),
            }
            .run(),
        );
        SchedulerHandle {
            shutdown,
            task,
            lateness,
            owned,
        }
    }
}

/// A running [`Scheduler`]. Dropping it stops the scheduler as
/// [`shutdown`](Self::shutdown) does (its shards are given back), without
/// waiting for that to finish.
#[derive(Debug)]
#[must_use = "dropping the handle stops the scheduler"]
pub struct SchedulerHandle {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    lateness: Arc<Lateness>,
    owned: Arc<Mutex<HashMap<u32, u64>>>,
}

impl SchedulerHandle {
    /// How late its runs were dispatched.
    pub fn lateness(&self) -> &Arc<Lateness> {
        &self.lateness
    }

    /// The shards it holds, with their epochs, by shard.
    pub fn shards(&self) -> Vec<(u32, u64)> {
        let mut v: Vec<(u32, u64)> = self
            .owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(s, e)| (*s, *e))
            .collect();
        v.sort_unstable();
        v
    }

    /// Stops it: its shards are given back at once, for the others to take.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for SchedulerHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The membership loop: heartbeats, takes and gives back shards, renews.
struct Membership {
    s: Scheduler,
    lateness: Arc<Lateness>,
    owned: Arc<Mutex<HashMap<u32, u64>>>,
}

struct Held {
    lease: ShardLease,
    /// The lease's end, as its shard task fences its enqueues with.
    until: Arc<AtomicI64>,
    fence: CancellationToken,
    task: JoinHandle<()>,
}

impl Membership {
    async fn run(self) {
        let o = &self.s.options;
        let every = o.lease / 3;
        let mut held: HashMap<u32, Held> = HashMap::new();
        loop {
            if let Err(e) = self.turn(&mut held).await {
                tracing::warn!(scheduler = %o.name, error = %e, "a scheduler turn failed; trying again");
            }
            self.publish(&held);
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = o.shutdown.cancelled() => break,
            }
        }
        for (_, h) in held.drain() {
            h.fence.cancel();
            let _ = h.task.await;
            let _ = self.s.schedules.release_shard(&h.lease).await;
        }
        // Leaves the schedulers alive at once: the others would otherwise
        // count it — and leave it the shards it preferred — until its
        // heartbeat ran out.
        let _ = self.s.schedules.heartbeat(&o.name, 0).await;
        self.publish(&held);
    }

    fn publish(&self, held: &HashMap<u32, Held>) {
        let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        owned.clear();
        owned.extend(held.iter().map(|(s, h)| (*s, h.lease.epoch)));
    }

    /// One turn: say it is alive; renew what it holds (dropping what it
    /// lost); give back shards another scheduler prefers; take the free
    /// shards it prefers. Shard `n` is preferred by the `n mod k`-th of the
    /// `k` schedulers alive, by name.
    async fn turn(&self, held: &mut HashMap<u32, Held>) -> Result<(), ScheduleError> {
        let o = &self.s.options;
        let store = &self.s.schedules;
        let ttl = u64::try_from(o.lease.as_millis()).unwrap_or(u64::MAX);
        let alive = store.heartbeat(&o.name, ttl).await?;
        let me = alive.iter().position(|n| *n == o.name).unwrap_or(0);
        let k = alive.len().max(1);
        held.retain(|_, h| !h.task.is_finished() && !h.fence.is_cancelled());
        let mut lost = Vec::new();
        for (shard, h) in held.iter() {
            match store.renew_shard(&h.lease, ttl).await {
                Ok(until) => h.until.store(until, Ordering::Release),
                Err(e) => {
                    tracing::info!(scheduler = %o.name, shard, error = %e, "shard lease lost");
                    h.fence.cancel();
                    lost.push(*shard);
                }
            }
        }
        for shard in lost {
            held.remove(&shard);
        }
        for shard in 0..store.shards() {
            let mine = shard as usize % k == me;
            if !mine {
                if let Some(h) = held.remove(&shard) {
                    // Another scheduler prefers it: hand it over.
                    h.fence.cancel();
                    let _ = h.task.await;
                    store.release_shard(&h.lease).await?;
                }
                continue;
            }
            if held.contains_key(&shard) {
                continue;
            }
            if let Some(lease) = store.acquire_shard(shard, &o.name, ttl).await? {
                tracing::debug!(scheduler = %o.name, shard, epoch = lease.epoch, "shard taken");
                let fence = CancellationToken::new();
                let until = Arc::new(AtomicI64::new(lease.until_ms));
                let task = tokio::spawn(
                    ShardTask {
                        schedules: Arc::clone(store),
                        jobs: Arc::clone(&self.s.jobs),
                        clock: Arc::clone(&self.s.clock),
                        lease: lease.clone(),
                        until: Arc::clone(&until),
                        fence: fence.clone(),
                        poll: o.poll,
                        lateness: Arc::clone(&self.lateness),
                        plans: Default::default(),
                    }
                    .run(),
                );
                held.insert(
                    shard,
                    Held {
                        lease,
                        until,
                        fence,
                        task,
                    },
                );
            }
        }
        Ok(())
    }
}
