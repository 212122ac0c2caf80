//! Admin operations on devices: create, get, list, update, rotate the token, delete. Each keeps the device-token
//! cache and open sessions in line with the store.

use super::{DeviceFields, DeviceUpdate, check_text};
use crate::Kernel;
use crate::auth;
use crate::error::KernelError;
use crate::listing::Page;
use crate::store::devices::{self, DeviceRow};
use hookwire_actors::domain::ids::{DeviceId, GroupId};
use hookwire_actors::domain::time;

impl Kernel {
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
}
