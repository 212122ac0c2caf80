//! Hostile devices (issue 13): a device that never reads its stream, one that opens session after session, one
//! that forges topics or sends bytes that are not UTF-8, and what a device learns when storage fails. Each attack
//! runs against a real kernel through real clients (a raw HTTP/2 client where the attack needs one), and a
//! healthy group's deliveries must keep flowing meanwhile.

use crate::support::sync;
use bytes::Bytes;
use hookwire_client::proto::{DeviceMessage, Ping, device_message};
use hookwire_tests::{FakeReceiver, Fixture, TestKernel};
use serde_json::json;
use std::time::Duration;
use tokio::sync::oneshot;

/// The test process's resident memory, bytes (the kernel runs inside it).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("a VmRSS line");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB");
    kib * 1024
}

/// A gRPC frame: the uncompressed flag, the length, the message.
fn grpc_frame(message: &impl prost::Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut frame = Vec::with_capacity(5 + body.len());
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(body.len()).expect("small message").to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// A `Connect` call made with the `h2` crate directly: the client's receive window is 0, so the kernel can send
/// it nothing until [`RawSession::open_window`]; what it sends respects the kernel's flow control.
struct RawSession {
    _client: h2::client::SendRequest<Bytes>,
    send: h2::SendStream<Bytes>,
    response: h2::client::ResponseFuture,
    open_window: Option<oneshot::Sender<()>>,
}

impl RawSession {
    async fn connect(endpoint: &str, token: &str) -> RawSession {
        RawSession::connect_with_window(endpoint, token, "Connect", 0).await
    }

    /// A call of `method` with the default receive window.
    async fn connect_to(endpoint: &str, token: &str, method: &str) -> RawSession {
        RawSession::connect_with_window(endpoint, token, method, 65_535).await
    }

    async fn connect_with_window(endpoint: &str, token: &str, method: &str, window: u32) -> RawSession {
        let address = endpoint.trim_start_matches("http://");
        let tcp = tokio::net::TcpStream::connect(address).await.expect("connect to the kernel");
        let (client, mut connection) =
            h2::client::Builder::new().initial_window_size(window).handshake::<_, Bytes>(tcp).await.expect("handshake");
        let (open_window, opened) = oneshot::channel::<()>();
        tokio::spawn(async move {
            tokio::select! {
                _ = &mut connection => return,
                Ok(()) = opened => {}
            }
            let _ = connection.set_initial_window_size(1 << 20);
            let _ = connection.await;
        });
        let mut client = client.ready().await.expect("h2 client ready");
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("{endpoint}/hookwire.v1.DeviceService/{method}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .expect("request");
        let (response, send) = client.send_request(request, false).expect("send the request");
        RawSession { _client: client, send, response, open_window: Some(open_window) }
    }

    /// Lets the kernel send again (a receive window of 1 MiB) and reads the response to its end: the messages'
    /// bytes, and the `grpc-status` and `grpc-message` it ended with.
    async fn read_to_end(mut self) -> (usize, String, String) {
        if let Some(open_window) = self.open_window.take() {
            let _ = open_window.send(());
        }
        let response = self.response.await.expect("response headers");
        let status = |headers: &http::HeaderMap| {
            let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("").to_owned();
            (text("grpc-status"), text("grpc-message"))
        };
        if response.headers().contains_key("grpc-status") {
            let (code, message) = status(response.headers());
            return (0, code, message);
        }
        let mut body = response.into_body();
        let mut num_bytes = 0;
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("response data");
            num_bytes += chunk.len();
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let trailers = body.trailers().await.expect("trailers").unwrap_or_default();
        let (code, message) = status(&trailers);
        (num_bytes, code, message)
    }

    /// Sends `chunk` once the kernel's flow control lets it; false once the stream is gone.
    async fn send(&mut self, chunk: Bytes) -> bool {
        self.send.reserve_capacity(chunk.len());
        while self.send.capacity() < chunk.len() {
            match futures::future::poll_fn(|cx| self.send.poll_capacity(cx)).await {
                Some(Ok(_)) => {}
                _ => return false,
            }
        }
        self.send.send_data(chunk, false).is_ok()
    }

    /// Sends chunks for as long as the kernel reads them: `duration` at most, and it stops once the kernel has
    /// taken nothing for a second (it stopped reading). Returns how many chunks went out.
    async fn send_for(&mut self, chunk: &Bytes, duration: Duration, max_chunks: usize) -> usize {
        let deadline = tokio::time::Instant::now() + duration;
        let mut num_sent = 0;
        while num_sent < max_chunks && tokio::time::Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(1), self.send(chunk.clone())).await {
                Ok(true) => num_sent += 1,
                Ok(false) | Err(_) => break,
            }
        }
        num_sent
    }
}

/// A group whose device publishes to a webhook on a receiver: its deliveries must keep flowing during attacks.
struct HealthyGroup {
    receiver: FakeReceiver,
    device: hookwire_client::DeviceClient,
    num_published: usize,
}

impl HealthyGroup {
    async fn start(kernel: &TestKernel) -> HealthyGroup {
        let receiver = FakeReceiver::start().await;
        let fixture = kernel.fixture().await;
        fixture.webhook(json!({"event": "healthy", "url": receiver.base_url})).await;
        let device = kernel.device(&fixture.device_token).await;
        HealthyGroup { receiver, device, num_published: 0 }
    }

    /// Publishes one event and waits until the receiver has it.
    async fn delivers(&mut self) {
        let ack = self.device.publish("healthy", "1").await.expect("the healthy device publishes");
        assert_eq!(ack.num_deliveries, 1);
        self.num_published += 1;
        let received = self.receiver.wait_for(self.num_published, Duration::from_secs(10)).await;
        assert_eq!(received.len(), self.num_published, "the healthy group's delivery arrived within 10 s");
    }
}

/// Runs [`never_reading_device_attack`] in a process of its own: resident memory is a process's, and the other
/// tests of the suite, running beside it, would count in it.
#[test]
fn a_device_that_never_reads_its_stream_does_not_grow_the_kernels_memory_and_its_session_ends() {
    let status = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args(["hostile_device::never_reading_device_attack", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .status()
        .expect("run the attack in a process of its own");
    assert!(status.success(), "the attack test failed in its own process (its output is above)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in a process of its own by a_device_that_never_reads_its_stream_does_not_grow_the_kernels_memory_and_its_session_ends"]
async fn never_reading_device_attack() {
    let kernel = TestKernel::spawn_with(|settings| settings.device_stall_timeout_ms = 1000).await;
    let mut healthy = HealthyGroup::start(&kernel).await;
    healthy.delivers().await;
    let attacker: Fixture = kernel.fixture().await;
    let mut chunk = Vec::new();
    for nonce in 0..1000 {
        chunk.extend(grpc_frame(&DeviceMessage { kind: Some(device_message::Kind::Ping(Ping { nonce })) }));
    }
    let chunk = Bytes::from(chunk);
    let before = rss_bytes();

    let mut session = RawSession::connect(&kernel.endpoint, &attacker.device_token).await;
    let attack = tokio::spawn(async move {
        let num_chunks = session.send_for(&chunk, Duration::from_secs(8), 20_000).await;
        (session, num_chunks)
    });
    for _ in 0..3 {
        healthy.delivers().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (session, num_chunks) = attack.await.expect("the attack task");
    let grown = rss_bytes().saturating_sub(before);
    eprintln!("{num_chunks} chunks of 1000 pings sent; RSS grew {} MiB", grown >> 20);
    assert!(grown < 200 << 20, "the kernel's memory grew {} MiB for a device that never reads", grown >> 20);
    healthy.delivers().await;

    // The kernel stopped reading once the device's answers filled its queue, and ended the session when none
    // was read within the stall timeout: the device learns why as soon as it reads.
    let (num_bytes, code, message) =
        tokio::time::timeout(Duration::from_secs(20), session.read_to_end()).await.expect("the session ended");
    assert_eq!(code, "8", "RESOURCE_EXHAUSTED: {message}");
    assert!(message.contains("device_stall_timeout_ms"), "{message}");
    assert!(num_bytes <= 256 * 32, "at most a queue of pongs was kept for the device: {num_bytes} bytes");
    healthy.delivers().await;
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_gets_at_most_max_sessions_per_device_sessions_and_a_closed_one_frees_its_place() {
    let kernel = TestKernel::spawn().await;
    let mut healthy = HealthyGroup::start(&kernel).await;
    let attacker = kernel.fixture().await;
    let device = kernel.device(&attacker.device_token).await;
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let mut session = device.open_session().await.expect("sessions up to the limit open");
        sync(&mut session).await;
        sessions.push(session);
    }
    for _ in 0..50 {
        let refused = device.open_session().await.expect_err("one session more than the limit is refused");
        assert_eq!(refused.code(), Some(tonic::Code::ResourceExhausted), "{refused}");
        assert!(refused.to_string().contains("max_sessions_per_device"), "names the setting: {refused}");
    }
    healthy.delivers().await;
    let other = kernel.device(&attacker.another_device().await.1).await;
    other.open_session().await.expect("another device of the group is not limited by this one's sessions");

    drop(sessions.pop());
    let reopened = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(session) = device.open_session().await {
                return session;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a closed session frees its place");
    drop(reopened);
    healthy.delivers().await;
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_publish_under_another_devices_id_or_a_kernel_topic() {
    let kernel = TestKernel::spawn().await;
    let mut healthy = HealthyGroup::start(&kernel).await;
    let fixture = kernel.fixture().await;
    let (victim_id, victim_token) = fixture.another_device().await;
    let mut victim = kernel.device(&victim_token).await.open_session().await.unwrap();
    victim.subscribe("").await.unwrap();
    sync(&mut victim).await;
    let forger = kernel.device(&fixture.device_token).await;
    let mut forger_session = forger.open_session().await.unwrap();

    let forged = [
        (format!("{victim_id}/custom/0"), "another device's id"),
        (format!("{victim_id}/hook-response/temp/0"), "reserved for the kernel"),
        ("webhook-disabled/whk_0193a1b2c3d4e5f60718293a4b5c6d7e".to_owned(), "reserved for the kernel"),
        ("hook-error/temp/0".to_owned(), "reserved for the kernel"),
    ];
    for (name, rule) in &forged {
        let refused = forger.publish(name.clone(), "forged").await.expect_err("a forged topic is refused");
        assert_eq!(refused.code(), Some(tonic::Code::InvalidArgument), "{name}: {refused}");
        assert!(refused.to_string().contains(rule), "{name}: the message names the rule: {refused}");
        let refused = forger_session.publish(name.clone(), "forged").await.expect_err("refused on a session too");
        assert_eq!(refused.code(), Some(tonic::Code::InvalidArgument), "{name}: {refused}");
    }
    let own = format!("{}/custom/0", fixture.device_id);
    forger.publish(own, "to myself").await.expect("a device may publish under its own id");
    forger.publish("temp", "21").await.expect("an ordinary event");

    let received = sync(&mut victim).await;
    let names: Vec<&str> = received.iter().map(|event| event.name.as_str()).collect();
    assert_eq!(names, ["temp"], "the victim received none of the forged events");
    healthy.delivers().await;
    kernel.stop().await;
}

/// Makes a unary call with a hand-written request frame; returns the `grpc-status` and `grpc-message`.
async fn raw_unary(endpoint: &str, token: &str, method: &str, frame: Vec<u8>) -> (String, String) {
    let mut session = RawSession::connect_to(endpoint, token, method).await;
    assert!(session.send(Bytes::from(frame)).await);
    session.send.send_data(Bytes::new(), true).expect("end the request");
    let (_, code, message) = session.read_to_end().await;
    (code, message)
}

/// A hand-encoded `PublishRequest { seq: 1, name: <bytes> }`: prost encodes only valid strings.
fn publish_request_with_name(name: &[u8]) -> Vec<u8> {
    let mut message = vec![0x08, 0x01, 0x12, u8::try_from(name.len()).expect("short name")];
    message.extend_from_slice(name);
    message
}

fn frame_bytes(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_with_invalid_utf8_is_an_invalid_argument_not_an_internal_error() {
    let kernel = TestKernel::spawn().await;
    let mut healthy = HealthyGroup::start(&kernel).await;
    let fixture = kernel.fixture().await;
    let publish = publish_request_with_name(b"te\xffmp");

    let (code, message) = raw_unary(&kernel.endpoint, &fixture.device_token, "Publish", frame_bytes(&publish)).await;
    assert_eq!(code, "3", "INVALID_ARGUMENT on Publish: {message}");
    assert!(message.contains("PublishRequest.name"), "names the field: {message}");

    // On a session: a `DeviceMessage { publish: .. }` whose name is not UTF-8 ends the session with the status.
    let mut connect = vec![0x0a, u8::try_from(publish.len()).expect("short")];
    connect.extend_from_slice(&publish);
    let mut session = RawSession::connect_to(&kernel.endpoint, &fixture.device_token, "Connect").await;
    assert!(session.send(Bytes::from(frame_bytes(&connect))).await);
    let (_, code, message) =
        tokio::time::timeout(Duration::from_secs(10), session.read_to_end()).await.expect("the session ends");
    assert_eq!(code, "3", "INVALID_ARGUMENT on Connect: {message}");
    assert!(message.contains("PublishRequest.name"), "names the field: {message}");
    healthy.delivers().await;
    kernel.stop().await;
}

/// Runs statements on the kernel's own database, beside the kernel.
async fn on_database(kernel: &TestKernel, statements: &[&str]) {
    use sqlx::Executor as _;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&kernel.settings.database).await.expect("connect to the kernel's database");
    for statement in statements {
        pool.execute(sqlx::AssertSqlSafe(statement.to_string())).await.expect("a statement on the kernel's database");
    }
    pool.close().await;
}

/// Asserts that a client's error message is a fixed text with an error id, and none of the database's words.
fn assert_no_database_text(message: &str) {
    assert!(message.contains("error id err_"), "the message carries an error id: {message}");
    for leaked in ["secret-db-detail", "database", "UNIQUE", "duplicate key", "devices_name", "constraint"] {
        assert!(!message.contains(leaked), "`{leaked}` reached the client: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_errors_reach_clients_as_a_fixed_text_with_an_error_id_and_never_the_databases_words() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let device = kernel.device(&fixture.device_token).await;
    device.publish("before", "1").await.expect("a publish before the database refuses");
    let postgres = kernel.settings.database.starts_with("postgres");

    // The database refuses every event with a message of its own.
    if postgres {
        on_database(&kernel, &[
            "CREATE FUNCTION refuse_events() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'secret-db-detail'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_events BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_events()",
        ])
        .await;
    } else {
        on_database(&kernel, &["CREATE TRIGGER refuse_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'secret-db-detail'); END"]).await;
    }
    let refused = device.publish("during", "2").await.expect_err("the database refuses the event");
    assert_no_database_text(&refused.to_string());
    let mut session = device.open_session().await.unwrap();
    let refused = session.publish("during", "3").await.expect_err("refused on a session too");
    assert_no_database_text(&refused.to_string());
    let drop_trigger = if postgres { "DROP TRIGGER refuse_events ON events" } else { "DROP TRIGGER refuse_events" };
    on_database(&kernel, &[drop_trigger]).await;
    session.publish("after", "4").await.expect("publishes are acked again");

    // A conflict: the database's unique index refuses a second device of one name.
    on_database(&kernel, &["CREATE UNIQUE INDEX devices_name ON devices (name)"]).await;
    fixture.admin.create_device(fixture.group_id.clone(), "twin").await.expect("the first of the name");
    let conflict = fixture.admin.create_device(fixture.group_id.clone(), "twin").await.expect_err("a conflict");
    assert_eq!(conflict.code(), Some(tonic::Code::AlreadyExists), "{conflict}");
    assert_no_database_text(&conflict.to_string());
    kernel.stop().await;
}
