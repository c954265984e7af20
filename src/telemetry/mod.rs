//! What keygate tells its operators: logs here, Prometheus [`metrics`].
//!
//! Logging: `tracing` to stderr, as JSON (one object per line, for log
//! pipelines) or human-readable text; by default text when stderr is a
//! terminal and JSON otherwise ([`resolve`]). Level from `RUST_LOG` (default
//! `info`). Secrets never reach a log line: every secret-bearing type prints
//! `***` or a redacted form.

pub mod access;
pub mod metrics;

use tracing_subscriber::EnvFilter;

/// What `--log-format` (or `KEYGATE_LOG_FORMAT`) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogChoice {
    /// Text on a terminal, JSON otherwise.
    Auto,
    Json,
    Text,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The format a choice means on this stderr. `auto` is text only for a
/// person at a terminal: Docker, systemd, Kubernetes and pipes hand stderr
/// to something that parses lines, so they get JSON without asking.
pub fn resolve(choice: LogChoice, stderr_is_tty: bool) -> LogFormat {
    match choice {
        LogChoice::Json => LogFormat::Json,
        LogChoice::Text => LogFormat::Text,
        LogChoice::Auto if stderr_is_tty => LogFormat::Text,
        LogChoice::Auto => LogFormat::Json,
    }
}

/// Keeps the log writers running; what was logged before it drops is
/// written out.
pub struct LogGuard {
    // Dropped in this order: the access log may still log a warning.
    _access: access::Guard,
    _log: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Installs the process's subscriber. Lines are written by a thread of
/// their own, in batches: a request never waits on stderr (the access log
/// is one line per request). Should the writer fall behind by more than
/// its buffer, lines are dropped rather than requests slowed.
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) =
        tracing_appender::non_blocking(std::io::BufWriter::new(std::io::stderr()));
    let access = access::install(format);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard {
        _access: access,
        _log: installed.is_ok().then_some(guard),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_text_on_a_terminal_and_json_elsewhere() {
        assert_eq!(resolve(LogChoice::Auto, true), LogFormat::Text);
        assert_eq!(resolve(LogChoice::Auto, false), LogFormat::Json);
    }

    #[test]
    fn an_explicit_choice_wins_over_the_terminal() {
        for tty in [true, false] {
            assert_eq!(resolve(LogChoice::Json, tty), LogFormat::Json);
            assert_eq!(resolve(LogChoice::Text, tty), LogFormat::Text);
        }
    }
}
