//! Crash safety, end to end: `hookwired` runs as a process, devices publish under load, the process is killed
//! with SIGKILL at an arbitrary moment, and after a restart on the same database every event that was acked
//! reaches the receiver at least once.

mod receiver;
mod support;

use hookwire_client::{AdminClient, DeviceClient};
use receiver::Receiver;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{ROOT_TOKEN, start_kernel};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_event_is_delivered_after_a_sigkill_under_load() {
    let directory = tempfile::tempdir().unwrap();
    let database = directory.path().join("hookwire.db");
    // A little latency keeps deliveries in flight when the kill comes.
    let receiver = Receiver::start(Duration::from_millis(5)).await;

    let (mut kernel, endpoint) = start_kernel(&database, "").await;
    let admin = AdminClient::connect(&endpoint, ROOT_TOKEN).await.unwrap();
    let group = admin.create_group("crash").await.unwrap();
    let definition = serde_json::json!({"event": "load", "url": receiver.base_url, "body": "{{{PARTICLE_EVENT_ID}}}"});
    admin.create_webhook(group.id.clone(), definition.to_string()).await.unwrap();

    // Four devices publish as fast as acks come back, each with many publishes in flight on its session.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut publishers = Vec::new();
    for index in 0..4 {
        let token = admin.create_device(group.id.clone(), format!("device {index}")).await.unwrap().token;
        let device = DeviceClient::connect(&endpoint, &token).await.unwrap();
        let acked = acked.clone();
        publishers.push(tokio::spawn(async move {
            let Ok(mut session) = device.open_session().await else { return };
            loop {
                for _ in 0..32 {
                    if session.send_publish("load", "x").await.is_err() {
                        return;
                    }
                }
                for _ in 0..32 {
                    match session.next_message().await {
                        Ok(Some(message)) => {
                            if let Some(hookwire_client::proto::kernel_message::Kind::Ack(ack)) = message.kind {
                                acked.lock().unwrap().push(ack.event_id);
                            }
                        }
                        _ => return,
                    }
                }
            }
        }));
    }
    // Kill once a good number of events were acked and deliveries are flowing.
    tokio::time::timeout(Duration::from_secs(60), async {
        while acked.lock().unwrap().len() < 2000 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("2000 acks within 60 s");
    kernel.start_kill().expect("SIGKILL");
    kernel.wait().await.unwrap();
    for publisher in publishers {
        let _ = publisher.await;
    }
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    let received_before = receiver.bodies().len();

    let (mut kernel, _endpoint) = start_kernel(&database, "").await;
    let missing_ids = |receiver: &Receiver| -> Vec<String> {
        let received: HashSet<String> = receiver.bodies().into_iter().collect();
        acked.iter().filter(|id| !received.contains(*id)).cloned().collect()
    };
    let _ = tokio::time::timeout(Duration::from_secs(120), async {
        while !missing_ids(&receiver).is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let missing = missing_ids(&receiver);
    eprintln!(
        "acked {} events; the receiver had {} requests at the kill and {} after the restart",
        acked.len(),
        received_before,
        receiver.bodies().len()
    );
    assert!(
        missing.is_empty(),
        "{} of {} acked events never arrived after the restart (received {} before the kill); first: {:?}",
        missing.len(),
        acked.len(),
        received_before,
        missing.first()
    );
    kernel.start_kill().unwrap();
}
