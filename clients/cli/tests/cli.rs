//! The `hookwire` CLI's contract, run as a process against a real kernel: the JSON each command prints (other
//! tools parse it), `publish --listen`, `subscribe`, and errors.

use hookwire_tests::{FakeReceiver, ROOT_TOKEN, Reply, TestKernel};
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

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
    command()
        .args(args)
        .env("HOOKWIRE_ENDPOINT", &kernel.endpoint)
        .env("HOOKWIRE_TOKEN", ROOT_TOKEN)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_devices_and_webhooks_print_the_documented_json() {
    let kernel = TestKernel::spawn().await;
    let group = json(&kernel, &["group", "create", "fleet"]).await;
    assert!(text(&group, "id").starts_with("grp_"));
    assert_eq!(text(&group, "name"), "fleet");
    let group_id = text(&group, "id");

    let device = json(&kernel, &["device", "create", "--group", &group_id, "--name", "sensor"]).await;
    assert!(text(&device, "id").starts_with("dev_"));
    assert!(text(&device, "token").starts_with("hwd_"));
    assert_eq!(text(&device, "group_id"), group_id);

    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("hook.json");
    let definition = r#"{"event": "temp", "url": "https://example.com/t", "requestType": "PUT", "json": {"v": "{{{PARTICLE_EVENT_VALUE}}}"}, "x-metadata": {"team": "a"}}"#;
    std::fs::write(&file, definition).unwrap();
    let file = file.to_str().unwrap();
    let webhook = json(&kernel, &["webhook", "create", "--group", &group_id, "--file", file]).await;
    let webhook_id = text(&webhook, "id");
    assert!(webhook_id.starts_with("whk_"));
    assert_eq!(text(&webhook, "group_id"), group_id);
    assert_eq!(text(&webhook, "event"), "temp");
    assert_eq!(text(&webhook, "requestType"), "PUT");

    let listed = json(&kernel, &["webhook", "list", "--group", &group_id]).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(json(&kernel, &["webhook", "get", &webhook_id]).await["url"], "https://example.com/t");

    // Export then create gives an identical definition.
    let exported = json(&kernel, &["webhook", "export", &webhook_id]).await;
    assert_eq!(exported, serde_json::from_str::<Value>(definition).unwrap());
    let export_file = directory.path().join("exported.json");
    std::fs::write(&export_file, exported.to_string()).unwrap();
    let again =
        json(&kernel, &["webhook", "create", "--group", &group_id, "--file", export_file.to_str().unwrap()]).await;
    assert_eq!(json(&kernel, &["webhook", "export", &text(&again, "id")]).await, exported);

    let deleted = json(&kernel, &["webhook", "delete", &webhook_id, &text(&again, "id")]).await;
    assert_eq!(deleted["deleted"].as_array().unwrap().len(), 2);
    assert_eq!(json(&kernel, &["webhook", "list", "--group", &group_id]).await, serde_json::json!([]));
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_listen_prints_the_ack_then_the_response_chunks() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    receiver.reply_with(Reply { status: 200, body: "a".repeat(600).into(), ..Reply::default() });
    let fixture = kernel.fixture().await;
    fixture.webhook(serde_json::json!({"event": "get_weather", "url": receiver.base_url})).await;

    let listen = format!("{}/hook-response/get_weather", fixture.device_id);
    let args = [
        "publish",
        "--device-token",
        &fixture.device_token,
        "get_weather",
        "Chicago",
        "--listen",
        &listen,
        "--count",
        "2",
        "--timeout",
        "20",
    ];
    let output = hookwire(&kernel, &args).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(text(&lines[0], "event_id").starts_with("evt_"));
    assert_eq!(text(&lines[1], "name"), format!("{listen}/0"));
    assert_eq!(text(&lines[1], "data").len(), 512);
    assert_eq!(text(&lines[2], "name"), format!("{listen}/1"));
    assert_eq!(text(&lines[2], "data").len(), 88);
    assert_eq!(text(&lines[2], "device_id"), fixture.device_id);
    assert!(lines[2]["published_at"].as_str().is_some());
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_prints_the_group_events_as_json_lines() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let group_id = fixture.group_id.clone();
    let endpoint = kernel.endpoint.clone();
    let subscriber = tokio::spawn(async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwire"))
            .args(["subscribe", "--group", &group_id, "temp", "--count", "1", "--timeout", "20"])
            .env("HOOKWIRE_ENDPOINT", endpoint)
            .env("HOOKWIRE_TOKEN", ROOT_TOKEN)
            .output()
            .await
            .expect("run hookwire subscribe")
    });
    // Publish until the subscriber has started and printed one event.
    let device = kernel.device(&fixture.device_token).await;
    let output = loop {
        device.publish("temperature", "21").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if subscriber.is_finished() {
            break subscriber.await.unwrap();
        }
    };
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let line: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(text(&line, "name"), "temperature");
    assert_eq!(text(&line, "data"), "21");
    assert_eq!(text(&line, "device_id"), fixture.device_id);
    assert!(text(&line, "id").starts_with("evt_"));
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_go_to_stderr_with_a_non_zero_exit() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("bad.json");
    std::fs::write(&file, r#"{"event": "a", "url": "http://x/", "colour": "red"}"#).unwrap();
    let output =
        hookwire(&kernel, &["webhook", "create", "--group", &fixture.group_id, "--file", file.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("colour") && stderr.contains("INVALID_ARGUMENT"), "{stderr}");

    let output = command()
        .args(["group", "list"])
        .env("HOOKWIRE_ENDPOINT", &kernel.endpoint)
        .env("HOOKWIRE_TOKEN", "wrong")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("UNAUTHENTICATED"));
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_prints_one_bare_value_for_scripts() {
    let kernel = TestKernel::spawn().await;
    let output = hookwire(&kernel, &["group", "create", "demo", "--field", "id"]).await;
    assert!(output.status.success());
    let id = String::from_utf8(output.stdout).unwrap();
    assert!(id.starts_with("grp_") && id.ends_with('\n') && id.trim().len() == 36, "{id:?}");
    let output = hookwire(&kernel, &["group", "get", id.trim(), "--field", "colour"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--field colour"));
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_prints_the_webhook_requests_it_gets() {
    use tokio::io::AsyncBufReadExt as _;
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let mut receiver = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookwire"))
        .args(["receive", "--listen", "127.0.0.1:0", "--count", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = tokio::io::BufReader::new(receiver.stderr.take().unwrap()).lines();
    let announced = stderr.next_line().await.unwrap().expect("the receiver announces its address");
    let url = announced.strip_prefix("receiving on ").expect("receiving on URL").to_owned();
    fixture.webhook(serde_json::json!({"event": "demo", "url": format!("{url}/hook")})).await;
    kernel.device(&fixture.device_token).await.publish("demo", "hello").await.unwrap();

    let output = tokio::time::timeout(Duration::from_secs(20), receiver.wait_with_output()).await.unwrap().unwrap();
    assert!(output.status.success());
    let line: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(text(&line, "method"), "POST");
    assert_eq!(text(&line, "path"), "/hook");
    assert!(text(&line, "body").starts_with("event=demo&data=hello&published_at="), "{line}");
    assert_eq!(line["headers"]["content-type"], "application/x-www-form-urlencoded");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_forwarding_webhook_posts_raw_data_with_static_headers_as_mainflux_does() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let (_, other_token) = fixture.another_device().await;
    let url = format!("{}/in", receiver.base_url);
    let args = ["webhook", "create", "--device", &fixture.device_id, "--name", "forward", "--url", &url];
    let header_args = ["--header", "Content-Type=application/json", "--header", "X-Key=abc=1"];
    let webhook = json(&kernel, &[&args[..], &header_args[..]].concat()).await;
    assert_eq!(text(&webhook, "group_id"), fixture.group_id, "the group is the device's");
    assert_eq!(text(&webhook, "event"), "");
    assert_eq!(text(&webhook, "name"), "forward");

    kernel.device(&other_token).await.publish("anything", "not forwarded").await.unwrap();
    kernel.device(&fixture.device_token).await.publish("any/name", r#"{"t": 1}"#).await.unwrap();
    let request = receiver.first_request().await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/in");
    assert_eq!(request.text(), r#"{"t": 1}"#, "the raw event data, unchanged");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-key"), Some("abc=1"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.requests().len(), 1, "only the named device's events are forwarded");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_webhook_shows_its_secret_once_and_rotate_secret_prints_a_new_one() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("signed.json");
    std::fs::write(&file, r#"{"event": "temp", "url": "https://example.com/t", "x-signing": true}"#).unwrap();
    let created =
        json(&kernel, &["webhook", "create", "--group", &fixture.group_id, "--file", file.to_str().unwrap()]).await;
    let secret = text(&created, "signing_secret");
    assert!(secret.starts_with("whsec_"), "{created}");
    let id = text(&created, "id");

    // Never shown again: not by get, list or export (which keeps only the flag).
    let fetched = json(&kernel, &["webhook", "get", &id]).await;
    assert!(fetched.get("signing_secret").is_none(), "{fetched}");
    assert_eq!(fetched["x-signing"], true);
    let listed = json(&kernel, &["webhook", "list", "--group", &fixture.group_id]).await;
    assert!(!listed.to_string().contains(&secret));
    let exported = json(&kernel, &["webhook", "export", &id]).await;
    assert_eq!(exported, serde_json::json!({"event": "temp", "url": "https://example.com/t", "x-signing": true}));

    let rotated = json(&kernel, &["webhook", "rotate-secret", &id, "--grace", "60"]).await;
    let new_secret = text(&rotated, "signing_secret");
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    let output = hookwire(&kernel, &["--output", "table", "webhook", "rotate-secret", &id]).await;
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("SIGNING_SECRET") && table.contains("whsec_"), "the table shows the secret: {table}");

    let output = hookwire(&kernel, &["webhook", "rotate-secret", &id, "--grace", "604801"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("grace_seconds"));
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_disable_and_enable_print_the_webhook_with_its_run_time_state() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let id = fixture.webhook(serde_json::json!({"event": "temp", "url": "https://example.com/t"})).await;

    let fetched = json(&kernel, &["webhook", "get", &id]).await;
    assert_eq!((&fetched["auto_disabled"], &fetched["disabled_reason"]), (&Value::Bool(false), &Value::Null));
    assert_eq!(fetched["consecutive_failures"], 0);

    let disabled = json(&kernel, &["webhook", "disable", &id]).await;
    assert_eq!(text(&disabled, "id"), id);
    assert_eq!(disabled["auto_disabled"], true);
    assert_eq!(text(&disabled, "disabled_reason"), "disabled by an admin");
    assert_eq!(text(&disabled, "event"), "temp", "the definition's fields follow");
    assert_eq!(json(&kernel, &["webhook", "get", &id]).await["auto_disabled"], true);

    let enabled = json(&kernel, &["webhook", "enable", &id]).await;
    assert_eq!((&enabled["auto_disabled"], &enabled["disabled_reason"]), (&Value::Bool(false), &Value::Null));
    assert_eq!(enabled["consecutive_failures"], 0);

    let output = hookwire(&kernel, &["webhook", "enable", "whk_0123456789abcdef0123456789abcdef"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not found"));
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_history_and_replay_print_what_happened_to_a_webhooks_deliveries() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    receiver.respond(503, "busy");
    let fixture = kernel.fixture().await;
    let webhook_id = fixture.webhook(serde_json::json!({"event": "job", "url": receiver.base_url})).await;
    kernel.device(&fixture.device_token).await.publish("job", "1").await.unwrap();
    receiver.first_request().await;

    // The attempt record is written in the journal's next batch: wait for it.
    let logs = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let logs = json(&kernel, &["webhook", "logs", &webhook_id]).await;
            if !logs.as_array().unwrap().is_empty() {
                return logs;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the attempt is logged within 10 s");
    assert_eq!(text(&logs[0], "error_class"), "http_5xx");
    assert_eq!(logs[0]["response_status"], 503);
    assert_eq!(text(&logs[0], "response_body"), "busy");
    assert_eq!(text(&logs[0], "delivery_status"), "failed");

    let history = json(&kernel, &["webhook", "history", &webhook_id]).await;
    let days = history.as_array().unwrap();
    assert_eq!(days.len(), 31);
    assert_eq!(days[30]["failed"], 1);
    let table = hookwire(&kernel, &["webhook", "history", &webhook_id, "--output", "table", "--days", "2"]).await;
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.lines().next().unwrap().contains("CHART") || table.to_lowercase().contains("chart"), "{table}");
    assert!(table.contains('x'), "a failed delivery shows in the chart: {table}");

    receiver.respond(200, "");
    let replayed = json(&kernel, &["webhook", "replay", &webhook_id, "--since", "1h"]).await;
    assert_eq!(replayed["replayed"], 1);
    assert_eq!(receiver.wait_for(2, Duration::from_secs(10)).await.len(), 2);
    let resent = json(&kernel, &["webhook", "resend", &logs[0]["id"].to_string()]).await;
    assert_eq!(resent["replayed"], 1);
    assert_eq!(receiver.wait_for(3, Duration::from_secs(10)).await.len(), 3);
    kernel.stop().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_create_list_and_revoke_print_the_documented_json_and_scope_the_tokens() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let group = fixture.group_id.as_str();

    let editor = json(&kernel, &["token", "create", "--group", group, "--role", "editor", "--name", "deploy"]).await;
    assert!(text(&editor, "id").starts_with("tok_"));
    assert!(text(&editor, "token").starts_with("hwa_"));
    assert_eq!(text(&editor, "group_id"), group);
    assert_eq!(text(&editor, "role"), "editor");
    assert_eq!(text(&editor, "name"), "deploy");
    assert!(editor["created_at"].is_string());
    let editor_token = text(&editor, "token");

    // An editor manages its group's tokens; its viewer may read but not change.
    let output = hookwire_as(&kernel, &editor_token, &["token", "create", "--group", group, "--role", "viewer"]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let viewer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(text(&viewer, "role"), "viewer");
    let viewer_token = text(&viewer, "token");
    let output = hookwire_as(&kernel, &viewer_token, &["device", "list", "--group", group]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = hookwire_as(&kernel, &viewer_token, &["device", "create", "--group", group]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: ") && stderr.contains("PERMISSION_DENIED"), "{stderr}");

    // The list never shows a secret; the table has a row per token.
    let listed = json(&kernel, &["token", "list", "--group", group]).await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(text(&listed[0], "id"), text(&editor, "id"));
    assert!(listed.iter().all(|token| token.get("token").is_none()), "{listed:?}");
    assert!(listed[1]["last_used_at"].is_string(), "the viewer was used: {listed:?}");
    let output = hookwire(&kernel, &["token", "list", "--group", group, "--output", "table"]).await;
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.starts_with("ID ") && table.lines().count() == 3, "{table}");
    assert!(!table.contains(&editor_token) && !table.contains(&viewer_token));

    // A token of one group cannot see another group's tokens.
    let other = json(&kernel, &["group", "create", "other"]).await;
    let output = hookwire_as(&kernel, &editor_token, &["token", "list", "--group", &text(&other, "id")]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("PERMISSION_DENIED"));

    let revoked = json(&kernel, &["token", "revoke", &text(&viewer, "id")]).await;
    assert_eq!(revoked, serde_json::json!({"revoked": text(&viewer, "id")}));
    let output = hookwire_as(&kernel, &viewer_token, &["device", "list", "--group", group]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("UNAUTHENTICATED"));

    // Usage errors: a role that does not exist, and an id that is not a token id.
    let output = hookwire(&kernel, &["token", "create", "--group", group, "--role", "owner"]).await;
    assert_eq!(output.status.code(), Some(2));
    let output = hookwire(&kernel, &["token", "revoke", group]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("id: ") && stderr.contains("INVALID_ARGUMENT"), "{stderr}");
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_takes_an_array_all_or_nothing_and_export_group_gives_it_back() {
    let kernel = TestKernel::spawn().await;
    let group_id = text(&json(&kernel, &["group", "create", "fleet"]).await, "id");
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("hooks.json");
    let file = file.to_str().unwrap();

    // A bad definition at index 1: nothing is created, and the error names it.
    let broken = r#"[{"event": "a", "url": "https://example.com/a"}, {"event": "b"}]"#;
    std::fs::write(file, broken).unwrap();
    let output = hookwire(&kernel, &["webhook", "import", "--group", &group_id, file]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("webhooks[1].url") && stderr.contains("INVALID_ARGUMENT"), "{stderr}");
    assert_eq!(json(&kernel, &["webhook", "list", "--group", &group_id]).await, serde_json::json!([]));

    let hooks = r#"[
        {"event": "a", "url": "https://example.com/a", "name": "alpha", "x-metadata": {"team": "ops"}},
        {"event": "b", "url": "https://example.com/b", "name": "beta"}
    ]"#;
    std::fs::write(file, hooks).unwrap();
    let created = json(&kernel, &["webhook", "import", "--group", &group_id, file]).await;
    let created = created.as_array().unwrap();
    assert_eq!(created.iter().map(|webhook| text(webhook, "name")).collect::<Vec<_>>(), ["alpha", "beta"]);
    assert!(created.iter().all(|webhook| text(webhook, "id").starts_with("whk_")));

    // A single object imports too.
    std::fs::write(file, r#"{"event": "c", "url": "https://example.com/c", "name": "gamma"}"#).unwrap();
    assert_eq!(json(&kernel, &["webhook", "import", "--group", &group_id, file]).await.as_array().unwrap().len(), 1);

    // Filters and paging: the page is printed, the note goes to stderr.
    let ops = json(&kernel, &["webhook", "list", "--group", &group_id, "--meta", "team=ops"]).await;
    assert_eq!(ops.as_array().unwrap().len(), 1);
    assert_eq!(text(&ops[0], "name"), "alpha");
    let output =
        hookwire(&kernel, &["webhook", "list", "--group", &group_id, "--limit", "2", "--order", "name", "--desc"])
            .await;
    assert!(output.status.success());
    let page: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        page.as_array().unwrap().iter().map(|webhook| text(webhook, "name")).collect::<Vec<_>>(),
        ["gamma", "beta"]
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("showing 1-2 of 3; next page: --offset 2"));
    let output = hookwire(&kernel, &["webhook", "list", "--group", &group_id, "--limit", "500"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("limit: must be at most 200"));

    // The group's export is an array that imports into another group as it is.
    let exported = json(&kernel, &["webhook", "export", "--group", &group_id]).await;
    assert_eq!(exported.as_array().unwrap().len(), 3);
    assert_eq!(exported[0], serde_json::from_str::<Value>(hooks).unwrap()[0]);
    let other_group = text(&json(&kernel, &["group", "create", "copy"]).await, "id");
    std::fs::write(file, exported.to_string()).unwrap();
    json(&kernel, &["webhook", "import", "--group", &other_group, file]).await;
    assert_eq!(json(&kernel, &["webhook", "export", "--group", &other_group]).await, exported);

    // Deleting several: one unknown id deletes none.
    let ids: Vec<String> = created.iter().map(|webhook| text(webhook, "id")).collect();
    let output = hookwire(&kernel, &["webhook", "delete", &ids[0], "whk_00000000000000000000000000000000"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("ids[1]: webhook whk_00000000000000000000000000000000 not found")
    );
    assert_eq!(json(&kernel, &["webhook", "list", "--group", &group_id]).await.as_array().unwrap().len(), 3);
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_test_prints_the_answer_and_fails_when_the_destination_does() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let group_id = text(&json(&kernel, &["group", "create", "fleet"]).await, "id");
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("hook.json");
    let definition = serde_json::json!({"event": "temp", "url": format!("{}/t", receiver.base_url)});
    std::fs::write(&file, definition.to_string()).unwrap();
    let webhook = json(&kernel, &["webhook", "create", "--group", &group_id, "--file", file.to_str().unwrap()]).await;
    let webhook_id = text(&webhook, "id");

    receiver.respond(200, "ok!");
    let tested = json(&kernel, &["webhook", "test", &webhook_id]).await;
    assert_eq!(tested["succeeded"], true);
    assert_eq!(tested["status"], 200);
    assert_eq!(tested["error_class"], Value::Null);
    assert_eq!(tested["response_body"], "ok!");
    assert!(text(&tested, "event_id").starts_with("evt_"));
    let form = receiver.first_request().await.form();
    assert!(form.contains(&("data".to_owned(), "test-event".to_owned())));
    assert!(form.contains(&("coreid".to_owned(), "api".to_owned())));

    receiver.respond(500, "down");
    let output = hookwire(&kernel, &["webhook", "test", &webhook_id, "--data", "21.5"]).await;
    assert_eq!(output.status.code(), Some(1), "a failed test exits non-zero");
    let printed: Value = serde_json::from_slice(&output.stdout).expect("the outcome is still printed");
    assert_eq!((printed["succeeded"].clone(), printed["status"].clone()), (Value::Bool(false), Value::from(500)));
    assert_eq!(printed["error_class"], "http_5xx");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("the test delivery to {webhook_id} failed: http_5xx")), "{stderr}");
    let requests = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert!(requests[1].form().contains(&("data".to_owned(), "21.5".to_owned())));

    // Devices: rename, update and a new token in one go.
    let device = json(&kernel, &["device", "create", "--group", &group_id, "--name", "old"]).await;
    let device_id = text(&device, "id");
    assert_eq!(text(&json(&kernel, &["device", "rename", &device_id, "new"]).await, "name"), "new");
    let updated = json(&kernel, &["device", "update", &device_id, "--firmware-version", "7"]).await;
    assert_eq!((text(&updated, "name"), text(&updated, "firmware_version")), ("new".to_owned(), "7".to_owned()));
    let rotated = json(&kernel, &["device", "rotate-token", &device_id]).await;
    assert!(text(&rotated, "token").starts_with("hwd_") && text(&rotated, "token") != text(&device, "token"));
    kernel.stop().await;
}

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

/// The `sh` code blocks of the README's Quickstart, in order.
fn quickstart_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme.find("## Quickstart").expect("a Quickstart section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    section.split("```sh\n").skip(1).map(|block| block.split("\n```").next().unwrap().to_owned()).collect()
}

/// The one block of the Quickstart that contains `words`.
fn block_with<'a>(blocks: &'a [String], words: &str) -> &'a str {
    let found: Vec<&String> = blocks.iter().filter(|block| block.contains(words)).collect();
    assert_eq!(found.len(), 1, "one Quickstart block with {words:?}: {blocks:#?}");
    found[0]
}

/// The README's Quickstart, run as written: the server block's root token and allowed range start the kernel
/// (in process), the receiver and the commands of terminal 3 run in `bash` with `hookwire` on the PATH, the
/// receiver's port 8080 made a free one. Every claim the walk-through prints is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quickstart_runs_as_written_and_prints_what_it_says() {
    use tokio::io::AsyncBufReadExt as _;
    let blocks = quickstart_blocks();
    let server = block_with(&blocks, "hookwired");
    let word_after = |text: &str, marker: &str| {
        let rest = &text[text.find(marker).unwrap_or_else(|| panic!("{marker} in {text}")) + marker.len()..];
        rest.split_whitespace().next().unwrap().to_owned()
    };
    let root_token = word_after(server, "HOOKWIRE_ROOT_TOKEN=");
    let allowed = word_after(server, "--allow-destination");
    let kernel = TestKernel::spawn_with(|settings| {
        settings.root_token = Some(root_token.clone());
        settings.allow_destination = vec![allowed.parse().unwrap()];
    })
    .await;

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let place = |block: &str| block.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let binaries = std::path::Path::new(env!("CARGO_BIN_EXE_hookwire")).parent().unwrap().to_owned();
    let path = format!("{}:{}", binaries.display(), std::env::var("PATH").unwrap_or_default());
    let directory = tempfile::tempdir().unwrap();
    let bash = |script: String| {
        let mut command = tokio::process::Command::new("bash");
        command
            .args(["-c", &format!("set -euo pipefail\n{script}")])
            .current_dir(directory.path())
            .env("PATH", &path)
            .env("HOOKWIRE_ENDPOINT", &kernel.endpoint)
            .env("HOOKWIRE_CONFIG", directory.path().join("no-config.toml"))
            .env_remove("HOOKWIRE_TOKEN")
            .env_remove("HOOKWIRE_OUTPUT")
            .kill_on_drop(true);
        command
    };

    let mut receiver = bash(place(block_with(&blocks, "hookwire receive")))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut receiver_stderr = tokio::io::BufReader::new(receiver.stderr.take().unwrap()).lines();
    let announced = receiver_stderr.next_line().await.unwrap().expect("the receiver announces its address");
    assert_eq!(announced, format!("receiving on http://127.0.0.1:{port}"));
    let mut received = tokio::io::BufReader::new(receiver.stdout.take().unwrap()).lines();

    let setup = place(block_with(&blocks, "group create"));
    let listen = place(block_with(&blocks, "--listen \"\""));
    let marker = "--- the setup is done ---";
    let output = bash(format!("{setup}\necho '{marker}'\n{listen}")).output().await.unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "the walk-through failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    let (_, walk) = stdout.split_once(marker).expect("the setup ran to its end");

    // Terminal 2 prints the request: POST /readings with the JSON body the README shows.
    let line = tokio::time::timeout(Duration::from_secs(10), received.next_line()).await.unwrap().unwrap().unwrap();
    let request: Value = serde_json::from_str(&line).unwrap();
    assert_eq!((text(&request, "method"), text(&request, "path")), ("POST".to_owned(), "/readings".to_owned()));
    let body: Value = serde_json::from_str(&text(&request, "body")).unwrap();
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["celsius", "event", "data", "published_at", "coreid"], "{body}");
    assert_eq!(
        (text(&body, "celsius"), text(&body, "event"), text(&body, "data")),
        ("21.5".into(), "temperature".into(), "21.5".into())
    );
    assert!(text(&body, "coreid").starts_with("dev_") && !text(&body, "published_at").is_empty(), "{body}");

    // The last command: the ack, then the event, hook-sent and the receiver's answer as hook-response.
    let lines: Vec<Value> =
        walk.lines().filter(|line| !line.is_empty()).map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), 4, "{walk}");
    assert!(text(&lines[0], "event_id").starts_with("evt_"), "{walk}");
    let device = text(&lines[1], "device_id");
    let names: Vec<String> = lines[1..].iter().map(|line| text(line, "name")).collect();
    assert_eq!(
        names,
        ["temperature".to_owned(), "hook-sent/temperature".to_owned(), format!("{device}/hook-response/temperature/0")]
    );
    assert_eq!(text(&lines[3], "data"), r#"{"stored": true}"#);
    receiver.kill().await.unwrap();
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_and_subscribe_with_count_say_that_they_timed_out_and_fail() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let args = [
        "publish",
        "--device-token",
        &fixture.device_token,
        "quiet",
        "--listen",
        "nothing/",
        "--count",
        "1",
        "--timeout",
        "1",
    ];
    let output = hookwire(&kernel, &args).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("event_id"), "the ack is printed first");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("timed out: 0 of the 1 events"), "{stderr}");

    let output =
        hookwire(&kernel, &["subscribe", "--group", &fixture.group_id, "nothing/", "--count", "2", "--timeout", "1"])
            .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("timed out: 0 of the 2 events"));
    // Without --count the time is the only limit: reaching it is the normal end.
    let output = hookwire(&kernel, &["subscribe", "--group", &fixture.group_id, "nothing/", "--timeout", "1"]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_errors_say_what_is_probably_wrong_and_usage_errors_exit_2() {
    let kernel = TestKernel::spawn().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let with_endpoint = |endpoint: String| {
        let mut command = command();
        command.args(["group", "list"]).env("HOOKWIRE_ENDPOINT", endpoint).env("HOOKWIRE_TOKEN", ROOT_TOKEN);
        command
    };
    let output = with_endpoint(format!("http://{closed}")).output().await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("hint: nothing listens at http://{closed}: is hookwired running")), "{stderr}");

    let output = with_endpoint(kernel.endpoint.replace("http://", "https://")).output().await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not answer TLS") && stderr.contains("http://, not https://"), "{stderr}");

    let output = hookwire(&kernel, &["group", "lsit"]).await;
    assert_eq!(output.status.code(), Some(2), "a usage error");
    kernel.stop().await;
}

/// A file as Particle's API lists webhooks imports as it is (the read-only fields named in the answer), and an
/// unknown field is reported at its line and column in the file, not in a copy of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_particle_listing_imports_and_unknown_fields_are_named_at_their_place_in_the_file() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let directory = tempfile::tempdir().unwrap();
    let listing = directory.path().join("particle.json");
    std::fs::write(
        &listing,
        r#"[
  {
    "id": "5a0e3b7ac5a3e1c8b84f2e10",
    "eventName": "temp",
    "url": "https://example.com/t",
    "created_at": "2017-11-16T22:05:14.521Z",
    "hookUrl": "https://api.particle.io/v1/webhooks/5a0e3b7ac5a3e1c8b84f2e10",
    "integration_type": "Webhook"
  },
  {"id": "5a0e3b7ac5a3e1c8b84f2e11", "event": "hum", "url": "https://example.com/h"}
]
"#,
    )
    .unwrap();
    let created = json(&kernel, &["webhook", "import", "--group", &fixture.group_id, listing.to_str().unwrap()]).await;
    let created = created.as_array().unwrap();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0]["ignored_fields"], serde_json::json!(["id", "created_at", "hookUrl", "integration_type"]));
    assert_eq!((text(&created[0], "event"), text(&created[1], "event")), ("temp".into(), "hum".into()));

    let typos = directory.path().join("typos.json");
    std::fs::write(
        &typos,
        "[\n  {\"event\": \"a\", \"url\": \"https://example.com/\"},\n  {\"event\": \"b\",\n   \"url\": \"https://example.com/\",\n   \"reponseTopic\": \"x\", \"colour\": 1}\n]\n",
    )
    .unwrap();
    let output = hookwire(&kernel, &["webhook", "import", "--group", &fixture.group_id, typos.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "webhooks[1].reponseTopic: unknown field (line 5, column 4), did you mean `responseTopic`?; colour: unknown \
             field (line 5, column 25)"
        ),
        "{stderr}"
    );
    kernel.stop().await;
}

/// The Mainflux webhooks service sends `Content-Type: application/json`; so does a forwarding webhook, unless
/// its headers say otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_forwarding_webhook_sends_json_by_default_as_mainflux_does() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let url = format!("{}/in", receiver.base_url);
    let webhook = json(&kernel, &["webhook", "create", "--device", &fixture.device_id, "--url", &url]).await;
    assert_eq!(webhook["headers"], serde_json::json!({"Content-Type": "application/json"}));
    kernel.device(&fixture.device_token).await.publish("reading", r#"{"t": 1}"#).await.unwrap();
    let request = receiver.first_request().await;
    assert_eq!(request.header("content-type"), Some("application/json"));

    let args =
        ["webhook", "create", "--device", &fixture.device_id, "--url", &url, "--header", "content-type=text/csv"];
    let webhook = json(&kernel, &args).await;
    assert_eq!(webhook["headers"], serde_json::json!({"content-type": "text/csv"}), "the caller's wins");
    kernel.stop().await;
}
