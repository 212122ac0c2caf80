//! Admin operations: groups, devices and webhooks. Each writes the store, then brings the in-memory state (the
//! webhook index, the device-token cache, open sessions) in line. The gRPC layer only converts types around them.
//!
//! Groups and the shared types are here; `devices`, `webhooks` and `index` (building the in-memory webhook index
//! from the store) hold the rest, each an `impl Kernel` block.

mod devices;
mod index;
mod webhooks;

use crate::Kernel;
use crate::error::KernelError;
use crate::listing::Page;
use crate::store::groups::{self, GroupRow};
use crate::store::webhooks::WebhookRow;
use hookwire_actors::domain::ids::GroupId;
use hookwire_actors::domain::time;

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
        let devices = crate::store::devices::list_devices(self.store.pool(), id).await?;
        let webhooks = crate::store::webhooks::list_webhooks(self.store.pool(), id, None).await?;
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
}
