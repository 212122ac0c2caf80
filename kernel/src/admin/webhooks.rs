//! Admin operations on webhooks: validate definitions for a group, create (one or a batch), get with run-time
//! state, enable, disable, list, replace, rotate the signing secret, delete. Each change refreshes the group's index.

use super::{ADMIN_DISABLED_REASON, DEFAULT_SECRET_GRACE_SECONDS, MAX_SECRET_GRACE_SECONDS, SavedWebhook};
use crate::Kernel;
use crate::auth;
use crate::error::KernelError;
use crate::listing::{self, Page, WebhookFilter};
use crate::store::devices;
use crate::store::secrets;
use crate::store::webhook_state::{self, WebhookStateRow};
use crate::store::webhooks::{self, NewWebhook, WebhookRow, WebhookUpdate};
use hookwire_actors::domain::definition::{CompiledWebhook, WebhookDefinition};
use hookwire_actors::domain::ids::{DeviceId, GroupId, WebhookId};
use hookwire_actors::domain::time;
use std::sync::Arc;

impl Kernel {
    /// Parses and validates a definition for a group: the JSON, its templates, its destination when the URL
    /// names a literal address, and its devices. Returns it with the read-only fields it ignored.
    async fn compile_for_group(
        &self,
        id: WebhookId,
        group_id: &GroupId,
        definition_json: &str,
    ) -> Result<(CompiledWebhook, Vec<String>), KernelError> {
        let imported = WebhookDefinition::import(definition_json)
            .map_err(|error| KernelError::InvalidArgument(error.to_string()))?;
        let compiled = CompiledWebhook::compile(id, group_id.clone(), imported.definition)
            .map_err(|error| KernelError::InvalidArgument(error.to_string()))?;
        // A literal address the egress rules refuse would fail every delivery: refused now, with the same words.
        if let Some(address) = compiled.literal_destination()
            && let Err(blocked) = self.egress.check(address)
        {
            return Err(KernelError::InvalidArgument(format!("url: destination {address}: {blocked}")));
        }
        for device_id in &compiled.devices {
            let in_group = devices::get_device(self.store.pool(), device_id)
                .await?
                .is_some_and(|device| &device.group_id == group_id);
            if !in_group {
                let field = if compiled.definition.device_id.as_deref() == Some(device_id.as_str()) {
                    "deviceID"
                } else {
                    "x-devices"
                };
                return Err(KernelError::InvalidArgument(format!(
                    "{field}: device {device_id} is not in group {group_id}"
                )));
            }
        }
        Ok((compiled, imported.ignored_fields))
    }

    /// Validates a definition for a group and makes the webhook to insert, with a signing secret when it signs.
    async fn new_webhook(
        &self,
        group_id: &GroupId,
        definition_json: &str,
        now: i64,
    ) -> Result<(NewWebhook, Vec<String>), KernelError> {
        let (compiled, ignored_fields) =
            self.compile_for_group(WebhookId::generate(), group_id, definition_json).await?;
        let row = WebhookRow {
            id: compiled.id.clone(),
            group_id: group_id.clone(),
            definition: compiled.definition.to_json(),
            created_at: now,
            updated_at: now,
            state: Default::default(),
        };
        let signing_secret = compiled.definition.signs().then(auth::generate_signing_secret);
        Ok((NewWebhook { row, devices: compiled.devices, signing_secret }, ignored_fields))
    }

    /// Creates a webhook from its JSON definition. With `x-signing`, it gets a signing secret, returned this once.
    pub async fn create_webhook(&self, group_id: &GroupId, definition_json: &str) -> Result<SavedWebhook, KernelError> {
        self.get_group(group_id).await?;
        let (new, ignored_fields) = self.new_webhook(group_id, definition_json, time::now_ms()).await?;
        webhooks::insert_webhook(self.store.pool(), &new.row, &new.devices, new.signing_secret.as_deref()).await?;
        self.refresh_group_index(group_id).await?;
        Ok(SavedWebhook { row: new.row, signing_secret: new.signing_secret, ignored_fields })
    }

    /// Creates several webhooks of a group in one transaction, all or none. A refused definition is named by its
    /// index: `webhooks[3].url: ...`; every refused definition is named at once (up to 20). Each signing
    /// webhook's secret is returned this once.
    pub async fn batch_create_webhooks(
        &self,
        group_id: &GroupId,
        definitions_json: &[String],
    ) -> Result<Vec<SavedWebhook>, KernelError> {
        if definitions_json.is_empty() || definitions_json.len() > listing::MAX_BATCH {
            return Err(KernelError::InvalidArgument(format!(
                "webhooks: give 1 to {} definitions, got {}",
                listing::MAX_BATCH,
                definitions_json.len()
            )));
        }
        self.get_group(group_id).await?;
        let now = time::now_ms();
        let mut batch = Vec::with_capacity(definitions_json.len());
        let mut ignored = Vec::with_capacity(definitions_json.len());
        let mut refusals = Vec::new();
        for (index, definition_json) in definitions_json.iter().enumerate() {
            match self.new_webhook(group_id, definition_json, now).await {
                Ok((new, ignored_fields)) => {
                    batch.push(new);
                    ignored.push(ignored_fields);
                }
                Err(KernelError::InvalidArgument(message)) => refusals.push(format!("webhooks[{index}].{message}")),
                Err(other) => return Err(other),
            }
        }
        if !refusals.is_empty() {
            const MAX_REFUSALS_SHOWN: usize = 20;
            let num_refusals = refusals.len();
            refusals.truncate(MAX_REFUSALS_SHOWN);
            let mut message = refusals.join("\n");
            if num_refusals > MAX_REFUSALS_SHOWN {
                message.push_str(&format!("\n... and {} more", num_refusals - MAX_REFUSALS_SHOWN));
            }
            return Err(KernelError::InvalidArgument(message));
        }
        webhooks::insert_webhooks(self.store.pool(), &batch).await?;
        self.refresh_group_index(group_id).await?;
        tracing::info!(%group_id, num_webhooks = batch.len(), "webhooks created in a batch");
        Ok(batch
            .into_iter()
            .zip(ignored)
            .map(|(new, ignored_fields)| SavedWebhook {
                row: new.row,
                signing_secret: new.signing_secret,
                ignored_fields,
            })
            .collect())
    }

    /// Gets webhooks by id, for a batch: `NOT_FOUND` names the first missing one by index (`ids[2]: ...`).
    pub async fn get_webhooks(&self, ids: &[WebhookId]) -> Result<Vec<WebhookRow>, KernelError> {
        let mut rows = Vec::with_capacity(ids.len());
        for (index, id) in ids.iter().enumerate() {
            let row = webhooks::get_webhook(self.store.pool(), id)
                .await?
                .ok_or_else(|| KernelError::NotFound(format!("ids[{index}]: webhook {id} not found")))?;
            rows.push(row);
        }
        Ok(rows)
    }

    /// Deletes webhooks (resolved by the caller with [`Kernel::get_webhooks`]) in one transaction, all or none.
    pub async fn batch_delete_webhooks(&self, rows: &[WebhookRow]) -> Result<(), KernelError> {
        let ids: Vec<WebhookId> = rows.iter().map(|row| row.id.clone()).collect();
        if let Some(index) = webhooks::delete_webhooks(self.store.pool(), &ids).await? {
            return Err(KernelError::NotFound(format!("ids[{index}]: webhook {} not found", ids[index])));
        }
        let groups: std::collections::BTreeSet<&GroupId> = rows.iter().map(|row| &row.group_id).collect();
        for group_id in groups {
            self.refresh_group_index(group_id).await?;
        }
        for id in &ids {
            self.services.registry.forget_webhook(id);
        }
        tracing::info!(num_webhooks = ids.len(), "webhooks deleted in a batch");
        Ok(())
    }

    /// Gets a webhook, with its run-time state.
    pub async fn get_webhook(&self, id: &WebhookId) -> Result<WebhookRow, KernelError> {
        let row = webhooks::get_webhook(self.store.pool(), id)
            .await?
            .ok_or_else(|| KernelError::NotFound(format!("webhook {id} not found")))?;
        self.with_state(row).await
    }

    /// Fills in a webhook's run-time state: live from the index, where deliveries change it, or as stored for a
    /// webhook the index does not hold (one that no longer compiles).
    async fn with_state(&self, mut row: WebhookRow) -> Result<WebhookRow, KernelError> {
        row.state = match self.indexed_webhook(&row.group_id, &row.id) {
            Some(webhook) => WebhookStateRow {
                consecutive_failures: webhook.runtime.consecutive_failures(),
                disabled_reason: webhook.runtime.disabled_reason(),
            },
            None => webhook_state::get_state(self.store.pool(), &row.id).await?,
        };
        Ok(row)
    }

    /// The compiled webhook the index holds, if any.
    fn indexed_webhook(&self, group_id: &GroupId, id: &WebhookId) -> Option<Arc<CompiledWebhook>> {
        self.services.index.find(group_id, id)
    }

    /// Enables a webhook disabled at run time (by its failure limit, a `410 Gone` or an admin) and resets its
    /// count of consecutive failures. Its definition (and its `disabled` field) is unchanged.
    pub async fn enable_webhook(&self, id: &WebhookId) -> Result<WebhookRow, KernelError> {
        let mut row = self.get_webhook(id).await?;
        let state = WebhookStateRow::default();
        if !webhook_state::save_state(self.store.pool(), id, &state, time::now_ms()).await? {
            return Err(KernelError::NotFound(format!("webhook {id} not found")));
        }
        if let Some(webhook) = self.indexed_webhook(&row.group_id, id) {
            webhook.runtime.enable();
        }
        tracing::info!(webhook_id = %id, "webhook enabled");
        row.state = state;
        Ok(row)
    }

    /// Disables a webhook at run time, as its failure limit would, with the reason "disabled by an admin" (one
    /// already disabled keeps its reason). Its definition is unchanged; [`Kernel::enable_webhook`] undoes it.
    pub async fn disable_webhook(&self, id: &WebhookId) -> Result<WebhookRow, KernelError> {
        let mut row = self.get_webhook(id).await?;
        let reason = row.state.disabled_reason.clone().unwrap_or_else(|| ADMIN_DISABLED_REASON.to_owned());
        let state = WebhookStateRow {
            consecutive_failures: row.state.consecutive_failures,
            disabled_reason: Some(reason.clone()),
        };
        if !webhook_state::save_state(self.store.pool(), id, &state, time::now_ms()).await? {
            return Err(KernelError::NotFound(format!("webhook {id} not found")));
        }
        if let Some(webhook) = self.indexed_webhook(&row.group_id, id) {
            webhook.runtime.disable(reason);
        }
        tracing::info!(webhook_id = %id, "webhook disabled by an admin");
        row.state = state;
        Ok(row)
    }

    /// A page of a group's webhooks (or those limited to one of its devices) that pass `filter`, with their
    /// run-time state, and how many pass in all.
    pub async fn list_webhooks_page(
        &self,
        group_id: &GroupId,
        device_id: Option<&DeviceId>,
        filter: &WebhookFilter,
        page: &Page,
    ) -> Result<(Vec<WebhookRow>, u64), KernelError> {
        filter.validate()?;
        self.get_group(group_id).await?;
        let rows = webhooks::list_webhooks(self.store.pool(), group_id, device_id).await?;
        let (rows, total) = listing::page_webhooks(rows, filter, page);
        let mut webhooks = Vec::with_capacity(rows.len());
        for row in rows {
            webhooks.push(self.with_state(row).await?);
        }
        Ok((webhooks, total as u64))
    }

    /// Replaces a webhook's definition.
    /// Turning `x-signing` on gives the webhook a signing secret, returned this once; a webhook that signed keeps
    /// its secret; turning it off deletes its secrets.
    pub async fn update_webhook(&self, id: &WebhookId, definition_json: &str) -> Result<SavedWebhook, KernelError> {
        let existing = self.get_webhook(id).await?;
        let (compiled, ignored_fields) =
            self.compile_for_group(id.clone(), &existing.group_id, definition_json).await?;
        let definition = compiled.definition.to_json();
        let now = time::now_ms();
        let signing_secret = compiled.definition.signs().then(auth::generate_signing_secret);
        let update = webhooks::update_webhook(
            self.store.pool(),
            id,
            &definition,
            &compiled.devices,
            now,
            signing_secret.as_deref(),
        )
        .await?;
        let WebhookUpdate::Replaced { secret_installed } = update else {
            return Err(KernelError::NotFound(format!("webhook {id} not found")));
        };
        self.refresh_group_index(&existing.group_id).await?;
        let new_secret = signing_secret.filter(|_| secret_installed);
        Ok(SavedWebhook {
            row: WebhookRow { definition, updated_at: now, ..existing },
            signing_secret: new_secret,
            ignored_fields,
        })
    }

    /// Gives a signing webhook a new secret, returned this once; the old one keeps signing for `grace_seconds`
    /// (a day when `None`, at most seven days), older ones until then at the latest: 0 retires them all at once.
    pub async fn rotate_webhook_secret(
        &self,
        id: &WebhookId,
        grace_seconds: Option<u32>,
    ) -> Result<(WebhookRow, String), KernelError> {
        let grace_seconds = grace_seconds.unwrap_or(DEFAULT_SECRET_GRACE_SECONDS);
        if grace_seconds > MAX_SECRET_GRACE_SECONDS {
            return Err(KernelError::InvalidArgument(format!(
                "grace_seconds: must be at most {MAX_SECRET_GRACE_SECONDS} (seven days)"
            )));
        }
        let existing = self.get_webhook(id).await?;
        let signs = WebhookDefinition::from_json(&existing.definition).is_ok_and(|definition| definition.signs());
        if !signs {
            return Err(KernelError::InvalidArgument(format!(
                "id: webhook {id} does not sign its requests; set \"x-signing\": true in its definition first"
            )));
        }
        let now = time::now_ms();
        let secret = auth::generate_signing_secret();
        let old_expires_at = now + i64::from(grace_seconds) * 1000;
        secrets::rotate_secret(self.store.pool(), id, &secret, now, old_expires_at).await?;
        self.refresh_group_index(&existing.group_id).await?;
        tracing::info!(webhook_id = %id, grace_seconds, "signing secret rotated");
        Ok((existing, secret))
    }

    /// Deletes a webhook.
    pub async fn delete_webhook(&self, id: &WebhookId) -> Result<(), KernelError> {
        let existing = self.get_webhook(id).await?;
        if !webhooks::delete_webhook(self.store.pool(), id).await? {
            return Err(KernelError::NotFound(format!("webhook {id} not found")));
        }
        self.refresh_group_index(&existing.group_id).await?;
        self.services.registry.forget_webhook(id);
        Ok(())
    }
}
