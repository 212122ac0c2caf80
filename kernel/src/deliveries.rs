//! Delivery operations: the attempt log, daily history and replay of a webhook.

use crate::Kernel;
use crate::error::KernelError;
use crate::recovery;
use crate::store::attempts::{self, AttemptRow};
use crate::store::webhooks::WebhookRow;
use hookwire_actors::actors::messages::Dispatch;
use hookwire_actors::domain::event::{Event, validate_publish};
use hookwire_actors::domain::ids::{DeliveryId, EventId, WebhookId};
use hookwire_actors::domain::request::{DeviceProfile, LogMask, mask_logged_headers, render_context, url_for_log};
use hookwire_actors::domain::time;
use hookwire_actors::services::journal::{AckTarget, DeliveryRecord, DeliveryStatus, EventRecord, JournalEntry};
use std::sync::Arc;
use std::time::Duration;

/// How many successes and how many errors the default attempt listing shows, as Particle's console.
pub const RECENT_PER_KIND: i64 = 10;
/// The most attempts one page holds.
pub const MAX_PAGE: u32 = 200;
/// The most days of history one call returns.
pub const MAX_HISTORY_DAYS: u32 = 90;

/// The data of a test event when the caller gives none, as Particle's Test button sends.
pub const DEFAULT_TEST_DATA: &str = "test-event";
/// The name of a test event when the webhook's event prefix is empty (it matches every event).
pub const EMPTY_PREFIX_TEST_EVENT: &str = "test-event";
/// How often a test looks for its attempt in the attempt log.
const TEST_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long a test waits beyond the connect and response timeouts, for the attempt to be written.
const TEST_MARGIN: Duration = Duration::from_secs(5);

/// The outcome of a test delivery.
#[derive(Debug)]
pub struct TestOutcome {
    /// The test event.
    pub event_id: EventId,
    /// Its first attempt, as the attempt log holds it.
    pub attempt: AttemptRow,
}

/// A page of attempts and the token of the next.
#[derive(Debug)]
pub struct AttemptPage {
    /// The attempts, newest first.
    pub attempts: Vec<AttemptRow>,
    /// The token of the next page, if any.
    pub next_page_token: Option<String>,
}

/// One day of counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DayCounts {
    /// Days since the epoch.
    pub day: i64,
    /// Per status, indexed by `DeliveryStatus as usize`.
    pub counts: [u64; 5],
}

/// An attempt as answers show it: masked again under the current words (`mask_names`), so that rows written
/// before a word was added, or by an older version, show no credential either.
fn masked(mut attempt: AttemptRow, mask: &LogMask) -> AttemptRow {
    attempt.request_url = url_for_log(&attempt.request_url, mask);
    for headers in [&mut attempt.request_headers, &mut attempt.response_headers].into_iter().flatten() {
        *headers = mask_logged_headers(headers, mask);
    }
    attempt
}

/// Which deliveries a replay takes.
fn replay_statuses(status: &str) -> Result<&'static [DeliveryStatus], KernelError> {
    match status {
        "" | "failed" => Ok(&[DeliveryStatus::Failed]),
        "skipped" => Ok(&[DeliveryStatus::Skipped]),
        "all" => {
            Ok(&[DeliveryStatus::Succeeded, DeliveryStatus::Failed, DeliveryStatus::Skipped, DeliveryStatus::Dropped])
        }
        other => Err(KernelError::InvalidArgument(format!("status: `{other}` is not one of failed, skipped, all"))),
    }
}

/// Parses an optional time field into epoch milliseconds (`None` for empty): ISO-8601 UTC
/// (`2026-11-22T10:00:00Z`, or a date) or a duration back from now (`90s`, `30m`, `2h`, `7d`).
pub fn parse_since(field: &str, value: &str) -> Result<Option<i64>, KernelError> {
    if value.is_empty() {
        return Ok(None);
    }
    let relative = value.len().checked_sub(1).and_then(|split| {
        let (number, unit) = value.split_at(split);
        let unit_ms: i64 = match unit {
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        number.parse::<i64>().ok().filter(|n| *n >= 0).map(|n| time::now_ms() - n.saturating_mul(unit_ms))
    });
    relative.or_else(|| time::parse_iso8601(value)).map(Some).ok_or_else(|| {
        KernelError::InvalidArgument(format!(
            "{field}: `{value}` is neither an ISO-8601 UTC time (2026-11-22T10:00:00Z) nor a duration back from now (30m, 2h, 7d)"
        ))
    })
}

impl Kernel {
    /// A webhook's attempts: the last successes and errors, or with `all` a page of everything.
    pub async fn list_attempts(
        &self,
        webhook_id: &WebhookId,
        all: bool,
        since_ms: Option<i64>,
        limit: u32,
        page_token: &str,
    ) -> Result<AttemptPage, KernelError> {
        self.get_webhook(webhook_id).await?;
        let since_ms = since_ms.unwrap_or(i64::MIN);
        if !all {
            let attempts = attempts::recent_attempts(self.store.pool(), webhook_id, since_ms, RECENT_PER_KIND).await?;
            let attempts =
                attempts.into_iter().map(|attempt| masked(attempt, &self.services.settings.log_mask)).collect();
            return Ok(AttemptPage { attempts, next_page_token: None });
        }
        let limit = match limit {
            0 => 50,
            1..=MAX_PAGE => limit,
            _ => return Err(KernelError::InvalidArgument(format!("limit: must be at most {MAX_PAGE}"))),
        };
        let before_id = match page_token {
            "" => i64::MAX,
            token => token
                .parse()
                .map_err(|_| KernelError::InvalidArgument("page_token: not a token this server gave".into()))?,
        };
        let attempts =
            attempts::attempt_page(self.store.pool(), webhook_id, since_ms, before_id, i64::from(limit)).await?;
        let next_page_token =
            (attempts.len() == limit as usize).then(|| attempts.last().map(|attempt| attempt.id.to_string())).flatten();
        let attempts = attempts.into_iter().map(|attempt| masked(attempt, &self.services.settings.log_mask)).collect();
        Ok(AttemptPage { attempts, next_page_token })
    }

    /// A webhook's delivery counts per UTC day for the last `days` days (today included), oldest first, every day
    /// present.
    pub async fn history(&self, webhook_id: &WebhookId, days: u32) -> Result<Vec<DayCounts>, KernelError> {
        self.get_webhook(webhook_id).await?;
        let days = match days {
            0 => 31,
            1..=MAX_HISTORY_DAYS => days,
            _ => return Err(KernelError::InvalidArgument(format!("days: must be at most {MAX_HISTORY_DAYS}"))),
        };
        let today = time::now_ms().div_euclid(86_400_000);
        let first = today - i64::from(days) + 1;
        let mut history: Vec<DayCounts> = (first..=today).map(|day| DayCounts { day, counts: [0; 5] }).collect();
        for (day, status, num) in
            crate::store::daily::daily_counts(self.store.pool(), webhook_id, first * 86_400_000).await?
        {
            let (Some(entry), Ok(status)) = (history.get_mut((day - first) as usize), usize::try_from(status)) else {
                continue;
            };
            if let Some(count) = entry.counts.get_mut(status) {
                *count += u64::try_from(num).unwrap_or(0);
            }
        }
        Ok(history)
    }

    /// Delivers again, in bounded batches, a webhook's finished deliveries of `status` created since a time.
    pub async fn replay(&self, webhook_id: &WebhookId, since_ms: i64, status: &str) -> Result<u64, KernelError> {
        let statuses = replay_statuses(status)?;
        self.get_webhook(webhook_id).await?;
        let mut after = String::new();
        let mut num_replayed = 0u64;
        loop {
            let page = attempts::reopen_deliveries(
                self.store.pool(),
                self.membership.node_id(),
                webhook_id,
                since_ms,
                statuses,
                &after,
                recovery::PAGE_SIZE,
            )
            .await?;
            let Some(last) = page.last_selected.clone() else {
                break;
            };
            after = last;
            let is_last_page = (page.num_selected as i64) < recovery::PAGE_SIZE;
            num_replayed += recovery::dispatch(self, page.deliveries).await as u64;
            if is_last_page {
                break;
            }
        }
        tracing::info!(%webhook_id, num_replayed, "replay queued");
        Ok(num_replayed)
    }

    /// Delivers again the delivery of one attempt.
    pub async fn resend_attempt(&self, attempt_id: i64) -> Result<u64, KernelError> {
        let attempt = attempts::get_attempt(self.store.pool(), attempt_id)
            .await?
            .ok_or_else(|| KernelError::NotFound(format!("attempt {attempt_id} not found")))?;
        let now = crate::cluster::database_now(self.store.backend());
        match attempts::reopen_delivery(self.store.pool(), self.membership.node_id(), now, &attempt.delivery_id).await?
        {
            attempts::Reopened::Ready(delivery) => Ok(recovery::dispatch(self, vec![*delivery]).await as u64),
            // Its owner sends it; a second sender would deliver it twice.
            attempts::Reopened::AlreadyPending => Ok(0),
            attempts::Reopened::Missing => {
                Err(KernelError::NotFound(format!("the delivery of attempt {attempt_id} no longer exists")))
            }
        }
    }
}

impl Kernel {
    /// Tests a webhook (resolved by the caller) as Particle's Test button does: an event named after its event
    /// prefix, published as device `api` with `data` (`test-event` by default), journaled like any event and
    /// delivered to this webhook only, through its actor (quota, signing, retries and failure limit apply).
    /// Waits for the first attempt to be in the attempt log, at most the connect and response timeouts and 5 s.
    pub async fn test_webhook(&self, webhook: &WebhookRow, data: Option<String>) -> Result<TestOutcome, KernelError> {
        let compiled = self.services.index.find(&webhook.group_id, &webhook.id).ok_or_else(|| {
            KernelError::InvalidArgument(format!(
                "id: webhook {} cannot fire: its stored definition no longer compiles (see the server log)",
                webhook.id
            ))
        })?;
        let name = match compiled.definition.event.as_str() {
            "" => EMPTY_PREFIX_TEST_EVENT.to_owned(),
            prefix => prefix.to_owned(),
        };
        let data = data.unwrap_or_else(|| DEFAULT_TEST_DATA.to_owned());
        let max_data_bytes = self.services.settings.max_data_bytes;
        if data.len() > max_data_bytes {
            return Err(KernelError::InvalidArgument(format!(
                "data: {} bytes, more than the {max_data_bytes} an event may hold",
                data.len()
            )));
        }
        validate_publish(&name, &data, max_data_bytes).map_err(|error| {
            KernelError::InvalidArgument(format!(
                "id: webhook {}'s event `{name}` cannot be published: {error}",
                webhook.id
            ))
        })?;
        let event = Arc::new(Event::new(webhook.group_id.clone(), None, name, data, 0));
        let delivery_id = DeliveryId::generate();
        let record = EventRecord {
            event: event.clone(),
            deliveries: vec![DeliveryRecord { id: delivery_id.clone(), webhook_id: webhook.id.clone() }],
        };
        // Durable first, as for any publish: the test delivery is then retried, replayed and recovered like others.
        let unavailable =
            || KernelError::Store(crate::store::StoreError::Unavailable("the kernel is shutting down".into()));
        let (reply, durable) = tokio::sync::oneshot::channel();
        let entry = JournalEntry::Event { record, ack: AckTarget::Reply(reply) };
        self.services.journal.append(entry).await.map_err(|_| unavailable())?;
        match durable.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                return Err(KernelError::Store(crate::store::StoreError::Unavailable(error.to_string())));
            }
            Err(_) => return Err(unavailable()),
        }
        let context = Arc::new(render_context(&event, &DeviceProfile::default()));
        // A place among the webhook's deliveries in memory, as every delivery takes.
        let admission = Some(compiled.runtime.admit().await);
        self.services.registry.webhook(&compiled.id).do_send(Dispatch {
            delivery_id: delivery_id.clone(),
            webhook: compiled,
            event: event.clone(),
            context,
            attempt: 1,
            admission,
        });
        tracing::info!(webhook_id = %webhook.id, %delivery_id, "test delivery dispatched");

        let host = &self.services.settings.host;
        let wait = host.connect_timeout + host.response_timeout + TEST_MARGIN;
        let deadline = tokio::time::Instant::now() + wait;
        let delivery = delivery_id.to_string();
        loop {
            if let Some(attempt) = attempts::first_attempt_of(self.store.pool(), &delivery).await? {
                let attempt = masked(attempt, &self.services.settings.log_mask);
                return Ok(TestOutcome { event_id: event.id.clone(), attempt });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(KernelError::DeadlineExceeded(format!(
                    "id: the test delivery {delivery_id} of webhook {} made no attempt within {} s (its quota queue \
                     may hold it); see its attempt log",
                    webhook.id,
                    wait.as_secs()
                )));
            }
            tokio::time::sleep(TEST_POLL_INTERVAL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_statuses_and_times_are_checked_by_name() {
        assert_eq!(replay_statuses("").unwrap(), &[DeliveryStatus::Failed]);
        assert!(replay_statuses("broken").unwrap_err().to_string().starts_with("status:"));
        assert_eq!(parse_since("since", "").unwrap(), None);
        assert!(parse_since("since", "2026-11-22T10:00:00Z").unwrap().is_some());
        let two_hours_ago = parse_since("since", "2h").unwrap().unwrap();
        assert!((time::now_ms() - two_hours_ago - 7_200_000).abs() < 1000);
        assert!(parse_since("since", "yesterday").unwrap_err().to_string().starts_with("since:"));
    }
}
