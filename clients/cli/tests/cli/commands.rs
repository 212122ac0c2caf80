//! Groups, devices and webhooks print the documented JSON; `publish --listen`, `subscribe`, `--field`, and
//! errors: on stderr with a non-zero exit, timeouts of `--count`, transport and usage errors.

use crate::{command, hookwire, json, text};
use hookwire_tests::{FakeReceiver, ROOT_TOKEN, Reply, TestKernel};
use serde_json::Value;
use std::time::Duration;

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
