//! The webhook actor on paused time: its policies (retry backoff, `Retry-After`, the rate quota, a sleeping host,
//! the failure limit) checked at the exact virtual instants they act, against a destination that answers as
//! told (see [`crate::actors::testing`]). Each test takes a few milliseconds of real time.

use super::WebhookActor;
use crate::actors::testing::{Destination, JournalReader, dispatch, services, webhook};
use crate::services::journal::DeliveryStatus::{Dropped, Failed, Pending, Skipped, Succeeded};
use actix::Actor;
use serde_json::json;
use std::time::Duration;

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// A destination blocked by the egress rules: every attempt fails at once (`BLOCKED`), with no host actor and no
/// request, so that the attempt is journaled at the instant it is made.
const BLOCKED_URL: &str = "http://10.0.0.1/";

#[actix_rt::test]
async fn a_retried_delivery_is_attempted_at_the_times_of_its_backoff_schedule() {
    tokio::time::pause();
    let destination = Destination::start(&[(503, &[]), (503, &[]), (200, &[])]);
    let (services, entries) = services(|_| {});
    let hook = webhook(json!({"event": "job", "url": destination.url,
        "x-retry": {"attempts": 4, "backoff": [30_000, 120_000], "jitter": false}}));
    let actor = WebhookActor::new(hook.id.clone(), services.clone()).start();
    let mut journal = JournalReader::new(entries);

    let delivery = dispatch(&hook, "1");
    let delivery_id = delivery.delivery_id.clone();
    actor.do_send(delivery);
    let attempts = journal.attempts(3).await;

    let times: Vec<Duration> = attempts.iter().map(|(at, _)| *at).collect();
    assert_eq!(times, [secs(0), secs(30), secs(150)], "after 30 s, then after 120 s more");
    let numbers: Vec<u32> = attempts.iter().map(|(_, attempt)| attempt.attempt).collect();
    assert_eq!(numbers, [1, 2, 3]);
    let statuses: Vec<_> = attempts.iter().map(|(_, attempt)| attempt.delivery_status).collect();
    assert_eq!(statuses, [Pending, Pending, Succeeded], "pending until the success");
    assert!(attempts.iter().all(|(_, attempt)| attempt.delivery_id == delivery_id), "one delivery");
    assert_eq!(destination.num_requests(), 3);
    services.registry.stop();
}

#[actix_rt::test]
async fn with_jitter_each_retry_waits_between_half_and_all_of_its_scheduled_delay() {
    tokio::time::pause();
    let destination = Destination::start(&[(503, &[])]);
    let (services, entries) = services(|_| {});
    let hook = webhook(json!({"event": "job", "url": destination.url,
        "x-retry": {"attempts": 3, "base": 10_000, "cap": 60_000}}));
    let actor = WebhookActor::new(hook.id.clone(), services.clone()).start();
    let mut journal = JournalReader::new(entries);

    actor.do_send(dispatch(&hook, "1"));
    let times: Vec<Duration> = journal.attempts(3).await.into_iter().map(|(at, _)| at).collect();

    // The times are to the 10 ms below: a difference of two may be 10 ms short.
    let within =
        |delay: Duration, low: Duration, high: Duration| delay + Duration::from_millis(10) >= low && delay <= high;
    let (first_delay, second_delay) = (times[1] - times[0], times[2] - times[1]);
    assert!(within(first_delay, secs(5), secs(10)), "half to all of the 10 s base: {first_delay:?}");
    assert!(within(second_delay, secs(10), secs(20)), "half to all of 20 s: {second_delay:?}");
    services.registry.stop();
}

#[actix_rt::test]
async fn retry_after_replaces_the_schedule_up_to_the_maximum() {
    tokio::time::pause();
    let destination = Destination::start(&[(429, &[("retry-after", "3600")]), (503, &[("retry-after", "7")])]);
    let (services, entries) = services(|settings| settings.max_retry_after = secs(600));
    let hook = webhook(json!({"event": "job", "url": destination.url, "x-retry": {"attempts": 3, "backoff": [10]}}));
    let actor = WebhookActor::new(hook.id.clone(), services.clone()).start();
    let mut journal = JournalReader::new(entries);

    actor.do_send(dispatch(&hook, "1"));
    let attempts = journal.attempts(3).await;

    let times: Vec<Duration> = attempts.iter().map(|(at, _)| *at).collect();
    assert_eq!(times, [secs(0), secs(600), secs(607)], "an hour cut to max_retry_after, then the 7 s asked for");
    assert_eq!(attempts[2].1.delivery_status, Failed, "the last attempt fails the delivery");
    services.registry.stop();
}

#[actix_rt::test]
async fn a_rate_quota_spaces_attempts_by_its_interval_and_drops_what_overflows_its_queue() {
    tokio::time::pause();
    let (services, entries) = services(|settings| settings.quota_queue_limit = 2);
    let hook = webhook(json!({"event": "tick", "url": BLOCKED_URL, "x-minIntervalMs": 1000}));
    let actor = WebhookActor::new(hook.id.clone(), services.clone()).start();
    let mut journal = JournalReader::new(entries);

    for data in ["1", "2", "3", "4"] {
        actor.do_send(dispatch(&hook, data));
    }
    let attempts = journal.attempts(4).await;

    let seen: Vec<(Duration, &str, _)> = attempts
        .iter()
        .map(|(at, attempt)| (*at, attempt.error_class.unwrap_or_default(), attempt.delivery_status))
        .collect();
    assert_eq!(
        seen,
        [
            (secs(0), "BLOCKED", Failed),
            (secs(0), "QUOTA", Dropped),
            (secs(1), "BLOCKED", Failed),
            (secs(2), "BLOCKED", Failed),
        ],
        "the first at once, two queued (the limit) one interval apart, the fourth dropped at once"
    );
    services.registry.stop();
}

#[actix_rt::test]
async fn with_quota_overflow_drop_events_over_the_quota_are_dropped_at_once() {
    tokio::time::pause();
    let (services, entries) = services(|_| {});
    let hook =
        webhook(json!({"event": "tick", "url": BLOCKED_URL, "x-minIntervalMs": 1000, "x-quotaOverflow": "drop"}));
    let actor = WebhookActor::new(hook.id.clone(), services.clone()).start();
    let mut journal = JournalReader::new(entries);

    actor.do_send(dispatch(&hook, "1"));
    actor.do_send(dispatch(&hook, "2"));
    let attempts = journal.attempts(2).await;
    assert_eq!(attempts[1].0, secs(0));
    assert_eq!((attempts[1].1.error_class, attempts[1].1.delivery_status), (Some("QUOTA"), Dropped));

    // A turn later, the quota has room again.
    tokio::time::sleep(secs(1)).await;
    actor.do_send(dispatch(&hook, "3"));
    let (at, attempt) = journal.next_attempt().await;
    assert_eq!((at, attempt.error_class), (secs(1), Some("BLOCKED")), "sent, not dropped");
    services.registry.stop();
}

#[actix_rt::test]
async fn a_delivery_refused_by_a_sleeping_host_is_tried_after_each_sleep_delay_then_skipped() {
    tokio::time::pause();
    let destination = Destination::start(&[(500, &[])]);
    let (services, entries) = services(|settings| settings.host.sleep.min_outcomes = 2);
    let hook = webhook(json!({"event": "job", "url": destination.url}));
    let actor = WebhookActor::new(hook.id.clone(), services.clone()).start();
    let mut journal = JournalReader::new(entries);

    // Two errors out of two outcomes: the host sleeps (for 30 s of its own, real, time).
    actor.do_send(dispatch(&hook, "1"));
    actor.do_send(dispatch(&hook, "2"));
    journal.attempts(2).await;
    let start = journal.elapsed();
    actor.do_send(dispatch(&hook, "3"));
    let attempts = journal.attempts(3).await;

    let seen: Vec<(Duration, &str, _)> = attempts
        .iter()
        .map(|(at, attempt)| (*at - start, attempt.error_class.unwrap_or_default(), attempt.delivery_status))
        .collect();
    assert_eq!(
        seen,
        [(secs(0), "SLEEPING", Pending), (secs(30), "SLEEPING", Pending), (secs(90), "SLEEPING", Skipped)],
        "Particle's delays: tried again after 30 s and 60 s more, then skipped"
    );
    assert_eq!(destination.num_requests(), 2, "nothing is sent while the host sleeps");
    assert_eq!(hook.runtime.consecutive_failures(), 2, "a skipped delivery is not a failure of the webhook");
    services.registry.stop();
}

#[actix_rt::test]
async fn the_failure_limit_disables_the_webhook_tells_the_group_and_drops_what_follows() {
    tokio::time::pause();
    let (services, entries) = services(|_| {});
    let hook = webhook(json!({"event": "job", "url": BLOCKED_URL, "x-failureLimit": 3}));
    let (listener, mut heard) = services.bus.sink(hook.group_id.clone(), None, 16);
    listener.subscribe("webhook-disabled/");
    let actor = WebhookActor::new(hook.id.clone(), services.clone()).start();
    let mut journal = JournalReader::new(entries);

    for data in ["1", "2", "3", "4"] {
        actor.do_send(dispatch(&hook, data));
    }
    let attempts = journal.attempts(4).await;

    let classes: Vec<&str> = attempts.iter().map(|(_, attempt)| attempt.error_class.unwrap_or_default()).collect();
    assert_eq!(classes, ["BLOCKED", "BLOCKED", "BLOCKED", "DISABLED"], "the fourth finds the webhook disabled");
    assert_eq!(attempts[3].1.delivery_status, Dropped);
    assert_eq!(hook.runtime.disabled_reason().as_deref(), Some("3 consecutive failures"));
    let event = heard.recv().await.expect("the group hears it");
    assert_eq!(
        (event.name.clone(), event.data.clone()),
        (format!("webhook-disabled/{}", hook.id), "3 consecutive failures".to_owned())
    );
    let failures: Vec<(u32, Option<&str>)> =
        journal.states.iter().map(|state| (state.consecutive_failures, state.disabled_reason.as_deref())).collect();
    assert_eq!(failures, [(1, None), (2, None), (3, Some("3 consecutive failures"))], "each change journaled");
    assert!(!hook.matches("job", None), "a disabled webhook matches nothing");
    services.registry.stop();
}
