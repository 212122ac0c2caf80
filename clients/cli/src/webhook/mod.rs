//! `hookwire webhook`: webhooks, read from and exported to Particle webhook JSON files.
//!
//! A stored webhook prints as one object: `id`, `group_id`, `created_at`, `updated_at`, `signing_secret` (only in
//! the answers that show a new signing secret: create, update turning `x-signing` on, rotate-secret), its
//! run-time state (`auto_disabled`, `disabled_reason`, `consecutive_failures`), then the fields of its definition;
//! `export` prints the definition alone, ready to be created again.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use hookwire_client::{AdminClient, proto};
use serde_json::{Map, Value, json};

use crate::GlobalArgs;
use crate::output::{DELETED_COLUMNS, Format, print_document};
use crate::paging::{PageArgs, note_page};

pub const EXAMPLES: &str = "\
Examples:
  hookwire webhook create --group grp_0123456789abcdef --file temp-hook.json
  hookwire webhook import --group grp_0123456789abcdef hooks.json
  hookwire webhook list --group grp_0123456789abcdef --name temp --meta team=ops --output table
  hookwire webhook test whk_0123456789abcdef
  hookwire webhook export --group grp_0123456789abcdef > hooks.json";

const COLUMNS: &[&str] = &["id", "name", "event", "url", "disabled", "auto_disabled"];
/// The table columns of an answer that shows a new signing secret, which must not be left out.
const SECRET_COLUMNS: &[&str] = &["id", "signing_secret", "name", "event", "url"];

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Create a webhook from a Particle webhook JSON file, or one that forwards everything a device publishes
    /// (Mainflux's shape: --device, --url, --header); prints the stored webhook
    #[command(after_help = "\
Examples:
  hookwire webhook create --group grp_0123456789abcdef --file temp-hook.json
  hookwire webhook create --group grp_0123456789abcdef --template thingspeak --set event=temp --set api_key=XXXX
  echo '{\"event\": \"temp\", \"url\": \"https://example.com/t\"}' | hookwire webhook create --group grp_0123456789abcdef --file -
  hookwire webhook create --device dev_0123456789abcdef --name forward --url https://example.com/in --header Content-Type=application/json")]
    Create {
        /// The group id, grp_... (with --device, the device's group is used)
        #[arg(long, value_name = "ID", required_unless_present = "device")]
        group: Option<String>,
        /// The definition, a Particle webhook JSON file; - reads standard input
        #[arg(long, value_name = "HOOK.json", required_unless_present_any = ["url", "template"], conflicts_with_all = ["url", "header", "name", "template"])]
        file: Option<PathBuf>,
        /// Fill in a ready integration instead (`hookwire template list`), with its fields given by --set
        #[arg(long, value_name = "NAME", conflicts_with_all = ["device", "url"])]
        template: Option<String>,
        /// With --template: a field's value, KEY=VALUE (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE", requires = "template")]
        set: Vec<String>,
        /// Forward every event of this device (its raw data as the body), dev_...
        #[arg(long, value_name = "ID", requires = "url")]
        device: Option<String>,
        /// With --device: the destination URL
        #[arg(long, value_name = "URL", requires = "device")]
        url: Option<String>,
        /// With --device: the webhook's name
        #[arg(long, value_name = "NAME", requires = "device")]
        name: Option<String>,
        /// With --device: a static header, NAME=VALUE (repeatable)
        #[arg(long = "header", value_name = "NAME=VALUE", requires = "device")]
        header: Vec<String>,
    },
    /// List the webhooks of a group, oldest first, 50 at a time; prints an array of webhooks (when more match, a
    /// note on stderr says how to get the next page)
    #[command(after_help = "\
Examples:
  hookwire webhook list --group grp_0123456789abcdef --output table
  hookwire webhook list --group grp_0123456789abcdef --device dev_0123456789abcdef
  hookwire webhook list --group grp_0123456789abcdef --name temp --url example.com --meta team=ops
  hookwire webhook list --group grp_0123456789abcdef --order name --offset 50 --limit 50
  hookwire webhook list --group grp_0123456789abcdef --all --field id")]
    List {
        /// The group id, grp_...
        #[arg(long, value_name = "ID")]
        group: String,
        /// Only the webhooks limited to this device (by deviceID or x-devices), dev_...
        #[arg(long, value_name = "ID")]
        device: Option<String>,
        /// Only webhooks whose name contains this text, ignoring case
        #[arg(long, value_name = "TEXT")]
        name: Option<String>,
        /// Only webhooks whose URL contains this text
        #[arg(long, value_name = "TEXT")]
        url: Option<String>,
        /// Only webhooks whose x-metadata has KEY with VALUE (repeatable: all must match)
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        meta: Vec<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Create webhooks from a Particle webhook JSON file holding one definition or an array of them, all or
    /// nothing: when one is refused, none is created and the error names it (webhooks[3].url: ...); prints an
    /// array of the created webhooks
    #[command(after_help = "\
Examples:
  hookwire webhook import --group grp_0123456789abcdef hooks.json
  hookwire webhook export --group grp_0123456789abcdef | hookwire webhook import --group grp_fedcba9876543210 -")]
    Import {
        /// The group id, grp_...
        #[arg(long, value_name = "ID")]
        group: String,
        /// A Particle webhook JSON file: one object, or an array of up to 200; - reads standard input
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Send a test event to a webhook, as Particle's Test button does: its event name, data "test-event" (or
    /// --data), device "api"; prints what the destination answered and exits non-zero when the attempt failed
    #[command(after_help = "\
Examples:
  hookwire webhook test whk_0123456789abcdef
  hookwire webhook test whk_0123456789abcdef --data '{\"temp\": 21.5}' --output table")]
    Test {
        /// The webhook id, whk_...
        id: String,
        /// The event data (default: test-event)
        #[arg(long, value_name = "DATA")]
        data: Option<String>,
    },
    /// Show one stored webhook
    #[command(after_help = "Example:\n  hookwire webhook get whk_0123456789abcdef")]
    Get {
        /// The webhook id, whk_...
        id: String,
    },
    /// Replace a webhook's definition (the id stays); prints the stored webhook
    #[command(after_help = "\
Example:
  hookwire webhook export whk_0123456789abcdef > hook.json
  hookwire webhook update whk_0123456789abcdef --file hook.json")]
    Update {
        /// The webhook id, whk_...
        id: String,
        /// The new definition, a Particle webhook JSON file; - reads standard input
        #[arg(long, value_name = "HOOK.json")]
        file: PathBuf,
    },
    /// Show a webhook's attempts: the last 10 successes and 10 errors, or every attempt a page at a time
    #[command(after_help = "\
Examples:
  hookwire webhook logs whk_0123456789abcdef --output table
  hookwire webhook logs whk_0123456789abcdef --all --since 2h --limit 100")]
    Logs {
        /// The webhook id, whk_...
        id: String,
        /// Every attempt, newest first, a page at a time, instead of the last 10 successes and 10 errors
        #[arg(long)]
        all: bool,
        /// Only attempts since this time: ISO-8601 UTC (2026-11-22T10:00:00Z) or a duration back (30m, 2h, 7d)
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// With --all: attempts per page, up to 200
        #[arg(long, default_value_t = 50, requires = "all")]
        limit: u32,
        /// With --all: the page after the one that printed this token
        #[arg(long, value_name = "TOKEN", requires = "all")]
        page_token: Option<String>,
    },
    /// Show a webhook's deliveries per day (today and the 30 days before), with a small chart in table mode
    #[command(after_help = "Example:\n  hookwire webhook history whk_0123456789abcdef --output table")]
    History {
        /// The webhook id, whk_...
        id: String,
        /// How many days, today included (up to 90)
        #[arg(long, default_value_t = 31)]
        days: u32,
    },
    /// Deliver again a webhook's deliveries since a time; prints {"replayed": N}
    #[command(after_help = "\
Examples:
  hookwire webhook replay whk_0123456789abcdef --since 2h
  hookwire webhook replay whk_0123456789abcdef --since 2026-11-22T00:00:00Z --status all")]
    Replay {
        /// The webhook id, whk_...
        id: String,
        /// Deliveries created since: ISO-8601 UTC or a duration back (30m, 2h, 7d)
        #[arg(long, value_name = "TIME")]
        since: String,
        /// Which deliveries: failed, skipped or all
        #[arg(long, default_value = "failed", value_parser = ["failed", "skipped", "all"])]
        status: String,
    },
    /// Deliver again the delivery of one attempt (its id as `webhook logs` shows it); prints {"replayed": 1}
    #[command(after_help = "Example:\n  hookwire webhook resend 1234")]
    Resend {
        /// The attempt id
        attempt_id: i64,
    },
    /// Delete webhooks, all or nothing: when one does not exist, none is deleted and the error names it; prints
    /// {"deleted": [ID, ...]}
    #[command(after_help = "\
Examples:
  hookwire webhook delete whk_0123456789abcdef
  hookwire webhook delete whk_0123456789abcdef whk_fedcba9876543210
  hookwire webhook list --group grp_0123456789abcdef --meta team=old --all --field id | xargs hookwire webhook delete")]
    Delete {
        /// The webhook ids, whk_... (up to 200)
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Give a signing webhook (x-signing) a new signing secret; prints the webhook with its signing_secret, shown
    /// only this once. The old secret keeps signing during the grace period: requests carry both signatures
    #[command(after_help = "\
Examples:
  hookwire webhook rotate-secret whk_0123456789abcdef
  hookwire webhook rotate-secret whk_0123456789abcdef --grace 0 --field signing_secret")]
    RotateSecret {
        /// The webhook id, whk_...
        id: String,
        /// How long the old secret keeps signing, in seconds: default 86400 (one day), at most 604800 (seven
        /// days); 0 retires every old secret at once (a leaked secret)
        #[arg(long, value_name = "SECS")]
        grace: Option<u32>,
    },
    /// Enable a webhook disabled at run time (by its x-failureLimit, a 410 Gone with x-retry, or `webhook
    /// disable`) and reset its count of consecutive failures; prints the stored webhook
    #[command(after_help = "Example:\n  hookwire webhook enable whk_0123456789abcdef")]
    Enable {
        /// The webhook id, whk_...
        id: String,
    },
    /// Disable a webhook at run time, its definition unchanged, until `webhook enable`; prints the stored webhook
    #[command(after_help = "Example:\n  hookwire webhook disable whk_0123456789abcdef")]
    Disable {
        /// The webhook id, whk_...
        id: String,
    },
    /// Print only a webhook's definition JSON, as `webhook create` takes it, or with --group an array of the
    /// definitions of a group's webhooks, as `webhook import` takes it (always JSON, whatever --output)
    #[command(after_help = "\
Examples:
  hookwire webhook export whk_0123456789abcdef > temp-hook.json
  hookwire webhook create --group grp_fedcba9876543210 --file temp-hook.json
  hookwire webhook export --group grp_0123456789abcdef > hooks.json
  hookwire webhook import --group grp_fedcba9876543210 hooks.json")]
    Export {
        /// The webhook id, whk_...
        #[arg(required_unless_present = "group", conflicts_with = "group")]
        id: Option<String>,
        /// Every webhook of this group, grp_...
        #[arg(long, value_name = "ID")]
        group: Option<String>,
        /// With --group: only the webhooks limited to this device, dev_...
        #[arg(long, value_name = "ID", requires = "group")]
        device: Option<String>,
    },
}

pub async fn run(command: WebhookCommand, global: &GlobalArgs) -> anyhow::Result<()> {
    let format = global.output;
    match command {
        WebhookCommand::Create { group, file, template, set, device, url, name, header } => {
            let admin = global.admin_client().await?;
            let (group, definition_json) = match (file, device, url) {
                (Some(file), _, _) => (group, read_definition(&file)?),
                (None, None, None) if template.is_some() => {
                    (group, crate::template::definition(template.as_deref().unwrap_or_default(), &set)?)
                }
                (None, Some(device), Some(url)) => {
                    let definition = forwarding_definition(&device, &url, name, &header)?;
                    let group = match group {
                        Some(group) => Some(group),
                        None => Some(admin.get_device(device).await?.group_id),
                    };
                    (group, definition.to_string())
                }
                _ => bail!("give --file, or --device with --url"),
            };
            let group = group.context("--group: required with --file or --template")?;
            let webhook = admin.create_webhook(group, definition_json).await?;
            print_webhook(format, webhook)?;
        }
        WebhookCommand::List { group, device, name, url, meta, page } => {
            let admin = global.admin_client().await?;
            let mut metadata = std::collections::HashMap::new();
            for pair in &meta {
                let (key, value) =
                    pair.split_once('=').with_context(|| format!("--meta {pair}: expected KEY=VALUE"))?;
                metadata.insert(key.to_owned(), value.to_owned());
            }
            let request = proto::ListWebhooksRequest {
                group_id: group,
                device_id: device.unwrap_or_default(),
                offset: page.offset,
                limit: page.limit,
                order_by: page.order_by(),
                descending: page.desc,
                name_contains: name.unwrap_or_default(),
                url_contains: url.unwrap_or_default(),
                metadata,
            };
            let webhooks = if page.all {
                admin.list_all_webhooks(request).await?
            } else {
                let listed = admin.list_webhooks_page(request).await?;
                note_page(page.offset, listed.webhooks.len(), listed.total);
                listed.webhooks
            };
            let webhooks_json = webhooks.into_iter().map(webhook_json).collect::<anyhow::Result<_>>()?;
            print_document(format, &Value::Array(webhooks_json), COLUMNS)?;
        }
        WebhookCommand::Import { group, file } => {
            let definitions = read_definitions(&file)?;
            let admin = global.admin_client().await?;
            let webhooks = admin.batch_create_webhooks(group, definitions).await?;
            let columns = if webhooks.iter().any(|webhook| !webhook.signing_secret.is_empty()) {
                SECRET_COLUMNS
            } else {
                COLUMNS
            };
            let webhooks_json = webhooks.into_iter().map(webhook_json).collect::<anyhow::Result<_>>()?;
            print_document(format, &Value::Array(webhooks_json), columns)?;
        }
        WebhookCommand::Test { id, data } => {
            let admin = global.admin_client().await?;
            let tested = admin.test_webhook(&id, data).await?;
            let document = test_json(&tested);
            print_document(format, &document, TEST_COLUMNS)?;
            if !tested.succeeded {
                let class = document["error_class"].as_str().unwrap_or("failed");
                let message = document["error_message"].as_str().unwrap_or_default();
                bail!("the test delivery to {id} failed: {class}: {message}");
            }
        }
        WebhookCommand::Get { id } => {
            let admin = global.admin_client().await?;
            let webhook = admin.get_webhook(id).await?;
            print_document(format, &webhook_json(webhook)?, COLUMNS)?;
        }
        WebhookCommand::Update { id, file } => {
            let definition_json = read_definition(&file)?;
            let admin = global.admin_client().await?;
            let webhook = admin.update_webhook(id, definition_json).await?;
            print_webhook(format, webhook)?;
        }
        WebhookCommand::Delete { ids } => {
            let admin = global.admin_client().await?;
            delete(&admin, ids, format).await?;
        }
        WebhookCommand::Logs { id, all, since, limit, page_token } => {
            crate::deliveries::logs(global, id, all, since, limit, page_token).await?;
        }
        WebhookCommand::History { id, days } => crate::deliveries::history(global, id, days).await?,
        WebhookCommand::Replay { id, since, status } => crate::deliveries::replay(global, id, since, status).await?,
        WebhookCommand::Resend { attempt_id } => crate::deliveries::resend(global, attempt_id).await?,
        WebhookCommand::RotateSecret { id, grace } => {
            let admin = global.admin_client().await?;
            let webhook = admin.rotate_webhook_secret(id, grace).await?;
            print_webhook(format, webhook)?;
        }
        WebhookCommand::Enable { id } => {
            let admin = global.admin_client().await?;
            print_webhook(format, admin.enable_webhook(id).await?)?;
        }
        WebhookCommand::Disable { id } => {
            let admin = global.admin_client().await?;
            print_webhook(format, admin.disable_webhook(id).await?)?;
        }
        WebhookCommand::Export { id, group, device } => {
            let admin = global.admin_client().await?;
            match (id, group) {
                (Some(id), _) => {
                    let webhook = admin.get_webhook(id).await?;
                    print_document(Format::Json, &definition(&webhook)?, &[])?;
                }
                (None, Some(group)) => {
                    let webhooks = admin.list_webhooks(group, device.as_deref()).await?;
                    let definitions = webhooks.iter().map(definition).collect::<anyhow::Result<_>>()?;
                    print_document(Format::Json, &Value::Array(definitions), &[])?;
                }
                (None, None) => bail!("give a webhook id, or --group"),
            }
        }
    }
    Ok(())
}

/// Deletes the webhooks in one call, all or none.
async fn delete(admin: &AdminClient, ids: Vec<String>, format: Format) -> anyhow::Result<()> {
    admin.batch_delete_webhooks(ids.clone()).await?;
    print_document(format, &json!({ "deleted": ids }), DELETED_COLUMNS)?;
    Ok(())
}

/// The table columns of `webhook test`.
const TEST_COLUMNS: &[&str] = &["succeeded", "status", "error_class", "duration_ms", "response_body"];

/// What `webhook test` prints: the outcome, then the attempt as the attempt log shows it, the response body as
/// text (invalid UTF-8 replaced).
fn test_json(tested: &proto::TestWebhookResponse) -> Value {
    let attempt = tested.attempt.clone().unwrap_or_default();
    let status = (attempt.response_status != 0).then_some(attempt.response_status);
    let error_class = Some(attempt.error_class).filter(|class| !class.is_empty());
    let error_message = Some(attempt.error_message).filter(|message| !message.is_empty());
    let response_headers: Map<String, Value> =
        attempt.response_headers.into_iter().map(|(name, value)| (name, Value::String(value))).collect();
    json!({
        "succeeded": tested.succeeded,
        "event_id": tested.event_id,
        "delivery_id": attempt.delivery_id,
        "attempt_id": attempt.id,
        "request_method": attempt.request_method,
        "request_url": attempt.request_url,
        "status": status,
        "error_class": error_class,
        "error_message": error_message,
        "duration_ms": attempt.duration_ms,
        "response_headers": response_headers,
        "response_body": String::from_utf8_lossy(&attempt.response_body),
    })
}

/// Reads a file of definitions for `import`: one JSON object, or an array of objects. Each is sent as its own
/// text from the file, preceded by as many line breaks and spaces as put it at its line and column there, so
/// that the lines and columns the server names in a refusal are those of the file.
fn read_definitions(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = read_definition(path)?;
    let source = if path == Path::new("-") { "the standard input".to_owned() } else { path.display().to_string() };
    match serde_json::from_str::<Value>(&text).with_context(|| format!("{source} is not JSON"))? {
        Value::Object(_) => Ok(vec![text]),
        Value::Array(elements) if elements.is_empty() => bail!("{source}: the array holds no webhook"),
        Value::Array(elements) => {
            if let Some(index) = elements.iter().position(|element| !element.is_object()) {
                bail!("{source}: element {index} is not a webhook definition (a JSON object)");
            }
            Ok(array_elements(&text).into_iter().map(|range| placed(&text, range)).collect())
        }
        _ => bail!("{source}: expected a webhook definition (a JSON object) or an array of them"),
    }
}

/// The byte ranges of the elements of the JSON array `text` holds (valid JSON, checked before).
fn array_elements(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut start = None;
    for (index, character) in text.char_indices() {
        if in_string {
            match character {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match character {
            '"' => {
                in_string = true;
                start = start.or((depth == 1).then_some(index));
            }
            '{' | '[' => {
                if depth == 1 {
                    start = start.or(Some(index));
                }
                depth += 1;
            }
            '}' | ']' => {
                depth -= 1;
                if depth == 0 {
                    ranges.extend(start.take().map(|start| start..index));
                }
            }
            ',' if depth == 1 => ranges.extend(start.take().map(|start| start..index)),
            c if depth == 1 && !c.is_whitespace() => start = start.or(Some(index)),
            _ => {}
        }
    }
    ranges.into_iter().map(|range| range.start..range.start + text[range].trim_end().len()).collect()
}

/// The text of `range`, preceded by the line breaks and spaces that put it at its line and column in `text`.
fn placed(text: &str, range: std::ops::Range<usize>) -> String {
    let before = &text[..range.start];
    let num_lines = before.matches('\n').count();
    let column = before.rsplit('\n').next().map_or(0, |line| line.chars().count());
    let mut element = String::with_capacity(num_lines + column + range.len());
    element.extend(std::iter::repeat_n('\n', num_lines));
    element.extend(std::iter::repeat_n(' ', column));
    element.push_str(&text[range]);
    element
}

/// Reads a definition file (`-`: standard input) and checks that it is JSON; the server judges the rest. The
/// text is sent as it is, so that the stored definition keeps its author's order of fields.
/// A webhook in Mainflux's shape: every event of one device (the empty prefix matches every name) POSTed to a
/// URL with its raw data as the body and static headers.
fn forwarding_definition(device: &str, url: &str, name: Option<String>, headers: &[String]) -> anyhow::Result<Value> {
    let mut header_map = Map::new();
    for header in headers {
        let (key, value) = header.split_once('=').with_context(|| format!("--header {header}: expected NAME=VALUE"))?;
        header_map.insert(key.trim().to_owned(), Value::String(value.to_owned()));
    }
    // The Mainflux webhooks service sends JSON; a --header Content-Type=... of the caller's wins.
    if !header_map.keys().any(|name| name.eq_ignore_ascii_case("content-type")) {
        header_map.insert("Content-Type".to_owned(), Value::String("application/json".to_owned()));
    }
    let mut definition = json!({
        "event": "",
        "url": url,
        "deviceID": device,
        "body": "{{{PARTICLE_EVENT_VALUE}}}",
    });
    if !header_map.is_empty() {
        definition["headers"] = Value::Object(header_map);
    }
    if let Some(name) = name {
        definition["name"] = Value::String(name);
    }
    Ok(definition)
}

fn read_definition(path: &Path) -> anyhow::Result<String> {
    let (text, source) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the definition from standard input")?;
        (text, "the standard input".to_owned())
    } else {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        (text, path.display().to_string())
    };
    serde_json::from_str::<Value>(&text).with_context(|| format!("{source} is not JSON"))?;
    Ok(text)
}

/// Prints one webhook answer; in a table, a new signing secret gets a column of its own.
fn print_webhook(format: Format, webhook: proto::Webhook) -> anyhow::Result<()> {
    let columns = if webhook.signing_secret.is_empty() { COLUMNS } else { SECRET_COLUMNS };
    print_document(format, &webhook_json(webhook)?, columns)?;
    Ok(())
}

/// The stored webhook as one object: its own fields, then its definition's.
fn webhook_json(webhook: proto::Webhook) -> anyhow::Result<Value> {
    let Value::Object(definition_fields) = definition(&webhook)? else {
        bail!("webhook {}: the stored definition is not a JSON object", webhook.id);
    };
    let mut fields = Map::new();
    fields.insert("id".to_owned(), Value::String(webhook.id));
    fields.insert("group_id".to_owned(), Value::String(webhook.group_id));
    fields.insert("created_at".to_owned(), Value::String(webhook.created_at));
    fields.insert("updated_at".to_owned(), Value::String(webhook.updated_at));
    if !webhook.signing_secret.is_empty() {
        fields.insert("signing_secret".to_owned(), Value::String(webhook.signing_secret));
    }
    fields.insert("auto_disabled".to_owned(), Value::Bool(webhook.auto_disabled));
    let disabled_reason = Some(webhook.disabled_reason).filter(|reason| !reason.is_empty());
    fields.insert("disabled_reason".to_owned(), disabled_reason.map_or(Value::Null, Value::String));
    fields.insert("consecutive_failures".to_owned(), Value::from(webhook.consecutive_failures));
    if !webhook.ignored_fields.is_empty() {
        fields.insert("ignored_fields".to_owned(), Value::from(webhook.ignored_fields));
    }
    for (key, value) in definition_fields {
        // Definitions have no such keys today; should one appear, the stored webhook's own field wins.
        fields.entry(key).or_insert(value);
    }
    Ok(Value::Object(fields))
}

/// The webhook's definition JSON, parsed.
fn definition(webhook: &proto::Webhook) -> anyhow::Result<Value> {
    serde_json::from_str(&webhook.definition_json)
        .with_context(|| format!("webhook {}: the stored definition is not JSON", webhook.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored_webhook(definition_json: &str) -> proto::Webhook {
        proto::Webhook {
            id: "whk_1".to_owned(),
            group_id: "grp_1".to_owned(),
            definition_json: definition_json.to_owned(),
            created_at: "2026-11-22T10:34:05.123Z".to_owned(),
            updated_at: "2026-11-22T10:35:00.000Z".to_owned(),
            signing_secret: String::new(),
            ..proto::Webhook::default()
        }
    }

    #[test]
    fn a_stored_webhook_prints_its_own_fields_then_its_definition() {
        let webhook = stored_webhook(r#"{"url": "https://example.com/t", "event": "temp", "disabled": true}"#);
        let printed = webhook_json(webhook).unwrap();
        let keys: Vec<&str> = printed.as_object().unwrap().keys().map(String::as_str).collect();
        let state = ["auto_disabled", "disabled_reason", "consecutive_failures"];
        assert_eq!(
            keys,
            [&["id", "group_id", "created_at", "updated_at"][..], &state, &["url", "event", "disabled"]].concat()
        );
        assert_eq!(printed["id"], "whk_1");
        assert_eq!(printed["updated_at"], "2026-11-22T10:35:00.000Z");
        assert_eq!(printed["disabled"], true);
    }

    #[test]
    fn a_new_signing_secret_prints_after_the_stored_fields_and_only_when_set() {
        let mut webhook = stored_webhook(r#"{"event": "temp", "x-signing": true}"#);
        assert!(webhook_json(webhook.clone()).unwrap().get("signing_secret").is_none());
        webhook.signing_secret = "whsec_abc".to_owned();
        let printed = webhook_json(webhook).unwrap();
        let keys: Vec<&str> = printed.as_object().unwrap().keys().map(String::as_str).collect();
        let state = ["auto_disabled", "disabled_reason", "consecutive_failures"];
        assert_eq!(
            keys,
            [&["id", "group_id", "created_at", "updated_at", "signing_secret"][..], &state, &["event", "x-signing"]]
                .concat()
        );
        assert_eq!(printed["signing_secret"], "whsec_abc");
    }

    #[test]
    fn a_definition_cannot_overwrite_the_stored_fields() {
        let webhook = stored_webhook(r#"{"id": "whk_other", "event": "temp"}"#);
        let printed = webhook_json(webhook).unwrap();
        assert_eq!(printed["id"], "whk_1");
    }

    #[test]
    fn import_elements_keep_their_lines_and_columns() {
        let text = "[\n  {\"event\": \"a\", \"s\": \"x,]}\\\"\"},\n    {\"event\": [1, 2]}\n]\n";
        let elements: Vec<String> = array_elements(text).into_iter().map(|range| placed(text, range)).collect();
        assert_eq!(elements, ["\n  {\"event\": \"a\", \"s\": \"x,]}\\\"\"}", "\n\n    {\"event\": [1, 2]}"]);
        for element in &elements {
            serde_json::from_str::<Value>(element).unwrap();
        }
    }

    #[test]
    fn a_definition_that_is_not_an_object_is_an_error() {
        let error = webhook_json(stored_webhook("[1, 2]")).unwrap_err();
        assert_eq!(error.to_string(), "webhook whk_1: the stored definition is not a JSON object");
    }

    #[test]
    fn a_webhook_disabled_at_run_time_prints_its_state() {
        let webhook = proto::Webhook {
            auto_disabled: true,
            disabled_reason: "5 consecutive failures".to_owned(),
            consecutive_failures: 5,
            ..stored_webhook(r#"{"event": "temp"}"#)
        };
        let printed = webhook_json(webhook).unwrap();
        assert_eq!(printed["auto_disabled"], true);
        assert_eq!(printed["disabled_reason"], "5 consecutive failures");
        assert_eq!(printed["consecutive_failures"], 5);
        let healthy = webhook_json(stored_webhook(r#"{"event": "temp"}"#)).unwrap();
        assert_eq!((&healthy["auto_disabled"], &healthy["disabled_reason"]), (&Value::Bool(false), &Value::Null));
    }
}
