//! The console's pages and actions. Each handler authorizes first, with the kernel's own checks and the role the
//! gRPC call of the same operation needs, then goes through the kernel's operations (`admin.rs`,
//! `deliveries.rs`), so the console can do exactly what the API lets the same token do.
//!
//! Here: the router, the helpers every page shares, the groups and a group's webhooks; `webhook.rs`: a webhook's
//! page and actions; `group.rs`: devices, the live stream and the template gallery.

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

mod group;
mod webhook;

use group::*;
use webhook::*;

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

async fn group_page(console: &Console, signed: &Signed, request: &Request, group_id: &GroupId) -> Result<Response> {
    let group = console.kernel.get_group(group_id).await?;
    let page_index = page_number(request);
    let page = Page::new(page_index.saturating_mul(PAGE_SIZE), PAGE_SIZE, Order::Created, false)?;
    let (webhooks, total) = console.kernel.list_webhooks_page(group_id, None, &WebhookFilter::default(), &page).await?;
    let mut body = group_tabs(group_id, "Webhooks");
    body.push_str(
        r#"<table class="list" id="webhooks"><thead><tr><th scope="col">webhook</th><th scope="col">event</th><th scope="col">state</th><th scope="col">failures in a row</th><th scope="col">last attempt</th></tr></thead><tbody>"#,
    );
    let ids: Vec<&WebhookId> = webhooks.iter().map(|webhook| &webhook.id).collect();
    let last_attempts = crate::store::console::last_attempts(console.kernel.store.pool(), &ids).await?;
    for webhook in &webhooks {
        let summary = summary(&webhook.definition);
        let last = match last_attempts.get(webhook.id.as_str()) {
            Some(attempt) => format!(
                r#"<span class="badge {}">{}</span> {}"#,
                outcome_class(attempt),
                escape(&outcome(attempt)),
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
