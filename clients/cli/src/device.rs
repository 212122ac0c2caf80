//! `hookwire device`: the devices of a group, and their tokens.

use anyhow::Context;
use clap::{Args, Subcommand};
use hookwire_client::proto;
use serde_json::{Value, json};

use crate::GlobalArgs;
use crate::output::{DELETED_COLUMNS, print_document};

pub const EXAMPLES: &str = "\
Examples:
  hookwire device create --group grp_0123456789abcdef --name sensor-1
  hookwire device list --group grp_0123456789abcdef --output table";

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
    /// List the devices of a group, oldest first; prints an array of devices
    #[command(after_help = "Example:\n  hookwire device list --group grp_0123456789abcdef")]
    List {
        /// The group id, grp_...
        #[arg(long, value_name = "ID")]
        group: String,
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
                name: args.name.unwrap_or_default(),
                product_id: args.product_id.unwrap_or_default(),
                firmware_version: args.firmware_version.unwrap_or_default(),
                owner: args.owner.unwrap_or_default(),
            };
            let created = admin.create_device_with(request).await?;
            let device = created.device.context("the server answered without the new device")?;
            let device_json = json!({
                "id": device.id,
                "token": created.token,
                "group_id": device.group_id,
                "name": device.name,
                "created_at": device.created_at,
            });
            print_document(format, &device_json, CREATED_COLUMNS)?;
        }
        DeviceCommand::List { group } => {
            let devices = admin.list_devices(group).await?;
            print_document(format, &devices.iter().map(device_json).collect(), COLUMNS)?;
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
