//! The settings' layers, end to end: `hookwired --print-settings` with a file, environment variables and flags.

use std::process::Command;

#[test]
fn flags_override_variables_which_override_the_file_which_overrides_the_defaults() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("hookwire.toml");
    std::fs::write(
        &file,
        "quota_queue_limit = 5\nsleep_enabled = false\nretention_days = 7\nroot_token = \"from-the-file\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hookwired"))
        .args(["--print-settings", "--retention-days", "9", "--sleep-retry-delays-ms", "1000,2000"])
        .env("HOOKWIRE_CONFIG", &file)
        .env("HOOKWIRE_QUOTA_QUEUE_LIMIT", "6")
        .env("HOOKWIRE_RETENTION_DAYS", "8")
        .env("HOOKWIRE_SLEEP_ENABLED", "true")
        .env("HOOKWIRE_ROOT_TOKEN", "from-the-environment")
        .output()
        .expect("run hookwired");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: toml::Table = toml::from_str(&String::from_utf8(output.stdout).unwrap()).unwrap();
    assert_eq!(printed["quota_queue_limit"].as_integer(), Some(6), "the variable over the file");
    assert_eq!(printed["sleep_enabled"].as_bool(), Some(true), "the variable over the file");
    assert_eq!(printed["retention_days"].as_integer(), Some(9), "the flag over the variable");
    assert_eq!(printed["sleep_retry_delays_ms"].to_string(), "[1000, 2000]");
    assert_eq!(printed["response_timeout_ms"].as_integer(), Some(20_000), "a default");
    assert_eq!(printed["root_token"].as_str(), Some("***"), "never printed");
}

#[test]
fn a_misspelt_key_in_the_file_is_refused_by_name() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("hookwire.toml");
    std::fs::write(&file, "databse = \"sqlite://x.db\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hookwired"))
        .arg("--print-settings")
        .arg("--config")
        .arg(&file)
        .output()
        .expect("run hookwired");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("databse"));
}
