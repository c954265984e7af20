//! The keygate binary: parse the CLI, then serve, write or check a config,
//! or run an admin verb.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;
use keygate::cli::{Cli, Command};
use keygate::config::Config;
use keygate::telemetry::{self, LogFormat};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve(args) => {
            let format = telemetry::resolve(args.log_format, std::io::stderr().is_terminal());
            let _logs = telemetry::init(format);
            let env: HashMap<String, String> = std::env::vars().collect();
            let config = match &args.config {
                Some(path) => Config::load_file(path, &env),
                None => Config::defaults(&env),
            };
            let config = match config {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("keygate: {e}");
                    return ExitCode::from(2);
                }
            };
            serve(config, format).await
        }
        Command::Init(args) => exit(keygate::cli::init(args, &keygate::cli::program_name())),
        Command::Check(args) => {
            let env: HashMap<String, String> = std::env::vars().collect();
            exit(keygate::cli::check(args, &env))
        }
        Command::SecretPattern(args) => {
            println!("{}", keygate::secret::scanner_pattern(&args.prefix));
            ExitCode::SUCCESS
        }
        _ => exit(keygate::cli::run_admin(&cli).await),
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

async fn serve(config: Config, format: LogFormat) -> ExitCode {
    let mut running = match keygate::app::start(config).await {
        Ok(r) => r,
        Err(e) => {
            // The whole cause chain: "store unavailable" alone helps nobody.
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                msg.push_str(": ");
                msg.push_str(&cause.to_string());
                source = cause.source();
            }
            eprintln!("keygate: {msg}");
            return ExitCode::from(1);
        }
    };
    if let Some(key) = running.take_bootstrap_key() {
        // Printed once, on stderr, never again.
        eprintln!("bootstrap admin key: {}", key.as_str());
    }
    if format == LogFormat::Text {
        // For a person at a terminal; log pipelines have the structured
        // "listener up" and "cache loaded" lines.
        eprint!("{}", running.summary(&keygate::cli::program_name()));
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
