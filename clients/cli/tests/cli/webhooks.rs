//! `hookwire webhook`: `receive`, forwarding webhooks (Mainflux's shape), signing secrets, disable and enable,
//! logs, history and replay, import and export, `webhook test`, and importing Particle's listings.

use crate::{hookwire, json, text};
use hookwire_tests::{FakeReceiver, TestKernel};
use serde_json::Value;
use std::time::Duration;

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
