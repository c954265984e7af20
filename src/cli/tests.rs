//! Argument parsing of the admin verbs.
use super::*;

#[test]
fn serve_logs_auto_unless_told() {
    let cli = Cli::try_parse_from(["keygate", "serve"]).unwrap();
    let Command::Serve(args) = cli.command else {
        panic!("not serve")
    };
    // The environment may set KEYGATE_LOG_FORMAT; the flag is what is tested.
    if std::env::var_os("KEYGATE_LOG_FORMAT").is_none() {
        assert_eq!(args.log_format, LogChoice::Auto);
    }
    let cli = Cli::try_parse_from(["keygate", "serve", "--log-format", "text"]).unwrap();
    let Command::Serve(args) = cli.command else {
        panic!("not serve")
    };
    assert_eq!(args.log_format, LogChoice::Text);
}

#[test]
fn init_defaults_to_the_working_directory() {
    let cli = Cli::try_parse_from(["keygate", "init"]).unwrap();
    let Command::Init(args) = cli.command else {
        panic!("not init")
    };
    assert_eq!(args.dir, std::path::PathBuf::from("."));
    let cli = Cli::try_parse_from(["keygate", "init", "--dir", "demo"]).unwrap();
    let Command::Init(args) = cli.command else {
        panic!("not init")
    };
    assert_eq!(args.dir, std::path::PathBuf::from("demo"));
}

#[test]
fn check_names_its_file() {
    let cli = Cli::try_parse_from(["keygate", "check", "--config", "k.toml"]).unwrap();
    let Command::Check(args) = cli.command else {
        panic!("not check")
    };
    assert_eq!(args.config, std::path::PathBuf::from("k.toml"));
}

#[test]
fn webhook_create_takes_repeated_events() {
    let cli = Cli::try_parse_from([
        "keygate",
        "webhook",
        "create",
        "--url",
        "https://x.example/h",
        "--event",
        "api_key.*",
        "--event",
        "service_account.disabled",
    ])
    .unwrap();
    let Command::Webhook(WebhookCmd::Create { events, .. }) = cli.command else {
        panic!("not webhook create")
    };
    assert_eq!(events, ["api_key.*", "service_account.disabled"]);
}
