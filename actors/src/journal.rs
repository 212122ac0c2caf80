//! The journal: the one writer of the hot path. Publishes and attempt outcomes are queued to it; it gathers
//! whatever is waiting (up to a bound) into one batch, writes the batch in one transaction through
//! [`JournalStore`] (group commit), and only then acks the publishes of the batch. A batch that cannot be written
//! answers its publishes with an error (never an ack), so nothing acked is ever lost; attempt records of a failed
//! batch are kept and written with the next one.

use crate::event::{PublishError, SharedEvent};
use crate::ids::{DeliveryId, EventId, WebhookId};
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
}

/// What one transaction writes.
#[derive(Debug, Default)]
pub struct JournalBatch {
    /// Published events and their deliveries.
    pub events: Vec<EventRecord>,
    /// Attempt outcomes.
    pub attempts: Vec<AttemptRecord>,
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
        outbound: mpsc::UnboundedSender<KernelMessage>,
    },
    /// A unary call waiting for the outcome.
    Reply(oneshot::Sender<Result<(), PublishError>>),
}

/// A queued write.
#[derive(Debug)]
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
}

/// The handle actors queue writes through.
#[derive(Debug, Clone)]
pub struct Journal {
    sender: mpsc::Sender<JournalEntry>,
}

impl Journal {
    /// Starts the journal task on the current tokio runtime; it ends when every handle is dropped, after writing
    /// what was queued.
    pub fn start(store: std::sync::Arc<dyn JournalStore>, capacity: usize) -> (Journal, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let task = tokio::spawn(run(store, receiver));
        (Journal { sender }, task)
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
}

/// Tells an ack target that its publish failed.
pub fn nack(ack: AckTarget, error: PublishError) {
    match ack {
        AckTarget::Stream { seq, outbound } => {
            let _ = outbound.send(KernelMessage {
                kind: Some(kernel_message::Kind::Error(hookwire_proto::v1::DeviceError {
                    seq,
                    code: error.code().as_str().to_owned(),
                    message: error.to_string(),
                })),
            });
        }
        AckTarget::Reply(reply) => {
            let _ = reply.send(Err(error));
        }
    }
}

fn ack(ack: AckTarget, record: &EventRecord) {
    match ack {
        AckTarget::Stream { seq, outbound } => {
            let _ = outbound.send(KernelMessage {
                kind: Some(kernel_message::Kind::Ack(PublishAck {
                    seq,
                    event_id: record.event.id.to_string(),
                    num_deliveries: u32::try_from(record.deliveries.len()).unwrap_or(u32::MAX),
                })),
            });
        }
        AckTarget::Reply(reply) => {
            let _ = reply.send(Ok(()));
        }
    }
}

async fn run(store: std::sync::Arc<dyn JournalStore>, mut receiver: mpsc::Receiver<JournalEntry>) {
    let mut entries = Vec::with_capacity(MAX_BATCH_ENTRIES);
    let mut pending_attempts: Vec<AttemptRecord> = Vec::new();
    let mut num_failures = 0u32;
    loop {
        let closed = if pending_attempts.is_empty() {
            receiver.recv_many(&mut entries, MAX_BATCH_ENTRIES).await == 0
        } else {
            // Attempts are waiting for a failing store: retry them even when nothing new arrives.
            let wait = backoff(num_failures);
            matches!(tokio::time::timeout(wait, receiver.recv_many(&mut entries, MAX_BATCH_ENTRIES)).await, Ok(0))
        };
        let mut batch = JournalBatch { events: Vec::new(), attempts: std::mem::take(&mut pending_attempts) };
        let mut acks = Vec::new();
        for entry in entries.drain(..) {
            match entry {
                JournalEntry::Event { record, ack } => {
                    batch.events.push(record);
                    acks.push(ack);
                }
                JournalEntry::Attempt(attempt) => batch.attempts.push(attempt),
            }
        }
        if batch.events.is_empty() && batch.attempts.is_empty() {
            if closed {
                return;
            }
            continue;
        }
        match store.write_batch(&batch).await {
            Ok(()) => {
                num_failures = 0;
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
                isolate(store.as_ref(), batch, acks).await;
            }
        }
        if closed && pending_attempts.is_empty() {
            return;
        }
    }
}

/// How long to wait before writing again after `num_failures` transient failures in a row.
fn backoff(num_failures: u32) -> Duration {
    Duration::from_millis(50 * u64::from(num_failures.clamp(1, 20)))
}

/// Writes the entries of a refused batch one at a time: a refused event is answered with an error, a refused
/// attempt record is logged and dropped (its delivery stays pending and is retried after a restart).
async fn isolate(store: &dyn JournalStore, batch: JournalBatch, acks: Vec<AckTarget>) {
    for (record, target) in batch.events.into_iter().zip(acks) {
        let single = JournalBatch { events: vec![record], attempts: Vec::new() };
        match store.write_batch(&single).await {
            Ok(()) => ack(target, &single.events[0]),
            Err(error) if error.transient => nack(target, PublishError::Unavailable(error.message)),
            Err(error) => {
                tracing::error!(%error, event_id = %single.events[0].event.id, "event refused by storage");
                nack(target, PublishError::Refused(error.message));
            }
        }
    }
    for attempt in batch.attempts {
        let delivery_id = attempt.delivery_id.clone();
        let single = JournalBatch { events: Vec::new(), attempts: vec![attempt] };
        if let Err(error) = store.write_batch(&single).await {
            tracing::error!(%error, %delivery_id, "attempt record refused by storage; dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::ids::GroupId;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct RecordingStore {
        fail: AtomicBool,
        /// Events of this name are refused as bad data.
        refuse_name: Option<&'static str>,
        num_batches: AtomicUsize,
        events: Mutex<Vec<EventId>>,
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
}
