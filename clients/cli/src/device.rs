//! `hookwire device`: the devices of a group, and their tokens.

use anyhow::Context;
use clap::{Args, Subcommand};
use hookwire_client::proto;
use serde_json::{Value, json};

use crate::GlobalArgs;
use crate::output::{DELETED_COLUMNS, print_document};
use crate::paging::{PageArgs, note_page};

pub const EXAMPLES: &str = "\
Examples:
  hookwire device create --group grp_0123456789abcdef --name sensor-1
  hookwire device list --group grp_0123456789abcdef --output table
  hookwire device update dev_0123456789abcdef --firmware-version 4
  hookwire device rotate-token dev_0123456789abcdef --field token";

const CREATED_COLUMNS: &[&str] = &["id", "token", "group_id", "name", "created_at"];
const COLUMNS: &[&str] = &["id", "group_id", "name", "created_at", "product_id", "firmware_version", "owner"];

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Create a device; prints {"id", "token", "group_id", "name", "created_at"}. The token is shown only
    /// this once
    #[command(after_help = "\
Examples:
  hookwire device create --group grp_0123456789abcdef
  hookwire device create --group grp_0123456789abcdef --name sensor-1 --product-id 4711 --firmware-version 3")]
    Create(CreateArgs),
    /// List the devices of a group, oldest first, 50 at a time; prints an array of devices (when more match, a
    /// note on stderr says how to get the next page)
    #[command(after_help = "\
Examples:
  hookwire device list --group grp_0123456789abcdef
  hookwire device list --group grp_0123456789abcdef --name sensor --order name --output table
  hookwire device list --group grp_0123456789abcdef --all --field id")]
    List {
        /// The group id, grp_...
        #[arg(long, value_name = "ID")]
        group: String,
        /// Only devices whose name contains this text, ignoring case
        #[arg(long, value_name = "TEXT")]
        name: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Rename a device; prints the device
    #[command(after_help = "Example:\n  hookwire device rename dev_0123456789abcdef sensor-2")]
    Rename {
        /// The device id, dev_...
        id: String,
        /// The new name, up to 200 characters (may be empty)
        name: String,
    },
    /// Change a device's name or the fields behind the PRODUCT_* template variables; flags left out keep their
    /// value, an empty value clears it. Connections opened afterwards see the new values; prints the device
    #[command(after_help = "\
Examples:
  hookwire device update dev_0123456789abcdef --firmware-version 4
  hookwire device update dev_0123456789abcdef --product-id 4711 --owner alice@example.com
  hookwire device update dev_0123456789abcdef --owner ''")]
    Update {
        /// The device id, dev_...
        id: String,
        #[command(flatten)]
        fields: DeviceFields,
    },
    /// Give a device a new token, shown only this once; the old token is refused at once and the device's open
    /// sessions are closed. Prints {"id", "token", "group_id", "name", "created_at"}
    #[command(after_help = "\
Examples:
  hookwire device rotate-token dev_0123456789abcdef
  hookwire device rotate-token dev_0123456789abcdef --field token > sensor-1.token")]
    RotateToken {
        /// The device id, dev_...
        id: String,
    },
    /// Show one device
    #[command(after_help = "Example:\n  hookwire device get dev_0123456789abcdef")]
    Get {
        /// The device id, dev_...
        id: String,
    },
    /// Delete a device, close its sessions and delete the webhooks limited to it; prints {"deleted": ID}
    #[command(after_help = "Example:\n  hookwire device delete dev_0123456789abcdef")]
    Delete {
        /// The device id, dev_...
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The group id, grp_...
    #[arg(long, value_name = "ID")]
    group: String,
    #[command(flatten)]
    fields: DeviceFields,
}

/// The fields of a device that `create` sets and `update` changes.
#[derive(Debug, Args)]
pub struct DeviceFields {
    /// A human name, up to 200 characters
    #[arg(long)]
    name: Option<String>,
    /// The product id, the PRODUCT_ID template variable
    #[arg(long)]
    product_id: Option<String>,
    /// The firmware version, the PRODUCT_VERSION template variable
    #[arg(long, value_name = "VERSION")]
    firmware_version: Option<String>,
    /// The owner, the PRODUCT_USER_ID template variable
    #[arg(long)]
    owner: Option<String>,
}

pub async fn run(command: DeviceCommand, global: &GlobalArgs) -> anyhow::Result<()> {
    let format = global.output;
    let admin = global.admin_client().await?;
    match command {
        DeviceCommand::Create(args) => {
            let request = proto::CreateDeviceRequest {
                group_id: args.group,
                name: args.fields.name.unwrap_or_default(),
                product_id: args.fields.product_id.unwrap_or_default(),
                firmware_version: args.fields.firmware_version.unwrap_or_default(),
                owner: args.fields.owner.unwrap_or_default(),
            };
            let created = admin.create_device_with(request).await?;
            print_document(format, &created_json(created)?, CREATED_COLUMNS)?;
        }
        DeviceCommand::List { group, name, page } => {
            let request = proto::ListDevicesRequest {
                group_id: group,
                offset: page.offset,
                limit: page.limit,
                order_by: page.order_by(),
                descending: page.desc,
                name_contains: name.unwrap_or_default(),
            };
            let devices = if page.all {
                admin.list_all_devices(request).await?
            } else {
                let listed = admin.list_devices_page(request).await?;
                note_page(page.offset, listed.devices.len(), listed.total);
                listed.devices
            };
            print_document(format, &devices.iter().map(device_json).collect(), COLUMNS)?;
        }
        DeviceCommand::Rename { id, name } => {
            let request = proto::UpdateDeviceRequest { id, name: Some(name), ..Default::default() };
            print_document(format, &device_json(&admin.update_device(request).await?), COLUMNS)?;
        }
        DeviceCommand::Update { id, fields } => {
            let DeviceFields { name, product_id, firmware_version, owner } = fields;
            let request = proto::UpdateDeviceRequest { id, name, product_id, firmware_version, owner };
            print_document(format, &device_json(&admin.update_device(request).await?), COLUMNS)?;
        }
        DeviceCommand::RotateToken { id } => {
            let rotated = admin.rotate_device_token(id).await?;
            print_document(format, &created_json(rotated)?, CREATED_COLUMNS)?;
        }
        DeviceCommand::Get { id } => {
            let device = admin.get_device(id).await?;
            print_document(format, &device_json(&device), COLUMNS)?;
        }
        DeviceCommand::Delete { id } => {
            admin.delete_device(&id).await?;
            print_document(format, &json!({ "deleted": id }), DELETED_COLUMNS)?;
        }
    }
    Ok(())
}

/// A device with its new token, as `create` and `rotate-token` print it.
fn created_json(created: proto::CreateDeviceResponse) -> anyhow::Result<Value> {
    let device = created.device.context("the server answered without the device")?;
    Ok(json!({
        "id": device.id,
        "token": created.token,
        "group_id": device.group_id,
        "name": device.name,
        "created_at": device.created_at,
    }))
}

fn device_json(device: &proto::Device) -> Value {
    json!({
        "id": device.id,
        "group_id": device.group_id,
        "name": device.name,
        "created_at": device.created_at,
        "product_id": device.product_id,
        "firmware_version": device.firmware_version,
        "owner": device.owner,
    })
}
