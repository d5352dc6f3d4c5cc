//! The configuration: a TOML file, `ROTA_…` environment variables and
//! flags. A flag wins over its environment variable, which wins over the
//! file, which wins over the default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rota_api::auth::TokenEntry;

use serde::{Deserialize, Serialize};

use crate::cli::Global;
use crate::error::{Code, Failure, Result};

/// The config file, as written. Unknown keys are refused (a typo would
/// otherwise be ignored silently).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct File {
    store: StoreFile,
    log: LogFile,
    api: ApiFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ApiFile {
    listen: Option<SocketAddr>,
    tokens: Vec<TokenFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    name: String,
    hash: String,
    tenant: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct StoreFile {
    db: Option<PathBuf>,
    redis: Option<String>,
    prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LogFile {
    format: Option<LogFormat>,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// For people.
    #[default]
    Human,
    /// One JSON object a line.
    Json,
}

/// Where rota keeps its schedules and jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreConfig {
    /// The embedded store: one file, no server.
    Embedded { db: PathBuf },
    /// Redis, for many machines.
    Redis { url: String, prefix: String },
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) store: StoreConfig,
    pub(crate) log_format: LogFormat,
    /// Where the HTTP API listens, unless a command's flag says.
    pub(crate) listen: SocketAddr,
    /// The API's tokens (none: no check, on loopback only).
    pub(crate) tokens: Vec<TokenEntry>,
    /// The file read, if any.
    pub(crate) file: Option<PathBuf>,
}

/// Where the HTTP API listens by default: this machine only.
pub(crate) const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7070);

/// The key prefix on Redis by default.
pub(crate) const DEFAULT_PREFIX: &str = "rota";

impl Config {
    /// The configuration from the flags and environment (`global`, as
    /// clap read them) over the config file.
    pub(crate) fn load(global: &Global) -> Result<Self> {
        let (file, path) = match &global.config {
            Some(path) => (read(path)?, Some(path.clone())),
            None => match default_file().filter(|p| p.exists()) {
                Some(path) => (read(&path)?, Some(path)),
                None => (File::default(), None),
            },
        };
        let redis = global.redis.clone().or(file.store.redis);
        let store = match redis {
            Some(url) => StoreConfig::Redis {
                url,
                prefix: global
                    .prefix
                    .clone()
                    .or(file.store.prefix)
                    .unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
            },
            None => StoreConfig::Embedded {
                db: global
                    .db
                    .clone()
                    .or(file.store.db)
                    .unwrap_or_else(default_db),
            },
        };
        let tokens: Vec<TokenEntry> = file
            .api
            .tokens
            .into_iter()
            .map(|t| TokenEntry {
                name: t.name,
                hash: t.hash,
                tenant: t.tenant,
            })
            .collect();
        for t in &tokens {
            t.validate().map_err(|e| {
                Failure::new(
                    Code::Config,
                    format!("the config file's [[api.tokens]]: {e}"),
                )
            })?;
        }
        Ok(Self {
            store,
            log_format: global.log_format.or(file.log.format).unwrap_or_default(),
            listen: file.api.listen.unwrap_or(DEFAULT_LISTEN),
            tokens,
            file: path,
        })
    }

    /// The configuration as TOML, secrets redacted.
    pub(crate) fn to_toml(&self) -> String {
        let mut out = String::new();
        match &self.file {
            Some(p) => out.push_str(&format!("# read from {}\n", p.display())),
            None => out.push_str("# no config file read\n"),
        }
        out.push_str("[store]\n");
        match &self.store {
            StoreConfig::Embedded { db } => {
                out.push_str(&format!("db = {}\n", quote(&db.display().to_string())));
            }
            StoreConfig::Redis { url, prefix } => {
                out.push_str(&format!("redis = {}\n", quote(&redact(url))));
                out.push_str(&format!("prefix = {}\n", quote(prefix)));
            }
        }
        out.push_str("\n[api]\n");
        out.push_str(&format!("listen = {}\n", quote(&self.listen.to_string())));
        for t in &self.tokens {
            out.push_str("\n[[api.tokens]]\n");
            out.push_str(&format!("name = {}\n", quote(&t.name)));
            if let Some(tenant) = &t.tenant {
                out.push_str(&format!("tenant = {}\n", quote(tenant)));
            }
            out.push_str("hash = \"sha256:***\"\n");
        }
        out.push_str("\n[log]\n");
        out.push_str(&format!(
            "format = {}\n",
            quote(match self.log_format {
                LogFormat::Human => "human",
                LogFormat::Json => "json",
            })
        ));
        out
    }

    /// The configuration as JSON, secrets redacted.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let store = match &self.store {
            StoreConfig::Embedded { db } => serde_json::json!({ "db": db }),
            StoreConfig::Redis { url, prefix } => {
                serde_json::json!({ "redis": redact(url), "prefix": prefix })
            }
        };
        let tokens: Vec<_> = self
            .tokens
            .iter()
            .map(
                |t| serde_json::json!({ "name": t.name, "tenant": t.tenant, "hash": "sha256:***" }),
            )
            .collect();
        serde_json::json!({
            "file": self.file,
            "store": store,
            "api": { "listen": self.listen, "tokens": tokens },
            "log": { "format": self.log_format },
        })
    }
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn read(path: &Path) -> Result<File> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            Code::Config,
            format!("cannot read the config file {}: {e}", path.display()),
        )
    })?;
    toml::from_str(&text).map_err(|e| {
        Failure::new(
            Code::Config,
            format!("the config file {} does not parse: {e}", path.display()),
        )
    })
}

/// `$XDG_CONFIG_HOME/rota/rota.toml`, or `~/.config/rota/rota.toml`.
fn default_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("rota").join("rota.toml"))
}

/// `$XDG_DATA_HOME/rota/rota.db`, or `~/.local/share/rota/rota.db`, or
/// `rota.db` here when there is no home.
pub(crate) fn default_db() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map_or_else(
            || PathBuf::from("rota.db"),
            |d| d.join("rota").join("rota.db"),
        )
}

/// `url` with its password, if any, replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    let hidden = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        // `redis://secret@host`: the one part is the password.
        "***".to_owned()
    };
    format!("{}{hidden}{}", &url[..scheme_end], &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("redis://:s3cret@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact("rediss://app:s3cret@h/2"), "rediss://app:***@h/2");
        assert_eq!(redact("redis://s3cret@h"), "redis://***@h");
        assert_eq!(
            redact("redis+unix:///tmp/r.sock"),
            "redis+unix:///tmp/r.sock"
        );
    }

    #[test]
    fn a_config_file_that_does_not_parse_names_the_line_and_key() {
        let err = toml::from_str::<File>("[store]\nredis = \"redis://h\"\ndb = 3\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 3"), "{text}");
        let err = toml::from_str::<File>("[store]\nreddis = \"x\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("reddis"), "{text}");
        assert!(text.contains("line 2"), "{text}");
    }
}
