//! A webhook's page (its state, 30-day history, attempt log and definition editor) and its actions.

use super::*;

fn status_name(attempt: &AttemptRow) -> &'static str {
    i16::try_from(attempt.delivery_status)
        .ok()
        .and_then(DeliveryStatus::from_i16)
        .map_or("unknown", DeliveryStatus::as_str)
}

/// An attempt's outcome in a few words: the status code or the error class.
pub(super) fn outcome(attempt: &AttemptRow) -> String {
    match (&attempt.error_class, attempt.response_status) {
        (None, Some(status)) => format!("{status}"),
        (Some(class), Some(status)) => format!("{class} {status}"),
        (Some(class), None) => class.clone(),
        (None, None) => "no answer".to_owned(),
    }
}

pub(super) fn outcome_class(attempt: &AttemptRow) -> &'static str {
    if attempt.error_class.is_none() { "ok" } else { "fail" }
}

/// A page of attempts: the last successes and errors, or with `all` a page of everything since a time.
async fn attempts_section(console: &Console, viewer: &Viewer<'_>, request: &Request, id: &WebhookId) -> Result<String> {
    let all = request.query("all") == Some("1");
    let since_text = request.query("since").unwrap_or("");
    let since = parse_since("since", since_text)?;
    let page_token = request.query("before").unwrap_or("");
    let pool = console.kernel.store.pool();
    let since_ms = since.unwrap_or(i64::MIN);
    let page = if all {
        // The cursor is `<started_at>.<id>` of the previous page's last attempt.
        let before = match page_token {
            "" => None,
            token => Some(
                token
                    .split_once('.')
                    .and_then(|(started_at, id)| Some((started_at.parse().ok()?, id.parse().ok()?)))
                    .ok_or_else(|| KernelError::InvalidArgument("before: not a cursor this console gave".into()))?,
            ),
        };
        let limit = i64::from(ATTEMPT_PAGE_SIZE);
        let attempts = crate::store::console::attempt_page(pool, id, since_ms, before, limit).await?;
        let next_page_token = (attempts.len() as i64 == limit)
            .then(|| attempts.last().map(|attempt| format!("{}.{}", attempt.started_at, attempt.id)))
            .flatten();
        crate::deliveries::AttemptPage { attempts, next_page_token }
    } else {
        let recent = crate::store::console::recent_attempts(pool, id, since_ms, RECENT_PER_KIND).await?;
        crate::deliveries::AttemptPage { attempts: recent, next_page_token: None }
    };
    let mut html = format!(
        r#"<section aria-labelledby="attempts-title"><h2 id="attempts-title">Attempt log</h2>
<form method="get" action="/webhooks/{id}" class="filters"><label><input type="checkbox" name="all" value="1"{checked}> all attempts</label>
<label for="since">since</label><input id="since" name="since" value="{since}" placeholder="2h, 7d or 2026-11-22T10:00:00Z">
<button type="submit">Show</button></form>
<p class="help">{what}</p><ol class="attempts" id="attempts">"#,
        checked = if all { " checked" } else { "" },
        since = escape(since_text),
        what = if all {
            "Every attempt, newest first."
        } else {
            "The last 10 successes and the last 10 errors, newest first."
        },
    );
    for attempt in &page.attempts {
        html.push_str(&attempt_item(viewer, attempt));
    }
    html.push_str("</ol>");
    if page.attempts.is_empty() {
        html.push_str(r#"<p id="no-attempts">No attempts.</p>"#);
    }
    if let Some(next) = page.next_page_token {
        let _ = write!(
            html,
            r#"<p><a rel="next" id="older-attempts" href="/webhooks/{id}?all=1&amp;since={}&amp;before={}">older attempts</a></p>"#,
            url_encode(since_text),
            url_encode(&next)
        );
    }
    html.push_str("</section>");
    Ok(html)
}

fn headers_text(json: Option<&str>) -> String {
    let map: serde_json::Map<String, serde_json::Value> =
        json.and_then(|json| serde_json::from_str(json).ok()).unwrap_or_default();
    let mut text = String::new();
    for (name, value) in map {
        let value = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
        let _ = writeln!(text, "{name}: {value}");
    }
    escape(&text)
}

fn attempt_item(viewer: &Viewer<'_>, attempt: &AttemptRow) -> String {
    let resend = if viewer.can_edit() {
        viewer.button(&format!("/attempts/{}/resend", attempt.id), "Resend", "small")
    } else {
        String::new()
    };
    let error = attempt
        .error_message
        .as_deref()
        .map(|message| format!(r#"<p class="message error">{}</p>"#, escape(message)))
        .unwrap_or_default();
    format!(
        r#"<li class="attempt" data-attempt="{id}"><details><summary><span class="badge {class}">{outcome}</span> <time>{started}</time> <span class="sub">#{number} · {duration} ms · {status} · {method} {url}</span></summary>
{error}<div class="exchange"><div><h3>Request</h3><pre>{method} {url}
{request_headers}
{request_body}</pre></div><div><h3>Response</h3><pre>{response_status}
{response_headers}
{response_body}</pre></div></div>{resend}</details></li>"#,
        id = attempt.id,
        class = outcome_class(attempt),
        outcome = escape(&outcome(attempt)),
        started = time::iso8601_ms(attempt.started_at),
        number = attempt.attempt,
        duration = attempt.duration_ms,
        status = status_name(attempt),
        method = escape(&attempt.request_method),
        url = escape(&attempt.request_url),
        request_headers = headers_text(attempt.request_headers.as_deref()),
        request_body = html::bytes_text(attempt.request_body.as_deref().unwrap_or_default()),
        response_status = attempt.response_status.map_or("(no response)".to_owned(), |status| format!("HTTP {status}")),
        response_headers = headers_text(attempt.response_headers.as_deref()),
        response_body = html::bytes_text(attempt.response_body.as_deref().unwrap_or_default()),
    )
}

/// What the definition editor shows after a refused save: the text as submitted and the error at its field.
pub(super) struct DefinitionError {
    submitted: String,
    message: String,
}

/// The fixed notices a redirect after an action may ask for.
fn notice(code: &str) -> Option<&'static str> {
    Some(match code {
        "saved" => "Definition saved.",
        "enabled" => "Webhook enabled.",
        "disabled" => "Webhook disabled.",
        "resent" => "Delivery queued again.",
        "created" => "Webhook created. Edit its definition below if needed.",
        _ => return None,
    })
}

pub(super) async fn webhook_page(
    console: &Console,
    signed: &Signed,
    request: &Request,
    id: &WebhookId,
    definition_error: Option<DefinitionError>,
) -> Result<Response> {
    let webhook = console.kernel.get_webhook(id).await?;
    let group = console.kernel.get_group(&webhook.group_id).await?;
    let summary = summary(&webhook.definition);
    let viewer = signed.viewer();
    let title = if summary.name.is_empty() { webhook.id.to_string() } else { summary.name.clone() };
    let mut body = String::new();
    if let Some(text) = request.query("done").and_then(notice) {
        body.push_str(&html::message("notice", text));
    }
    let _ = write!(
        body,
        r#"<dl class="facts"><dt>id</dt><dd><code>{id}</code></dd><dt>event prefix</dt><dd><code>{event}</code></dd><dt>url</dt><dd>{url}</dd><dt>state</dt><dd id="webhook-state">{state}</dd><dt>failures in a row</dt><dd id="consecutive-failures">{failures}</dd></dl>"#,
        id = webhook.id,
        event = escape(&summary.event),
        url = escape(&summary.url),
        state = state_badge(&webhook, &summary),
        failures = webhook.state.consecutive_failures,
    );
    if viewer.can_edit() {
        body.push_str(&actions(&viewer, &webhook));
    } else {
        body.push_str(r#"<p class="help" id="read-only">Signed in with a viewer token: read only.</p>"#);
    }
    let history = console.kernel.history(id, HISTORY_DAYS).await?;
    let _ = write!(
        body,
        r#"<section aria-labelledby="history-heading"><h2 id="history-heading">Last {HISTORY_DAYS} days</h2>{}</section>"#,
        chart::history_chart(&history)
    );
    body.push_str(&attempts_section(console, &viewer, request, id).await?);
    body.push_str(&definition_editor(&viewer, &webhook, definition_error));
    let mut crumbs = group_crumbs(&webhook.group_id, &group.name);
    crumbs.push((title.clone(), format!("/webhooks/{id}")));
    Ok(render(&title, signed, &crumbs, &body))
}

fn actions(viewer: &Viewer<'_>, webhook: &WebhookRow) -> String {
    let id = &webhook.id;
    let csrf = viewer.csrf_field();
    let toggle = if webhook.state.disabled_reason.is_some() {
        viewer.button(&format!("/webhooks/{id}/enable"), "Enable", "")
    } else {
        viewer.button(&format!("/webhooks/{id}/disable"), "Disable", "")
    };
    let signs = WebhookDefinition::from_json(&webhook.definition).is_ok_and(|definition| definition.signs());
    let rotate = if signs {
        format!(
            r#"<form method="post" action="/webhooks/{id}/rotate-secret" class="card">{csrf}<h3>Signing secret</h3><label for="grace">old secret keeps signing for (seconds)</label><input id="grace" name="grace" inputmode="numeric" value="86400"><button type="submit" id="rotate-secret">Rotate secret</button></form>"#
        )
    } else {
        String::new()
    };
    format!(
        r#"<section class="actions" aria-label="actions">
<form method="post" action="/webhooks/{id}/test" class="card">{csrf}<h3>Test</h3><label for="test-data">event data</label><input id="test-data" name="data" value="test-event"><button type="submit" id="test">Send a test event</button></form>
<form method="post" action="/webhooks/{id}/replay" class="card">{csrf}<h3>Replay</h3><label for="replay-since">deliveries since</label><input id="replay-since" name="since" value="24h" required><label for="replay-status">which</label><select id="replay-status" name="status"><option value="failed">failed</option><option value="skipped">skipped</option><option value="all">all</option></select><button type="submit" id="replay">Replay</button></form>
<div class="card"><h3>State</h3>{toggle}</div>{rotate}</section>"#
    )
}

/// The line of `text` where a definition field first appears, for pointing at it.
fn line_of_field(text: &str, field: &str) -> Option<usize> {
    let quoted = format!("\"{field}\"");
    text.lines().position(|line| line.contains(&quoted)).map(|index| index + 1)
}

fn definition_editor(viewer: &Viewer<'_>, webhook: &WebhookRow, error: Option<DefinitionError>) -> String {
    let (text, error_html) = match error {
        Some(DefinitionError { submitted, message }) => {
            let field = message.split_once(':').map(|(field, _)| field.trim()).filter(|field| !field.contains(' '));
            let place = field
                .map(|field| {
                    let leaf = field.rsplit(['.', ']']).next().unwrap_or(field);
                    match line_of_field(&submitted, leaf) {
                        Some(line) => {
                            format!(r#" <span class="field">at <code>{}</code>, line {line}</span>"#, escape(field))
                        }
                        None => format!(r#" <span class="field">at <code>{}</code></span>"#, escape(field)),
                    }
                })
                .unwrap_or_default();
            let html = format!(
                r#"<p class="message error" role="alert" id="definition-error">{}{place}</p>"#,
                escape(&message)
            );
            (submitted, html)
        }
        None => {
            let pretty = serde_json::from_str::<serde_json::Value>(&webhook.definition)
                .ok()
                .and_then(|value| serde_json::to_string_pretty(&value).ok())
                .unwrap_or_else(|| webhook.definition.clone());
            (pretty, String::new())
        }
    };
    let described =
        if error_html.is_empty() { "" } else { r#" aria-describedby="definition-error" aria-invalid="true""# };
    if viewer.can_edit() {
        format!(
            r#"<section aria-labelledby="definition-title"><h2 id="definition-title">Definition</h2>{error_html}<form method="post" action="/webhooks/{id}/definition">{csrf}<label for="definition" class="help">Particle webhook JSON with hookwire's <code>x-</code> fields</label><textarea id="definition" name="definition" rows="16" spellcheck="false"{described}>{text}</textarea><button type="submit" id="save-definition">Save definition</button></form></section>"#,
            id = webhook.id,
            csrf = viewer.csrf_field(),
            text = escape(&text),
        )
    } else {
        format!(
            r#"<section aria-labelledby="definition-title"><h2 id="definition-title">Definition</h2><pre id="definition">{}</pre></section>"#,
            escape(&text)
        )
    }
}

pub(super) async fn webhook_action(
    console: &Console,
    signed: &Signed,
    request: &Request,
    id: &WebhookId,
    action: &str,
) -> Result<Response> {
    let kernel = &console.kernel;
    let back = format!("/webhooks/{id}");
    match action {
        "enable" => {
            kernel.enable_webhook(id).await?;
            Ok(redirect(&format!("{back}?done=enabled")))
        }
        "disable" => {
            kernel.disable_webhook(id).await?;
            Ok(redirect(&format!("{back}?done=disabled")))
        }
        "definition" => {
            let submitted = request.form("definition").unwrap_or("").to_owned();
            match kernel.update_webhook(id, &submitted).await {
                Ok(SavedWebhook { row: webhook, signing_secret: Some(secret), .. }) => {
                    let crumbs = webhook_crumbs(console, &webhook).await?;
                    Ok(secret_page(
                        signed,
                        &crumbs,
                        "Definition saved",
                        "The webhook now signs its requests with this secret:",
                        &secret,
                        &back,
                    ))
                }
                Ok(SavedWebhook { signing_secret: None, .. }) => Ok(redirect(&format!("{back}?done=saved"))),
                Err(KernelError::InvalidArgument(message)) => {
                    let error = DefinitionError { submitted, message };
                    let mut response = webhook_page(console, signed, &empty_request(), id, Some(error)).await?;
                    *response.status_mut() = StatusCode::BAD_REQUEST;
                    Ok(response)
                }
                Err(other) => Err(other),
            }
        }
        "test" => {
            let webhook = kernel.get_webhook(id).await?;
            let data = request.form("data").filter(|data| !data.is_empty()).map(str::to_owned);
            let outcome = kernel.test_webhook(&webhook, data).await?;
            let mut crumbs = webhook_crumbs(console, &webhook).await?;
            crumbs.push(("test".into(), back.clone()));
            let body = format!(
                r#"<p class="message {class}" role="status" id="test-outcome">{outcome}</p><p class="help">Event <code>{event}</code> was published to this webhook only; its attempt:</p><ol class="attempts open">{item}</ol><p><a href="{back}" id="continue">Back to the webhook</a></p>"#,
                class = if outcome.attempt.error_class.is_none() { "notice" } else { "error" },
                outcome = escape(&match (&outcome.attempt.error_class, outcome.attempt.response_status) {
                    (None, Some(status)) => format!("Success: the destination answered {status}."),
                    _ => format!(
                        "Error: {}",
                        outcome.attempt.error_message.clone().unwrap_or_else(|| self::outcome(&outcome.attempt))
                    ),
                }),
                event = outcome.event_id,
                item = attempt_item(&signed.viewer(), &outcome.attempt).replace("<details>", "<details open>"),
            );
            Ok(render("Test result", signed, &crumbs, &body))
        }
        "replay" => {
            let since = parse_since("since", request.form("since").unwrap_or(""))?.ok_or_else(|| {
                KernelError::InvalidArgument("since: required (2h, 7d or an ISO-8601 UTC time)".into())
            })?;
            let num_replayed = kernel.replay(id, since, request.form("status").unwrap_or("failed")).await?;
            let webhook = kernel.get_webhook(id).await?;
            let crumbs = webhook_crumbs(console, &webhook).await?;
            let body = format!(
                r#"{}<p><a href="{back}" id="continue">Back to the webhook</a></p>"#,
                html::message("notice", &format!("{num_replayed} deliveries queued again."))
            );
            Ok(render("Replay", signed, &crumbs, &body))
        }
        "rotate-secret" => {
            let grace = match request.form("grace").map(str::trim).filter(|grace| !grace.is_empty()) {
                Some(grace) => Some(
                    grace
                        .parse::<u32>()
                        .map_err(|_| KernelError::InvalidArgument("grace: a number of seconds".into()))?,
                ),
                None => None,
            };
            let (webhook, secret) = kernel.rotate_webhook_secret(id, grace).await?;
            let crumbs = webhook_crumbs(console, &webhook).await?;
            Ok(secret_page(signed, &crumbs, "Secret rotated", "The new signing secret:", &secret, &back))
        }
        _ => Err(KernelError::NotFound(format!("no action {}", short(action)))),
    }
}

fn empty_request() -> Request {
    Request {
        method: Method::GET,
        path: String::new(),
        query: Vec::new(),
        form: Vec::new(),
        headers: Default::default(),
        peer: std::net::Ipv4Addr::UNSPECIFIED.into(),
    }
}

async fn webhook_crumbs(console: &Console, webhook: &WebhookRow) -> Result<Vec<(String, String)>> {
    let group = console.kernel.get_group(&webhook.group_id).await?;
    let mut crumbs = group_crumbs(&webhook.group_id, &group.name);
    let summary = summary(&webhook.definition);
    let title = if summary.name.is_empty() { webhook.id.to_string() } else { summary.name };
    crumbs.push((title, format!("/webhooks/{}", webhook.id)));
    Ok(crumbs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_field_is_found_in_the_submitted_text() {
        assert_eq!(line_of_field("{\n  \"event\": \"t\",\n  \"url\": \"ftp://x\"\n}", "url"), Some(3));
    }
}
