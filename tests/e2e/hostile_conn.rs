//! Hostile connections (issue 13, item 4): idle connections that never send the HTTP/2 preface are closed after
//! the handshake timeout; the number of open connections is capped; a connection cannot open more streams than
//! the server advertises; a server out of file descriptors backs off instead of spinning and keeps serving the
//! connections it has. Through each, a healthy group's deliveries keep flowing.

use bytes::Bytes;
use hookwire_client::{AdminClient, DeviceClient};
use hookwire_tests::{FakeReceiver, Fixture, ROOT_TOKEN, TestKernel};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The kernel's address, from its endpoint.
fn address_of(endpoint: &str) -> SocketAddr {
    endpoint.trim_start_matches("http://").parse().expect("a socket address")
}

/// A group whose device is connected and whose webhook on `tick` delivers to `receiver`; returns the fixture and
/// the device's client (its connection made now, before any attack).
async fn healthy_group(endpoint: &str, receiver: &FakeReceiver) -> (Fixture, DeviceClient) {
    let admin = AdminClient::connect(endpoint, ROOT_TOKEN).await.expect("admin client");
    let group = admin.create_group("healthy").await.expect("create group");
    let created = admin.create_device(group.id.clone(), "healthy device").await.expect("create device");
    let fixture = Fixture {
        admin,
        group_id: group.id,
        device_id: created.device.expect("device").id,
        device_token: created.token,
    };
    fixture.webhook(json!({"event": "tick", "url": format!("{}/tick", receiver.base_url)})).await;
    let device = DeviceClient::connect(endpoint, &fixture.device_token).await.expect("device client");
    (fixture, device)
}

/// Publishes `tick` once and waits until the receiver holds `expected` requests (10 s at most).
async fn delivers(device: &DeviceClient, receiver: &FakeReceiver, expected: usize) {
    let ack = device.publish("tick", "x").await.expect("a publish on the healthy connection");
    assert_eq!(ack.num_deliveries, 1);
    assert_eq!(receiver.wait_for(expected, Duration::from_secs(10)).await.len(), expected, "delivered");
}

/// Opens `count` TCP connections that send nothing.
async fn idle_connections(address: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut connections = Vec::with_capacity(count);
    for _ in 0..count {
        connections.push(TcpStream::connect(address).await.expect("connect (the listen backlog holds it)"));
    }
    connections
}

/// Reads until the server closes the connection (end of stream or reset).
async fn closed_by_server(mut connection: TcpStream) {
    let mut buffer = [0u8; 1024];
    loop {
        match connection.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            // The server's own SETTINGS frame, sent before it reads the client's preface.
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_send_the_preface_are_closed_and_real_clients_and_deliveries_keep_working() {
    let kernel = TestKernel::spawn_with(|settings| {
        settings.max_connections = 64;
        settings.handshake_timeout_ms = 1000;
    })
    .await;
    let receiver = FakeReceiver::start().await;
    let (_fixture, device) = healthy_group(&kernel.endpoint, &receiver).await;
    delivers(&device, &receiver, 1).await;

    // Four times the cap of connections that send nothing: the first 62 take the free places, the rest wait in
    // the listen backlog, and each is closed one handshake timeout after it is accepted.
    let idle = idle_connections(address_of(&kernel.endpoint), 256).await;
    delivers(&device, &receiver, 2).await;
    let all_closed = futures::future::join_all(idle.into_iter().map(closed_by_server));
    tokio::time::timeout(Duration::from_secs(30), all_closed)
        .await
        .expect("the server closes every connection that does not send the HTTP/2 preface");

    delivers(&device, &receiver, 3).await;
    let admin = AdminClient::connect(&kernel.endpoint, ROOT_TOKEN).await.expect("a new client connects");
    admin.list_groups().await.expect("and is served");
    kernel.stop().await;
}

/// An HTTP/2 connection made with the `h2` crate, which answered one health check; dropping it closes it.
struct LiveConnection {
    client: h2::client::SendRequest<Bytes>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The gRPC framing of an empty `grpc.health.v1.HealthCheckRequest`: not compressed, zero bytes long.
const EMPTY_GRPC_MESSAGE: &[u8] = &[0, 0, 0, 0, 0];

async fn live_connection(address: SocketAddr) -> LiveConnection {
    let tcp = TcpStream::connect(address).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{address}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).expect("send the health check");
    body.send_data(Bytes::from_static(EMPTY_GRPC_MESSAGE), true).expect("send its message");
    let response = tokio::time::timeout(Duration::from_secs(10), response).await.expect("answered").expect("ok");
    assert_eq!(response.status(), 200);
    LiveConnection { client, task }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_a_new_client_waits_until_a_connection_closes() {
    let kernel = TestKernel::spawn_with(|settings| settings.max_connections = 4).await;
    let address = address_of(&kernel.endpoint);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(live_connection(address).await);
    }

    let endpoint = kernel.endpoint.clone();
    let waiting = tokio::spawn(async move {
        let admin = AdminClient::connect(&endpoint, ROOT_TOKEN).await.expect("TCP connects: the backlog holds it");
        admin.list_groups().await.expect("served once a place is free")
    });
    tokio::time::sleep(crate::support::QUIET).await;
    assert!(!waiting.is_finished(), "a fifth connection is not served while four are open");

    drop(held.pop());
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("served within 10 s of a connection closing")
        .expect("the waiting client");
    kernel.stop().await;
}

/// One HTTP/2 frame: the 9-byte header, then the payload.
fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).expect("a short payload").to_be_bytes();
    let mut bytes = vec![length[1], length[2], length[3], kind, flags];
    bytes.extend_from_slice(&stream_id.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// The HPACK block of a `grpc.health.v1.Health/Watch` request, all literals without Huffman coding.
fn watch_request_headers() -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http (static table 3 and 6)
    let literal = |block: &mut Vec<u8>, name_prefix: &[u8], value: &str| {
        block.extend_from_slice(name_prefix);
        block.push(u8::try_from(value.len()).expect("short"));
        block.extend_from_slice(value.as_bytes());
    };
    literal(&mut block, &[0x04], "/grpc.health.v1.Health/Watch"); // :path (static 4)
    literal(&mut block, &[0x01], "localhost"); // :authority (static 1)
    literal(&mut block, &[0x0f, 0x10], "application/grpc"); // content-type (static 31)
    literal(&mut block, &[0x00, 0x02, b't', b'e'], "trailers"); // te, a new name
    block
}

/// Reads one frame: (type, flags, stream id, payload).
async fn read_frame(connection: &mut TcpStream) -> std::io::Result<(u8, u8, u32, Vec<u8>)> {
    let mut header = [0u8; 9];
    connection.read_exact(&mut header).await?;
    let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let stream_id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; length];
    connection.read_exact(&mut payload).await?;
    Ok((header[3], header[4], stream_id, payload))
}

const SETTINGS: u8 = 0x4;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const REFUSED_STREAM: u32 = 0x7;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_sees_the_stream_cap_and_streams_over_it_are_refused() {
    let kernel = TestKernel::spawn_with(|settings| settings.max_streams_per_connection = 8).await;
    let address = address_of(&kernel.endpoint);
    let receiver = FakeReceiver::start().await;
    let (_fixture, device) = healthy_group(&kernel.endpoint, &receiver).await;

    // A well-behaved client (the h2 crate) reads the cap from the server's SETTINGS.
    let live = live_connection(address).await;
    assert_eq!(live.client.current_max_send_streams(), 8, "SETTINGS_MAX_CONCURRENT_STREAMS is advertised");

    // A client that ignores it opens 12 streams that stay open (Watch waits for its request message).
    let mut raw = TcpStream::connect(address).await.unwrap();
    raw.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    raw.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    let advertised = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (kind, flags, _, payload) = read_frame(&mut raw).await.expect("the server's SETTINGS");
            if kind == SETTINGS && flags & ACK == 0 {
                return payload
                    .chunks_exact(6)
                    .find(|entry| u16::from_be_bytes([entry[0], entry[1]]) == SETTINGS_MAX_CONCURRENT_STREAMS)
                    .map(|entry| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]));
            }
        }
    })
    .await
    .expect("SETTINGS within 10 s");
    assert_eq!(advertised, Some(8));
    raw.write_all(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
    let headers = watch_request_headers();
    let stream_ids: Vec<u32> = (0..12).map(|index| 1 + 2 * index).collect();
    for stream_id in &stream_ids {
        raw.write_all(&frame(HEADERS, END_HEADERS, *stream_id, &headers)).await.unwrap();
    }
    let mut refused = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while refused.len() < 4 {
            let (kind, _, stream_id, payload) = read_frame(&mut raw).await.expect("the connection stays open");
            if kind == RST_STREAM && u32::from_be_bytes(payload[..4].try_into().unwrap()) == REFUSED_STREAM {
                refused.push(stream_id);
            }
        }
    })
    .await
    .expect("the streams over the cap are refused within 10 s");
    assert_eq!(refused, stream_ids[8..], "the four streams over the cap, and only they, are refused");

    delivers(&device, &receiver, 1).await;
    drop(raw);
    drop(live);
    kernel.stop().await;
}

const PING: u8 = 0x6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_keepalive_pings_is_closed_as_dead() {
    let kernel = TestKernel::spawn_with(|settings| {
        settings.keepalive_interval_secs = 1;
        settings.keepalive_timeout_secs = 1;
    })
    .await;
    let receiver = FakeReceiver::start().await;
    let (_fixture, device) = healthy_group(&kernel.endpoint, &receiver).await;

    // A peer that completes the handshake, then goes silent as a dead one would: it never answers a PING.
    let mut silent = TcpStream::connect(address_of(&kernel.endpoint)).await.unwrap();
    silent.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    silent.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    let mut num_pings = 0;
    tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok((kind, flags, _, _)) = read_frame(&mut silent).await {
            match kind {
                SETTINGS if flags & ACK == 0 => silent.write_all(&frame(SETTINGS, ACK, 0, &[])).await.unwrap(),
                PING if flags & ACK == 0 => num_pings += 1,
                _ => {}
            }
        }
    })
    .await
    .expect("the server closes a connection whose keepalive PING goes unanswered");
    assert!(num_pings >= 1, "the server pinged the silent peer");

    // A live client on the same server answers the PINGs (h2 does) and stays, through several of them.
    delivers(&device, &receiver, 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    delivers(&device, &receiver, 2).await;
    kernel.stop().await;
}

/// Set in the environment of the child process that [`a_kernel_out_of_file_descriptors_does_not_spin_and_keeps_serving_its_connections`]
/// starts: the child runs a kernel instead of returning at once.
const CHILD_KERNEL_VARIABLE: &str = "HOOKWIRE_E2E_CHILD_KERNEL";
/// The line the child prints once it listens, followed by its address.
const CHILD_LISTENING: &str = "hookwire-child-kernel-listening ";

/// Not a test by itself: the kernel process for the file-descriptor test, started by it (this test binary run
/// again under `prlimit`, with [`CHILD_KERNEL_VARIABLE`] set). Without the variable it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of the file-descriptor test; it does nothing when run alone"]
async fn child_kernel_process() {
    if std::env::var_os(CHILD_KERNEL_VARIABLE).is_none() {
        return;
    }
    let directory = tempfile::tempdir().expect("temporary folder");
    let settings = hookwire_kernel::settings::Settings {
        database: format!("sqlite://{}", directory.path().join("hookwire.db").display()),
        root_token: Some(ROOT_TOKEN.into()),
        allow_destination: vec!["127.0.0.0/8".parse().unwrap()],
        actor_threads: 1,
        // A minute: the idle connections must hold their descriptors for the whole test.
        handshake_timeout_ms: 60_000,
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    println!("{CHILD_LISTENING}{}", listener.local_addr().unwrap());
    hookwire_kernel::run(settings, listener, std::future::pending()).await.expect("the child kernel");
}

/// CPU time (user and system) the process `pid` has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the child's /proc stat");
    // Fields after the command name (which is in parentheses and may hold spaces): utime and stime are the
    // 12th and 13th of them.
    let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_out_of_file_descriptors_does_not_spin_and_keeps_serving_its_connections() {
    if std::process::Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    // This test binary again, under a limit of 128 open files, running only the child kernel.
    let mut child = tokio::process::Command::new("prlimit")
        .arg("--nofile=128:128")
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "hostile_conn::child_kernel_process", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_KERNEL_VARIABLE, "1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the child kernel");
    let pid = child.id().expect("the child's pid (prlimit execs the command: same process)");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let address: SocketAddr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("the child's output") {
            // libtest may have written the test's name on the same line first.
            if let Some((_, address)) = line.split_once(CHILD_LISTENING) {
                return address.trim().parse().expect("an address");
            }
        }
        panic!("the child kernel ended before it listened");
    })
    .await
    .expect("the child kernel listens within 60 s");
    let endpoint = format!("http://{address}");
    let admin = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(admin) = AdminClient::connect(&endpoint, ROOT_TOKEN).await
                && admin.list_groups().await.is_ok()
            {
                return admin;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the child kernel serves within 30 s");
    let receiver = FakeReceiver::start().await;
    let (_fixture, device) = healthy_group(&endpoint, &receiver).await;
    delivers(&device, &receiver, 1).await;

    // More idle connections than the child has descriptors: it accepts until it runs out, the rest wait in the
    // backlog, and every further accept fails with EMFILE.
    let idle = idle_connections(address, 200).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_ticks(pid);
    let measured_over = Duration::from_secs(2);
    tokio::time::sleep(measured_over).await;
    let used = cpu_ticks(pid) - before;
    // Clock ticks are 1/100 s on Linux: 2 s of wall time is 200 ticks of one core. A spinning accept loop takes
    // nearly all of them; one that backs off takes next to none. A quarter is a generous bound.
    assert!(used < 50, "the kernel used {used} of 200 clock ticks of one core in 2 s out of file descriptors");

    // The connections made before still work, and so do the healthy group's deliveries.
    admin.list_groups().await.expect("an admin connection made before is served");
    delivers(&device, &receiver, 2).await;

    // Once descriptors are free again, new clients are served.
    drop(idle);
    let again = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(admin) = AdminClient::connect(&endpoint, ROOT_TOKEN).await
                && admin.list_groups().await.is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(again.is_ok(), "a new client is served once descriptors are free");
    child.start_kill().expect("stop the child kernel");
    let _ = child.wait().await;
}
