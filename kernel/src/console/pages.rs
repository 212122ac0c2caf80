//! The console's pages and actions. Each handler authorizes first, with the kernel's own checks and the role the
//! gRPC call of the same operation needs, then goes through the kernel's operations (`admin.rs`,
//! `deliveries.rs`), so the console can do exactly what the API lets the same token do.

use super::html::{self, Viewer, escape, url_encode};
use super::{Console, Request, Response, Signed, chart, live, page_response, redirect};
use crate::access::Object;
use crate::admin::{DeviceFields, DeviceUpdate, SavedWebhook};
use crate::auth::{Principal, Role};
use crate::deliveries::{RECENT_PER_KIND, parse_since};
use crate::error::{KernelError, parse_id};
use crate::listing::{Order, Page, WebhookFilter};
use crate::store::attempts::AttemptRow;
use crate::store::webhooks::WebhookRow;
use hookwire_actors::domain::definition::WebhookDefinition;
use hookwire_actors::domain::ids::{DeviceId, GroupId, WebhookId};
use hookwire_actors::domain::time;
use hookwire_actors::services::journal::DeliveryStatus;
use hookwire_proto::templates;
use http::{Method, StatusCode};
use std::fmt::Write as _;

/// Webhooks, devices and groups per page.
const PAGE_SIZE: u32 = 50;
/// Attempts per page of the full attempt log.
const ATTEMPT_PAGE_SIZE: u32 = 50;
/// Days the history chart shows, today included.
const HISTORY_DAYS: u32 = 30;

type Result<T> = std::result::Result<T, KernelError>;

/// Routes a signed-in request.
pub async fn route(console: &Console, signed: &Signed, request: &Request, segments: &[&str]) -> Result<Response> {
    let get = request.method == Method::GET;
    let post = request.method == Method::POST;
    match segments {
        [""] if get => Ok(redirect(&home(&signed.who))),
        ["groups"] if get => groups_page(console, signed, request).await,
        ["groups", group] if get => {
            group_page(console, signed, request, &group_id(&signed.who, group, Role::Viewer)?).await
        }
        ["groups", group, "devices"] if get => {
            devices_page(console, signed, request, &group_id(&signed.who, group, Role::Viewer)?).await
        }
        ["groups", group, "devices"] if post => {
            create_device(console, signed, request, &group_id(&signed.who, group, Role::Editor)?).await
        }
        ["devices", device, action] if post => device_action(console, signed, request, device, action).await,
        ["groups", group, "live"] if get => {
            live_page(console, signed, request, &group_id(&signed.who, group, Role::Viewer)?).await
        }
        ["groups", group, "live", "stream"] if get => {
            let group_id = group_id(&signed.who, group, Role::Viewer)?;
            console.kernel.get_group(&group_id).await?;
            Ok(live::stream(console, group_id, request.query("prefix").unwrap_or("")))
        }
        ["groups", group, "templates"] if get => {
            gallery_page(console, signed, &group_id(&signed.who, group, Role::Viewer)?).await
        }
        ["groups", group, "templates", name] if get => {
            let group_id = group_id(&signed.who, group, Role::Editor)?;
            template_page(console, signed, &group_id, templates::find(name).map_err(not_found)?, &[], None).await
        }
        ["groups", group, "templates", name] if post => {
            let group_id = group_id(&signed.who, group, Role::Editor)?;
            create_from_template(console, signed, request, &group_id, templates::find(name).map_err(not_found)?).await
        }
        ["webhooks", webhook] if get => {
            let id = webhook_id(console, &signed.who, webhook, Role::Viewer).await?;
            webhook_page(console, signed, request, &id, None).await
        }
        ["webhooks", webhook, action] if post => {
            let id = webhook_id(console, &signed.who, webhook, Role::Editor).await?;
            webhook_action(console, signed, request, &id, action).await
        }
        ["attempts", attempt, "resend"] if post => {
            let attempt_id: i64 =
                attempt.parse().map_err(|_| KernelError::NotFound(format!("attempt {attempt} not found")))?;
            console.kernel.require_object(&signed.who, Object::Attempt(attempt_id), Role::Editor).await?;
            let attempt_row = crate::store::attempts::get_attempt(console.kernel.store.pool(), attempt_id)
                .await?
                .ok_or_else(|| KernelError::NotFound(format!("attempt {attempt_id} not found")))?;
            console.kernel.resend_attempt(attempt_id).await?;
            Ok(redirect(&format!("/webhooks/{}?done=resent", url_encode(&attempt_row.webhook_id))))
        }
        _ => Err(KernelError::NotFound(format!("no page at {}", request.path.chars().take(200).collect::<String>()))),
    }
}

fn not_found(error: templates::TemplateError) -> KernelError {
    KernelError::NotFound(error.to_string())
}

/// Where a principal starts: root at the groups, a group token at its group.
fn home(who: &Principal) -> String {
    match who {
        Principal::Root => "/groups".to_owned(),
        Principal::Group { group_id, .. } => format!("/groups/{group_id}"),
    }
}

/// Parses a group id from a path and checks the principal may act on it as `role`.
fn group_id(who: &Principal, text: &str, role: Role) -> Result<GroupId> {
    let group_id =
        GroupId::parse(text).map_err(|_| KernelError::NotFound(format!("group {} not found", short(text))))?;
    who.require("group_id", &group_id, role)?;
    Ok(group_id)
}

/// Parses a webhook id from a path and checks the principal may act on it as `role` (another group's webhook is
/// not found, as in the API).
async fn webhook_id(console: &Console, who: &Principal, text: &str, role: Role) -> Result<WebhookId> {
    let id = WebhookId::parse(text).map_err(|_| KernelError::NotFound(format!("webhook {} not found", short(text))))?;
    console.kernel.require_object(who, Object::Webhook(&id), role).await?;
    Ok(id)
}

fn short(text: &str) -> String {
    text.chars().take(64).collect()
}

fn page_number(request: &Request) -> u32 {
    request.query("page").and_then(|page| page.parse().ok()).unwrap_or(0).min(1_000_000)
}

fn pager(base: &str, page: u32, total: u64, size: u32) -> String {
    let pages = total.div_ceil(u64::from(size)).max(1);
    let mut html =
        format!(r#"<nav class="pager" aria-label="pages"><span>page {} of {pages} ({total} in all)</span>"#, page + 1);
    let join = if base.contains('?') { '&' } else { '?' };
    if page > 0 {
        let _ = write!(html, r#" <a rel="prev" href="{}{join}page={}">previous</a>"#, escape(base), page - 1);
    }
    if u64::from(page) + 1 < pages {
        let _ = write!(html, r#" <a rel="next" href="{}{join}page={}">next</a>"#, escape(base), page + 1);
    }
    html.push_str("</nav>");
    html
}

fn group_crumbs(group_id: &GroupId, name: &str) -> Vec<(String, String)> {
    vec![("groups".into(), "/groups".into()), (name.to_owned(), format!("/groups/{group_id}"))]
}

fn crumbs_ref(crumbs: &[(String, String)]) -> Vec<(&str, String)> {
    crumbs.iter().map(|(label, link)| (label.as_str(), link.clone())).collect()
}

fn render(title: &str, signed: &Signed, crumbs: &[(String, String)], body: &str) -> Response {
    page_response(html::page(title, Some(&signed.viewer()), &crumbs_ref(crumbs), body))
}

/// The sign-in page, with an error when a sign-in failed.
pub fn sign_in_page(error: Option<&str>) -> Response {
    let message = error.map(|text| html::message("error", text)).unwrap_or_default();
    let body = format!(
        r#"{message}<form method="post" action="/signin" class="card signin">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="off" required autofocus>
<p class="help">The root token, or a group token (<code>hwa_...</code>) from <code>hookwire token create</code>. It stays on the server; your browser only gets a session cookie.</p>
<button type="submit" id="signin">Sign in</button></form>"#
    );
    let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    super::page_with_status(status, html::page("Sign in", None, &[], &body))
}

async fn groups_page(console: &Console, signed: &Signed, request: &Request) -> Result<Response> {
    if let Principal::Group { group_id, .. } = &signed.who {
        return Ok(redirect(&format!("/groups/{group_id}")));
    }
    signed.who.require_root("list groups")?;
    let page_index = page_number(request);
    let page = Page::new(page_index.saturating_mul(PAGE_SIZE), PAGE_SIZE, Order::Name, false)?;
    let (groups, total) = console.kernel.list_groups_page(&page).await?;
    let mut body = String::from(
        r#"<table class="list" id="groups"><thead><tr><th scope="col">name</th><th scope="col">id</th><th scope="col">created</th></tr></thead><tbody>"#,
    );
    for group in &groups {
        let _ = write!(
            body,
            r#"<tr><td><a href="/groups/{id}">{name}</a></td><td><code>{id}</code></td><td>{created}</td></tr>"#,
            id = group.id,
            name = escape(&group.name),
            created = time::iso8601_ms(group.created_at)
        );
    }
    body.push_str("</tbody></table>");
    if groups.is_empty() {
        body.push_str(r#"<p>No groups yet: <code>hookwire group create NAME</code> makes one.</p>"#);
    }
    body.push_str(&pager("/groups", page_index, total, PAGE_SIZE));
    Ok(render("Groups", signed, &[("groups".into(), "/groups".into())], &body))
}

/// The tabs of a group's pages.
fn group_tabs(group_id: &GroupId, current: &str) -> String {
    let mut html = String::from(r#"<nav class="tabs" aria-label="group">"#);
    for (label, path) in
        [("Webhooks", ""), ("Devices", "/devices"), ("Live events", "/live"), ("Templates", "/templates")]
    {
        let current_attr = if label == current { r#" aria-current="page""# } else { "" };
        let _ = write!(html, r#"<a href="/groups/{group_id}{path}"{current_attr}>{label}</a>"#);
    }
    html.push_str("</nav>");
    html
}

/// The fields of a definition the lists show.
struct Summary {
    name: String,
    event: String,
    url: String,
    disabled: bool,
}

fn summary(definition: &str) -> Summary {
    let value: serde_json::Value = serde_json::from_str(definition).unwrap_or_default();
    let text = |key: &str| value.get(key).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    Summary {
        name: text("name"),
        event: text("event"),
        url: text("url"),
        disabled: value.get("disabled").and_then(|v| v.as_bool()).unwrap_or(false),
    }
}

/// A webhook's state, as a badge: enabled, disabled in its definition, or disabled at run time and why.
fn state_badge(row: &WebhookRow, summary: &Summary) -> String {
    match (&row.state.disabled_reason, summary.disabled) {
        (Some(reason), _) => {
            format!(r#"<span class="badge fail" title="{r}">disabled: {r}</span>"#, r = escape(reason))
        }
        (None, true) => r#"<span class="badge skip">disabled in its definition</span>"#.to_owned(),
        (None, false) => r#"<span class="badge ok">enabled</span>"#.to_owned(),
    }
}

fn status_name(attempt: &AttemptRow) -> &'static str {
    i16::try_from(attempt.delivery_status)
        .ok()
        .and_then(DeliveryStatus::from_i16)
        .map_or("unknown", DeliveryStatus::as_str)
}

/// An attempt's outcome in a few words: the status code or the error class.
fn outcome(attempt: &AttemptRow) -> String {
    match (&attempt.error_class, attempt.response_status) {
        (None, Some(status)) => format!("{status}"),
        (Some(class), Some(status)) => format!("{class} {status}"),
        (Some(class), None) => class.clone(),
        (None, None) => "no answer".to_owned(),
    }
}

fn outcome_class(attempt: &AttemptRow) -> &'static str {
    if attempt.error_class.is_none() { "ok" } else { "fail" }
}

async fn group_page(console: &Console, signed: &Signed, request: &Request, group_id: &GroupId) -> Result<Response> {
    let group = console.kernel.get_group(group_id).await?;
    let page_index = page_number(request);
    let page = Page::new(page_index.saturating_mul(PAGE_SIZE), PAGE_SIZE, Order::Created, false)?;
    let (webhooks, total) = console.kernel.list_webhooks_page(group_id, None, &WebhookFilter::default(), &page).await?;
    let mut body = group_tabs(group_id, "Webhooks");
    body.push_str(
        r#"<table class="list" id="webhooks"><thead><tr><th scope="col">webhook</th><th scope="col">event</th><th scope="col">state</th><th scope="col">failures in a row</th><th scope="col">last attempt</th></tr></thead><tbody>"#,
    );
    for webhook in &webhooks {
        let summary = summary(&webhook.definition);
        let last = crate::store::console::last_attempt(console.kernel.store.pool(), &webhook.id).await?;
        let last = match last {
            Some(attempt) => format!(
                r#"<span class="badge {}">{}</span> {}"#,
                outcome_class(&attempt),
                escape(&outcome(&attempt)),
                time::iso8601_ms(attempt.started_at)
            ),
            None => "none yet".to_owned(),
        };
        let label = if summary.name.is_empty() { webhook.id.to_string() } else { summary.name.clone() };
        let _ = write!(
            body,
            r#"<tr><td><a href="/webhooks/{id}">{label}</a><div class="sub">{url}</div></td><td><code>{event}</code></td><td>{state}</td><td>{failures}</td><td>{last}</td></tr>"#,
            id = webhook.id,
            label = escape(&label),
            url = escape(&summary.url),
            event = escape(&summary.event),
            state = state_badge(webhook, &summary),
            failures = webhook.state.consecutive_failures,
        );
    }
    body.push_str("</tbody></table>");
    if webhooks.is_empty() {
        let _ = write!(
            body,
            r#"<p>No webhooks yet. <a href="/groups/{group_id}/templates">Start from a template</a>.</p>"#
        );
    } else if signed.viewer().can_edit() {
        let _ = write!(body, r#"<p><a href="/groups/{group_id}/templates">New webhook from a template</a></p>"#);
    }
    body.push_str(&pager(&format!("/groups/{group_id}"), page_index, total, PAGE_SIZE));
    let crumbs = group_crumbs(group_id, &group.name);
    Ok(render(&group.name, signed, &crumbs, &body))
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
struct DefinitionError {
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

async fn webhook_page(
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

fn secret_page(
    signed: &Signed,
    crumbs: &[(String, String)],
    title: &str,
    what: &str,
    secret: &str,
    back: &str,
) -> Response {
    let body = format!(
        r#"<p class="message secret" role="status">{}</p><p><code id="secret" class="secret">{}</code></p><p class="help">It is shown this once: copy it now. Only its hash (or, for signing secrets, the database) keeps it.</p><p><a href="{}" id="continue">Continue</a></p>"#,
        escape(what),
        escape(secret),
        escape(back)
    );
    render(title, signed, crumbs, &body)
}

async fn webhook_action(
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
                        outcome
                            .attempt
                            .error_message
                            .clone()
                            .unwrap_or_else(|| super::pages::outcome(&outcome.attempt))
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

async fn devices_page(console: &Console, signed: &Signed, request: &Request, group_id: &GroupId) -> Result<Response> {
    let group = console.kernel.get_group(group_id).await?;
    let page_index = page_number(request);
    let page = Page::new(page_index.saturating_mul(PAGE_SIZE), PAGE_SIZE, Order::Created, false)?;
    let (devices, total) = console.kernel.list_devices_page(group_id, "", &page).await?;
    let viewer = signed.viewer();
    let mut body = group_tabs(group_id, "Devices");
    if viewer.can_edit() {
        let _ = write!(
            body,
            r#"<form method="post" action="/groups/{group_id}/devices" class="card inline-form">{}<label for="device-name">New device named</label><input id="device-name" name="name" required maxlength="200"><button type="submit" id="create-device">Create device</button></form>"#,
            viewer.csrf_field()
        );
    }
    body.push_str(
        r#"<table class="list" id="devices"><thead><tr><th scope="col">name</th><th scope="col">id</th><th scope="col">created</th><th scope="col">actions</th></tr></thead><tbody>"#,
    );
    for device in &devices {
        let actions = if viewer.can_edit() {
            format!(
                r#"<form method="post" action="/devices/{id}/rename" class="inline">{csrf}<label class="visually-hidden" for="rename-{id}">new name</label><input id="rename-{id}" name="name" value="{name}" maxlength="200"><button type="submit">Rename</button></form> {rotate}"#,
                id = device.id,
                csrf = viewer.csrf_field(),
                name = escape(&device.name),
                rotate = viewer.button(&format!("/devices/{}/rotate", device.id), "Rotate token", "")
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            r#"<tr data-device="{id}"><td>{name}</td><td><code>{id}</code></td><td>{created}</td><td>{actions}</td></tr>"#,
            id = device.id,
            name = escape(&device.name),
            created = time::iso8601_ms(device.created_at),
        );
    }
    body.push_str("</tbody></table>");
    body.push_str(&pager(&format!("/groups/{group_id}/devices"), page_index, total, PAGE_SIZE));
    let mut crumbs = group_crumbs(group_id, &group.name);
    crumbs.push(("devices".into(), format!("/groups/{group_id}/devices")));
    Ok(render("Devices", signed, &crumbs, &body))
}

async fn create_device(console: &Console, signed: &Signed, request: &Request, group_id: &GroupId) -> Result<Response> {
    let name = request.form("name").unwrap_or("").trim().to_owned();
    let (device, token) = console.kernel.create_device(group_id, DeviceFields { name, ..Default::default() }).await?;
    let group = console.kernel.get_group(group_id).await?;
    let mut crumbs = group_crumbs(group_id, &group.name);
    crumbs.push(("devices".into(), format!("/groups/{group_id}/devices")));
    let what = format!("Device {} created. Its token:", device.id);
    Ok(secret_page(signed, &crumbs, "Device created", &what, &token, &format!("/groups/{group_id}/devices")))
}

async fn device_action(
    console: &Console,
    signed: &Signed,
    request: &Request,
    device: &str,
    action: &str,
) -> Result<Response> {
    let id = parse_id("device", device, DeviceId::parse)
        .map_err(|_| KernelError::NotFound(format!("device {} not found", short(device))))?;
    console.kernel.require_object(&signed.who, Object::Device(&id), Role::Editor).await?;
    let row = console.kernel.get_device(&id).await?;
    let group_id = row.group_id.clone();
    let back = format!("/groups/{group_id}/devices");
    match action {
        "rename" => {
            let name = request.form("name").unwrap_or("").trim().to_owned();
            console.kernel.update_device(row, DeviceUpdate { name: Some(name), ..Default::default() }).await?;
            Ok(redirect(&back))
        }
        "rotate" => {
            let (device, token) = console.kernel.rotate_device_token(row).await?;
            let group = console.kernel.get_group(&group_id).await?;
            let mut crumbs = group_crumbs(&group_id, &group.name);
            crumbs.push(("devices".into(), back.clone()));
            let what = format!("Device {} has a new token; the old one is refused from now on:", device.id);
            Ok(secret_page(signed, &crumbs, "Token rotated", &what, &token, &back))
        }
        _ => Err(KernelError::NotFound(format!("no action {}", short(action)))),
    }
}

async fn live_page(console: &Console, signed: &Signed, request: &Request, group_id: &GroupId) -> Result<Response> {
    let group = console.kernel.get_group(group_id).await?;
    let prefix = request.query("prefix").unwrap_or("");
    let mut body = group_tabs(group_id, "Live events");
    let _ = write!(
        body,
        r#"<form method="get" action="/groups/{group_id}/live" class="filters"><label for="prefix">event name prefix</label><input id="prefix" name="prefix" value="{prefix_html}" maxlength="64"><button type="submit">Follow</button></form>
<p id="live-status" role="status" aria-live="polite">connecting…</p>
<table class="list" id="live-events" data-stream="/groups/{group_id}/live/stream?prefix={prefix_url}"><thead><tr><th scope="col">published</th><th scope="col">name</th><th scope="col">data</th><th scope="col">device</th></tr></thead><tbody></tbody></table>"#,
        prefix_html = escape(prefix),
        prefix_url = url_encode(prefix),
    );
    let mut crumbs = group_crumbs(group_id, &group.name);
    crumbs.push(("live".into(), format!("/groups/{group_id}/live")));
    Ok(render("Live events", signed, &crumbs, &body))
}

async fn gallery_page(console: &Console, signed: &Signed, group_id: &GroupId) -> Result<Response> {
    let group = console.kernel.get_group(group_id).await?;
    let mut body = group_tabs(group_id, "Templates");
    body.push_str(r#"<ul class="gallery" id="templates">"#);
    for template in templates::TEMPLATES {
        let _ = write!(
            body,
            r#"<li class="card"><h2><a href="/groups/{group_id}/templates/{name}">{title}</a></h2><p>{description}</p></li>"#,
            name = template.name,
            title = escape(template.title),
            description = escape(template.description),
        );
    }
    body.push_str("</ul>");
    let mut crumbs = group_crumbs(group_id, &group.name);
    crumbs.push(("templates".into(), format!("/groups/{group_id}/templates")));
    Ok(render("Templates", signed, &crumbs, &body))
}

async fn template_page(
    console: &Console,
    signed: &Signed,
    group_id: &GroupId,
    template: &templates::Template,
    values: &[(String, String)],
    error: Option<String>,
) -> Result<Response> {
    let group = console.kernel.get_group(group_id).await?;
    let mut body = String::new();
    if let Some(error) = &error {
        body.push_str(&html::message("error", error));
    }
    let _ = write!(
        body,
        r#"<p>{}</p><form method="post" action="/groups/{group_id}/templates/{}" class="card" id="template-form">{}"#,
        escape(template.description),
        template.name,
        signed.viewer().csrf_field()
    );
    for field in template.fields {
        let value = if field.secret {
            String::new()
        } else {
            values
                .iter()
                .rev()
                .find(|(key, _)| key == field.key)
                .map(|(_, value)| value.clone())
                .or_else(|| field.default.map(str::to_owned))
                .unwrap_or_default()
        };
        let invalid = error.as_deref().is_some_and(|error| error.starts_with(&format!("{}:", field.key)));
        let _ = write!(
            body,
            r#"<label for="field-{key}">{label}</label><input id="field-{key}" name="{key}" type="{kind}" value="{value}"{required}{invalid} aria-describedby="help-{key}" autocomplete="off"><p class="help" id="help-{key}">{help}</p>"#,
            key = field.key,
            label = escape(field.label),
            kind = if field.secret { "password" } else { "text" },
            value = escape(&value),
            required = if field.default.is_none() { " required" } else { "" },
            invalid = if invalid { r#" aria-invalid="true""# } else { "" },
            help = escape(field.help),
        );
    }
    body.push_str(r#"<button type="submit" id="create-from-template">Create webhook</button></form>"#);
    let mut crumbs = group_crumbs(group_id, &group.name);
    crumbs.push(("templates".into(), format!("/groups/{group_id}/templates")));
    let response = render(template.title, signed, &crumbs, &body);
    Ok(if error.is_some() {
        let mut response = response;
        *response.status_mut() = StatusCode::BAD_REQUEST;
        response
    } else {
        response
    })
}

async fn create_from_template(
    console: &Console,
    signed: &Signed,
    request: &Request,
    group_id: &GroupId,
    template: &templates::Template,
) -> Result<Response> {
    let values: Vec<(String, String)> = template
        .fields
        .iter()
        .filter_map(|field| request.form(field.key).map(|value| (field.key.to_owned(), value.to_owned())))
        .collect();
    let definition = match template.render(&values) {
        Ok(definition) => definition,
        Err(error) => {
            return template_page(console, signed, group_id, template, &values, Some(error.to_string())).await;
        }
    };
    match console.kernel.create_webhook(group_id, &definition).await {
        Ok(saved) => Ok(redirect(&format!("/webhooks/{}?done=created", saved.row.id))),
        Err(KernelError::InvalidArgument(message)) => {
            template_page(console, signed, group_id, template, &values, Some(message)).await
        }
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_a_definition_the_kernel_accepts() {
        for template in templates::TEMPLATES {
            let values: Vec<(String, String)> = template
                .fields
                .iter()
                .map(|field| {
                    let value = if field.key.contains("url") || field.key == "topic_endpoint" {
                        "https://example.com/x"
                    } else {
                        "value"
                    };
                    (field.key.to_owned(), value.to_owned())
                })
                .collect();
            let definition = template.render(&values).unwrap();
            let parsed = WebhookDefinition::from_json(&definition);
            assert!(parsed.is_ok(), "{}: {:?}\n{definition}", template.name, parsed.err());
        }
    }

    #[test]
    fn a_refused_field_is_found_in_the_submitted_text() {
        assert_eq!(line_of_field("{\n  \"event\": \"t\",\n  \"url\": \"ftp://x\"\n}", "url"), Some(3));
    }
}
