//! The [`Registry`]: runs the actor system (one arbiter per core, each a thread), starts webhook and host actors
//! on demand on the arbiter their id hashes to (wrapped in `actix::Supervisor`, so an actor that stops is
//! restarted), starts a device actor per session, and keeps the registries (webhook id, host, device -> address).
//!
//! It is a shared handle rather than an actor: the hot path looks addresses up under a read lock and never waits
//! on a mailbox. Starting an actor takes the write lock once per webhook or host.
//!
//! Host actors are bounded: a destination refused before connecting (an address literal in a blocked range, plain
//! http with `https_only`) gets no actor, at most `max_host_actors` run at once (a new destination beyond fails with
//! class `HOST_LIMIT`), and a sweep (at least once a second) drops idle ones ([`crate::actors::host::HostActivity::is_idle`])
//! with their metric series. Dropping the registry's address is all it takes: the actor handles what its mailbox
//! still holds and stops once no address is left, so no request is ever lost to a stop.
//!
//! [`Services`] bundles what every actor uses: the index, the bus, the journal and the registry.

use crate::actors::device::{DeviceActor, Inbound, SessionEndCell};
use crate::actors::host::{
    AttemptOutcome, DeliveryFailure, ErrorClass, HostActivity, HostActor, HostKey, HostSettings, HostState,
    refusal_before_connecting,
};
use crate::actors::messages::Disconnect;
use crate::actors::webhook::WebhookActor;
use crate::domain::egress::EgressPolicy;
use crate::domain::event::SharedEvent;
use crate::domain::ids::{DeviceId, GroupId, WebhookId};
use crate::domain::request::DeviceProfile;
use crate::domain::time::Instant;
use crate::services::bus::EventBus;
use crate::services::index::WebhookIndex;
use crate::services::journal::Journal;
use crate::services::metrics::{HostMetrics, Metrics, Snapshot};
use actix::{Actor, Addr, AsyncContext};
use actix_rt::ArbiterHandle;
use futures::stream::BoxStream;
use hookwire_proto::v1::KernelMessage;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// The default delays before a delivery that met a sleeping host is tried again (Particle's).
pub const DEFAULT_SLEEP_RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(30), Duration::from_secs(60)];
/// The default bound of a webhook's quota queue.
pub const DEFAULT_QUOTA_QUEUE_LIMIT: usize = 1000;
/// The default bound of a device session's outbound queue (acks, errors, pongs).
pub const DEFAULT_DEVICE_OUTBOUND_CAPACITY: usize = 256;
/// The default time a device may leave its full outbound queue unread before its session is ended.
pub const DEFAULT_DEVICE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The default most `Connect` sessions one device may have open at once.
pub const DEFAULT_MAX_SESSIONS_PER_DEVICE: usize = 4;

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
    /// The budget of the renderings of one request, and of one `responseTemplate` rendering: output bytes and steps.
    pub render: crate::domain::template::RenderLimits,
    /// Answers (acks, errors, pongs) queued to one device session, publishes waiting for their ack included; when
    /// the queue is full, the session's input is not read until the device reads its answers.
    pub device_outbound_capacity: usize,
    /// How long a device session may leave its full outbound queue unread before it is ended with
    /// `RESOURCE_EXHAUSTED`.
    pub device_stall_timeout: Duration,
    /// The most `Connect` sessions one device may have open at once; one more is refused with
    /// `RESOURCE_EXHAUSTED`.
    pub max_sessions_per_device: usize,
    /// Most hosts with metric series of their own; hosts beyond share `host="other"`.
    pub max_host_series: usize,
    /// Which header and query parameter values logs and answers show as `***`.
    pub log_mask: crate::domain::request::LogMask,
}

impl Default for ActorSettings {
    fn default() -> Self {
        ActorSettings {
            max_data_bytes: crate::domain::event::DEFAULT_MAX_DATA_BYTES,
            subscriber_queue_capacity: 1024,
            max_response_event_bytes: crate::actors::webhook::DEFAULT_MAX_RESPONSE_EVENT_BYTES,
            max_pin_response_bytes: crate::actors::webhook::DEFAULT_MAX_PIN_RESPONSE_BYTES,
            host: HostSettings::default(),
            num_arbiters: 0,
            sleep_retry_delays: DEFAULT_SLEEP_RETRY_DELAYS.to_vec(),
            quota_queue_limit: DEFAULT_QUOTA_QUEUE_LIMIT,
            max_retry_after: crate::domain::policy::DEFAULT_MAX_RETRY_AFTER,
            render: crate::domain::template::RenderLimits::default(),
            device_outbound_capacity: DEFAULT_DEVICE_OUTBOUND_CAPACITY,
            device_stall_timeout: DEFAULT_DEVICE_STALL_TIMEOUT,
            max_sessions_per_device: DEFAULT_MAX_SESSIONS_PER_DEVICE,
            max_host_series: crate::services::metrics::DEFAULT_MAX_HOST_SERIES,
            log_mask: crate::domain::request::LogMask::default(),
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
    /// The registry.
    pub registry: Registry,
    /// The settings.
    pub settings: Arc<ActorSettings>,
    /// The metrics (the journal's).
    pub metrics: Arc<Metrics>,
    /// What this kernel may send (the attempt gate and deliveries lost to another kernel).
    pub ownership: Arc<crate::services::ownership::Ownership>,
    /// The policies shared with other kernels on the database (quota slots, host sleep), when the kernel shares them.
    pub shared_policy: Arc<crate::services::shared_policy::SharedPolicy>,
}

impl Services {
    /// Starts the actor system and bundles the services; the journal must already run.
    pub fn start(
        settings: ActorSettings,
        journal: Journal,
        egress: EgressPolicy,
        tls: rustls::ClientConfig,
        ownership: Arc<crate::services::ownership::Ownership>,
    ) -> std::io::Result<Arc<Services>> {
        let runtime = ActorRuntime::start(settings.num_arbiters)?;
        let settings = Arc::new(settings);
        let metrics = journal.metrics().clone();
        metrics.set_max_host_series(settings.max_host_series);
        let refused_before_host = metrics.refused_before_host();
        let services = Arc::new_cyclic(|services| Services {
            index: Arc::new(WebhookIndex::default()),
            bus: Arc::new(EventBus::default()),
            metrics: metrics.clone(),
            ownership,
            shared_policy: Arc::default(),
            journal,
            registry: Registry {
                inner: Arc::new(RegistryInner {
                    runtime,
                    services: services.clone(),
                    host_settings: Arc::new(settings.host.clone()),
                    tls: Arc::new(tls),
                    egress: Arc::new(egress),
                    metrics,
                    refused_before_host,
                    webhooks: RwLock::default(),
                    hosts: RwLock::default(),
                    last_sweep_at_cap_ms: AtomicI64::new(0),
                    last_limit_warning_ms: AtomicI64::new(0),
                    num_refused_at_cap: AtomicU64::new(0),
                    devices: Mutex::default(),
                    next_session_id: AtomicU64::new(1),
                }),
            },
            settings,
        });
        services.registry.start_host_sweep();
        Ok(services)
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

/// Why a device's `Connect` was refused: it has as many sessions open as it may.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "session: this device already has {max_sessions} sessions open, the most it may have (max_sessions_per_device); close one first"
)]
pub struct TooManySessions {
    /// The limit.
    pub max_sessions: usize,
}

/// The shared registry handle.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<RegistryInner>,
}

#[derive(Debug)]
struct RegistryInner {
    runtime: ActorRuntime,
    services: Weak<Services>,
    host_settings: Arc<HostSettings>,
    tls: Arc<rustls::ClientConfig>,
    egress: Arc<EgressPolicy>,
    metrics: Arc<Metrics>,
    /// The `host="other"` counters, for attempts refused before any host actor.
    refused_before_host: HostMetrics,
    webhooks: RwLock<HashMap<WebhookId, Addr<WebhookActor>>>,
    hosts: RwLock<HashMap<HostKey, HostEntry>>,
    /// When a new destination at the host cap last swept the registry, epoch milliseconds.
    last_sweep_at_cap_ms: AtomicI64,
    /// When the host cap was last reported in the log, epoch milliseconds, and the refusals since.
    last_limit_warning_ms: AtomicI64,
    num_refused_at_cap: AtomicU64,
    devices: Mutex<HashMap<DeviceId, HashMap<u64, Addr<DeviceActor>>>>,
    next_session_id: AtomicU64,
}

/// A running host actor and what it did lately.
#[derive(Debug)]
struct HostEntry {
    addr: Addr<HostActor>,
    activity: Arc<HostActivity>,
}

/// The shortest and longest time between two sweeps for idle host actors.
const HOST_SWEEP_BOUNDS: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

/// The shortest time between two log warnings that the host cap refused new destinations.
const HOST_LIMIT_WARNING_PERIOD: Duration = Duration::from_secs(10);

/// What the kernel streams back to a connected device.
#[derive(Debug)]
pub struct DeviceSession {
    /// Acks, errors and pongs (a bounded queue: see [`ActorSettings::device_outbound_capacity`]).
    pub outbound: mpsc::Receiver<Box<KernelMessage>>,
    /// Why the kernel ended the session, once it did: the stream ends with it.
    pub ended: SessionEndCell,
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

impl Registry {
    fn arbiter_for(&self, key: &impl Hash) -> &ArbiterHandle {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let arbiters = &self.inner.runtime.arbiters;
        &arbiters[(hasher.finish() % arbiters.len() as u64) as usize]
    }

    fn services(&self) -> Arc<Services> {
        self.inner.services.upgrade().expect("services outlive the registry they own")
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

    /// The actor of a destination, started if it is not running. A destination refused before connecting gets
    /// none (the answer is its `BLOCKED` failure), nor does a new one while `max_host_actors` run (`HOST_LIMIT`).
    pub fn host(&self, key: HostKey) -> Result<Addr<HostActor>, DeliveryFailure> {
        if let Some(entry) = read(&self.inner.hosts).get(&key) {
            return Ok(entry.addr.clone());
        }
        let inner = &self.inner;
        let refuse = |class: ErrorClass, message: String| {
            inner.refused_before_host.record(&AttemptOutcome::not_sent(class, message.clone()));
            Err(DeliveryFailure { class, message })
        };
        if let Some(refusal) = refusal_before_connecting(&key, &inner.host_settings, &inner.egress) {
            return refuse(ErrorClass::Blocked, refusal);
        }
        let mut hosts = write(&inner.hosts);
        if let Some(entry) = hosts.get(&key) {
            return Ok(entry.addr.clone());
        }
        let max_host_actors = inner.host_settings.max_host_actors;
        if hosts.len() >= max_host_actors && self.may_sweep_now() {
            // Idle actors wait for the next sweep; at the cap, they make room now rather than refuse.
            self.retire_idle(&mut hosts, Instant::now());
        }
        if hosts.len() >= max_host_actors {
            drop(hosts);
            self.warn_host_limit(&key, max_host_actors);
            return refuse(
                ErrorClass::HostLimit,
                format!(
                    "HOST_LIMIT: destination {key} not tried: {max_host_actors} destination hosts are already active \
                     (max_host_actors); try again later"
                ),
            );
        }
        let arbiter = self.arbiter_for(&key).clone();
        let (settings, tls, egress) = (inner.host_settings.clone(), inner.tls.clone(), inner.egress.clone());
        let metrics = inner.metrics.host(&key);
        let shared_policy = self.services().shared_policy.clone();
        let actor =
            HostActor::new(key.clone(), settings, tls, egress).with_metrics(metrics).with_shared_policy(shared_policy);
        let activity = actor.activity();
        // Built here so that its activity is known; a restart keeps the same actor (actix calls `restarting`).
        let addr = actix::Supervisor::start_in_arbiter(&arbiter, move |_| actor);
        hosts.insert(key, HostEntry { addr: addr.clone(), activity });
        Ok(addr)
    }

    /// Logs destinations refused at the host cap: one warning per [`HOST_LIMIT_WARNING_PERIOD`] with the number
    /// refused since the last, so that a flood of new destinations does not flood the log too.
    fn warn_host_limit(&self, key: &HostKey, max_host_actors: usize) {
        let inner = &self.inner;
        let num_refused = inner.num_refused_at_cap.fetch_add(1, Ordering::Relaxed) + 1;
        let now_ms = crate::domain::time::now_ms();
        let last_ms = inner.last_limit_warning_ms.load(Ordering::Relaxed);
        let period_ms = i64::try_from(HOST_LIMIT_WARNING_PERIOD.as_millis()).unwrap_or(i64::MAX);
        if now_ms.saturating_sub(last_ms) < period_ms
            || inner
                .last_limit_warning_ms
                .compare_exchange(last_ms, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        inner.num_refused_at_cap.fetch_sub(num_refused, Ordering::Relaxed);
        tracing::warn!(host = %key, max_host_actors, num_refused, "host actor limit reached: new destinations refused");
    }

    /// Starts the sweep that stops idle host actors, on the first arbiter; it ends with the actor system.
    fn start_host_sweep(&self) {
        let idle_timeout = self.inner.host_settings.idle_timeout;
        let (shortest, longest) = HOST_SWEEP_BOUNDS;
        let period = (idle_timeout / 4).clamp(shortest, longest);
        let registry = Arc::downgrade(&self.inner);
        self.inner.runtime.arbiters[0].spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = registry.upgrade() else {
                    return;
                };
                Registry { inner }.retire_idle_hosts(Instant::now());
            }
        });
    }

    /// Drops the idle host actors from the registry (each stops once its mailbox is handled and no address is
    /// left) and removes their metric series; returns how many. Under the registry's write lock, so that a new actor
    /// for the same host never loses its series to the old one's removal.
    pub fn retire_idle_hosts(&self, now: Instant) -> usize {
        let mut hosts = write(&self.inner.hosts);
        let num_retired = self.retire_idle(&mut hosts, now);
        drop(hosts);
        if num_retired > 0 {
            tracing::debug!(num_retired, "idle host actors stopped");
        }
        num_retired
    }

    fn retire_idle(&self, hosts: &mut HashMap<HostKey, HostEntry>, now: Instant) -> usize {
        let idle_timeout = self.inner.host_settings.idle_timeout;
        let before = hosts.len();
        hosts.retain(|key, entry| {
            if !entry.activity.is_idle(now, idle_timeout) {
                return true;
            }
            self.inner.metrics.remove_host(key);
            false
        });
        before - hosts.len()
    }

    /// Whether a sweep at the host cap may run now: at most one per [`HOST_SWEEP_BOUNDS`]'s shortest period, so
    /// that new destinations arriving at the cap do not each scan the registry under its write lock.
    fn may_sweep_now(&self) -> bool {
        let now_ms = crate::domain::time::now_ms();
        let last_ms = self.inner.last_sweep_at_cap_ms.load(Ordering::Relaxed);
        let period_ms = i64::try_from(HOST_SWEEP_BOUNDS.0.as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_sub(last_ms) >= period_ms
            && self
                .inner
                .last_sweep_at_cap_ms
                .compare_exchange(last_ms, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Starts a session for a device that authenticated: its actor reads `inbound`; the returned session is
    /// what the kernel streams back. Refused when the device already has
    /// [`ActorSettings::max_sessions_per_device`] sessions open.
    pub fn start_device(
        &self,
        profile: Arc<DeviceProfile>,
        group_id: GroupId,
        inbound: BoxStream<'static, Inbound>,
    ) -> Result<DeviceSession, TooManySessions> {
        let services = self.services();
        let max_sessions = services.settings.max_sessions_per_device;
        let device_id = profile.id.clone();
        // Counted and registered under one lock, so that sessions opened at once cannot all pass the count.
        let mut devices = self.inner.devices.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(device_id) = &device_id
            && devices.get(device_id).is_some_and(|sessions| sessions.len() >= max_sessions)
        {
            tracing::info!(%device_id, max_sessions, "device session refused: too many open");
            return Err(TooManySessions { max_sessions });
        }
        let session_id = self.inner.next_session_id.fetch_add(1, Ordering::Relaxed);
        let (outbound_sender, outbound) = mpsc::channel(services.settings.device_outbound_capacity.max(1));
        let ended = SessionEndCell::default();
        let (sink, events) =
            services.bus.sink(group_id.clone(), device_id.clone(), services.settings.subscriber_queue_capacity);
        let num_dropped = sink.sink().dropped_counter();
        let arbiter = self.arbiter_for(&device_id);
        let actor_ended = ended.clone();
        let addr = DeviceActor::start_in_arbiter(arbiter, move |ctx| {
            ctx.add_stream(inbound);
            DeviceActor::new(session_id, profile, group_id, services, outbound_sender, actor_ended, sink)
        });
        if let Some(device_id) = device_id {
            devices.entry(device_id).or_default().insert(session_id, addr);
        }
        Ok(DeviceSession { outbound, ended, events, num_dropped })
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

    /// The running host actors.
    pub fn hosts(&self) -> Vec<Addr<HostActor>> {
        read(&self.inner.hosts).values().map(|entry| entry.addr.clone()).collect()
    }

    /// How the running hosts are doing, for metrics: read from their shared activity, without a message each.
    pub fn host_states(&self) -> Vec<HostState> {
        let now = Instant::now();
        read(&self.inner.hosts).values().map(|entry| entry.activity.state(now)).collect()
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

    /// Waits for the actor threads to end (after [`Registry::stop`]); blocks the calling thread.
    pub fn join(&self) {
        let thread = self.inner.runtime.thread.lock().unwrap_or_else(|poison| poison.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests;
