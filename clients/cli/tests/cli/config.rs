//! The config file and its profiles: what they hold, what wins over them (flags, environment), where the file is
//! by default, and shell completions.

use crate::{command, text};
use hookwire_tests::{ROOT_TOKEN, TestKernel};
use serde_json::Value;
use std::process::Output;

/// Runs `hookwire ARGS` with only `variables` set among the HOOKWIRE_* and XDG_CONFIG_HOME ones.
async fn hookwire_with(variables: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = command();
    command.env_remove("HOOKWIRE_CONFIG").env_remove("XDG_CONFIG_HOME");
    command.args(args).envs(variables.iter().copied()).output().await.expect("run hookwire")
}

fn stdout_json(output: &Output) -> Value {
    assert!(output.status.success(), "hookwire failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("no JSON ({error}): {:?}", output.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_hold_endpoint_token_and_output_and_flags_and_environment_win_over_them() {
    let kernel = TestKernel::spawn().await;
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("nested").join("config.toml");
    let file_name = file.to_str().unwrap();
    let config = [("HOOKWIRE_CONFIG", file_name)];

    // The first profile becomes the default; a second one is added beside it.
    let local = stdout_json(
        &hookwire_with(
            &config,
            &["config", "set-profile", "local", "--endpoint", &kernel.endpoint, "--token", ROOT_TOKEN],
        )
        .await,
    );
    assert_eq!(local["default"], true);
    assert_eq!(local["endpoint"], kernel.endpoint.as_str());
    let stale_token = "hwa_this_token_does_not_exist_0000";
    let args = ["config", "set-profile", "stale", "--endpoint", "http://127.0.0.1:9", "--token", stale_token];
    let stale = stdout_json(&hookwire_with(&config, &args).await);
    assert_eq!(stale["default"], false);
    assert_eq!(stale["token"], "hwa_...0000");

    // The file holds both, is the owner's only, and `list` never shows a token in full.
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("default_profile = \"local\"") && written.contains(stale_token), "{written}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let listed = hookwire_with(&config, &["config", "list"]).await;
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(stale_token));
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(ROOT_TOKEN));
    let listed = stdout_json(&listed);
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|profile| profile["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["local", "stale"]);

    // The default profile alone is enough to reach the kernel; changing one field of it keeps the others.
    let group = stdout_json(&hookwire_with(&config, &["group", "create", "from-profile"]).await);
    assert!(text(&group, "id").starts_with("grp_"));
    // (--output here is both the stored value and how this command prints.)
    let set = hookwire_with(&config, &["config", "set-profile", "local", "--output", "table"]).await;
    assert!(String::from_utf8_lossy(&set.stdout).starts_with("NAME"), "{set:?}");
    let local = &stdout_json(&hookwire_with(&config, &["config", "list"]).await)[0];
    assert_eq!((local["endpoint"].as_str(), local["output"].as_str()), (Some(kernel.endpoint.as_str()), Some("table")));
    let table = hookwire_with(&config, &["group", "list"]).await;
    assert!(table.status.success(), "{}", String::from_utf8_lossy(&table.stderr));
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.starts_with("ID") && table.contains("from-profile"), "{table}");

    // --profile picks the other one, whose endpoint is dead; the flags and the environment beat it one by one.
    let dead = hookwire_with(&config, &["--profile", "stale", "group", "list"]).await;
    assert_eq!(dead.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dead.stderr).contains("127.0.0.1:9"));
    let with_endpoint =
        [("HOOKWIRE_CONFIG", file_name), ("HOOKWIRE_PROFILE", "stale"), ("HOOKWIRE_ENDPOINT", &kernel.endpoint)];
    let refused = hookwire_with(&with_endpoint, &["group", "list"]).await;
    assert!(String::from_utf8_lossy(&refused.stderr).contains("UNAUTHENTICATED"), "{refused:?}");
    let listed = stdout_json(&hookwire_with(&with_endpoint, &["group", "list", "--token", ROOT_TOKEN]).await);
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // `use` switches the default; `path` says where the file is.
    stdout_json(&hookwire_with(&config, &["config", "use", "stale"]).await);
    assert!(std::fs::read_to_string(&file).unwrap().contains("default_profile = \"stale\""));
    let path = hookwire_with(&config, &["config", "path"]).await;
    assert_eq!(String::from_utf8(path.stdout).unwrap().trim_end(), file_name);
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_defaults_to_xdg_config_home_and_its_errors_name_the_file() {
    let directory = tempfile::tempdir().unwrap();
    let home = directory.path().to_str().unwrap();
    let xdg = [("XDG_CONFIG_HOME", home)];
    let expected = directory.path().join("hookwire").join("config.toml");
    let path = hookwire_with(&xdg, &["config", "path"]).await;
    assert_eq!(String::from_utf8(path.stdout).unwrap().trim_end(), expected.to_str().unwrap());
    stdout_json(&hookwire_with(&xdg, &["config", "set-profile", "a", "--endpoint", "http://127.0.0.1:9"]).await);
    assert!(expected.exists());

    // An unknown profile, by flag or by `use`: named, with the file and the profiles there are.
    for args in [&["--profile", "nope", "group", "list"][..], &["config", "use", "nope"]] {
        let output = hookwire_with(&xdg, args).await;
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("`nope`") && stderr.contains(expected.to_str().unwrap()), "{stderr}");
        assert!(stderr.contains("its profiles: a"), "{stderr}");
    }

    // A malformed file: named, with the line. `config path` still works, so the file can be found and fixed.
    std::fs::write(&expected, "default_profile = \"a\"\n\n[profiles.a]\nendpoint = http://x\n").unwrap();
    let output = hookwire_with(&xdg, &["group", "list"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(expected.to_str().unwrap()) && stderr.contains("line 4"), "{stderr}");
    assert!(hookwire_with(&xdg, &["config", "path"]).await.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_print_a_script_that_bash_can_complete_with() {
    let output = hookwire_with(&[], &["completions", "bash"]).await;
    assert!(output.status.success());
    let directory = tempfile::tempdir().unwrap();
    let script = directory.path().join("hookwire.bash");
    std::fs::write(&script, &output.stdout).unwrap();
    // Completes `hookwire config s` as bash would on TAB.
    let completed = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(hookwire config s); COMP_CWORD=2; _hookwire hookwire s config; echo \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .await
        .expect("run bash");
    assert_eq!(String::from_utf8_lossy(&completed.stdout).trim(), "set-profile", "{completed:?}");
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let output = hookwire_with(&[], &["completions", shell]).await;
        assert!(output.status.success() && String::from_utf8_lossy(&output.stdout).contains("set-profile"), "{shell}");
    }
}
