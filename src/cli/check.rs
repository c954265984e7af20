//! `keygate check`: loads a config exactly as `serve` does at start (the
//! file, then the `KEYGATE_<SECTION>__<KEY>` environment, then validation)
//! and reports every problem at once, for pipelines that deploy config. It
//! binds nothing and opens no store: what only a start can tell (a busy
//! port, an unreadable TLS file, an unreachable database) stays `serve`'s.

use std::collections::HashMap;

use super::CheckArgs;
use crate::app::summary;
use crate::config::Config;

/// Runs `keygate check`; returns the process exit code: 0 with
/// `config OK: …` on stdout, 1 with one problem per line on stderr.
pub fn check(args: &CheckArgs, env: &HashMap<String, String>) -> i32 {
    match Config::load_file(&args.config, env) {
        Ok(config) => {
            println!("config OK: {}", summary::config_line(&config));
            0
        }
        Err(e) => {
            let n = e.problems.len();
            let mut out = format!(
                "{}: {n} problem{}\n",
                args.config.display(),
                if n == 1 { "" } else { "s" }
            );
            for problem in &e.problems {
                out.push_str("  ");
                out.push_str(problem);
                out.push('\n');
            }
            eprint!("{out}");
            1
        }
    }
}
