//! `hookwire token`: group tokens are created, listed and revoked, and scope what their holder may do.

use crate::{hookwire, hookwire_as, json, text};
use hookwire_tests::TestKernel;
use serde_json::Value;

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
