//! Redis errors as broker errors.

use rota_core::BrokerError;

/// Classifies a Redis error: connection trouble, and a Redis that refuses
/// writes for now (at its `maxmemory`, loading, a replica, busy with a
/// script; a Cluster moving slots or failing over: a redirection the
/// client ran out of retries to follow, a Cluster down, a blocked read
/// ended because its node became a replica), are retryable; the rest is
/// not.
pub(crate) fn map(e: redis::RedisError) -> BrokerError {
    use redis::ErrorKind;
    if e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.code(),
            Some(
                "LOADING"
                    | "BUSY"
                    | "TRYAGAIN"
                    | "MASTERDOWN"
                    | "READONLY"
                    | "OOM"
                    | "MOVED"
                    | "ASK"
                    | "CLUSTERDOWN"
                    | "UNBLOCKED"
            )
        )
        || matches!(e.kind(), ErrorKind::ClusterConnectionNotFound)
    {
        return BrokerError::Unavailable(e.to_string());
    }
    if e.code() == Some("FENCED") {
        return BrokerError::LeaseLost;
    }
    match e.kind() {
        ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig => {
            BrokerError::Config(e.to_string())
        }
        _ if e.code() == Some("NOAUTH") => BrokerError::Config(format!(
            "{e}: this Redis wants a password and got none; put it in the URL: \
             redis://:<password>@host:port, or redis://<user>:<password>@host:port \
             for an ACL user"
        )),
        _ if e.code() == Some("NOPERM") || e.code() == Some("WRONGPASS") => {
            BrokerError::Config(e.to_string())
        }
        _ => BrokerError::Protocol(e.to_string()),
    }
}

/// Whether the error says a script is not loaded (Redis restarted).
pub(crate) fn is_noscript(e: &redis::RedisError) -> bool {
    e.code() == Some("NOSCRIPT")
}

/// Whether the error says the consumer group is missing (Redis restarted
/// without persistence, or the stream was deleted).
pub(crate) fn is_nogroup(e: &redis::RedisError) -> bool {
    e.code() == Some("NOGROUP")
}
