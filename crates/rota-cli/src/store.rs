//! Opening the store the configuration names: the embedded file or Redis.

use rota::schedules::Schedules;
use rota_core::BrokerError;
use rota_redis::{RedisBroker, RedisOptions};
use rota_sqlite::SqliteBroker;

use crate::config::{StoreConfig, redact};
use crate::error::{Code, Failure, Result};

/// An open store.
#[derive(Clone)]
pub(crate) enum Store {
    Embedded(SqliteBroker),
    Redis(Box<RedisBroker>),
}

/// What opening does while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Try once: a command says it cannot reach it, and which it tried.
    Once,
    /// Wait for it, each failed attempt logged and retried with backoff: a
    /// daemon may start before its Redis, or during an outage.
    Waiting,
}

impl Store {
    /// Opens the store of `config`.
    pub(crate) async fn open(config: &StoreConfig, reach: Reach) -> Result<Self> {
        match config {
            StoreConfig::Embedded { db } => {
                if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        Failure::new(
                            Code::Config,
                            format!(
                                "cannot create {} for the embedded store: {e}; \
                                 choose another file with --db or ROTA_DB",
                                dir.display()
                            ),
                        )
                    })?;
                }
                SqliteBroker::open(db)
                    .await
                    .map(Store::Embedded)
                    .map_err(|e| {
                        let why = match e {
                            BrokerError::Config(why) => why,
                            other => other.to_string(),
                        };
                        Failure::new(
                            Code::Config,
                            format!(
                                "cannot open {} as rota's embedded store: {why}. {}",
                                db.display(),
                                if why.contains("readonly") {
                                    "Make the file and its directory writable, or choose \
                                     another file with --db or ROTA_DB"
                                } else {
                                    "Choose another file with --db or ROTA_DB"
                                }
                            ),
                        )
                    })
            }
            StoreConfig::Redis { url, prefix } => {
                let options = RedisOptions::new(url.clone()).prefix(prefix.clone());
                let connected = match reach {
                    Reach::Once => RedisBroker::connect_with(options).await,
                    Reach::Waiting => {
                        tracing::info!(redis = %redact(url), "connecting");
                        RedisBroker::connect_waiting(options).await
                    }
                };
                connected.map(|r| Store::Redis(Box::new(r))).map_err(|e| {
                    let f = Failure::from(e);
                    Failure::new(
                        f.code,
                        format!("cannot use Redis at {}: {}", redact(url), f.message),
                    )
                })
            }
        }
    }

    /// The jobs' API on this store.
    pub(crate) fn jobs(&self) -> rota::jobs::Jobs {
        match self {
            Store::Embedded(s) => rota::jobs::Jobs::new(s.clone()),
            Store::Redis(s) => rota::jobs::Jobs::new(s.as_ref().clone()),
        }
    }

    /// The schedules' admin API on this store.
    pub(crate) fn schedules(&self) -> Schedules {
        match self {
            Store::Embedded(s) => Schedules::new(s.clone()),
            Store::Redis(s) => Schedules::new(s.as_ref().clone()),
        }
    }
}
