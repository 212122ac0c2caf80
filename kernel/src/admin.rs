//! Admin operations: groups, devices and webhooks. Each writes the store, then brings the in-memory state (the
//! webhook index, the device-token cache, open sessions) in line. The gRPC layer only converts types around them.

use crate::Kernel;
use crate::auth;
use crate::error::KernelError;
use crate::store::devices::{self, DeviceRow};
use crate::store::groups::{self, GroupRow};
use crate::store::webhooks::{self, WebhookRow};
use hookwire_actors::definition::{CompiledWebhook, WebhookDefinition};
use hookwire_actors::ids::{DeviceId, GroupId, WebhookId};
use hookwire_actors::time;
use std::sync::Arc;

/// Longest group or device name.
const MAX_NAME_CHARS: usize = 200;

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

fn check_text(field: &str, value: &str, required: bool) -> Result<(), KernelError> {
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

    /// Lists the groups.
    pub async fn list_groups(&self) -> Result<Vec<GroupRow>, KernelError> {
        Ok(groups::list_groups(self.store.pool()).await?)
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
            self.services.supervisor.forget_webhook(&webhook.id);
        }
        self.devices.forget(|device| &device.group_id == id);
        for device in &devices {
            self.services.supervisor.disconnect_device(&device.id);
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

    /// Lists a group's devices.
    pub async fn list_devices(&self, group_id: &GroupId) -> Result<Vec<DeviceRow>, KernelError> {
        self.get_group(group_id).await?;
        Ok(devices::list_devices(self.store.pool(), group_id).await?)
    }

    /// Deletes a device and the webhooks limited to it alone, and ends its sessions.
    pub async fn delete_device(&self, id: &DeviceId) -> Result<(), KernelError> {
        let device = self.get_device(id).await?;
        let (existed, deleted_webhooks) = devices::delete_device(self.store.pool(), id).await?;
        if !existed {
            return Err(KernelError::NotFound(format!("device {id} not found")));
        }
        self.devices.forget(|cached| &cached.device_id == id);
        self.services.supervisor.disconnect_device(id);
        for webhook_id in &deleted_webhooks {
            self.services.supervisor.forget_webhook(webhook_id);
        }
        self.refresh_group_index(&device.group_id).await?;
        Ok(())
    }

    /// Parses and validates a definition for a group: the JSON, its templates and its devices.
    async fn compile_for_group(
        &self,
        id: WebhookId,
        group_id: &GroupId,
        definition_json: &str,
    ) -> Result<CompiledWebhook, KernelError> {
        let definition = WebhookDefinition::from_json(definition_json)
            .map_err(|error| KernelError::InvalidArgument(error.to_string()))?;
        let compiled = CompiledWebhook::compile(id, group_id.clone(), definition)
            .map_err(|error| KernelError::InvalidArgument(error.to_string()))?;
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
        Ok(compiled)
    }

    /// Creates a webhook from its JSON definition.
    pub async fn create_webhook(&self, group_id: &GroupId, definition_json: &str) -> Result<WebhookRow, KernelError> {
        self.get_group(group_id).await?;
        let compiled = self.compile_for_group(WebhookId::generate(), group_id, definition_json).await?;
        let now = time::now_ms();
        let row = WebhookRow {
            id: compiled.id.clone(),
            group_id: group_id.clone(),
            definition: compiled.definition.to_json(),
            created_at: now,
            updated_at: now,
        };
        webhooks::insert_webhook(self.store.pool(), &row, &compiled.devices).await?;
        self.refresh_group_index(group_id).await?;
        Ok(row)
    }

    /// Gets a webhook.
    pub async fn get_webhook(&self, id: &WebhookId) -> Result<WebhookRow, KernelError> {
        webhooks::get_webhook(self.store.pool(), id)
            .await?
            .ok_or_else(|| KernelError::NotFound(format!("webhook {id} not found")))
    }

    /// Lists a group's webhooks, or those limited to one of its devices.
    pub async fn list_webhooks(
        &self,
        group_id: &GroupId,
        device_id: Option<&DeviceId>,
    ) -> Result<Vec<WebhookRow>, KernelError> {
        self.get_group(group_id).await?;
        Ok(webhooks::list_webhooks(self.store.pool(), group_id, device_id).await?)
    }

    /// Replaces a webhook's definition.
    pub async fn update_webhook(&self, id: &WebhookId, definition_json: &str) -> Result<WebhookRow, KernelError> {
        let existing = self.get_webhook(id).await?;
        let compiled = self.compile_for_group(id.clone(), &existing.group_id, definition_json).await?;
        let definition = compiled.definition.to_json();
        let now = time::now_ms();
        if !webhooks::update_webhook(self.store.pool(), id, &definition, &compiled.devices, now).await? {
            return Err(KernelError::NotFound(format!("webhook {id} not found")));
        }
        self.refresh_group_index(&existing.group_id).await?;
        Ok(WebhookRow { definition, updated_at: now, ..existing })
    }

    /// Deletes a webhook.
    pub async fn delete_webhook(&self, id: &WebhookId) -> Result<(), KernelError> {
        let existing = self.get_webhook(id).await?;
        if !webhooks::delete_webhook(self.store.pool(), id).await? {
            return Err(KernelError::NotFound(format!("webhook {id} not found")));
        }
        self.refresh_group_index(&existing.group_id).await?;
        self.services.supervisor.forget_webhook(id);
        Ok(())
    }

    /// Rebuilds a group's webhook index from the store.
    pub async fn refresh_group_index(&self, group_id: &GroupId) -> Result<(), KernelError> {
        let rows = webhooks::list_webhooks(self.store.pool(), group_id, None).await?;
        let compiled = rows.into_iter().filter_map(compile_stored).collect();
        self.services.index.replace_group(group_id, compiled);
        Ok(())
    }

    /// Builds the whole index from the store (at start).
    pub async fn load_index(&self) -> Result<usize, KernelError> {
        let rows = webhooks::list_all_webhooks(self.store.pool()).await?;
        let num_webhooks = rows.len();
        let mut by_group: std::collections::HashMap<GroupId, Vec<Arc<CompiledWebhook>>> =
            std::collections::HashMap::new();
        for row in rows {
            let group_id = row.group_id.clone();
            if let Some(compiled) = compile_stored(row) {
                by_group.entry(group_id).or_default().push(compiled);
            }
        }
        for (group_id, compiled) in by_group {
            self.services.index.replace_group(&group_id, compiled);
        }
        Ok(num_webhooks)
    }
}

/// Compiles a stored webhook; one that no longer compiles (it was valid when stored) is logged and left out.
fn compile_stored(row: WebhookRow) -> Option<Arc<CompiledWebhook>> {
    let compiled = WebhookDefinition::from_json(&row.definition)
        .and_then(|definition| CompiledWebhook::compile(row.id.clone(), row.group_id.clone(), definition));
    match compiled {
        Ok(compiled) => Some(Arc::new(compiled)),
        Err(error) => {
            tracing::error!(webhook_id = %row.id, %error, "stored webhook does not compile; it will not fire");
            None
        }
    }
}
