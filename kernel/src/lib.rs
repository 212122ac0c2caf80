//! hookwire's kernel: boot, settings, telemetry, the SQL store, auth and the gRPC adapters around the actors.
//!
//! The kernel is a function: [`run`] takes settings, a bound listener and a shutdown signal, and serves until the
//! signal fires. `main.rs` only parses flags, loads settings, starts tracing, binds and calls it; tests call it
//! directly with a port-0 listener and a fresh database.

#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod auth;
pub mod cluster;
pub mod cluster_events;
pub mod cluster_policy;
pub mod console;
pub mod deliveries;
pub mod error;
pub mod grpc;
pub mod listener;
pub mod listing;
pub mod metrics;
pub mod recovery;
pub mod retention;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod tokens;

use anyhow::Context as _;
use hookwire_actors::actors::registry::Services;
use hookwire_actors::domain::egress::EgressPolicy;
use hookwire_actors::services::journal::Journal;
use hookwire_proto::v1::delivery_service_server::DeliveryServiceServer;
use hookwire_proto::v1::device_admin_service_server::DeviceAdminServiceServer;
use hookwire_proto::v1::device_service_server::DeviceServiceServer;
use hookwire_proto::v1::event_service_server::EventServiceServer;
use hookwire_proto::v1::group_service_server::GroupServiceServer;
use hookwire_proto::v1::token_service_server::TokenServiceServer;
use hookwire_proto::v1::webhook_service_server::WebhookServiceServer;
use settings::Settings;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use tokio::net::TcpListener;

/// Queued journal entries before publishers wait.
const JOURNAL_CAPACITY: usize = 65_536;

/// Streams a client may open and reset before the server has accepted them, per connection, before the
/// connection is closed (HTTP/2 rapid reset, CVE-2023-44487); h2's own default, set here so that it is visible.
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// Streams the server may reset for a client's protocol errors, per connection, before it closes the connection
/// (CVE-2025-8671). hyper's default; tonic's builder would otherwise pass "no limit" down to hyper.
const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// The running kernel's shared state.
#[derive(Debug)]
pub struct Kernel {
    /// The SQL store.
    pub store: Store,
    /// The actors' services.
    pub services: Arc<Services>,
    /// Device tokens.
    pub devices: auth::DeviceDirectory,
    /// Admin tokens: the root token and group tokens.
    pub admin: auth::AdminAuth,
    /// Turns true when the kernel begins to shut down; long-lived streams end then.
    pub shutting_down: tokio::sync::watch::Receiver<bool>,
    /// The egress rules, to refuse at create time a webhook whose URL names a refused literal address.
    pub egress: Arc<EgressPolicy>,
    /// This kernel's membership of the kernels sharing the database: its id, lease and ownership.
    pub membership: Arc<cluster::Membership>,
}

/// Runs the kernel on `listener` until `shutdown` completes, then stops cleanly: the server stops accepting,
/// actors stop (deliveries in flight stay pending and are delivered after the next start), the journal writes
/// what it holds, and the database is closed. Metrics are served on `metrics_listen` when it is set.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics_listener = match settings.metrics_listen {
        Some(address) => {
            Some(TcpListener::bind(address).await.with_context(|| format!("metrics_listen: binding {address}"))?)
        }
        None => None,
    };
    let console_listener = match settings.console_listen.0 {
        Some(address) => {
            Some(TcpListener::bind(address).await.with_context(|| format!("console_listen: binding {address}"))?)
        }
        None => None,
    };
    run_with_listeners(settings, listener, Listeners { metrics: metrics_listener, console: console_listener }, shutdown)
        .await
}

/// [`run`], with the metrics endpoint on a listener already bound (tests bind port 0), or none, and no console.
pub async fn run_with_metrics(
    settings: Settings,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with_listeners(settings, listener, Listeners { metrics: metrics_listener, console: None }, shutdown).await
}

/// The listeners besides gRPC's, already bound (tests bind port 0); `None` serves nothing there.
#[derive(Debug, Default)]
pub struct Listeners {
    /// The metrics endpoint's.
    pub metrics: Option<TcpListener>,
    /// The web console's.
    pub console: Option<TcpListener>,
}

/// [`run`], with the metrics endpoint and the console on listeners already bound, or none.
pub async fn run_with_listeners(
    settings: Settings,
    listener: TcpListener,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics_listener = listeners.metrics;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let address = listener.local_addr().context("listener has no address")?;
    let actor_settings = settings.actor_settings().map_err(anyhow::Error::msg)?;
    // Held until the end of the run: a second kernel on the same SQLite file is refused at its start.
    let _sqlite_lock = cluster::SqliteLock::acquire(&settings.database)?;
    let store = Store::connect(&settings.database).await?;
    let membership = cluster::Membership::register(&store, Duration::from_secs(settings.cluster_lease_secs.max(1)))
        .await
        .context("registering this kernel")?;
    let ownership = membership.ownership().clone();

    let sql_journal = Arc::new(store::journal::SqlJournal::with_ownership(store.pool().clone(), ownership.clone()));
    let (journal, journal_task) = Journal::start_with_metrics(sql_journal, JOURNAL_CAPACITY, Arc::default());
    let tls = hookwire_actors::actors::host::default_tls_config().context("TLS configuration")?;
    let egress = EgressPolicy::new(settings.allow_destination.clone());
    let services = Services::start(actor_settings, journal, egress.clone(), tls, ownership)
        .context("starting the actor system")?;
    // Several kernels may share a PostgreSQL database: their events cross through LISTEN/NOTIFY.
    let cluster_events = match store.backend() {
        store::Backend::Postgres => Some(
            cluster_events::start(
                &settings.database,
                services.bus.clone(),
                services.metrics.clone(),
                settings.cluster_events_queue,
                Duration::from_millis(settings.cluster_events_batch_ms),
            )
            .await
            .context("listening for other kernels' events")?,
        ),
        store::Backend::Sqlite => None,
    };
    // ... and their rate quotas and host sleep decisions are shared through the database.
    let cluster_policy = cluster_policy::start(&settings.database, &store, &services, membership.node_id())
        .await
        .context("sharing rate quotas and host sleep with other kernels")?;

    let root_token = match &settings.root_token {
        Some(token) if !token.is_empty() => token.clone(),
        _ => {
            let token = auth::generate_token("hwr_");
            tracing::warn!(root_token = %token, "HOOKWIRE_ROOT_TOKEN is not set; generated a root token for this run");
            token
        }
    };
    let (begin_shutdown, shutting_down) = tokio::sync::watch::channel(false);
    let kernel = Arc::new(Kernel {
        store: store.clone(),
        services: services.clone(),
        devices: auth::DeviceDirectory::with_cache_ttl(Duration::from_secs(settings.token_cache_secs)),
        admin: auth::AdminAuth::with_cache_ttl(&root_token, Duration::from_secs(settings.token_cache_secs)),
        shutting_down,
        egress: Arc::new(egress),
        membership: membership.clone(),
    });
    // Noted before loading, so that a change made meanwhile through another kernel is seen by the first look.
    let fingerprint = store::webhooks::fingerprint(store.pool()).await?;
    let num_webhooks = kernel.load_index().await?;
    let heartbeat = tokio::spawn(membership.clone().keep_alive());
    // Its first round is the start-up recovery: deliveries with no live owner, at their due times.
    let rescuer = tokio::spawn(cluster::rescue(kernel.clone(), settings.database.clone()));
    // One kernel on SQLite: its webhooks' state is its own, nothing to read back.
    let state_sync = (store.backend() == store::Backend::Postgres)
        .then(|| tokio::spawn(cluster::sync_webhook_states(kernel.clone())));
    let index_sync = (settings.index_refresh_ms > 0).then(|| {
        tokio::spawn(sync_index(kernel.clone(), Duration::from_millis(settings.index_refresh_ms), fingerprint))
    });
    let pruning = tokio::spawn(retention::run(
        store.clone(),
        settings.retention_days,
        Duration::from_secs(settings.prune_interval_secs.max(1)),
    ));

    let metrics_address = metrics_listener.as_ref().and_then(|listener| listener.local_addr().ok());
    let metrics_server = metrics_listener.map(|listener| {
        tracing::info!(address = ?metrics_address, "metrics at /metrics");
        tokio::spawn(metrics::serve(listener, services.clone()))
    });
    let console_settings = console::ConsoleSettings {
        session_ttl: Duration::from_secs(settings.console_session_secs),
        max_sessions: settings.console_max_sessions,
        secure_cookie: settings.console_secure_cookie,
        signin_failures: settings.console_signin_failures,
        signin_failures_global: settings.console_signin_failures_global,
    };
    let console_server = listeners.console.map(|listener| {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(url = %format!("http://{address}/"), "console: open it in a browser");
        }
        tokio::spawn(console::serve(listener, kernel.clone(), console_settings))
    });

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<DeviceServiceServer<grpc::device::DeviceApi>>().await;
    health_reporter.set_serving::<GroupServiceServer<grpc::admin::AdminApi>>().await;
    health_reporter.set_serving::<DeviceAdminServiceServer<grpc::admin::AdminApi>>().await;
    health_reporter.set_serving::<WebhookServiceServer<grpc::admin::AdminApi>>().await;
    health_reporter.set_serving::<EventServiceServer<grpc::admin::AdminApi>>().await;
    health_reporter.set_serving::<DeliveryServiceServer<grpc::deliveries::DeliveryApi>>().await;
    health_reporter.set_serving::<TokenServiceServer<grpc::tokens::TokenApi>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(hookwire_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // v1alpha beside v1: grpcio's reflection client and other older tools know only v1alpha.
    let reflection_v1alpha = reflection().build_v1alpha().context("gRPC reflection v1alpha")?;
    let reflection = reflection().build_v1().context("gRPC reflection")?;
    let admin = grpc::admin::AdminApi::new(kernel.clone());
    // Connection bounds (docs/security.md, "Connections"): the cap, the handshake timeout and the accept back-off
    // live in the accept loop (`listener`); streams per connection and keepalive are HTTP/2's, set here.
    let keepalive =
        (settings.keepalive_interval_secs > 0).then(|| Duration::from_secs(settings.keepalive_interval_secs));
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(settings.max_streams_per_connection.max(1))
        .http2_keepalive_interval(keepalive)
        .http2_keepalive_timeout(Some(Duration::from_secs(settings.keepalive_timeout_secs.max(1))))
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESET_STREAMS))
        .http2_max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESET_STREAMS))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(DeviceServiceServer::new(grpc::device::DeviceApi::new(kernel.clone())))
        .add_service(GroupServiceServer::new(admin.clone()))
        .add_service(DeviceAdminServiceServer::new(admin.clone()))
        .add_service(WebhookServiceServer::new(admin.clone()))
        .add_service(EventServiceServer::new(admin))
        .add_service(DeliveryServiceServer::new(grpc::deliveries::DeliveryApi::new(kernel.clone())))
        .add_service(TokenServiceServer::new(grpc::tokens::TokenApi::new(kernel.clone())));

    if let Some(path) = &settings.ready_file {
        write_ready_file(path, address, metrics_address)
            .with_context(|| format!("ready_file: writing {}", path.display()))?;
    }
    tracing::info!(%address, database = %store::redact(&settings.database), num_webhooks, "hookwired ready");
    // The server drains open calls before it returns, so the long-lived ones must end first: stopping the actors
    // ends device sessions, and the watch ends admin event streams.
    let registry = services.registry.clone();
    let lease_lost = membership.lease_lost();
    let is_lease_lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noted_lease_lost = is_lease_lost.clone();
    let shutdown = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = lease_lost => noted_lease_lost.store(true, std::sync::atomic::Ordering::SeqCst),
        }
        tracing::info!("shutting down");
        registry.stop();
        let _ = begin_shutdown.send(true);
    };
    let incoming = listener::incoming(
        listener,
        listener::ListenerSettings {
            max_connections: settings.max_connections,
            handshake_timeout: Duration::from_millis(settings.handshake_timeout_ms.max(1)),
            tcp_keepalive: keepalive,
        },
    );
    let served = router.serve_with_incoming_shutdown(incoming, shutdown).await;

    rescuer.abort();
    pruning.abort();
    if let Some(task) = state_sync {
        task.abort();
    }
    drop(cluster_events);
    drop(cluster_policy);
    if let Some(task) = index_sync {
        task.abort();
    }
    if let Some(server) = metrics_server {
        server.abort();
    }
    if let Some(server) = console_server {
        server.abort();
    }
    services.registry.stop();
    let registry = services.registry.clone();
    let _ = tokio::task::spawn_blocking(move || registry.join()).await;
    drop(kernel);
    drop(services);
    if tokio::time::timeout(Duration::from_secs(10), journal_task).await.is_err() {
        tracing::warn!("journal did not finish within 10 s; unwritten attempts will be retried after the next start");
    }
    heartbeat.abort();
    let is_lease_lost = is_lease_lost.load(std::sync::atomic::Ordering::SeqCst);
    if !is_lease_lost {
        // Hands this kernel's pending deliveries to the others at once, rather than after its lease.
        match membership.release().await {
            Ok(num_released) => tracing::info!(num_released, "pending deliveries released to the other kernels"),
            Err(error) => {
                tracing::warn!(%error, "could not release pending deliveries; they are claimed after the lease")
            }
        }
    }
    drop(membership);
    store.close().await;
    if let Some(path) = &settings.ready_file {
        let _ = std::fs::remove_file(path);
    }
    served.context("gRPC server")?;
    if is_lease_lost {
        anyhow::bail!("stopped: this kernel's lease expired and its deliveries were taken over by other kernels");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Writes the ready file (the `ready_file` setting): the bound addresses as JSON, written beside it and renamed
/// into place, so that a tool waiting for the file to appear never reads it half-written.
fn write_ready_file(
    path: &std::path::Path,
    address: std::net::SocketAddr,
    metrics_address: Option<std::net::SocketAddr>,
) -> std::io::Result<()> {
    let ready = serde_json::json!({
        "address": address.to_string(),
        "metrics_address": metrics_address.map(|address| address.to_string()),
        "pid": std::process::id(),
    });
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&temporary, format!("{ready}\n"))?;
    std::fs::rename(&temporary, path)
}

/// Looks for webhook changes made through other kernels on the same database every `interval`.
async fn sync_index(kernel: Arc<Kernel>, interval: Duration, fingerprint: (i64, i64, i64)) {
    let mut seen = Some(fingerprint);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match kernel.sync_index(&mut seen).await {
            Ok(true) => tracing::info!("webhooks changed in the database; index reloaded"),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "could not look for webhook changes"),
        }
    }
}
