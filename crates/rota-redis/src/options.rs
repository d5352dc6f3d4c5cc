//! Settings of the Redis backend.

use std::time::Duration;

use rota_core::clock::{Clock, SharedClock};

use rota_core::BrokerError;
use rota_core::names::validate_prefix;

use crate::conn::Client;

/// How to reach Redis and lay keys out in it. Its `Debug` output shows the
/// URL with any password replaced by `***`.
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisOptions {
    /// `redis://[user[:password]@]host[:port][/db]`, `rediss://…` (TLS, with
    /// the `tls` feature) or `unix:///path/to/socket` for one Redis;
    /// `redis+cluster://[user[:password]@]host:port[,host:port…]` (or
    /// `rediss+cluster://…`) for a Redis Cluster, naming any of its nodes
    /// (one is enough; more let rota start while some are down): the rest
    /// are learnt from them.
    pub url: String,
    /// Prefix of every key, so several apps can share one Redis.
    pub prefix: String,
    /// How long a reply inbox outlives its last reply; a dead client's inbox
    /// is gone after this.
    pub reply_ttl: Duration,
    /// Limit on connecting.
    pub connect_timeout: Duration,
    /// Limit on a (non-blocking) command's answer.
    pub command_timeout: Duration,
    /// PEM of the certificate authority to trust for `rediss://` instead of
    /// the bundled public roots (a private CA).
    pub tls_root_cert: Option<Vec<u8>>,
    /// The clock of due times and timestamps (leases are key TTLs, on
    /// Redis's own clock): the system clock but in tests.
    pub clock: SharedClock,
    /// How many shards schedules are spread over (1 to
    /// [`MAX_SCHEDULE_SHARDS`]; default 16): each is a unit of work a
    /// scheduler holds under a lease, and a hash tag of its own, so the
    /// shards spread over a Cluster's nodes. Fixed for a store: the first
    /// use of its schedules records it under the prefix, and a handle with
    /// another number is refused ([`BrokerError::Config`]) rather than look
    /// for schedules in the wrong shards.
    pub schedule_shards: u32,
}

/// The most shards schedules may be spread over.
pub const MAX_SCHEDULE_SHARDS: u32 = 4096;

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .field("reply_ttl", &self.reply_ttl)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("schedule_shards", &self.schedule_shards)
            .field("clock", &self.clock)
            .field(
                "tls_root_cert",
                &self
                    .tls_root_cert
                    .as_ref()
                    .map(|pem| format!("{} bytes", pem.len())),
            )
            .finish()
    }
}

impl RedisOptions {
    /// Options for `url` with defaults: prefix `rota`, replies kept 5
    /// minutes, schedules in 16 shards.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "rota".into(),
            reply_ttl: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(3),
            command_timeout: Duration::from_secs(5),
            tls_root_cert: None,
            clock: rota_core::clock::system(),
            schedule_shards: 16,
        }
    }

    /// Sets how many shards schedules are spread over (see
    /// [`RedisOptions::schedule_shards`]; it must be the number the store
    /// was first used with).
    pub fn schedule_shards(mut self, shards: u32) -> Self {
        self.schedule_shards = shards;
        self
    }

    /// Trusts the certificate authority in `pem` for `rediss://` URLs.
    pub fn tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_cert = Some(pem.into());
        self
    }

    /// Sets the clock (a [`ManualClock`](rota_core::clock::ManualClock) in
    /// tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = std::sync::Arc::new(clock);
        self
    }

    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets how long an unread inbox is kept.
    pub fn reply_ttl(mut self, ttl: Duration) -> Self {
        self.reply_ttl = ttl;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the command timeout.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    pub(crate) fn client(&self) -> Result<Client, BrokerError> {
        validate_prefix(&self.prefix)?;
        if !(1..=MAX_SCHEDULE_SHARDS).contains(&self.schedule_shards) {
            return Err(BrokerError::Config(format!(
                "schedule_shards is {}: it must be from 1 to {MAX_SCHEDULE_SHARDS}",
                self.schedule_shards
            )));
        }
        let tls = self.url.starts_with("rediss://") || self.url.starts_with("rediss+cluster://");
        if tls && !cfg!(feature = "tls") {
            return Err(BrokerError::Config(format!(
                "{:?} asks for TLS, but rota-redis was built without its `tls` feature",
                redact(&self.url)
            )));
        }
        #[cfg(feature = "tls")]
        if tls {
            // rustls needs one crypto provider per process; ring it is,
            // unless the application installed another.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        if let Some(nodes) = cluster_nodes(&self.url) {
            let nodes = nodes.map_err(|problem| self.invalid_cluster(&problem))?;
            #[allow(unused_mut)]
            let mut builder = redis::cluster::ClusterClient::builder(nodes)
                .connection_timeout(self.connect_timeout)
                .response_timeout(self.command_timeout)
                // A failing node is retried a few times, soon (a fail-over
                // takes about the Cluster's node timeout): then the error
                // goes to the caller, which retries with backoff.
                .retries(CLUSTER_RETRIES)
                .min_retry_wait(10)
                .max_retry_wait(1_000);
            #[cfg(feature = "tls")]
            if let Some(pem) = &self.tls_root_cert {
                builder = builder.certs(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                });
            }
            return builder
                .build()
                .map(|c| Client::Cluster(Box::new(c)))
                .map_err(|e| self.invalid_cluster(&e.to_string()));
        }
        #[cfg(feature = "tls")]
        if tls && let Some(pem) = &self.tls_root_cert {
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            };
            return redis::Client::build_with_tls(self.url.as_str(), certs)
                .map(|c| Client::Single(Box::new(c)))
                .map_err(|e| self.invalid(e));
        }
        redis::Client::open(self.url.as_str())
            .map(|c| Client::Single(Box::new(c)))
            .map_err(|e| self.invalid(e))
    }

    fn invalid_cluster(&self, problem: &str) -> BrokerError {
        BrokerError::Config(format!(
            "invalid Redis Cluster URL {:?}: {problem}; expected \
             redis+cluster://[user[:password]@]host:port[,host:port…]",
            redact(&self.url)
        ))
    }

    fn invalid(&self, e: redis::RedisError) -> BrokerError {
        BrokerError::Config(format!(
            "invalid Redis URL {:?}: {e}; expected redis://[user[:password]@]host[:port][/db], rediss://… or unix:///path",
            redact(&self.url)
        ))
    }
}

/// How often a command to a Cluster node that fails is tried again by the
/// Cluster client itself.
const CLUSTER_RETRIES: u32 = 8;

/// The seed nodes of a Cluster URL, `redis+cluster://[userinfo@]host:port,
/// host:port…[?query]` (or `rediss+cluster://`), each as a node URL with
/// the same user information and query; `None` for a URL of one Redis.
fn cluster_nodes(url: &str) -> Option<Result<Vec<String>, String>> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
        ("redis", rest)
    } else {
        ("rediss", url.strip_prefix("rediss+cluster://")?)
    };
    Some((|| {
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (userinfo, hosts) = match rest.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, rest),
        };
        let hosts = match hosts.split_once('/') {
            Some((hosts, "" | "0")) => hosts,
            Some(_) => return Err("a Cluster has database 0 only".to_owned()),
            None => hosts,
        };
        let nodes: Vec<String> = hosts
            .split(',')
            .map(|host| {
                if host.is_empty() {
                    return Err("a node is empty".to_owned());
                }
                let mut node = format!("{scheme}://");
                if let Some(userinfo) = userinfo {
                    node.push_str(userinfo);
                    node.push('@');
                }
                node.push_str(host);
                if let Some(query) = query {
                    node.push('?');
                    node.push_str(query);
                }
                Ok(node)
            })
            .collect::<Result<_, _>>()?;
        Ok(nodes)
    })())
}

/// The URL with any password replaced by `***`, for messages and logs: the
/// one in the user information (`redis://user:password@host`) and a `pass`
/// query parameter (`unix:///path?pass=password`).
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &base[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &base[..scheme + 3],
                    &userinfo[..colon],
                    &base[at..]
                ),
                None => base.to_owned(),
            }
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key == "pass" || key == "password" => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("redis://app:s3cret@host:6379/0"),
            "redis://app:***@host:6379/0"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert_eq!(redact("redis://:pw@host"), "redis://:***@host");
        assert_eq!(
            redact("redis+unix:///s.sock?user=u&pass=p@w:d"),
            "redis+unix:///s.sock?user=u&pass=***"
        );
    }

    #[test]
    fn debug_output_never_shows_a_password() {
        let options = RedisOptions::new("redis://app:s3cret@host:6379/0").tls_root_cert("PEM");
        let shown = format!("{options:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redis://app:***@host:6379/0"), "{shown}");
        let shown = format!(
            "{:?}",
            RedisOptions::new("unix:///run/redis.sock?db=2&pass=s3cret")
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("unix:///run/redis.sock?db=2&pass=***"),
            "{shown}"
        );
    }

    #[test]
    fn a_cluster_url_names_its_seed_nodes_with_their_credentials() {
        assert_eq!(
            cluster_nodes("redis+cluster://u:pw@10.0.0.1:7000,10.0.0.2:7001/0?protocol=resp3"),
            Some(Ok(vec![
                "redis://u:pw@10.0.0.1:7000?protocol=resp3".to_owned(),
                "redis://u:pw@10.0.0.2:7001?protocol=resp3".to_owned(),
            ]))
        );
        assert_eq!(
            cluster_nodes("rediss+cluster://h:7000"),
            Some(Ok(vec!["rediss://h:7000".to_owned()]))
        );
        assert_eq!(cluster_nodes("redis://h:7000"), None);
        assert!(matches!(
            cluster_nodes("redis+cluster://h:1/3"),
            Some(Err(_))
        ));
        assert!(matches!(
            cluster_nodes("redis+cluster://h:1,,h:2"),
            Some(Err(_))
        ));
        let err = RedisOptions::new("redis+cluster://u:s3cret@h:1/2")
            .client()
            .err()
            .expect("refused");
        let shown = err.to_string();
        assert!(matches!(err, BrokerError::Config(_)), "{shown}");
        assert!(
            !shown.contains("s3cret") && shown.contains("database 0"),
            "{shown}"
        );
        assert_eq!(
            redact("redis+cluster://u:s3cret@h:1,h:2"),
            "redis+cluster://u:***@h:1,h:2"
        );
    }

    #[test]
    fn invalid_urls_are_config_errors_that_say_what_is_expected() {
        let err = RedisOptions::new("http://nope")
            .client()
            .err()
            .expect("refused");
        assert!(matches!(err, BrokerError::Config(_)), "{err}");
        assert!(err.to_string().contains("expected redis://"), "{err}");
        let err = RedisOptions::new("redis://h")
            .prefix("a{b}")
            .client()
            .err()
            .expect("refused");
        assert!(matches!(err, BrokerError::InvalidName(_)), "{err}");
    }
}
