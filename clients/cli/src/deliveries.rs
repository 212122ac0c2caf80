//! `hookwire webhook logs`, `history`, `replay` and `resend`: what happened to a webhook's deliveries.

use serde_json::{Value, json};

use crate::GlobalArgs;
use crate::output::{Format, print_document};

const ATTEMPT_COLUMNS: &[&str] = &[
    "id",
    "started_at",
    "delivery_status",
    "response_status",
    "error_class",
    "duration_ms",
    "request_url",
    "error_message",
];
const HISTORY_COLUMNS: &[&str] = &["date", "succeeded", "failed", "skipped", "dropped", "pending", "chart"];
/// The widest bar of the history chart.
const CHART_WIDTH: u64 = 40;

fn attempt_json(attempt: hookwire_client::proto::Attempt) -> Value {
    json!({
        "id": attempt.id,
        "delivery_id": attempt.delivery_id,
        "event_id": attempt.event_id,
        "attempt": attempt.attempt,
        "started_at": attempt.started_at,
        "duration_ms": attempt.duration_ms,
        "request_method": attempt.request_method,
        "request_url": attempt.request_url,
        "response_status": (attempt.response_status != 0).then_some(attempt.response_status),
        "error_class": (!attempt.error_class.is_empty()).then_some(attempt.error_class),
        "error_message": (!attempt.error_message.is_empty()).then_some(attempt.error_message),
        "delivery_status": attempt.delivery_status,
        "request_headers": attempt.request_headers.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "request_body": String::from_utf8_lossy(&attempt.request_body),
        "response_headers": attempt.response_headers.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "response_body": String::from_utf8_lossy(&attempt.response_body),
    })
}

/// Prints the last 10 successes and 10 errors, or with `all` one page of every attempt.
pub async fn logs(
    global: &GlobalArgs,
    id: String,
    all: bool,
    since: Option<String>,
    limit: u32,
    page_token: Option<String>,
) -> anyhow::Result<()> {
    let admin = global.admin_client().await?;
    if !all {
        let attempts = admin.recent_attempts(id, since.as_deref()).await?;
        let attempts: Vec<Value> = attempts.into_iter().map(attempt_json).collect();
        return Ok(print_document(global.output, &Value::Array(attempts), ATTEMPT_COLUMNS)?);
    }
    let page = admin.attempt_page(id, since.as_deref(), limit, page_token.as_deref()).await?;
    let attempts: Vec<Value> = page.attempts.into_iter().map(attempt_json).collect();
    match global.output {
        Format::Json => {
            let next = (!page.next_page_token.is_empty()).then_some(page.next_page_token);
            print_document(Format::Json, &json!({"attempts": attempts, "next_page_token": next}), ATTEMPT_COLUMNS)?;
        }
        Format::Table => {
            print_document(Format::Table, &Value::Array(attempts), ATTEMPT_COLUMNS)?;
            if !page.next_page_token.is_empty() {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
        }
    }
    Ok(())
}

/// Prints a webhook's daily counts; in table mode with a bar per day (`#` succeeded, `x` failed, `-` skipped or
/// dropped).
pub async fn history(global: &GlobalArgs, id: String, days: u32) -> anyhow::Result<()> {
    let admin = global.admin_client().await?;
    let history = admin.history(id, days).await?;
    let busiest =
        history.iter().map(|day| day.succeeded + day.failed + day.skipped + day.dropped).max().unwrap_or(0).max(1);
    let scale = |count: u64| -> usize { usize::try_from((count * CHART_WIDTH).div_ceil(busiest)).unwrap_or(0) };
    let days: Vec<Value> = history
        .into_iter()
        .map(|day| {
            let mut value = json!({
                "date": day.date,
                "succeeded": day.succeeded,
                "failed": day.failed,
                "skipped": day.skipped,
                "dropped": day.dropped,
                "pending": day.pending,
            });
            if global.output == Format::Table {
                let chart = format!(
                    "{}{}{}",
                    "#".repeat(scale(day.succeeded)),
                    "x".repeat(scale(day.failed)),
                    "-".repeat(scale(day.skipped + day.dropped))
                );
                value["chart"] = Value::String(chart);
            }
            value
        })
        .collect();
    Ok(print_document(global.output, &Value::Array(days), HISTORY_COLUMNS)?)
}

/// Queues a webhook's deliveries since a time again.
pub async fn replay(global: &GlobalArgs, id: String, since: String, status: String) -> anyhow::Result<()> {
    let admin = global.admin_client().await?;
    let num_replayed = admin.replay(id, &since, &status).await?;
    Ok(print_document(global.output, &json!({"replayed": num_replayed}), &["replayed"])?)
}

/// Queues the delivery of one attempt again.
pub async fn resend(global: &GlobalArgs, attempt_id: i64) -> anyhow::Result<()> {
    let admin = global.admin_client().await?;
    let num_replayed = admin.resend_attempt(attempt_id).await?;
    Ok(print_document(global.output, &json!({"replayed": num_replayed}), &["replayed"])?)
}
