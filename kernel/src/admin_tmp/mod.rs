//! Admin operations: groups, devices and webhooks. Each writes the store, then brings the in-memory state (the
//! webhook index, the device-token cache, open sessions) in line. The gRPC layer only converts types around them.

use crate::Kernel;
use crate::auth;
use crate::error::KernelError;
use crate::listing::{self, Page, WebhookFilter};
use crate::store::devices::{self, DeviceRow};
use crate::store::groups::{self, GroupRow};
use crate::store::secrets::{self, SecretRow};
use crate::store::webhook_state::{self, WebhookStateRow};
use crate::store::webhooks::{self, NewWebhook, WebhookRow, WebhookUpdate};
use hookwire_actors::domain::definition::{CompiledWebhook, WebhookDefinition};
use hookwire_actors::domain::ids::{DeviceId, GroupId, WebhookId};
use hookwire_actors::domain::signing::{SigningKey, SigningKeys};
use hookwire_actors::domain::time;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Longest group or device name.
const MAX_NAME_CHARS: usize = 200;
/// Why a webhook that an admin disabled is disabled.
pub const ADMIN_DISABLED_REASON: &str = "disabled by an admin";
/// How long a rotated-out signing secret keeps signing when the caller does not say: one day.
pub const DEFAULT_SECRET_GRACE_SECONDS: u32 = 24 * 3600;
/// The longest grace period of a rotated-out signing secret: seven days.
pub const MAX_SECRET_GRACE_SECONDS: u32 = 7 * 24 * 3600;

/// A webhook just created or replaced, with what its answer says this once.
#[derive(Debug, Clone)]
pub struct SavedWebhook {
    /// The stored webhook.
    pub row: WebhookRow,
    /// Its new signing secret, when it just got one.
    pub signing_secret: Option<String>,
    /// Particle's read-only fields the given definition held (`id`, `created_at`, ...), ignored.
    pub ignored_fields: Vec<String>,
}

/// Optional device fields that feed the `PRODUCT_*` template variables.
#[derive(Debug, Clone, Default)]
pub struct DeviceFields {
    /// A human name.
    pub name: String,
    /// `PRODUCT_ID`.
    pub product_id: String,
    /// `PRODUCT_VERSION`.
    pub firmware_version: String,
    /// `PRODUCT_USER_ID`.
    pub owner: String,
}

/// A change to a device: each field given replaces the stored one, the others stay.
#[derive(Debug, Clone, Default)]
pub struct DeviceUpdate {
    /// A human name.
    pub name: Option<String>,
    /// `PRODUCT_ID`.
    pub product_id: Option<String>,
    /// `PRODUCT_VERSION`.
    pub firmware_version: Option<String>,
    /// `PRODUCT_USER_ID`.
    pub owner: Option<String>,
}

/// Checks a text field: not empty when `required`, at most 200 characters, no control characters.
pub(crate) fn check_text(field: &str, value: &str, required: bool) -> Result<(), KernelError> {
    if required && value.trim().is_empty() {
        return Err(KernelError::InvalidArgument(format!("{field}: must not be empty")));
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(KernelError::InvalidArgument(format!("{field}: must be at most {MAX_NAME_CHARS} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(KernelError::InvalidArgument(format!("{field}: must not contain control characters")));
    }
    Ok(())
}

impl Kernel {
    /// Creates a group.
    pub async fn create_group(&self, name: &str) -> Result<GroupRow, KernelError> {
        check_text("name", name, true)?;
        let group = GroupRow { id: GroupId::generate(), name: name.trim().to_owned(), created_at: time::now_ms() };
        groups::insert_group(self.store.pool(), &group).await?;
        Ok(group)
    }

    /// Gets a group.
    pub async fn get_group(&self, id: &GroupId) -> Result<GroupRow, KernelError> {
        groups::get_group(self.store.pool(), id)
            .await?
            .ok_or_else(|| KernelError::NotFound(format!("group {id} not found")))
    }

    /// A page of the groups, and how many there are.
    pub async fn list_groups_page(&self, page: &Page) -> Result<(Vec<GroupRow>, u64), KernelError> {
        Ok(groups::list_groups_page(self.store.pool(), page).await?)
    }

    /// Renames a group (resolved by the caller).
    pub async fn rename_group(&self, group: GroupRow, name: &str) -> Result<GroupRow, KernelError> {
        check_text("name", name, true)?;
        let name = name.trim().to_owned();
        if !groups::rename_group(self.store.pool(), &group.id, &name).await? {
            return Err(KernelError::NotFound(format!("group {} not found", group.id)));
        }
        Ok(GroupRow { name, ..group })
    }

    /// Deletes a group with its devices and webhooks, and ends its devices' sessions.
    pub async fn delete_group(&self, id: &GroupId) -> Result<(), KernelError> {
        let devices = devices::list_devices(self.store.pool(), id).await?;
        let webhooks = webhooks::list_webhooks(self.store.pool(), id, None).await?;
        if !groups::delete_group(self.store.pool(), id).await? {
            return Err(KernelError::NotFound(format!("group {id} not found")));
        }
        self.services.index.remove_group(id);
        for webhook in &webhooks {
            self.services.registry.forget_webhook(&webhook.id);
        }
        self.devices.forget(|device| &device.group_id == id);
        self.admin.forget(|principal| principal.group() == Some(id));
        for device in &devices {
            self.services.registry.disconnect_device(&device.id);
        }
        Ok(())
    }

    /// Creates a device and returns it with its token (shown this once).
    pub async fn create_device(
        &self,
        group_id: &GroupId,
        fields: DeviceFields,
    ) -> Result<(DeviceRow, String), KernelError> {
        check_text("name", &fields.name, false)?;
        check_text("product_id", &fields.product_id, false)?;
        check_text("firmware_version", &fields.firmware_version, false)?;
        check_text("owner", &fields.owner, false)?;
        self.get_group(group_id).await?;
        let token = auth::generate_token("hwd_");
        let device = DeviceRow {
            id: DeviceId::generate(),
            group_id: group_id.clone(),
            name: fields.name,
            token_hash: auth::hash_token(&token),
            product_id: fields.product_id,
            firmware_version: fields.firmware_version,
            owner: fields.owner,
            created_at: time::now_ms(),
        };
        devices::insert_device(self.store.pool(), &device).await?;
        Ok((device, token))
    }

    /// Gets a device.
    pub async fn get_device(&self, id: &DeviceId) -> Result<DeviceRow, KernelError> {
        devices::get_device(self.store.pool(), id)
            .await?
            .ok_or_else(|| KernelError::NotFound(format!("device {id} not found")))
    }

    /// A page of a group's devices, optionally only those whose name contains a text, and how many match.
    pub async fn list_devices_page(
        &self,
        group_id: &GroupId,
        name_contains: &str,
        page: &Page,
    ) -> Result<(Vec<DeviceRow>, u64), KernelError> {
        if name_contains.len() > 2048 {
            return Err(KernelError::InvalidArgument("name_contains: must be at most 2048 bytes".into()));
        }
        self.get_group(group_id).await?;
        Ok(devices::list_devices_page(self.store.pool(), group_id, name_contains, page).await?)
    }

    /// Changes a device (resolved by the caller): the fields given replace the stored ones. The cached token is
    /// forgotten, so that the next connection and every unary publish read the new `PRODUCT_*` values; sessions
    /// already open keep the values they connected with.
    pub async fn update_device(&self, device: DeviceRow, update: DeviceUpdate) -> Result<DeviceRow, KernelError> {
        let fields = [
            ("name", &update.name),
            ("product_id", &update.product_id),
            ("firmware_version", &update.firmware_version),
            ("owner", &update.owner),
        ];
        for (field, value) in fields {
            if let Some(value) = value {
                check_text(field, value, false)?;
            }
        }
        let updated = DeviceRow {
            name: update.name.unwrap_or(device.name),
            product_id: update.product_id.unwrap_or(device.product_id),
            firmware_version: update.firmware_version.unwrap_or(device.firmware_version),
            owner: update.owner.unwrap_or(device.owner),
            ..device
        };
        if !devices::update_device(self.store.pool(), &updated).await? {
            return Err(KernelError::NotFound(format!("device {} not found", updated.id)));
        }
        self.devices.forget(|cached| cached.device_id == updated.id);
        tracing::info!(device_id = %updated.id, "device updated");
        Ok(updated)
    }

    /// Gives a device (resolved by the caller) a new token, returned this once: the old token is refused from now
    /// on and the device's open sessions are closed.
    pub async fn rotate_device_token(&self, device: DeviceRow) -> Result<(DeviceRow, String), KernelError> {
        let token = auth::generate_token("hwd_");
        let token_hash = auth::hash_token(&token);
        if !devices::set_token_hash(self.store.pool(), &device.id, &token_hash).await? {
            return Err(KernelError::NotFound(format!("device {} not found", device.id)));
        }
        self.devices.forget(|cached| cached.device_id == device.id);
        self.services.registry.disconnect_device(&device.id);
        tracing::info!(device_id = %device.id, "device token rotated");
        Ok((DeviceRow { token_hash, ..device }, token))
    }

    /// Deletes a device and the webhooks limited to it alone, and ends its sessions.
    pub async fn delete_device(&self, id: &DeviceId) -> Result<(), KernelError> {
        let device = self.get_device(id).await?;
        let (existed, deleted_webhooks) = devices::delete_device(self.store.pool(), id).await?;
        if !existed {
            return Err(KernelError::NotFound(format!("device {id} not found")));
        }
        self.devices.forget(|cached| &cached.device_id == id);
        self.services.registry.disconnect_device(id);
        for webhook_id in &deleted_webhooks {
            self.services.registry.forget_webhook(webhook_id);
        }
        self.refresh_group_index(&device.group_id).await?;
        Ok(())
    }

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

    /// Rebuilds a group's webhook index from the store.
    pub async fn refresh_group_index(&self, group_id: &GroupId) -> Result<(), KernelError> {
        let rows = webhooks::list_webhooks(self.store.pool(), group_id, None).await?;
        let mut keys = signing_keys(secrets::list_group_secrets(self.store.pool(), group_id, time::now_ms()).await?);
        let compiled = rows
            .into_iter()
            .filter_map(|row| {
                let signing = keys.remove(&row.id);
                compile_stored(row, signing)
            })
            .collect();
        self.services.index.replace_group(group_id, compiled);
        Ok(())
    }

    /// Builds the whole index from the store (at start).
    pub async fn load_index(&self) -> Result<usize, KernelError> {
        let rows = webhooks::list_all_webhooks(self.store.pool()).await?;
        let num_webhooks = rows.len();
        self.index_rows(rows).await?;
        Ok(num_webhooks)
    }

    /// Reloads the index when the webhooks in the database changed since `seen` (their fingerprint, updated):
    /// another kernel on the same database created, updated or deleted some. Run-time state (failure counts,
    /// enabling and disabling) stays this kernel's own. Returns whether it reloaded.
    pub async fn sync_index(&self, seen: &mut Option<(i64, i64, i64)>) -> Result<bool, KernelError> {
        let fingerprint = webhooks::fingerprint(self.store.pool()).await?;
        match seen.replace(fingerprint) {
            Some(previous) if previous != fingerprint => {}
            // The first look only notes the fingerprint: the index was loaded at start.
            _ => return Ok(false),
        }
        let stale: HashSet<GroupId> = self.services.index.group_ids().into_iter().collect();
        let loaded = self.index_rows(webhooks::list_all_webhooks(self.store.pool()).await?).await?;
        for group_id in stale.difference(&loaded) {
            self.services.index.replace_group(group_id, Vec::new());
        }
        Ok(true)
    }

    /// Compiles stored webhooks into the index, a group at a time; returns the groups indexed.
    async fn index_rows(&self, rows: Vec<WebhookRow>) -> Result<HashSet<GroupId>, KernelError> {
        let mut keys = signing_keys(secrets::list_all_secrets(self.store.pool(), time::now_ms()).await?);
        let mut states = webhook_state::list_all_states(self.store.pool()).await?;
        let mut by_group: std::collections::HashMap<GroupId, Vec<Arc<CompiledWebhook>>> =
            std::collections::HashMap::new();
        for row in rows {
            let group_id = row.group_id.clone();
            let signing = keys.remove(&row.id);
            if let Some(compiled) = compile_stored(row, signing) {
                // Failure counts and run-time disabling survive restarts; afterwards the index carries them over.
                if let Some(state) = states.remove(&compiled.id) {
                    compiled.runtime.restore(state.consecutive_failures, state.disabled_reason);
                }
                by_group.entry(group_id).or_default().push(compiled);
            }
        }
        let groups = by_group.keys().cloned().collect();
        for (group_id, compiled) in by_group {
            self.services.index.replace_group(&group_id, compiled);
        }
        Ok(groups)
    }
}

/// Compiles a stored webhook with its signing keys; one that no longer compiles (it was valid when stored) is
/// logged and left out.
fn compile_stored(row: WebhookRow, signing: Option<Arc<SigningKeys>>) -> Option<Arc<CompiledWebhook>> {
    let compiled = WebhookDefinition::from_json(&row.definition)
        .and_then(|definition| CompiledWebhook::compile(row.id.clone(), row.group_id.clone(), definition));
    match compiled {
        Ok(mut compiled) => {
            compiled.signing = signing;
            Some(Arc::new(compiled))
        }
        Err(error) => {
            tracing::error!(webhook_id = %row.id, %error, "stored webhook does not compile; it will not fire");
            None
        }
    }
}

/// Turns stored secrets (current and in their grace period) into each webhook's signing keys. A secret that does
/// not parse is logged, without its value, and left out: its webhook then fails its attempts rather than send
/// requests its receiver cannot verify.
fn signing_keys(rows: Vec<SecretRow>) -> HashMap<WebhookId, Arc<SigningKeys>> {
    let mut current = HashMap::new();
    let mut previous: HashMap<WebhookId, Vec<(SigningKey, i64)>> = HashMap::new();
    for row in rows {
        let key = match SigningKey::from_secret(&row.secret) {
            Ok(key) => key,
            Err(error) => {
                tracing::error!(webhook_id = %row.webhook_id, %error, "stored signing secret is unusable");
                continue;
            }
        };
        match row.expires_at {
            None => {
                current.insert(row.webhook_id, key);
            }
            Some(expires_at) => previous.entry(row.webhook_id).or_default().push((key, expires_at)),
        }
    }
    current
        .into_iter()
        .map(|(webhook_id, key)| {
            let keys = previous
                .remove(&webhook_id)
                .into_iter()
                .flatten()
                .fold(SigningKeys::new(key), |keys, (key, expires_at)| keys.with_previous(key, expires_at));
            (webhook_id, Arc::new(keys))
        })
        .collect()
}
