//! `hookwire token`: admin tokens scoped to one group, with a role (`viewer` reads, `editor` also changes).

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use hookwire_client::proto;
use serde_json::{Value, json};

use crate::GlobalArgs;
use crate::output::print_document;

pub const EXAMPLES: &str = "\
Examples:
  hookwire token create --group grp_0123456789abcdef --role editor --name ci
  hookwire token list --group grp_0123456789abcdef --output table
  hookwire token revoke tok_0123456789abcdef";

const CREATED_COLUMNS: &[&str] = &["id", "token", "group_id", "role", "name", "created_at"];
const COLUMNS: &[&str] = &["id", "group_id", "role", "name", "created_at", "last_used_at"];
const REVOKED_COLUMNS: &[&str] = &["revoked"];

/// What a group token may do in its group.
// No doc comments on the variants: clap would show them, one per line, in the help of every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Editor,
}

impl From<RoleArg> for proto::Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Viewer => proto::Role::Viewer,
            RoleArg::Editor => proto::Role::Editor,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for one group; prints {"id", "token", "group_id", "role", "name", "created_at"}. The token
    /// is shown only this once. Needs the root token or an editor token of the group
    #[command(after_help = "\
Examples:
  hookwire token create --group grp_0123456789abcdef --role viewer
  hookwire token create --group grp_0123456789abcdef --role editor --name deploy --field token")]
    Create {
        /// The group id, grp_...
        #[arg(long, value_name = "ID")]
        group: String,
        /// viewer: reads (get, list, logs, history, subscribe); editor: also changes, replays and manages the
        /// group's tokens
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A human name, up to 200 characters
        #[arg(long)]
        name: Option<String>,
    },
    /// List the tokens of a group, oldest first, without their secrets; prints an array of tokens
    #[command(after_help = "Example:\n  hookwire token list --group grp_0123456789abcdef --output table")]
    List {
        /// The group id, grp_...
        #[arg(long, value_name = "ID")]
        group: String,
    },
    /// Revoke a token: it is refused from the next call on; prints {"revoked": ID}
    #[command(after_help = "Example:\n  hookwire token revoke tok_0123456789abcdef")]
    Revoke {
        /// The token id, tok_...
        id: String,
    },
}

pub async fn run(command: TokenCommand, global: &GlobalArgs) -> anyhow::Result<()> {
    let format = global.output;
    let admin = global.admin_client().await?;
    match command {
        TokenCommand::Create { group, role, name } => {
            let created = admin.create_token(group, role.into(), name.unwrap_or_default()).await?;
            let token = created.admin_token.context("the server answered without the new token")?;
            let mut document = token_json(&token);
            document["token"] = Value::String(created.token);
            print_document(format, &document, CREATED_COLUMNS)?;
        }
        TokenCommand::List { group } => {
            let tokens = admin.list_tokens(group).await?;
            print_document(format, &tokens.iter().map(token_json).collect(), COLUMNS)?;
        }
        TokenCommand::Revoke { id } => {
            admin.revoke_token(&id).await?;
            print_document(format, &json!({ "revoked": id }), REVOKED_COLUMNS)?;
        }
    }
    Ok(())
}

fn token_json(token: &proto::AdminToken) -> Value {
    let role = match token.role() {
        proto::Role::Viewer => "viewer",
        proto::Role::Editor => "editor",
        proto::Role::Unspecified => "unspecified",
    };
    json!({
        "id": token.id,
        "group_id": token.group_id,
        "role": role,
        "name": token.name,
        "created_at": token.created_at,
        "last_used_at": (!token.last_used_at.is_empty()).then_some(&token.last_used_at),
    })
}
