//! `rota`: recurring jobs per tenant from the command line — the scheduler
//! and workers running jobs as commands (`rota up` for one machine,
//! `rota scheduler` and `rota worker` for many), schedules, their runs and
//! the configuration — on the embedded store (one file, no server) or on
//! Redis. `rota --help` lists the commands, each with
//! examples.

mod cli;
mod config;
mod daemon;
mod error;
mod exec;
mod http;
mod import;
mod jobs;
mod output;
mod parse;
mod schedules;
mod serve;
mod store;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, SchedulesCommand};
use crate::config::{Config, LogFormat};
use crate::error::{Failure, Result};
use crate::store::{Reach, Store};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.global) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    logs(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&Failure::from(e)),
    };
    match runtime.block_on(run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &Failure) -> ExitCode {
    eprintln!("rota: {e}");
    e.exit_code()
}

/// Log lines to stderr, at the level of `RUST_LOG` (warnings by default).
fn logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli, config: Config) -> Result<()> {
    let json = cli.global.json;
    match cli.command {
        Command::Config => {
            if json {
                output::print_json(&config.to_json())
            } else {
                print!("{}", config.to_toml());
                Ok(())
            }
        }
        // A preview needs no store.
        Command::Schedules(command) => match *command {
            SchedulesCommand::Preview {
                expr,
                tz,
                after,
                count,
            } => schedules::preview(&expr, &tz, after.as_deref(), count, json),
            command => {
                let store = Store::open(&config.store, Reach::Once).await?;
                schedules::run(command, store, json).await
            }
        },
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "rota", &mut std::io::stdout());
            Ok(())
        }
        Command::Up(args) => daemon::up(config, args).await,
        Command::Api { listen, secs } => daemon::api(config, listen.listen, secs).await,
        Command::Token(command) => serve::token(command, json),
        Command::Scheduler { secs } => daemon::run_scheduler(config, secs).await,
        Command::Worker { queues, run, secs } => daemon::worker(config, queues, run, secs).await,
        Command::Jobs(command) => {
            jobs::run(
                command,
                Store::open(&config.store, Reach::Once).await?,
                json,
            )
            .await
        }
        Command::Dlq(command) => {
            jobs::dlq(
                command,
                Store::open(&config.store, Reach::Once).await?,
                json,
            )
            .await
        }
        Command::Queues { queues } => {
            jobs::queues(
                Store::open(&config.store, Reach::Once).await?,
                &queues,
                json,
            )
            .await
        }
        Command::Runs { id, limit } => {
            let store = Store::open(&config.store, Reach::Once).await?;
            schedules::runs(store, &id, limit, json).await
        }
    }
}
