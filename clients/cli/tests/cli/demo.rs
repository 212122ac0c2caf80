//! `hookwire demo`: a kernel, a receiver and a device of its own, with `hookwired` beside the CLI or without.

use crate::command;

/// Makes sure `hookwired` is beside the CLI binary, where `hookwire demo` looks for it. `cargo test --workspace`
/// builds it (the kernel's process tests run it); `cargo test -p hookwire-cli` alone does not, so it is built here
/// when missing, into the same target folder and profile. A `hookwired` already there is used as it is: a
/// nested build with this crate's feature set would rebuild shared dependencies for minutes.
fn hookwired_beside_the_cli() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let cli = std::path::Path::new(env!("CARGO_BIN_EXE_hookwire"));
        let profile_folder = cli.parent().expect("the CLI's folder");
        let hookwired = profile_folder.join(format!("hookwired{}", std::env::consts::EXE_SUFFIX));
        if hookwired.is_file() {
            return;
        }
        let profile = profile_folder.file_name().and_then(|name| name.to_str()).expect("the profile folder's name");
        let target_folder = profile_folder.parent().expect("the target folder");
        let status = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "--locked", "-p", "hookwire-kernel", "--bin", "hookwired", "--target-dir"])
            .arg(target_folder)
            .args(["--profile", if profile == "debug" { "dev" } else { profile }])
            .status()
            .expect("run cargo build for hookwired");
        assert!(
            status.success() && hookwired.is_file(),
            "cargo build --bin hookwired did not give {}",
            hookwired.display()
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_with_no_arguments_shows_events_flowing_and_exits_zero() {
    hookwired_beside_the_cli();
    // No endpoint, no token: the demo needs nothing but itself and the hookwired binary beside it.
    let output = command().arg("demo").output().await.expect("run hookwire demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let count = |prefix: &str, contains: &str| {
        stdout.lines().filter(|line| line.starts_with(prefix) && line.contains(contains)).count()
    };
    assert_eq!(count("publish ", "temperature"), 5, "{stdout}");
    assert_eq!(count("receiver ", "POST /readings {\"sensor\":\"dev_"), 5, "{stdout}");
    assert_eq!(count("event ", " hook-sent/temperature"), 5, "{stdout}");
    assert_eq!(count("event ", "/hook-response/temperature/0 {\"stored\":true}"), 5, "{stdout}");
    assert!(stdout.contains("5 readings published, 5 requests received, 5 responses back to the device."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_without_hookwired_beside_it_says_what_to_build_and_fails() {
    // The CLI alone in a folder: no hookwired beside it. A hard link (the folder is in the target folder, on the
    // same file system) rather than a copy: a copy's write handle, inherited by a process another test forks at
    // that moment, would make its start fail with "text file busy".
    let folder = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let lonely_cli = folder.path().join("hookwire");
    std::fs::hard_link(env!("CARGO_BIN_EXE_hookwire"), &lonely_cli).unwrap();
    let mut lonely = tokio::process::Command::new(&lonely_cli);
    lonely.env("HOOKWIRE_CONFIG", folder.path().join("no-such-dir/config.toml"));
    let output = lonely.arg("demo").output().await.expect("run hookwire demo");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("hookwired (the server) is not beside this binary"), "{stderr}");
    assert!(stderr.contains("`cargo build --release --bin hookwired`"), "{stderr}");
}
