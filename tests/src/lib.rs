//! hookwire's end-to-end test harness: [`TestKernel`] runs a real kernel on a port-0 listener with a fresh
//! database (SQLite in a temporary folder, or a fresh PostgreSQL database when `HOOKWIRE_TEST_POSTGRES` names a
//! server), and [`FakeReceiver`] is a real HTTP destination that records what it receives.

pub mod browser;
pub mod console;
pub mod dedup;
pub mod process;
pub mod proxy;
pub mod receiver;

pub use process::KernelProcess;
pub use proxy::{FakeProxy, TunnelRequest};
pub use receiver::{FakeReceiver, RecordedRequest, Reply};

use hookwire_client::{AdminClient, DeviceClient};
use hookwire_kernel::settings::Settings;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// The root token of every test kernel.
pub const ROOT_TOKEN: &str = "test-root-token";

/// A kernel running inside the test process.
#[derive(Debug)]
pub struct TestKernel {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The settings it runs with (database included), for restarts.
    pub settings: Settings,
    /// `http://127.0.0.1:PORT/metrics` when the settings asked for a metrics endpoint (`metrics_listen`; it is
    /// bound on a fresh loopback port whatever address they give).
    pub metrics_url: Option<String>,
    /// `http://127.0.0.1:PORT` of the web console when the settings asked for one (`console_listen`; bound on a
    /// fresh loopback port whatever address they give). The test defaults have none.
    pub console_url: Option<String>,
    directory: Arc<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for TestKernel {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A group with one device, made through the admin API.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// An admin client with the root token.
    pub admin: AdminClient,
    /// The group.
    pub group_id: String,
    /// The device.
    pub device_id: String,
    /// The device's token.
    pub device_token: String,
}

async fn fresh_database(directory: &tempfile::TempDir) -> String {
    match fresh_postgres_database().await {
        Some(database) => database,
        None => format!("sqlite://{}", directory.path().join("hookwire.db").display()),
    }
}

/// A fresh database on the PostgreSQL server `HOOKWIRE_TEST_POSTGRES` names, or `None` when it names none.
pub async fn fresh_postgres_database() -> Option<String> {
    use sqlx::Executor as _;
    let server = std::env::var("HOOKWIRE_TEST_POSTGRES").ok().filter(|server| !server.is_empty())?;
    sqlx::any::install_default_drivers();
    let name = format!("hw_{}", uuid_like());
    let pool = sqlx::AnyPool::connect(&format!("{server}/postgres")).await.expect("connect to the test PostgreSQL");
    pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("create a test database");
    pool.close().await;
    Some(format!("{server}/{name}"))
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}_{}_{}", std::process::id(), nanos, COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

impl TestKernel {
    /// Starts a kernel with the test defaults: fresh database, loopback destinations allowed, a known root token.
    pub async fn spawn() -> TestKernel {
        TestKernel::spawn_with(|_| {}).await
    }

    /// Starts a kernel with the test defaults changed by `configure`.
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestKernel {
        let directory = Arc::new(tempfile::tempdir().expect("temporary folder"));
        let mut settings = Settings {
            database: fresh_database(&directory).await,
            root_token: Some(ROOT_TOKEN.into()),
            allow_destination: vec!["127.0.0.0/8".parse().expect("cidr")],
            actor_threads: 2,
            console_listen: hookwire_kernel::settings::ConsoleListen(None),
            ..Settings::default()
        };
        configure(&mut settings);
        TestKernel::start(settings, directory).await
    }

    async fn start(settings: Settings, directory: Arc<tempfile::TempDir>) -> TestKernel {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the kernel");
        let endpoint = format!("http://{}", listener.local_addr().expect("kernel address"));
        let (metrics_listener, metrics_url) = match settings.metrics_listen {
            Some(_) => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the metrics endpoint");
                let url = format!("http://{}/metrics", listener.local_addr().expect("metrics address"));
                (Some(listener), Some(url))
            }
            None => (None, None),
        };
        let (console_listener, console_url) = match settings.console_listen.0 {
            Some(_) => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the console");
                let url = format!("http://{}", listener.local_addr().expect("console address"));
                (Some(listener), Some(url))
            }
            None => (None, None),
        };
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(hookwire_kernel::run_with_listeners(
            Settings {
                metrics_listen: None,
                console_listen: hookwire_kernel::settings::ConsoleListen(None),
                ..settings.clone()
            },
            listener,
            hookwire_kernel::Listeners { metrics: metrics_listener, console: console_listener },
            async move {
                let _ = stopped.await;
            },
        ));
        let kernel = TestKernel {
            endpoint,
            settings,
            metrics_url,
            console_url,
            directory,
            shutdown: Some(shutdown),
            task: Some(task),
        };
        kernel.wait_until_serving().await;
        kernel
    }

    async fn wait_until_serving(&self) {
        // A test may give the kernel another root token (the README's Quickstart does).
        let root_token = self.settings.root_token.as_deref().unwrap_or(ROOT_TOKEN);
        for _ in 0..200 {
            if let Ok(admin) = AdminClient::connect(&self.endpoint, root_token).await
                && admin.list_groups().await.is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the kernel did not serve within 5 s");
    }

    /// Stops the kernel cleanly and waits for it.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("kernel task").expect("kernel stopped cleanly");
        }
    }

    /// Stops the kernel and starts a new one on the same database.
    pub async fn restart(mut self) -> TestKernel {
        let settings = self.settings.clone();
        let directory = self.directory.clone();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("kernel task").expect("kernel stopped cleanly");
        }
        TestKernel::start(settings, directory).await
    }

    /// An admin client with the root token.
    pub async fn admin(&self) -> AdminClient {
        AdminClient::connect(&self.endpoint, ROOT_TOKEN).await.expect("admin client")
    }

    /// A device client with a device token.
    pub async fn device(&self, token: &str) -> DeviceClient {
        DeviceClient::connect(&self.endpoint, token).await.expect("device client")
    }

    /// Creates a group with one device.
    pub async fn fixture(&self) -> Fixture {
        let admin = self.admin().await;
        let group = admin.create_group("test group").await.expect("create group");
        let created = admin.create_device(group.id.clone(), "test device").await.expect("create device");
        let device = created.device.expect("device in the answer");
        Fixture { admin, group_id: group.id, device_id: device.id, device_token: created.token }
    }
}

impl Fixture {
    /// Creates a webhook from a JSON value, returning its id.
    pub async fn webhook(&self, definition: serde_json::Value) -> String {
        self.admin.create_webhook(self.group_id.clone(), definition.to_string()).await.expect("create webhook").id
    }

    /// Creates another device in the same group: (id, token).
    pub async fn another_device(&self) -> (String, String) {
        let created = self.admin.create_device(self.group_id.clone(), "another").await.expect("create device");
        (created.device.expect("device").id, created.token)
    }
}
