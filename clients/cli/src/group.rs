//! `hookwire group`: groups, the unit of tenancy.

use clap::Subcommand;
use hookwire_client::proto;
use serde_json::{Value, json};

use crate::GlobalArgs;
use crate::output::{DELETED_COLUMNS, print_document};
use crate::paging::{PageArgs, note_page};

pub const EXAMPLES: &str = "\
Examples:
  hookwire group create greenhouse
  hookwire group list --output table
  hookwire group rename grp_0123456789abcdef greenhouse-north";

const COLUMNS: &[&str] = &["id", "name", "created_at"];

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group; prints {"id", "name", "created_at"}
    #[command(after_help = "Example:\n  hookwire group create greenhouse")]
    Create {
        /// A human name, 1 to 200 characters
        name: String,
    },
    /// List the groups, oldest first, 50 at a time; prints an array of groups (when there are more, a note on
    /// stderr says how to get the next page)
    #[command(after_help = "\
Examples:
  hookwire group list
  hookwire group list --order name --output table
  hookwire group list --all --field id")]
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Rename a group; prints the group
    #[command(after_help = "Example:\n  hookwire group rename grp_0123456789abcdef greenhouse-north")]
    Rename {
        /// The group id, grp_...
        id: String,
        /// The new name, 1 to 200 characters
        name: String,
    },
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
        GroupCommand::List { page } => {
            let request = proto::ListGroupsRequest {
                offset: page.offset,
                limit: page.limit,
                order_by: page.order_by(),
                descending: page.desc,
            };
            let groups = if page.all {
                admin.list_all_groups(request).await?
            } else {
                let listed = admin.list_groups_page(request).await?;
                note_page(page.offset, listed.groups.len(), listed.total);
                listed.groups
            };
            print_document(format, &groups.iter().map(group_json).collect(), COLUMNS)?;
        }
        GroupCommand::Rename { id, name } => {
            let group = admin.rename_group(id, name).await?;
            print_document(format, &group_json(&group), COLUMNS)?;
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
