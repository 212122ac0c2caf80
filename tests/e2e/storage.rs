//! Storage failures: when the database goes away, publishes fail with a clear error and are never acked, the
//! kernel keeps running, and it recovers by itself when the database comes back.

use hookwire_tests::TestKernel;
use sqlx::Executor as _;
use std::time::Duration;

/// Opens an administrative connection to the PostgreSQL server the kernel's database is on.
async fn server_admin(database_url: &str) -> (sqlx::AnyPool, String) {
    sqlx::any::install_default_drivers();
    let (server, name) = database_url.rsplit_once('/').expect("a database URL");
    let pool = sqlx::AnyPool::connect(&format!("{server}/postgres")).await.expect("connect to the server");
    (pool, name.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_fails_publishes_with_unavailable_and_the_kernel_recovers_when_it_returns() {
    let kernel = TestKernel::spawn().await;
    if !kernel.settings.database.starts_with("postgres") {
        eprintln!("skipped: this test takes a PostgreSQL database away; run it with HOOKWIRE_TEST_POSTGRES");
        return;
    }
    let fixture = kernel.fixture().await;
    let device = kernel.device(&fixture.device_token).await;
    device.publish("before", "1").await.expect("a publish while the database is up");

    // Take the database away: no new connections, and the kernel's open ones are terminated.
    let (server, name) = server_admin(&kernel.settings.database).await;
    server.execute(sqlx::AssertSqlSafe(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))).await.unwrap();
    let terminate = format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'");
    server.execute(sqlx::AssertSqlSafe(terminate.clone())).await.unwrap();

    let error = device.publish("during", "2").await.expect_err("no ack while the database is away");
    assert_eq!(error.code(), Some(tonic::Code::Unavailable), "{error}");
    assert!(error.to_string().contains("retry"), "the message says what to do: {error}");
    let mut session = device.open_session().await.expect("sessions still open: the kernel keeps running");
    let error = session.publish("during", "3").await.expect_err("no ack on a session either");
    assert_eq!(error.code(), Some(tonic::Code::Unavailable), "{error}");
    let error = fixture.admin.list_devices(fixture.group_id.clone()).await.expect_err("admin calls fail too");
    assert_eq!(error.code(), Some(tonic::Code::Unavailable), "{error}");

    // Bring it back: the kernel recovers without a restart.
    server.execute(sqlx::AssertSqlSafe(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))).await.unwrap();
    let recovered = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(ack) = session.publish("after", "4").await {
                return ack;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("publishes succeed again within 30 s of the database returning");
    assert!(recovered.event_id.starts_with("evt_"));
    fixture.admin.list_devices(fixture.group_id.clone()).await.expect("admin calls work again");
    server.close().await;
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernels_sharing_a_database_see_tokens_revoked_through_another_within_their_cache_time() {
    let first = TestKernel::spawn().await;
    if !first.settings.database.starts_with("postgres") {
        eprintln!("skipped: several kernels share a PostgreSQL database only; run it with HOOKWIRE_TEST_POSTGRES");
        return;
    }
    let database = first.settings.database.clone();
    let fresh = TestKernel::spawn_with(|settings| {
        settings.database = database.clone();
        settings.token_cache_secs = 0;
    })
    .await;
    let cached = TestKernel::spawn_with(|settings| {
        settings.database = database.clone();
        settings.token_cache_secs = 3600;
    })
    .await;
    let fixture = first.fixture().await;
    let root = first.admin().await;
    let viewer = root.create_token(fixture.group_id.clone(), hookwire_client::proto::Role::Viewer, "viewer").await;
    let viewer = viewer.unwrap();
    let token_id = viewer.admin_token.unwrap().id;
    for kernel in [&fresh, &cached] {
        kernel.device(&fixture.device_token).await.publish("hello", "1").await.expect("the device is known");
        let admin = hookwire_client::AdminClient::connect(&kernel.endpoint, &viewer.token).await.unwrap();
        admin.list_devices(fixture.group_id.clone()).await.expect("the viewer token is known");
    }

    // Through the first kernel: the token is revoked and the device deleted.
    root.revoke_token(token_id).await.unwrap();
    root.delete_device(fixture.device_id.clone()).await.unwrap();

    let admin = hookwire_client::AdminClient::connect(&fresh.endpoint, &viewer.token).await.unwrap();
    let refused = admin.list_devices(fixture.group_id.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Some(tonic::Code::Unauthenticated), "{refused}");
    let device = fresh.device(&fixture.device_token).await;
    let refused = device.publish("hello", "2").await.unwrap_err();
    assert_eq!(refused.code(), Some(tonic::Code::Unauthenticated), "{refused}");
    // A kernel that cached them an hour keeps them until then: the time to live is the bound.
    let admin = hookwire_client::AdminClient::connect(&cached.endpoint, &viewer.token).await.unwrap();
    admin.list_devices(fixture.group_id.clone()).await.expect("still cached on the third kernel");
    for kernel in [cached, fresh, first] {
        kernel.stop().await;
    }
}

/// Publishes `name` through `device` until the ack counts `expected` deliveries (10 s at most).
async fn publish_until(device: &hookwire_client::DeviceClient, name: &str, expected: u32) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while device.publish(name, "x").await.unwrap().num_deliveries != expected {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name} never matched {expected} webhooks within 10 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_created_and_deleted_through_one_kernel_fire_and_stop_on_another_sharing_its_database() {
    let first = TestKernel::spawn().await;
    if !first.settings.database.starts_with("postgres") {
        eprintln!("skipped: several kernels share a PostgreSQL database only; run it with HOOKWIRE_TEST_POSTGRES");
        return;
    }
    let database = first.settings.database.clone();
    let second = TestKernel::spawn_with(|settings| {
        settings.database = database;
        settings.index_refresh_ms = 50;
    })
    .await;
    let receiver = hookwire_tests::FakeReceiver::start().await;
    let fixture = first.fixture().await;
    let device = second.device(&fixture.device_token).await;
    assert_eq!(device.publish("tick", "x").await.unwrap().num_deliveries, 0);

    let webhook = fixture.webhook(serde_json::json!({"event": "tick", "url": receiver.base_url})).await;
    publish_until(&device, "tick", 1).await;
    assert_eq!(receiver.wait_for(1, Duration::from_secs(10)).await.len(), 1, "delivered by the second kernel");

    first.admin().await.delete_webhook(webhook).await.unwrap();
    publish_until(&device, "tick", 0).await;
    second.stop().await;
    first.stop().await;
}
