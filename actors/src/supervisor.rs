//! The [`Supervisor`]: runs the actor system (one arbiter per core, each a thread), starts webhook and host actors
//! on demand on the arbiter their id hashes to (wrapped in `actix::Supervisor`, so an actor that stops is
//! restarted), starts a device actor per session, and keeps the registries (webhook id, host, device -> address).
//!
//! It is a shared handle rather than an actor: the hot path looks addresses up under a read lock and never waits
//! on a mailbox. Starting an actor takes the write lock once per webhook or host.
//!
//! [`Services`] bundles what every actor uses: the index, the bus, the journal and the supervisor.

use crate::bus::EventBus;
use crate::device::DeviceActor;
use crate::egress::EgressPolicy;
use crate::event::SharedEvent;
use crate::host::{HostActor, HostKey, HostSettings};
use crate::ids::{DeviceId, GroupId, WebhookId};
use crate::index::WebhookIndex;
use crate::journal::Journal;
use crate::messages::Disconnect;
use crate::metrics::{Metrics, Snapshot};
use crate::request::DeviceProfile;
use crate::webhook::WebhookActor;
use actix::{Actor, Addr, AsyncContext};
use actix_rt::ArbiterHandle;
use futures::stream::BoxStream;
use hookwire_proto::v1::{DeviceMessage, KernelMessage};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// The default delays before a delivery that met a sleeping host is tried again (Particle's).
pub const DEFAULT_SLEEP_RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(30), Duration::from_secs(60)];
/// The default bound of a webhook's quota queue.
pub const DEFAULT_QUOTA_QUEUE_LIMIT: usize = 1000;

/// Settings the actors need.
#[derive(Debug, Clone)]
pub struct ActorSettings {
    /// Largest event data, bytes.
    pub max_data_bytes: usize,
    /// Events queued to one subscriber before further ones are dropped and counted.
    pub subscriber_queue_capacity: usize,
    /// Largest single response event (`unchunked`), bytes; a larger response gives a `hook-error` instead.
    pub max_response_event_bytes: usize,
    /// Largest Blynk pin response, bytes; a larger response gives a `hook-error` instead.
    pub max_pin_response_bytes: usize,
    /// How hosts behave.
    pub host: HostSettings,
    /// Arbiters (threads) the actors run on; 0 for one per core.
    pub num_arbiters: usize,
    /// When a delivery meets a sleeping host, it is tried again after each of these delays in turn, then recorded
    /// as skipped (Particle: 30 s, then 60 s).
    pub sleep_retry_delays: Vec<Duration>,
    /// Deliveries over a webhook's rate quota that wait in its queue; beyond, they are dropped and reported.
    pub quota_queue_limit: usize,
    /// The longest `Retry-After` honoured; a longer one is cut to this.
    pub max_retry_after: Duration,
}

impl Default for ActorSettings {
    fn default() -> Self {
        ActorSettings {
            max_data_bytes: crate::event::DEFAULT_MAX_DATA_BYTES,
            subscriber_queue_capacity: 1024,
            max_response_event_bytes: crate::webhook::DEFAULT_MAX_RESPONSE_EVENT_BYTES,
            max_pin_response_bytes: crate::webhook::DEFAULT_MAX_PIN_RESPONSE_BYTES,
            host: HostSettings::default(),
            num_arbiters: 0,
            sleep_retry_delays: DEFAULT_SLEEP_RETRY_DELAYS.to_vec(),
            quota_queue_limit: DEFAULT_QUOTA_QUEUE_LIMIT,
            max_retry_after: crate::policy::DEFAULT_MAX_RETRY_AFTER,
        }
    }
}

/// What every actor uses.
#[derive(Debug)]
pub struct Services {
    /// The webhook index.
    pub index: Arc<WebhookIndex>,
    /// The event bus.
    pub bus: Arc<EventBus>,
    /// The journal.
    pub journal: Journal,
    /// The supervisor.
    pub supervisor: Supervisor,
    /// The settings.
    pub settings: Arc<ActorSettings>,
    /// The metrics (the journal's).
    pub metrics: Arc<Metrics>,
    /// What this kernel may send (the attempt gate and deliveries lost to another kernel).
    pub ownership: Arc<crate::ownership::Ownership>,
}

impl Services {
    /// Starts the actor system and bundles the services; the journal must already run.
    pub fn start(
        settings: ActorSettings,
        journal: Journal,
        egress: EgressPolicy,
        tls: rustls::ClientConfig,
        ownership: Arc<crate::ownership::Ownership>,
    ) -> std::io::Result<Arc<Services>> {
        let runtime = ActorRuntime::start(settings.num_arbiters)?;
        let settings = Arc::new(settings);
        let metrics = journal.metrics().clone();
        Ok(Arc::new_cyclic(|services| Services {
            index: Arc::new(WebhookIndex::default()),
            bus: Arc::new(EventBus::default()),
            metrics: metrics.clone(),
            ownership,
            journal,
            supervisor: Supervisor {
                inner: Arc::new(SupervisorInner {
                    runtime,
                    services: services.clone(),
                    host_settings: Arc::new(settings.host.clone()),
                    tls: Arc::new(tls),
                    egress: Arc::new(egress),
                    metrics,
                    webhooks: RwLock::default(),
                    hosts: RwLock::default(),
                    devices: Mutex::default(),
                    next_session_id: AtomicU64::new(1),
                }),
            },
            settings,
        }))
    }
}

/// The actix system thread and its arbiters.
#[derive(Debug)]
struct ActorRuntime {
    system: actix_rt::System,
    arbiters: Vec<ArbiterHandle>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl ActorRuntime {
    fn start(num_arbiters: usize) -> std::io::Result<Self> {
        let num_arbiters = match num_arbiters {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        };
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name("hookwire-actors".into()).spawn(move || {
            let system = actix_rt::System::new();
            let arbiters: Vec<actix_rt::Arbiter> = (0..num_arbiters).map(|_| actix_rt::Arbiter::new()).collect();
            let handles = arbiters.iter().map(actix_rt::Arbiter::handle).collect::<Vec<_>>();
            let _ = sender.send((actix_rt::System::current(), handles));
            if let Err(error) = system.run() {
                tracing::error!(%error, "actor system ended with an error");
            }
            drop(arbiters);
        })?;
        let (system, arbiters) = receiver.recv().map_err(|_| std::io::Error::other("actor system did not start"))?;
        Ok(ActorRuntime { system, arbiters, thread: Mutex::new(Some(thread)) })
    }
}

/// The shared supervisor handle.
#[derive(Debug, Clone)]
pub struct Supervisor {
    inner: Arc<SupervisorInner>,
}

#[derive(Debug)]
struct SupervisorInner {
    runtime: ActorRuntime,
    services: Weak<Services>,
    host_settings: Arc<HostSettings>,
    tls: Arc<rustls::ClientConfig>,
    egress: Arc<EgressPolicy>,
    metrics: Arc<Metrics>,
    webhooks: RwLock<HashMap<WebhookId, Addr<WebhookActor>>>,
    hosts: RwLock<HashMap<HostKey, Addr<HostActor>>>,
    devices: Mutex<HashMap<DeviceId, HashMap<u64, Addr<DeviceActor>>>>,
    next_session_id: AtomicU64,
}

/// What the kernel streams back to a connected device.
#[derive(Debug)]
pub struct DeviceSession {
    /// Acks, errors and pongs.
    pub outbound: mpsc::UnboundedReceiver<Box<KernelMessage>>,
    /// Events the device subscribed to.
    pub events: mpsc::Receiver<SharedEvent>,
    /// Events dropped because the device read too slowly (the reader reports and resets it).
    pub num_dropped: Arc<AtomicU64>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poison| poison.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poison| poison.into_inner())
}

impl Supervisor {
    fn arbiter_for(&self, key: &impl Hash) -> &ArbiterHandle {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let arbiters = &self.inner.runtime.arbiters;
        &arbiters[(hasher.finish() % arbiters.len() as u64) as usize]
    }

    fn services(&self) -> Arc<Services> {
        self.inner.services.upgrade().expect("services outlive the supervisor they own")
    }

    /// The actor of a webhook, started if it is not running.
    pub fn webhook(&self, id: &WebhookId) -> Addr<WebhookActor> {
        if let Some(addr) = read(&self.inner.webhooks).get(id) {
            return addr.clone();
        }
        let mut webhooks = write(&self.inner.webhooks);
        webhooks
            .entry(id.clone())
            .or_insert_with(|| {
                let (id, services) = (id.clone(), self.services());
                actix::Supervisor::start_in_arbiter(self.arbiter_for(&id), move |_| WebhookActor::new(id, services))
            })
            .clone()
    }

    /// Forgets a deleted webhook's actor; it stops once its work in flight is done.
    pub fn forget_webhook(&self, id: &WebhookId) {
        write(&self.inner.webhooks).remove(id);
    }

    /// The actor of a destination, started if it is not running.
    pub fn host(&self, key: HostKey) -> Addr<HostActor> {
        if let Some(addr) = read(&self.inner.hosts).get(&key) {
            return addr.clone();
        }
        let mut hosts = write(&self.inner.hosts);
        let arbiter = self.arbiter_for(&key).clone();
        hosts
            .entry(key.clone())
            .or_insert_with(|| {
                let inner = &self.inner;
                let (settings, tls, egress) = (inner.host_settings.clone(), inner.tls.clone(), inner.egress.clone());
                let metrics = inner.metrics.host(&key);
                actix::Supervisor::start_in_arbiter(&arbiter, move |_| {
                    HostActor::new(key, settings, tls, egress).with_metrics(metrics)
                })
            })
            .clone()
    }

    /// Starts a session for a device that authenticated: its actor reads `inbound`; the returned session is
    /// what the kernel streams back.
    pub fn start_device(
        &self,
        profile: Arc<DeviceProfile>,
        group_id: GroupId,
        inbound: BoxStream<'static, DeviceMessage>,
    ) -> DeviceSession {
        let services = self.services();
        let session_id = self.inner.next_session_id.fetch_add(1, Ordering::Relaxed);
        let (outbound_sender, outbound) = mpsc::unbounded_channel();
        let device_id = profile.id.clone();
        let (sink, events) =
            services.bus.sink(group_id.clone(), device_id.clone(), services.settings.subscriber_queue_capacity);
        let num_dropped = sink.sink().dropped_counter();
        let arbiter = self.arbiter_for(&device_id);
        let addr = DeviceActor::start_in_arbiter(arbiter, move |ctx| {
            ctx.add_stream(inbound);
            DeviceActor::new(session_id, profile, group_id, services, outbound_sender, sink)
        });
        if let Some(device_id) = device_id {
            let mut devices = self.inner.devices.lock().unwrap_or_else(|poison| poison.into_inner());
            devices.entry(device_id).or_default().insert(session_id, addr);
        }
        DeviceSession { outbound, events, num_dropped }
    }

    /// Called by a device actor when its session ends.
    pub fn device_stopped(&self, device_id: &DeviceId, session_id: u64) {
        let mut devices = self.inner.devices.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(sessions) = devices.get_mut(device_id) {
            sessions.remove(&session_id);
            if sessions.is_empty() {
                devices.remove(device_id);
            }
        }
    }

    /// Ends every session of a device (it was deleted).
    pub fn disconnect_device(&self, device_id: &DeviceId) {
        let devices = self.inner.devices.lock().unwrap_or_else(|poison| poison.into_inner());
        for addr in devices.get(device_id).into_iter().flat_map(HashMap::values) {
            addr.do_send(Disconnect);
        }
    }

    /// How many device sessions are open.
    pub fn num_device_sessions(&self) -> usize {
        let devices = self.inner.devices.lock().unwrap_or_else(|poison| poison.into_inner());
        devices.values().map(HashMap::len).sum()
    }

    /// The running host actors, for metrics.
    pub fn hosts(&self) -> Vec<Addr<HostActor>> {
        read(&self.inner.hosts).values().cloned().collect()
    }

    /// The sizes of the registries and queues, for metrics.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            device_sessions: self.num_device_sessions(),
            journal_queue: self.services().journal.queue_depth(),
            webhook_actors: read(&self.inner.webhooks).len(),
            host_actors: read(&self.inner.hosts).len(),
        }
    }

    /// Stops every actor without waiting: device sessions end (their streams close), deliveries in flight are
    /// abandoned and stay pending in the journal, to be delivered after the next start.
    pub fn stop(&self) {
        write(&self.inner.webhooks).clear();
        write(&self.inner.hosts).clear();
        self.inner.runtime.system.stop();
    }

    /// Waits for the actor threads to end (after [`Supervisor::stop`]); blocks the calling thread.
    pub fn join(&self) {
        let thread = self.inner.runtime.thread.lock().unwrap_or_else(|poison| poison.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}
