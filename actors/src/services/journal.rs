//! The journal: the one writer of the hot path. Publishes and attempt outcomes are queued to it; it gathers
//! whatever is waiting (up to a bound) into one batch, writes the batch in one transaction through
//! [`JournalStore`] (group commit), and only then acks the publishes of the batch. A batch that cannot be written
//! answers its publishes with an error (never an ack), so nothing acked is ever lost; attempt records of a failed
//! batch are kept and written with the next one.

use crate::domain::event::{PublishError, SharedEvent};
use crate::domain::ids::{DeliveryId, EventId, WebhookId};
use crate::services::metrics::Metrics;
use futures::future::BoxFuture;
use hookwire_proto::v1::{KernelMessage, PublishAck, kernel_message};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The most entries one batch holds.
pub const MAX_BATCH_ENTRIES: usize = 2048;
/// The most attempt records kept while the store is failing; older ones are logged and discarded.
const MAX_PENDING_ATTEMPTS: usize = 100_000;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i16)]
pub enum DeliveryStatus {
    /// Not yet finished: delivered again after a restart.
    Pending = 0,
    /// A 2xx answer.
    Succeeded = 1,
    /// Finished with an error.
    Failed = 2,
    /// Never sent because the host slept.
    Skipped = 3,
    /// Given up on for another reason (quota overflow, webhook deleted).
    Dropped = 4,
}

impl DeliveryStatus {
    /// The lowercase name (`succeeded`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Skipped => "skipped",
            DeliveryStatus::Dropped => "dropped",
        }
    }

    /// Reads the stored number back.
    pub fn from_i16(value: i16) -> Option<Self> {
        Some(match value {
            0 => DeliveryStatus::Pending,
            1 => DeliveryStatus::Succeeded,
            2 => DeliveryStatus::Failed,
            3 => DeliveryStatus::Skipped,
            4 => DeliveryStatus::Dropped,
            _ => return None,
        })
    }
}

/// One delivery created by a publish.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    /// The delivery.
    pub id: DeliveryId,
    /// The webhook it goes to.
    pub webhook_id: WebhookId,
}

/// A published event with its deliveries.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// The event.
    pub event: SharedEvent,
    /// Its deliveries, one per matching webhook.
    pub deliveries: Vec<DeliveryRecord>,
}

/// One attempt at a delivery, and the delivery's status after it.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// Its webhook.
    pub webhook_id: WebhookId,
    /// Its event.
    pub event_id: EventId,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When the attempt started, epoch milliseconds.
    pub started_at_ms: i64,
    /// How long it took.
    pub duration_ms: i64,
    /// The request method.
    pub request_method: String,
    /// The request URL.
    pub request_url: String,
    /// The response status, when there was a response.
    pub response_status: Option<u16>,
    /// The error class (`http_5xx`, `ECONNREFUSED`, ...), when the attempt failed.
    pub error_class: Option<&'static str>,
    /// A message a user can act on, when the attempt failed.
    pub error_message: Option<String>,
    /// The delivery's status after this attempt.
    pub delivery_status: DeliveryStatus,
    /// When the next attempt is due (epoch milliseconds), for a delivery that stays pending: whoever sends it
    /// next (this kernel after a restart, or another after a takeover) honours the backoff.
    pub next_attempt_at_ms: Option<i64>,
    /// The request's headers as a JSON object, secrets masked (empty when nothing was sent).
    pub request_headers: String,
    /// The first [`crate::domain::request::MAX_LOGGED_BODY_BYTES`] of the request body.
    pub request_body: bytes::Bytes,
    /// The response's headers as a JSON object, when a response came.
    pub response_headers: Option<String>,
    /// The first [`crate::domain::request::MAX_LOGGED_BODY_BYTES`] of the response body, when a response came.
    pub response_body: Option<bytes::Bytes>,
}

/// A webhook's run-time state after a delivery changed it: what survives a restart of its failure limit, and
/// what every kernel sharing the database counts together. The store applies it as a change (a success resets
/// the stored count, each failure adds one to it), never as an overwrite, so that kernels never undo each
/// other's counts, and a stored disable is never cleared by it (only by `enable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookStateRecord {
    /// The webhook.
    pub webhook_id: WebhookId,
    /// Its consecutive failed deliveries as this kernel counts them.
    pub consecutive_failures: u32,
    /// Why it is disabled at run time (`5 consecutive failures`, `410 Gone from example.com`); `None` when it is not.
    pub disabled_reason: Option<String>,
    /// True when a successful delivery reset the count first.
    pub is_reset: bool,
    /// Failed deliveries added to the count (after the reset, if any).
    pub num_failures_added: u32,
    /// The webhook's `x-failureLimit` (0: none): the store disables it when the shared count reaches it.
    pub failure_limit: u32,
}

impl WebhookStateRecord {
    /// Folds a later change of the same webhook into this one.
    fn absorb(&mut self, later: WebhookStateRecord) {
        if later.is_reset {
            self.is_reset = true;
            self.num_failures_added = later.num_failures_added;
        } else {
            self.num_failures_added = self.num_failures_added.saturating_add(later.num_failures_added);
        }
        self.consecutive_failures = later.consecutive_failures;
        self.failure_limit = later.failure_limit;
        if self.disabled_reason.is_none() {
            self.disabled_reason = later.disabled_reason;
        }
    }
}

/// What one transaction writes.
#[derive(Debug, Default)]
pub struct JournalBatch {
    /// Published events and their deliveries.
    pub events: Vec<EventRecord>,
    /// Attempt outcomes.
    pub attempts: Vec<AttemptRecord>,
    /// Webhook states, oldest first (of several for one webhook, the last one holds).
    pub webhook_states: Vec<WebhookStateRecord>,
}

/// Why a batch could not be written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct JournalError {
    /// What went wrong.
    pub message: String,
    /// True when the storage itself failed (down, full): writing again later may succeed. False when the
    /// storage refused the data, which the journal then isolates entry by entry.
    pub transient: bool,
}

/// Durable storage for batches; the kernel implements it over SQL. `write_batch` writes everything in one
/// transaction or nothing.
pub trait JournalStore: Send + Sync + 'static {
    /// Writes a batch atomically.
    fn write_batch<'a>(&'a self, batch: &'a JournalBatch) -> BoxFuture<'a, Result<(), JournalError>>;
}

/// Who is told when a publish is durable.
#[derive(Debug)]
pub enum AckTarget {
    /// A device stream: a `PublishAck` (or an error) with the device's `seq` is queued to its outbound channel.
    Stream {
        /// The device's sequence number for the publish.
        seq: u64,
        /// The device session's outbound channel.
        outbound: crate::actors::device::Outbound,
    },
    /// A unary call waiting for the outcome.
    Reply(oneshot::Sender<Result<(), PublishError>>),
}

/// A queued write.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "entries move by value through a bounded channel; boxing the attempt would cost an allocation per delivery"
)]
pub enum JournalEntry {
    /// A publish, acked once written.
    Event {
        /// The event and deliveries.
        record: EventRecord,
        /// Who to tell.
        ack: AckTarget,
    },
    /// An attempt outcome.
    Attempt(AttemptRecord),
    /// A webhook's state changed (failure count, disabled).
    WebhookState(WebhookStateRecord),
}

/// The handle actors queue writes through.
#[derive(Debug, Clone)]
pub struct Journal {
    sender: mpsc::Sender<JournalEntry>,
    metrics: std::sync::Arc<Metrics>,
}

impl Journal {
    /// Starts the journal task on the current tokio runtime; it ends when every handle is dropped, after writing
    /// what was queued.
    pub fn start(store: std::sync::Arc<dyn JournalStore>, capacity: usize) -> (Journal, tokio::task::JoinHandle<()>) {
        Journal::start_with_metrics(store, capacity, std::sync::Arc::default())
    }

    /// Starts the journal like [`Journal::start`], counting into `metrics` (the kernel's, shared by the actors).
    pub fn start_with_metrics(
        store: std::sync::Arc<dyn JournalStore>,
        capacity: usize,
        metrics: std::sync::Arc<Metrics>,
    ) -> (Journal, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let task = tokio::spawn(run(store, receiver, metrics.clone()));
        (Journal { sender, metrics }, task)
    }

    /// The metrics it counts into.
    pub fn metrics(&self) -> &std::sync::Arc<Metrics> {
        &self.metrics
    }

    /// Entries waiting for the next batch.
    pub fn queue_depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }

    /// Queues an entry if there is room; gives it back when the queue is full (or the journal has stopped).
    #[allow(
        clippy::result_large_err,
        reason = "the entry is handed back to be sent later; boxing would cost an allocation per event"
    )]
    pub fn try_append(&self, entry: JournalEntry) -> Result<(), mpsc::error::TrySendError<JournalEntry>> {
        self.sender.try_send(entry)
    }

    /// Queues an entry, waiting for room.
    pub async fn append(&self, entry: JournalEntry) -> Result<(), JournalEntry> {
        self.sender.send(entry).await.map_err(|error| error.0)
    }

    /// A journal with no task: the caller reads the entries, and acks publishes, itself (actor tests).
    #[cfg(test)]
    pub(crate) fn unstarted(capacity: usize) -> (Journal, mpsc::Receiver<JournalEntry>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (Journal { sender, metrics: std::sync::Arc::default() }, receiver)
    }
}

/// Tells an ack target that its publish failed.
pub fn nack(ack: AckTarget, error: PublishError) {
    match ack {
        AckTarget::Stream { seq, outbound } => {
            let _ = outbound.send(Box::new(KernelMessage {
                kind: Some(kernel_message::Kind::Error(hookwire_proto::v1::DeviceError {
                    seq,
                    code: error.code().as_str().to_owned(),
                    message: error.to_string(),
                })),
            }));
        }
        AckTarget::Reply(reply) => {
            let _ = reply.send(Err(error));
        }
    }
}

fn ack(ack: AckTarget, record: &EventRecord) {
    match ack {
        AckTarget::Stream { seq, outbound } => {
            let _ = outbound.send(Box::new(KernelMessage {
                kind: Some(kernel_message::Kind::Ack(PublishAck {
                    seq,
                    event_id: record.event.id.to_string(),
                    num_deliveries: u32::try_from(record.deliveries.len()).unwrap_or(u32::MAX),
                })),
            }));
        }
        AckTarget::Reply(reply) => {
            let _ = reply.send(Ok(()));
        }
    }
}

async fn run(
    store: std::sync::Arc<dyn JournalStore>,
    mut receiver: mpsc::Receiver<JournalEntry>,
    metrics: std::sync::Arc<Metrics>,
) {
    let mut entries = Vec::with_capacity(MAX_BATCH_ENTRIES);
    let mut pending_attempts: Vec<AttemptRecord> = Vec::new();
    let mut pending_states: Vec<WebhookStateRecord> = Vec::new();
    let mut num_failures = 0u32;
    loop {
        let closed = if pending_attempts.is_empty() && pending_states.is_empty() {
            receiver.recv_many(&mut entries, MAX_BATCH_ENTRIES).await == 0
        } else {
            // Attempts are waiting for a failing store: retry them even when nothing new arrives.
            let wait = backoff(num_failures);
            matches!(tokio::time::timeout(wait, receiver.recv_many(&mut entries, MAX_BATCH_ENTRIES)).await, Ok(0))
        };
        let mut batch = JournalBatch {
            events: Vec::new(),
            attempts: std::mem::take(&mut pending_attempts),
            webhook_states: std::mem::take(&mut pending_states),
        };
        let mut acks = Vec::new();
        for entry in entries.drain(..) {
            match entry {
                JournalEntry::Event { record, ack } => {
                    batch.events.push(record);
                    acks.push(ack);
                }
                JournalEntry::Attempt(attempt) => batch.attempts.push(attempt),
                JournalEntry::WebhookState(state) => batch.webhook_states.push(state),
            }
        }
        if batch.webhook_states.len() > 1 {
            batch.webhook_states = latest_states(std::mem::take(&mut batch.webhook_states));
        }
        if batch.events.is_empty() && batch.attempts.is_empty() && batch.webhook_states.is_empty() {
            if closed {
                return;
            }
            continue;
        }
        let started = crate::domain::time::Instant::now();
        let written = store.write_batch(&batch).await;
        metrics.journal_commit_seconds.observe(started.elapsed().as_secs_f64());
        if written.is_err() {
            metrics.journal_write_failures.inc();
        }
        match written {
            Ok(()) => {
                num_failures = 0;
                metrics.events.inc_by(batch.events.len() as u64);
                for (target, record) in acks.into_iter().zip(&batch.events) {
                    ack(target, record);
                }
            }
            Err(error) if error.transient => {
                num_failures += 1;
                tracing::error!(%error, num_events = batch.events.len(), num_attempts = batch.attempts.len(), "journal write failed; storage unavailable");
                for target in acks {
                    nack(target, PublishError::Unavailable(error.message.clone()));
                }
                pending_attempts = batch.attempts;
                // States are few (one per webhook matters): keep them all.
                pending_states = batch.webhook_states;
                if pending_attempts.len() > MAX_PENDING_ATTEMPTS {
                    let excess = pending_attempts.len() - MAX_PENDING_ATTEMPTS;
                    tracing::error!(num_discarded = excess, "attempt records discarded while storage is down");
                    pending_attempts.drain(..excess);
                }
                if closed {
                    if num_failures > 3 {
                        tracing::error!(
                            num_lost = pending_attempts.len(),
                            "journal stopped with attempt records unwritten"
                        );
                        return;
                    }
                    tokio::time::sleep(backoff(num_failures)).await;
                }
            }
            Err(error) => {
                // The data, not the database, was refused: write the entries one by one, so that only the faulty
                // one fails and every other publish of the batch is acked.
                tracing::warn!(%error, num_events = batch.events.len(), "journal batch refused; writing its entries one by one");
                isolate(store.as_ref(), batch, acks, &metrics).await;
            }
        }
        if closed && pending_attempts.is_empty() && pending_states.is_empty() {
            return;
        }
    }
}

/// One change per webhook, the changes of each folded together in order, in the order of their last change.
fn latest_states(states: Vec<WebhookStateRecord>) -> Vec<WebhookStateRecord> {
    let mut folded: Vec<WebhookStateRecord> = Vec::with_capacity(states.len());
    for state in states {
        match folded.iter().position(|earlier| earlier.webhook_id == state.webhook_id) {
            Some(index) => {
                let mut earlier = folded.remove(index);
                earlier.absorb(state);
                folded.push(earlier);
            }
            None => folded.push(state),
        }
    }
    folded
}

/// How long to wait before writing again after `num_failures` transient failures in a row.
fn backoff(num_failures: u32) -> Duration {
    Duration::from_millis(50 * u64::from(num_failures.clamp(1, 20)))
}

/// Writes the entries of a refused batch one at a time: a refused event is answered with an error, a refused
/// attempt record is logged and dropped (its delivery stays pending and is retried after a restart).
async fn isolate(store: &dyn JournalStore, batch: JournalBatch, acks: Vec<AckTarget>, metrics: &Metrics) {
    for (record, target) in batch.events.into_iter().zip(acks) {
        let single = JournalBatch { events: vec![record], ..JournalBatch::default() };
        match store.write_batch(&single).await {
            Ok(()) => {
                metrics.events.inc();
                ack(target, &single.events[0]);
            }
            Err(error) if error.transient => nack(target, PublishError::Unavailable(error.message)),
            Err(error) => {
                tracing::error!(%error, event_id = %single.events[0].event.id, "event refused by storage");
                nack(target, PublishError::Refused(error.message));
            }
        }
    }
    for attempt in batch.attempts {
        let delivery_id = attempt.delivery_id.clone();
        let single = JournalBatch { attempts: vec![attempt], ..JournalBatch::default() };
        if let Err(error) = store.write_batch(&single).await {
            tracing::error!(%error, %delivery_id, "attempt record refused by storage; dropped");
        }
    }
    if !batch.webhook_states.is_empty() {
        let states = JournalBatch { webhook_states: batch.webhook_states, ..JournalBatch::default() };
        if let Err(error) = store.write_batch(&states).await {
            tracing::error!(%error, num_states = states.webhook_states.len(), "webhook states refused by storage; dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Event;
    use crate::domain::ids::GroupId;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct RecordingStore {
        fail: AtomicBool,
        /// Events of this name are refused as bad data.
        refuse_name: Option<&'static str>,
        num_batches: AtomicUsize,
        events: Mutex<Vec<EventId>>,
        states: Mutex<Vec<WebhookStateRecord>>,
    }

    impl JournalStore for RecordingStore {
        fn write_batch<'a>(&'a self, batch: &'a JournalBatch) -> BoxFuture<'a, Result<(), JournalError>> {
            Box::pin(async move {
                if self.fail.load(Ordering::SeqCst) {
                    return Err(JournalError { message: "disk full".into(), transient: true });
                }
                if batch.events.iter().any(|record| Some(record.event.name.as_str()) == self.refuse_name) {
                    return Err(JournalError { message: "invalid byte sequence".into(), transient: false });
                }
                self.num_batches.fetch_add(1, Ordering::SeqCst);
                self.events.lock().unwrap().extend(batch.events.iter().map(|r| r.event.id.clone()));
                self.states.lock().unwrap().extend(batch.webhook_states.iter().cloned());
                Ok(())
            })
        }
    }

    fn entry(reply: oneshot::Sender<Result<(), PublishError>>) -> JournalEntry {
        named_entry("x", reply)
    }

    fn named_entry(name: &str, reply: oneshot::Sender<Result<(), PublishError>>) -> JournalEntry {
        let event = Arc::new(Event::new(GroupId::generate(), None, name.into(), String::new(), 0));
        JournalEntry::Event { record: EventRecord { event, deliveries: Vec::new() }, ack: AckTarget::Reply(reply) }
    }

    #[tokio::test]
    async fn publishes_are_acked_after_their_batch_is_written_and_batched_together() {
        let store = Arc::new(RecordingStore::default());
        let (journal, _task) = Journal::start(store.clone(), 1024);
        let mut replies = Vec::new();
        for _ in 0..100 {
            let (tx, rx) = oneshot::channel();
            journal.try_append(entry(tx)).unwrap();
            replies.push(rx);
        }
        for reply in replies {
            reply.await.unwrap().unwrap();
        }
        assert_eq!(store.events.lock().unwrap().len(), 100);
        assert!(store.num_batches.load(Ordering::SeqCst) < 100, "publishes queued together share a batch");
    }

    #[tokio::test]
    async fn a_failed_write_answers_unavailable_and_never_acks() {
        let store = Arc::new(RecordingStore::default());
        store.fail.store(true, Ordering::SeqCst);
        let (journal, _task) = Journal::start(store.clone(), 16);
        let (tx, rx) = oneshot::channel();
        journal.try_append(entry(tx)).unwrap();
        let error = rx.await.unwrap().unwrap_err();
        assert!(matches!(error, PublishError::Unavailable(_)));
        assert!(store.events.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_event_the_store_refuses_fails_alone_and_the_rest_of_its_batch_is_acked() {
        let store = Arc::new(RecordingStore { refuse_name: Some("poison"), ..RecordingStore::default() });
        let (journal, _task) = Journal::start(store.clone(), 1024);
        let mut replies = Vec::new();
        for name in ["a", "poison", "b"] {
            let (tx, rx) = oneshot::channel();
            journal.try_append(named_entry(name, tx)).unwrap();
            replies.push(rx);
        }
        let mut outcomes = Vec::new();
        for reply in replies {
            outcomes.push(reply.await.unwrap());
        }
        assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
        assert!(matches!(outcomes[1], Err(PublishError::Refused(_))), "{outcomes:?}");
        assert_eq!(store.events.lock().unwrap().len(), 2);
    }

    fn state(webhook_id: &WebhookId, consecutive_failures: u32) -> JournalEntry {
        let disabled_reason =
            (consecutive_failures >= 3).then(|| format!("{consecutive_failures} consecutive failures"));
        JournalEntry::WebhookState(WebhookStateRecord {
            webhook_id: webhook_id.clone(),
            consecutive_failures,
            disabled_reason,
            is_reset: false,
            num_failures_added: 1,
            failure_limit: 3,
        })
    }

    #[tokio::test]
    async fn webhook_states_share_the_batch_and_only_the_latest_of_each_webhook_is_written() {
        let store = Arc::new(RecordingStore::default());
        let (journal, _task) = Journal::start(store.clone(), 1024);
        let (first, second) = (WebhookId::generate(), WebhookId::generate());
        for (webhook_id, count) in [(&first, 1), (&second, 1), (&first, 2), (&first, 3)] {
            journal.try_append(state(webhook_id, count)).unwrap();
        }
        let (tx, rx) = oneshot::channel();
        journal.try_append(entry(tx)).unwrap();
        rx.await.unwrap().unwrap();
        let states = store.states.lock().unwrap().clone();
        let written: Vec<(&WebhookId, u32)> =
            states.iter().map(|state| (&state.webhook_id, state.consecutive_failures)).collect();
        assert_eq!(written, [(&second, 1), (&first, 3)]);
        assert_eq!(states[1].num_failures_added, 3, "the changes of one webhook fold together");
        assert_eq!(states[1].disabled_reason.as_deref(), Some("3 consecutive failures"));
        assert_eq!(store.num_batches.load(Ordering::SeqCst), 1, "one transaction with the event");
    }

    #[tokio::test]
    async fn webhook_states_wait_for_a_failing_store_and_are_written_once_it_recovers() {
        let store = Arc::new(RecordingStore::default());
        store.fail.store(true, Ordering::SeqCst);
        let (journal, _task) = Journal::start(store.clone(), 16);
        let webhook_id = WebhookId::generate();
        journal.try_append(state(&webhook_id, 1)).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(store.states.lock().unwrap().is_empty());
        store.fail.store(false, Ordering::SeqCst);
        for _ in 0..100 {
            if !store.states.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(store.states.lock().unwrap().len(), 1, "written after the store came back");
    }
}
