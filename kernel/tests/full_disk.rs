//! A full disk, for real: `hookwired` runs under a file-size limit (`ulimit -S -f`, with SIGXFSZ ignored so that a
//! write past it fails instead of killing the process), devices publish until SQLite cannot write, and then the
//! limit is lifted on the running process with `prlimit`.

mod support;

use hookwire_client::{AdminClient, DeviceClient};
use std::time::Duration;
use support::{ROOT_TOKEN, start_kernel};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_publishes_with_unavailable_and_the_kernel_recovers_when_there_is_room_again() {
    let directory = tempfile::tempdir().unwrap();
    let database = directory.path().join("hookwire.db");
    // 600 KiB of file: room for the schema and a few hundred events, then every write fails with EFBIG.
    let (mut kernel, endpoint) = start_kernel(&database, "trap '' XFSZ; ulimit -S -f 600;").await;
    let admin = AdminClient::connect(&endpoint, ROOT_TOKEN).await.unwrap();
    let group = admin.create_group("full").await.unwrap();
    let token = admin.create_device(group.id.clone(), "writer").await.unwrap().token;
    let device = DeviceClient::connect(&endpoint, &token).await.unwrap();

    let data = "x".repeat(1000);
    let mut num_acked = 0;
    let error = loop {
        match device.publish("fill", data.clone()).await {
            Ok(_) => num_acked += 1,
            Err(error) => break error,
        }
        assert!(num_acked < 5000, "the file-size limit never stopped a write");
    };
    assert!(num_acked > 0, "some publishes fitted before the disk was full");
    assert_eq!(
        error.code(),
        Some(tonic::Code::Unavailable),
        "a full disk is an outage to retry, not bad data: {error}"
    );
    assert!(error.to_string().contains("retry"), "{error}");
    // As large as the write that failed: a smaller one may still fit in the last pages below the limit.
    let again = device.publish("fill", data.clone()).await.expect_err("still full: no ack");
    assert_eq!(again.code(), Some(tonic::Code::Unavailable));
    admin.get_group(group.id.clone()).await.expect("reads still work: the kernel keeps running");

    // Make room: lift the limit on the running process.
    let pid = kernel.id().expect("kernel pid").to_string();
    let lifted =
        std::process::Command::new("prlimit").args(["--pid", &pid, "--fsize=unlimited"]).status().expect("run prlimit");
    assert!(lifted.success(), "prlimit could not lift the limit");
    let ack = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(ack) = device.publish("after", "room again").await {
                return ack;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("publishes succeed again within 30 s of the disk having room");
    assert!(ack.event_id.starts_with("evt_"));
    kernel.start_kill().unwrap();
}
