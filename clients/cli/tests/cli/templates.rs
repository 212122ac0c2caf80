//! `hookwire template list|show` and `hookwire webhook create --template NAME --set key=value`, run as a process
//! against a real kernel.

use crate::hookwire;
use hookwire_tests::TestKernel;
use serde_json::Value;

#[tokio::test]
async fn templates_are_listed_and_create_ordinary_webhooks() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;

    let output = hookwire(&kernel, &["template", "list"]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for name in ["thingspeak", "influxdb", "slack", "discord", "google-sheets", "ifttt", "azure-event-grid", "json"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }

    let args = [
        "webhook",
        "create",
        "--group",
        &fixture.group_id,
        "--template",
        "thingspeak",
        "--set",
        "event=temp",
        "--set",
        "api_key=KEY123",
    ];
    let output = hookwire(&kernel, &args).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let webhook: Value = serde_json::from_slice(&output.stdout).unwrap();
    let stored = fixture.admin.get_webhook(webhook["id"].as_str().unwrap()).await.unwrap();
    let definition: Value = serde_json::from_str(&stored.definition_json).unwrap();
    assert_eq!(definition["url"], "https://api.thingspeak.com/update");
    assert_eq!(definition["form"]["api_key"], "KEY123");
    assert_eq!(definition["event"], "temp");

    let missing = ["webhook", "create", "--group", &fixture.group_id, "--template", "slack", "--set", "event=t"];
    let output = hookwire(&kernel, &missing).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("webhook_url: required"));
    let unknown = ["webhook", "create", "--group", &fixture.group_id, "--template", "nope"];
    let output = hookwire(&kernel, &unknown).await;
    assert!(String::from_utf8_lossy(&output.stderr).contains("no template `nope`"));
}
