//! The calling side.
//!
//! A [`Client`] owns one reply [`Inbox`] and a task that reads it; every call
//! registers its correlation id, publishes the request and waits for the
//! matching reply or its deadline, whichever comes first. A `Client` is a
//! cheap `Clone` handle: share one per process (or per broker), and make the
//! typed service clients the macro generates from it.
//!
//! Calls are bounded: at most [`ClientOptions::max_pending`] wait at once; the
//! next one waits for a slot or, with [`WhenFull::Fail`], fails with
//! [`RpcError::Overloaded`] — memory never grows with the number of callers.
//!
//! # Cancel safety
//!
//! Dropping a call's future (say, losing a `select!`) forgets the call: its
//! reply, should it come, is dropped and counted in
//! [`ClientStats::unmatched_replies`]. The request itself may still run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rota_core::rpc::Broker;
use rota_core::{BrokerError, Codec, CorrelationId, Deadline, Headers, Reply, Request, RpcError};
use rota_core::{Inbox, Inboxes};
use tokio::sync::{OnceCell, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use crate::runtime::backoff::Backoff;

/// What a call does when [`ClientOptions::max_pending`] calls are already
/// waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenFull {
    /// Wait for a slot (within the call's deadline).
    #[default]
    Wait,
    /// Fail at once with [`RpcError::Overloaded`].
    Fail,
}

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Deadline of a call when neither the call nor its method sets one.
    pub default_timeout: Duration,
    /// Calls that may wait for replies at once.
    pub max_pending: usize,
    /// What a call does when `max_pending` are waiting.
    pub when_full: WhenFull,
    /// Largest encoded request accepted; larger ones fail at the caller with
    /// [`RpcError::PayloadTooLarge`].
    pub max_payload: usize,
    /// Codec of requests (servers answer in kind).
    pub codec: Codec,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(30),
            max_pending: 10_000,
            when_full: WhenFull::Wait,
            max_payload: 1024 * 1024,
            codec: Codec::Json,
        }
    }
}

impl ClientOptions {
    /// Sets the default deadline of calls.
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }
    /// Sets how many calls may wait at once.
    pub fn max_pending(mut self, n: usize) -> Self {
        self.max_pending = n.max(1);
        self
    }
    /// Sets what a call does when `max_pending` are waiting.
    pub fn when_full(mut self, when_full: WhenFull) -> Self {
        self.when_full = when_full;
        self
    }
    /// Sets the largest encoded request accepted.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }
    /// Sets the codec of requests.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }
}

/// Per-call settings, layered over the method's and the client's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallOptions {
    /// The call's deadline, from when it starts; overrides the method's
    /// `#[rota(timeout_ms = …)]` and the client's default.
    pub timeout: Option<Duration>,
    /// Headers sent with the request (trace context, …).
    pub headers: Headers,
}

impl CallOptions {
    /// Sets the call's timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// Counters of a [`Client`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Calls that got their reply.
    pub replies: u64,
    /// Replies that matched no waiting call: they came after the call's
    /// deadline, or after it was dropped, or twice. They are dropped.
    pub unmatched_replies: u64,
    /// Replies that could not be decoded.
    pub undecodable_replies: u64,
    /// Calls that timed out.
    pub deadlines_exceeded: u64,
}

/// The calling side of rota: a reply inbox, the calls waiting on it, and a
/// broker to publish through. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.inner.options)
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

struct ClientInner {
    /// Publishes requests; `None` for a client that only awaits replies
    /// (the one inside [`Jobs`](crate::jobs::Jobs)).
    broker: Option<Arc<dyn Broker>>,
    inboxes: Arc<dyn Inboxes>,
    options: ClientOptions,
    permits: Arc<Semaphore>,
    shared: Arc<Shared>,
    inbox: OnceCell<String>,
    stop: CancellationToken,
}

/// What the reply reader shares with the callers.
#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<CorrelationId, oneshot::Sender<Reply>>>,
    replies: AtomicU64,
    unmatched: AtomicU64,
    undecodable: AtomicU64,
    deadlines: AtomicU64,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Client {
    /// A client on `broker` with default options.
    pub fn new<B: Broker + Inboxes + Clone>(broker: B) -> Self {
        Self::with_options(broker, ClientOptions::default())
    }

    /// A client on `broker`.
    pub fn with_options<B: Broker + Inboxes + Clone>(broker: B, options: ClientOptions) -> Self {
        Self::build(Some(Arc::new(broker.clone())), Arc::new(broker), options)
    }

    /// A client that only awaits replies sent by others (job outcomes).
    pub(crate) fn replies_only(inboxes: impl Inboxes) -> Self {
        Self::build(None, Arc::new(inboxes), ClientOptions::default())
    }

    fn build(
        broker: Option<Arc<dyn Broker>>,
        inboxes: Arc<dyn Inboxes>,
        options: ClientOptions,
    ) -> Self {
        Self {
            inner: Arc::new(ClientInner {
                broker,
                inboxes,
                permits: Arc::new(Semaphore::new(options.max_pending)),
                options,
                shared: Arc::default(),
                inbox: OnceCell::new(),
                stop: CancellationToken::new(),
            }),
        }
    }

    /// The client's options.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Calls waiting for their reply now.
    pub fn pending(&self) -> usize {
        lock(&self.inner.shared.pending).len()
    }

    /// The client's counters.
    pub fn stats(&self) -> ClientStats {
        let s = &self.inner.shared;
        ClientStats {
            replies: s.replies.load(Ordering::Relaxed),
            unmatched_replies: s.unmatched.load(Ordering::Relaxed),
            undecodable_replies: s.undecodable.load(Ordering::Relaxed),
            deadlines_exceeded: s.deadlines.load(Ordering::Relaxed),
        }
    }

    /// The address of this client's reply inbox, opening it on first use.
    async fn inbox(&self) -> Result<&str, BrokerError> {
        let inner = &self.inner;
        inner
            .inbox
            .get_or_try_init(|| async {
                let inbox = inner.inboxes.open_inbox().await?;
                let address = inbox.address().to_owned();
                // One reader task per client; it ends when the last handle
                // of the client is dropped.
                tokio::spawn(read_replies(
                    inbox,
                    Arc::clone(&inner.shared),
                    inner.stop.clone(),
                ));
                Ok(address)
            })
            .await
            .map(String::as_str)
    }

    /// Sends a request and waits for its reply. The building block of the
    /// generated clients; `body` is the arguments, already encoded with
    /// [`ClientOptions::codec`]. Returns `None` for a one-way call.
    ///
    /// Cancel safety: dropping the future forgets the call (a late reply is
    /// counted in [`ClientStats::unmatched_replies`]); the request, once
    /// published, may still run.
    pub async fn call_raw(
        &self,
        service: &str,
        method: &str,
        body: Vec<u8>,
        timeout: Duration,
        headers: Headers,
        oneway: bool,
    ) -> Result<Option<Reply>, RpcError> {
        let options = &self.inner.options;
        let Some(broker) = &self.inner.broker else {
            return Err(RpcError::Transport(BrokerError::Config(
                "this client only awaits replies; it cannot publish calls".into(),
            )));
        };
        let started = tokio::time::Instant::now();
        let local_deadline = started + timeout;
        // Taken before waiting for a slot, so the deadline servers see is
        // never later than when this caller gives up.
        let deadline = Deadline::after(timeout);
        let _permit = match options.when_full {
            WhenFull::Fail => self
                .inner
                .permits
                .try_acquire()
                .map_err(|_| RpcError::Overloaded(options.max_pending))?,
            WhenFull::Wait => {
                match tokio::time::timeout_at(local_deadline, self.inner.permits.acquire()).await {
                    Ok(permit) => permit.map_err(|_| RpcError::ShuttingDown)?,
                    Err(_) => return Err(self.deadline_exceeded(timeout)),
                }
            }
        };
        let reply_to = if oneway {
            None
        } else {
            Some(self.inbox().await?.to_owned())
        };
        let request = Request {
            id: CorrelationId::new(),
            service: service.to_owned(),
            method: method.to_owned(),
            reply_to,
            deadline: Some(deadline),
            attempt: 1,
            headers,
            codec: options.codec,
            body: Bytes::from(body),
        };
        let encoded = request
            .encode()
            .map_err(|e| RpcError::Encode(e.to_string()))?;
        if encoded.len() > options.max_payload {
            return Err(RpcError::PayloadTooLarge {
                size: encoded.len(),
                limit: options.max_payload,
            });
        }
        if oneway {
            return match tokio::time::timeout_at(
                local_deadline,
                broker.publish(service, encoded.into()),
            )
            .await
            {
                Ok(result) => result.map(|()| None).map_err(RpcError::from),
                Err(_) => Err(self.deadline_exceeded(timeout)),
            };
        }
        let (tx, rx) = oneshot::channel();
        let guard = PendingGuard {
            shared: &self.inner.shared,
            id: request.id,
        };
        lock(&self.inner.shared.pending).insert(request.id, tx);
        let wait = async {
            broker.publish(service, encoded.into()).await?;
            rx.await.map_err(|_| RpcError::ShuttingDown)
        };
        let result = match tokio::time::timeout_at(local_deadline, wait).await {
            Ok(result) => result.map(Some),
            Err(_) => Err(self.deadline_exceeded(timeout)),
        };
        drop(guard);
        result
    }

    /// Registers a wait for the reply with correlation id `id` — sent by
    /// someone else, such as a worker finishing a job — and opens the inbox
    /// if need be. Send the reply to [`ReplyWaiter::address`]. Counts
    /// against [`ClientOptions::max_pending`].
    ///
    /// Cancel safe: nothing is registered until it returns; dropping the
    /// [`ReplyWaiter`] unregisters the wait.
    pub async fn expect_reply(&self, id: CorrelationId) -> Result<ReplyWaiter, RpcError> {
        let permit = match self.inner.options.when_full {
            WhenFull::Fail => Arc::clone(&self.inner.permits)
                .try_acquire_owned()
                .map_err(|_| RpcError::Overloaded(self.inner.options.max_pending))?,
            WhenFull::Wait => Arc::clone(&self.inner.permits)
                .acquire_owned()
                .await
                .map_err(|_| RpcError::ShuttingDown)?,
        };
        let address = self.inbox().await?.to_owned();
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.shared.pending).insert(id, tx);
        Ok(ReplyWaiter {
            client: self.clone(),
            id,
            address,
            rx: Some(rx),
            _permit: permit,
        })
    }

    fn deadline_exceeded(&self, timeout: Duration) -> RpcError {
        self.inner.shared.deadlines.fetch_add(1, Ordering::Relaxed);
        RpcError::DeadlineExceeded(timeout)
    }
}

/// A registered wait for one reply; see [`Client::expect_reply`]. Dropping
/// it forgets the wait.
#[derive(Debug)]
pub struct ReplyWaiter {
    client: Client,
    id: CorrelationId,
    address: String,
    rx: Option<oneshot::Receiver<Reply>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl ReplyWaiter {
    /// The inbox the reply must be sent to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Waits up to `timeout` for the reply.
    ///
    /// Cancel safety: dropping the future forgets the wait; a late reply is
    /// counted in [`ClientStats::unmatched_replies`].
    pub async fn wait(mut self, timeout: Duration) -> Result<Reply, RpcError> {
        let rx = self.rx.take().ok_or(RpcError::ShuttingDown)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(RpcError::ShuttingDown),
            Err(_) => Err(self.client.deadline_exceeded(timeout)),
        }
    }
}

impl Drop for ReplyWaiter {
    fn drop(&mut self) {
        lock(&self.client.inner.shared.pending).remove(&self.id);
    }
}

/// Removes a call's pending entry however the call ends (reply, deadline,
/// error, or its future being dropped).
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: CorrelationId,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.shared.pending).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the map inconsistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads the inbox and hands each reply to the call waiting for it.
async fn read_replies(mut inbox: Box<dyn Inbox>, shared: Arc<Shared>, stop: CancellationToken) {
    const BATCH: usize = 512;
    const WAIT: Duration = Duration::from_millis(500);
    let mut backoff = Backoff::default();
    while !stop.is_cancelled() {
        // `recv` is not cancel safe, so it is bounded by WAIT rather than
        // raced against `stop`.
        match inbox.recv(BATCH, WAIT).await {
            Ok(batch) => {
                backoff.reset();
                for bytes in batch {
                    dispatch_reply(&shared, &bytes);
                }
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, ?delay, "reading replies failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.cancelled() => break,
                }
            }
        }
    }
}

fn dispatch_reply(shared: &Shared, bytes: &[u8]) {
    let reply = match Reply::decode(bytes) {
        Ok(reply) => reply,
        Err(e) => {
            shared.undecodable.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "dropping an undecodable reply");
            return;
        }
    };
    let waiter = lock(&shared.pending).remove(&reply.id);
    let delivered = waiter.is_some_and(|tx| tx.send(reply).is_ok());
    let counter = if delivered {
        &shared.replies
    } else {
        &shared.unmatched
    };
    counter.fetch_add(1, Ordering::Relaxed);
}
