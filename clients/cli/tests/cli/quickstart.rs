//! The README's Quickstart, run literally.

use crate::text;
use hookwire_tests::TestKernel;
use serde_json::Value;
use std::time::Duration;

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
