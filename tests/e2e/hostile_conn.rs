//! Hostile connections (issue 13, item 4): idle connections that never send the HTTP/2 preface are closed after
//! the handshake timeout; the number of open connections is capped; a connection cannot open more streams than
//! the server advertises; a peer that stops answering keepalive PINGs is closed. Through each, a healthy group's
//! deliveries keep flowing. (A server out of file descriptors: `kernel/tests/out_of_descriptors.rs`, which needs a
//! `hookwired` process of its own.)

use bytes::Bytes;
use hookwire_client::{AdminClient, DeviceClient};
use hookwire_tests::{FakeReceiver, Fixture, ROOT_TOKEN, TestKernel};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
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
    // The one wait for nothing to happen left in the suite: at the cap the kernel does not accept the fifth
    // connection at all (it waits in the listen backlog), so no event of the kernel's can say it was refused.
    tokio::time::sleep(Duration::from_millis(700)).await;
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
