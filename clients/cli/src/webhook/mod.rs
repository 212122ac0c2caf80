//! `hookwire webhook`: webhooks, read from and exported to Particle webhook JSON files.
//!
//! A stored webhook prints as one object: `id`, `group_id`, `created_at`, `updated_at`, `signing_secret` (only in
//! the answers that show a new signing secret: create, update turning `x-signing` on, rotate-secret), its
//! run-time state (`auto_disabled`, `disabled_reason`, `consecutive_failures`), then the fields of its definition;
//! `export` prints the definition alone, ready to be created again.
//!
//! This module holds the command and runs it; `definitions` reads definition files (and builds the forwarding
//! webhook of `create --device --url`), `printing` turns answers into the printed documents.

mod definitions;
mod printing;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use hookwire_client::{AdminClient, proto};
use serde_json::{Value, json};

use crate::GlobalArgs;
use crate::output::{DELETED_COLUMNS, Format, print_document};
use crate::paging::{PageArgs, note_page};
use definitions::{forwarding_definition, read_definition, read_definitions};
use printing::{COLUMNS, SECRET_COLUMNS, TEST_COLUMNS, definition, print_webhook, test_json, webhook_json};

pub const EXAMPLES: &str = "\
Examples:
  hookwire webhook create --group grp_0123456789abcdef --file temp-hook.json
  hookwire webhook import --group grp_0123456789abcdef hooks.json
  hookwire webhook list --group grp_0123456789abcdef --name temp --meta team=ops --output table
  hookwire webhook test whk_0123456789abcdef
  hookwire webhook export --group grp_0123456789abcdef > hooks.json";

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
