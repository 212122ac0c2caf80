//! The `hookwire` CLI's contract, run as a process against a real kernel: the JSON each command prints (other
//! tools parse it), `publish --listen`, `subscribe`, and errors.
//!
//! One test binary, a module per area: `commands` (groups, devices, publish, subscribe, errors), `webhooks`,
//! `tokens`, `templates`, `config` (profiles, completions), `demo` and `quickstart` (the README's, run literally).
//! The helpers below run the `hookwire` binary as a process.

mod commands;
mod config;
mod demo;
mod quickstart;
mod templates;
mod tokens;
mod webhooks;

use hookwire_tests::{ROOT_TOKEN, TestKernel};
use serde_json::Value;
use std::process::Output;

/// `hookwire` with none of the caller's HOOKWIRE_* variables, and a config file that does not exist: the tests
/// never read or write the user's own config.
fn command() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwire"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HOOKWIRE_") {
            command.env_remove(name);
        }
    }
    command.env("HOOKWIRE_CONFIG", std::env::temp_dir().join("hookwire-cli-tests-no-such-dir/config.toml"));
    command
}

/// Runs `hookwire ARGS` against `kernel` with the root token.
async fn hookwire(kernel: &TestKernel, args: &[&str]) -> Output {
    hookwire_as(kernel, ROOT_TOKEN, args).await
}

/// Runs `hookwire ARGS` against `kernel` with `token`.
async fn hookwire_as(kernel: &TestKernel, token: &str, args: &[&str]) -> Output {
    command()
        .args(args)
        .env("HOOKWIRE_ENDPOINT", &kernel.endpoint)
        .env("HOOKWIRE_TOKEN", token)
        .env_remove("HOOKWIRE_OUTPUT")
        .output()
        .await
        .expect("run hookwire")
}

/// Runs a command that must succeed and parses its one JSON document.
async fn json(kernel: &TestKernel, args: &[&str]) -> Value {
    let output = hookwire(kernel, args).await;
    assert!(output.status.success(), "hookwire {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{args:?} printed no JSON ({error}): {:?}", output.stdout))
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_else(|| panic!("{key} missing in {value}")).to_owned()
}
