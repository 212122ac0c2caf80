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

pub const EXAMPLES: &str = "\
Examples:
  hookwire webhook create --group grp_0123456789abcdef --file temp-hook.json
  hookwire webhook export whk_0123456789abcdef > temp-hook.json";

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
  echo '{\"event\": \"temp\", \"url\": \"https://example.com/t\"}' | hookwire webhook create --group grp_0123456789abcdef --file -
  hookwire webhook create --device dev_0123456789abcdef --name forward --url https://example.com/in --header Content-Type=application/json")]
    Create {
        /// The group id, grp_... (with --device, the device's group is used)
        #[arg(long, value_name = "ID", required_unless_present = "device")]
        group: Option<String>,
        /// The definition, a Particle webhook JSON file; - reads standard input
        #[arg(long, value_name = "HOOK.json", required_unless_present = "url", conflicts_with_all = ["url", "header", "name"])]
        file: Option<PathBuf>,
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
    /// List the webhooks of a group, oldest first; prints an array of webhooks
    #[command(after_help = "\
Examples:
  hookwire webhook list --group grp_0123456789abcdef --output table
  hookwire webhook list --group grp_0123456789abcdef --device dev_0123456789abcdef")]
    List {
        /// The group id, grp_...
        #[arg(long, value_name = "ID")]
        group: String,
        /// Only the webhooks limited to this device (by deviceID or x-devices), dev_...
        #[arg(long, value_name = "ID")]
        device: Option<String>,
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
    /// Delete webhooks, stopping at the first failure; prints {"deleted": [ID, ...]}, the ones deleted
    #[command(after_help = "\
Examples:
  hookwire webhook delete whk_0123456789abcdef
  hookwire webhook delete whk_0123456789abcdef whk_fedcba9876543210")]
    Delete {
        /// The webhook ids, whk_...
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
    /// Print only a webhook's definition JSON, as `webhook create` takes it (always JSON, whatever --output)
    #[command(after_help = "\
Example:
  hookwire webhook export whk_0123456789abcdef > temp-hook.json
  hookwire webhook create --group grp_fedcba9876543210 --file temp-hook.json")]
    Export {
        /// The webhook id, whk_...
        id: String,
    },
}

pub async fn run(command: WebhookCommand, global: &GlobalArgs) -> anyhow::Result<()> {
    let format = global.output;
    match command {
        WebhookCommand::Create { group, file, device, url, name, header } => {
            let admin = global.admin_client().await?;
            let (group, definition_json) = match (file, device, url) {
                (Some(file), _, _) => (group, read_definition(&file)?),
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
            let group = group.context("--group: required with --file")?;
            let webhook = admin.create_webhook(group, definition_json).await?;
            print_webhook(format, webhook)?;
        }
        WebhookCommand::List { group, device } => {
            let admin = global.admin_client().await?;
            let webhooks = admin.list_webhooks(group, device.as_deref()).await?;
            let webhooks_json = webhooks.into_iter().map(webhook_json).collect::<anyhow::Result<_>>()?;
            print_document(format, &Value::Array(webhooks_json), COLUMNS)?;
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
        WebhookCommand::Export { id } => {
            let admin = global.admin_client().await?;
            let webhook = admin.get_webhook(id).await?;
            print_document(Format::Json, &definition(&webhook)?, &[])?;
        }
    }
    Ok(())
}

/// Deletes the webhooks in order. On a failure, the ones deleted before it are still printed, then the failure
/// is returned.
async fn delete(admin: &AdminClient, ids: Vec<String>, format: Format) -> anyhow::Result<()> {
    let mut deleted_ids = Vec::new();
    let mut failure = None;
    for id in ids {
        match admin.delete_webhook(&id).await {
            Ok(()) => deleted_ids.push(id),
            Err(error) => {
                failure = Some(anyhow::Error::new(error).context(format!("cannot delete {id}")));
                break;
            }
        }
    }
    print_document(format, &json!({ "deleted": deleted_ids }), DELETED_COLUMNS)?;
    failure.map_or(Ok(()), Err)
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
