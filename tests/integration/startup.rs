//! The first five minutes, through the real binary: `init` writes a config
//! that `check` and `serve` accept, `init` never overwrites, `check` lists
//! every problem, `serve` on a terminal-less stderr logs JSON and in text
//! mode ends its start with a summary, and the README's quick start runs as
//! written.
//!
//! Synchronous on purpose: each test drives a child process and polls
//! `/readyz` with a deadline over a plain `TcpStream`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const ADMIN_KEY: &str = "startup-test-admin-key-0123456789-abcdefgh";

/// The binary, with no `KEYGATE_*` from the outer environment leaking in.
fn keygate(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keygate"));
    cmd.current_dir(cwd);
    for (name, _) in std::env::vars() {
        if name.starts_with("KEYGATE_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Two distinct free ports: both bound at once, then released.
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// A running `keygate serve`, its stderr collected by a thread.
struct Served {
    child: Child,
    stderr: Option<JoinHandle<String>>,
    public: SocketAddr,
    admin: SocketAddr,
}

impl Served {
    /// Starts `cmd` (a `serve` command) on free ports with the test's admin
    /// key and waits until `/readyz` answers 200.
    fn start(mut cmd: Command) -> Self {
        let (public, admin) = free_ports();
        cmd.env("KEYGATE_SERVER__LISTEN", format!("127.0.0.1:{public}"))
            .env("KEYGATE_ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
            .env("KEYGATE_ADMIN_KEY", ADMIN_KEY)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut out = String::new();
            let _ = pipe.read_to_string(&mut out);
            out
        });
        let mut served = Self {
            child,
            stderr: Some(stderr),
            public: SocketAddr::from(([127, 0, 0, 1], public)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin)),
        };
        served.wait_ready();
        served
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if get(self.admin, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.stderr.take().unwrap().join().unwrap();
                panic!("keygate exited before ready ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "keygate not ready within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then its exit status and everything it wrote on stderr.
    fn stop(mut self) -> (bool, String) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        let log = self.stderr.take().unwrap().join().unwrap();
        (status.success(), log)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // A failed assertion must not leave a server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `GET` over HTTP/1.1; the whole response as text, `None` when
/// nothing listens yet.
fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn init_writes_a_config_that_check_and_serve_accept() {
    let dir = tempfile::tempdir().unwrap();
    let init = keygate(dir.path())
        .args(["init", "--dir", "conf"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", text(&init.stderr));
    let file = dir.path().join("conf/keygate.toml");
    assert!(file.is_file());
    let stdout = text(&init.stdout);
    assert!(stdout.contains("wrote conf/keygate.toml"), "{stdout}");
    assert!(
        stdout.contains("check --config conf/keygate.toml"),
        "{stdout}"
    );

    let check = keygate(dir.path())
        .args(["check", "--config", "conf/keygate.toml"])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check.stderr));
    let stdout = text(&check.stdout);
    assert!(stdout.starts_with("config OK: "), "{stdout}");
    assert!(stdout.contains("1 route (orders)"), "{stdout}");

    // As written, bar the ports (free ones) and the admin key (chosen).
    let mut serve = keygate(dir.path());
    serve.args([
        "serve",
        "--config",
        "conf/keygate.toml",
        "--log-format",
        "text",
    ]);
    let served = Served::start(serve);
    // The starter's route is live: authentication comes before the upstream.
    let refused = get(served.public, "/orders/1").unwrap();
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let (public, admin) = (served.public, served.admin);
    let (ok, log) = served.stop();
    assert!(ok, "{log}");

    assert!(log.contains("is ready"), "no summary:\n{log}");
    for expected in [
        format!("public    http://{public}"),
        format!("admin     http://{admin}"),
        "SQLite keygate.db: 1 API key, 0 client credentials".to_string(),
        "orders  /orders -> http://127.0.0.1:9000".to_string(),
        "issuer http://127.0.0.1:8080".to_string(),
        format!("curl http://{admin}/v1/organizations"),
    ] {
        assert!(log.contains(&expected), "{expected:?} missing:\n{log}");
    }
    assert!(!log.contains(ADMIN_KEY), "the admin key reached stderr");
    assert!(dir.path().join("keygate.db").is_file(), "store not in cwd");
}

#[test]
fn init_refuses_to_overwrite_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = keygate(dir.path()).arg("init").output().unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let file = dir.path().join("keygate.toml");
    std::fs::write(&file, "# edited by hand\n").unwrap();

    let again = keygate(dir.path()).arg("init").output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    let stderr = text(&again.stderr);
    assert!(stderr.contains("keygate.toml already exists"), "{stderr}");
    assert!(stderr.contains("nothing written"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# edited by hand\n"
    );
}

#[test]
fn check_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.toml"),
        r#"
[server]
listen = "nowhere"
[store]
poll_interval = "often"
[tokens]
issuer = "ftp://keygate"
"#,
    )
    .unwrap();
    let out: Output = keygate(dir.path())
        .args(["check", "--config", "broken.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("broken.toml: 3 problems\n"), "{stderr}");
    // One per line, each naming its key.
    for key in ["server.listen:", "store.poll_interval:", "tokens.issuer:"] {
        assert_eq!(
            stderr
                .lines()
                .filter(|l| l.trim_start().starts_with(key))
                .count(),
            1,
            "{key} {stderr}"
        );
    }
}

/// The commands of the README's blocks that open with `# quickstart`,
/// continuation lines joined; each with its trailing comment.
fn quickstart() -> Vec<(String, String)> {
    let readme = include_str!("../../README.md");
    let mut commands = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```sh" {
            continue;
        }
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        if !block.first().is_some_and(|l| l.starts_with("# quickstart")) {
            continue;
        }
        let mut pending = String::new();
        for line in block {
            match line.strip_suffix('\\') {
                Some(part) => pending.push_str(part),
                None => {
                    pending.push_str(line);
                    let (command, comment) = split_comment(&pending);
                    if !command.is_empty() {
                        commands.push((command, comment));
                    }
                    pending.clear();
                }
            }
        }
    }
    commands
}

/// `cmd  # comment` → (`cmd`, `comment`); a `#` inside quotes is the command's.
fn split_comment(line: &str) -> (String, String) {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            ('#', None) => {
                return (
                    line[..i].trim().to_string(),
                    line[i + 1..].trim().to_string(),
                )
            }
            _ => {}
        }
    }
    (line.trim().to_string(), String::new())
}

#[test]
fn readme_quickstart_runs_as_written() {
    let commands = quickstart();
    assert!(commands.len() >= 5, "quick start not found: {commands:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut served: Option<Served> = None;
    for (command, comment) in &commands {
        if command.starts_with("export KEYGATE_ADMIN_KEY=") {
            // The test chooses the key instead of copying it from serve.
            continue;
        }
        if let Some(rest) = command.strip_prefix("cargo run --release") {
            let (_, args) = rest.split_once("-- ").expect("cargo run … -- <args>");
            let args: Vec<&str> = args.split_whitespace().collect();
            let mut cmd = keygate(dir.path());
            cmd.args(&args);
            if args.first() == Some(&"serve") {
                // Terminal 1's foreground server: here in the background,
                // on free ports. Its stderr is a pipe, so it logs JSON.
                assert!(served.is_none(), "two serve commands");
                served = Some(Served::start(cmd));
                continue;
            }
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{command}:\n{}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            if args.first() == Some(&"check") {
                assert!(text(&out.stdout).starts_with("config OK: "), "{command}");
            }
            continue;
        }
        assert!(
            command.starts_with("curl "),
            "the test does not know how to run {command:?}: teach it, or keep it out of the quick start"
        );
        let s = served.as_ref().expect("curl before serve");
        let command = command
            .replace("localhost:8080", &s.public.to_string())
            .replace("localhost:8081", &s.admin.to_string());
        let out = Command::new("sh")
            .args(["-c", &command])
            .current_dir(dir.path())
            .env("KEYGATE_ADMIN_KEY", ADMIN_KEY)
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {}", text(&out.stderr));
        // A comment opening with a status code is what the README promises.
        if let Some(code) = comment
            .get(..3)
            .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        {
            let stdout = text(&out.stdout);
            assert!(
                stdout.starts_with(&format!("HTTP/1.1 {code}")),
                "{command}: README says {code}, got:\n{stdout}"
            );
        }
    }
    let (ok, log) = served.expect("the quick start serves").stop();
    assert!(ok, "{log}");
    // No flag, no terminal: JSON lines, and no summary.
    assert!(!log.contains("is ready"), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("public listener up"))
        .unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(line).is_ok(),
        "{line}"
    );
}
