//! `hookwire group`: groups, the unit of tenancy.

use clap::Subcommand;
use hookwire_client::proto;
use serde_json::{Value, json};

use crate::GlobalArgs;
use crate::output::{DELETED_COLUMNS, print_document};

pub const EXAMPLES: &str = "\
Examples:
  hookwire group create greenhouse
  hookwire group list --output table";

const COLUMNS: &[&str] = &["id", "name", "created_at"];

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group; prints {"id", "name", "created_at"}
    #[command(after_help = "Example:\n  hookwire group create greenhouse")]
    Create {
        /// A human name, 1 to 200 characters
        name: String,
    },
    /// List the groups, oldest first; prints an array of groups
    #[command(after_help = "Examples:\n  hookwire group list\n  hookwire group list --output table")]
    List,
    /// Show one group
    #[command(after_help = "Example:\n  hookwire group get grp_0123456789abcdef")]
    Get {
        /// The group id, grp_...
        id: String,
    },
    /// Delete a group with its devices and webhooks; prints {"deleted": ID}
    #[command(after_help = "Example:\n  hookwire group delete grp_0123456789abcdef")]
    Delete {
        /// The group id, grp_...
        id: String,
    },
}

pub async fn run(command: GroupCommand, global: &GlobalArgs) -> anyhow::Result<()> {
    let format = global.output;
    let admin = global.admin_client().await?;
    match command {
        GroupCommand::Create { name } => {
            let group = admin.create_group(name).await?;
            print_document(format, &group_json(&group), COLUMNS)?;
        }
        GroupCommand::List => {
            let groups = admin.list_groups().await?;
            print_document(format, &groups.iter().map(group_json).collect(), COLUMNS)?;
        }
        GroupCommand::Get { id } => {
            let group = admin.get_group(id).await?;
            print_document(format, &group_json(&group), COLUMNS)?;
        }
        GroupCommand::Delete { id } => {
            admin.delete_group(&id).await?;
            print_document(format, &json!({ "deleted": id }), DELETED_COLUMNS)?;
        }
    }
    Ok(())
}

fn group_json(group: &proto::Group) -> Value {
    json!({
        "id": group.id,
        "name": group.name,
        "created_at": group.created_at,
    })
}
