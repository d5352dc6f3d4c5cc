//! The HTTP API in `rota up` and `rota api`, and `rota token`.

use std::io::Read;
use std::net::SocketAddr;

use rota_api::Api;
use rota_api::auth::{Tokens, hash_token, new_token};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::cli::TokenCommand;
use crate::config::Config;
use crate::error::{Code, Failure, Result};
use crate::output::print_json;
use crate::store::Store;

/// A running API server.
pub(crate) struct ApiServer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Serves the API over `store` on `listen` (else the configured address).
/// Refuses to listen beyond this machine without tokens.
pub(crate) async fn start(
    store: &Store,
    config: &Config,
    listen: Option<SocketAddr>,
) -> Result<ApiServer> {
    let addr = listen.unwrap_or(config.listen);
    if config.tokens.is_empty() && !addr.ip().is_loopback() {
        return Err(Failure::new(
            Code::Config,
            format!(
                "the API would listen on {addr} without tokens: whoever reaches it could change \
                 every tenant's schedules. Make tokens with `rota token new` and add them to the \
                 config file's [[api.tokens]], or listen on 127.0.0.1"
            ),
        ));
    }
    let tokens = Tokens::new(config.tokens.clone()).map_err(|e| Failure::new(Code::Config, e))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Failure::new(
            Code::Config,
            format!(
                "the API cannot listen on {addr}: {e}; choose another address with --listen or \
                 ROTA_LISTEN (or run without it: --no-api)"
            ),
        )
    })?;
    let local = listener.local_addr().unwrap_or(addr);
    let api = match store {
        Store::Embedded(s) => Api::new(s.clone(), tokens),
        Store::Redis(r) => Api::new((**r).clone(), tokens),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(api.serve(listener, async {
        let _ = stopped.await;
    }));
    eprintln!("rota: HTTP API on http://{local} (its OpenAPI document at /openapi.json)");
    tracing::info!(%local, tokens = config.tokens.len(), "HTTP API listening");
    Ok(ApiServer { stop, task })
}

impl ApiServer {
    /// Stops taking requests, and waits for those under way.
    pub(crate) async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(());
        let served = match self.task.await {
            Ok(served) => served.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        served.map_err(|e| Failure::new(Code::Failure, format!("the API failed: {e}")))
    }
}

/// `rota token …`.
pub(crate) fn token(command: TokenCommand, json: bool) -> Result<()> {
    match command {
        TokenCommand::New { name, tenant } => {
            if name.trim().is_empty() {
                return Err(Failure::invalid("--name must not be empty"));
            }
            if let Some(t) = &tenant {
                rota_core::jobs::validate_tenant(t).map_err(|e| Failure::invalid(e.to_string()))?;
            }
            let token = new_token();
            let hash = hash_token(&token);
            if json {
                return print_json(&serde_json::json!({
                    "token": token, "name": name, "tenant": tenant, "hash": hash,
                }));
            }
            println!("{token}");
            eprintln!(
                "That token is shown once; rota keeps its hash only. Add to the config file:\n"
            );
            eprintln!("[[api.tokens]]");
            eprintln!("name = {}", toml_string(&name));
            if let Some(t) = &tenant {
                eprintln!("tenant = {}", toml_string(t));
            }
            eprintln!("hash = {}", toml_string(&hash));
            Ok(())
        }
        TokenCommand::Hash => {
            let mut token = String::new();
            std::io::stdin()
                .read_to_string(&mut token)
                .map_err(|e| Failure::invalid(format!("cannot read the token from stdin: {e}")))?;
            let token = token.trim_end_matches(['\n', '\r']);
            if token.is_empty() {
                return Err(Failure::invalid("no token on stdin"));
            }
            println!("{}", hash_token(token));
            Ok(())
        }
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}
