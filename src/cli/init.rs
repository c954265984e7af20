//! `keygate init`: writes the commented starter config (`starter.toml`, one
//! route, the token section, both listeners) into a directory. It never
//! overwrites a file, and it does not validate: the starter is tested to
//! load as is, and `check` is the verb that validates.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::InitArgs;

/// The file `init` writes, in the directory it is given.
const FILE_NAME: &str = "keygate.toml";
/// Kept in `src/` so every build (the Docker one copies only `src/`) has it.
const STARTER: &str = include_str!("starter.toml");

#[derive(Debug, thiserror::Error)]
enum InitError {
    #[error("{0} already exists; nothing written (remove it, or choose another --dir)")]
    Exists(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs `keygate init`; returns the process exit code. `program` is how the
/// user invoked keygate, for the commands it suggests next.
pub fn init(args: &InitArgs, program: &str) -> i32 {
    match write_starter(&args.dir) {
        Ok(path) => {
            let path = path.display();
            println!("wrote {path}");
            println!("next: {program} check --config {path}");
            println!("      {program} serve --config {path}");
            0
        }
        Err(e) => {
            eprintln!("keygate: {e}");
            1
        }
    }
}

fn write_starter(dir: &Path) -> Result<PathBuf, InitError> {
    let path = dir.join(FILE_NAME);
    let failed = |source| InitError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    // `create_new`: refusing and creating are one step, so a file that
    // appears between a check and the write is never clobbered.
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(InitError::Exists(path.display().to_string()));
        }
        Err(e) => return Err(failed(e)),
    };
    if let Err(e) = file
        .write_all(STARTER.as_bytes())
        .and_then(|()| file.sync_all())
    {
        // Half a config is worse than none: it would be refused next time.
        let _ = std::fs::remove_file(&path);
        return Err(failed(e));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Config;

    #[test]
    fn the_starter_loads_as_is_with_one_route() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_starter(dir.path()).unwrap();
        let config = Config::load_file(&path, &HashMap::new()).unwrap();
        assert_eq!(config.routes.len(), 1);
        assert_eq!(config.routes[0].prefix, "/orders");
        assert!(config.routes[0].upstream.is_some());
        assert_eq!(config.admin.listen.to_string(), "127.0.0.1:8081");
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "# mine\n").unwrap();
        let err = write_starter(dir.path()).unwrap_err();
        assert!(matches!(err, InitError::Exists(_)), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");
    }

    #[test]
    fn a_missing_directory_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_starter(&dir.path().join("a/b")).unwrap();
        assert!(path.ends_with("a/b/keygate.toml"));
    }
}
