//! Typed clients: a [`ServiceClient`] is a [`Client`] bound to one service,
//! with per-call options — what the macro's `FooClient` types wrap.

use std::sync::Arc;
use std::time::Duration;

use rota_core::{CallError, Codec, Outcome, Reply, RpcError};
use serde::{Serialize, de::DeserializeOwned};

use super::client::{CallOptions, Client};

/// What a typed service client is made from: a [`Client`], whose one reply
/// inbox (and, on Redis, one blocking connection and one reader task) every
/// typed client made from it shares. Make one `Client` per process and the
/// typed clients from it.
pub trait IntoClient {
    /// Makes or shares the client.
    fn into_client(self) -> Client;
}

impl IntoClient for Client {
    fn into_client(self) -> Client {
        self
    }
}

impl IntoClient for &Client {
    fn into_client(self) -> Client {
        self.clone()
    }
}

/// A [`Client`] bound to one service, with per-call options: what the
/// generated `FooClient` types wrap.
#[derive(Clone, Debug)]
pub struct ServiceClient {
    client: Client,
    service: Arc<str>,
    options: CallOptions,
}

impl ServiceClient {
    /// A client of `service`.
    pub fn new(client: impl IntoClient, service: impl Into<String>) -> Self {
        Self {
            client: client.into_client(),
            service: Arc::from(service.into()),
            options: CallOptions::default(),
        }
    }

    /// The service called.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A copy whose calls time out after `timeout`.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        let mut this = self.clone();
        this.options.timeout = Some(timeout);
        this
    }

    /// A copy whose calls carry the header.
    pub fn with_header(&self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let mut this = self.clone();
        this.options.headers.insert(name.into(), value.into());
        this
    }

    /// A copy with these call options.
    pub fn with_options(&self, options: CallOptions) -> Self {
        let mut this = self.clone();
        this.options = options;
        this
    }

    fn timeout(&self, method_timeout: Option<Duration>) -> Duration {
        self.options
            .timeout
            .or(method_timeout)
            .unwrap_or(self.client.options().default_timeout)
    }

    async fn request<A: Serialize + Sync>(
        &self,
        method: &'static str,
        method_timeout: Option<Duration>,
        args: &A,
        oneway: bool,
    ) -> Result<Option<Reply>, RpcError> {
        let body = self
            .client
            .options()
            .codec
            .encode(args)
            .map_err(|e| RpcError::Encode(e.to_string()))?;
        self.client
            .call_raw(
                &self.service,
                method,
                body,
                self.timeout(method_timeout),
                self.options.headers.clone(),
                oneway,
            )
            .await
    }

    /// Calls a method whose result is `Result<T, E>`.
    ///
    /// Cancel safety: dropping the future forgets the call; the request, once
    /// published, may still run.
    pub async fn call<A, T, E>(
        &self,
        method: &'static str,
        method_timeout: Option<Duration>,
        args: &A,
    ) -> Result<T, CallError<E>>
    where
        A: Serialize + Sync,
        T: DeserializeOwned,
        E: DeserializeOwned,
    {
        let reply = self
            .request(method, method_timeout, args, false)
            .await?
            .ok_or(RpcError::Decode("no reply to a two-way call".into()))?;
        match reply.outcome {
            Outcome::Ok(body) => decode(reply.codec, &body).map_err(CallError::Rpc),
            Outcome::Err(body) => Err(CallError::Service(decode(reply.codec, &body)?)),
            Outcome::Fault(fault) => Err(CallError::Rpc(self.fault(fault, method_timeout))),
        }
    }

    /// Calls a method that returns a plain `T`.
    ///
    /// Cancel safety: dropping the future forgets the call; the request, once
    /// published, may still run.
    pub async fn call_infallible<A, T>(
        &self,
        method: &'static str,
        method_timeout: Option<Duration>,
        args: &A,
    ) -> Result<T, RpcError>
    where
        A: Serialize + Sync,
        T: DeserializeOwned,
    {
        let reply = self
            .request(method, method_timeout, args, false)
            .await?
            .ok_or(RpcError::Decode("no reply to a two-way call".into()))?;
        match reply.outcome {
            Outcome::Ok(body) => decode(reply.codec, &body),
            Outcome::Err(_) => Err(RpcError::Decode(format!(
                "{}.{method} returned an error body, but it has no error type",
                self.service
            ))),
            Outcome::Fault(fault) => Err(self.fault(fault, method_timeout)),
        }
    }

    /// A server that saw the deadline pass reports what the caller would
    /// have seen itself a moment later: one error for one cause.
    fn fault(&self, fault: rota_core::Fault, method_timeout: Option<Duration>) -> RpcError {
        if fault.kind == rota_core::FaultKind::DeadlineExceeded {
            RpcError::DeadlineExceeded(self.timeout(method_timeout))
        } else {
            RpcError::Remote(fault)
        }
    }

    /// Sends a one-way call: done once the broker accepted it.
    ///
    /// Not cancel safe: a dropped send may have published the message all the
    /// same.
    pub async fn send<A: Serialize + Sync>(
        &self,
        method: &'static str,
        args: &A,
    ) -> Result<(), RpcError> {
        self.request(method, None, args, true).await.map(|_| ())
    }
}

fn decode<T: DeserializeOwned>(codec: Codec, body: &[u8]) -> Result<T, RpcError> {
    codec
        .decode(body)
        .map_err(|e| RpcError::Decode(e.to_string()))
}
