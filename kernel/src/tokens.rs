//! Group token operations: create (the secret is returned this once; only its hash is stored), list, revoke.
//! Revoking, like deleting a group, forgets the token in [`AdminAuth`](crate::auth::AdminAuth)'s cache, so it is
//! refused from the next call on.

use crate::Kernel;
use crate::admin::check_text;
use crate::auth::{self, Principal, Role, TokenId};
use crate::error::KernelError;
use crate::store::tokens::{self, TokenRow};
use hookwire_actors::domain::ids::GroupId;
use hookwire_actors::domain::time;

impl Kernel {
    /// Creates a token acting on `group_id` as `role`; returns it with its secret (shown this once).
    pub async fn create_token(
        &self,
        group_id: &GroupId,
        role: Role,
        name: &str,
    ) -> Result<(TokenRow, String), KernelError> {
        check_text("name", name, false)?;
        self.get_group(group_id).await?;
        let secret = auth::generate_token(auth::GROUP_TOKEN_PREFIX);
        let token = TokenRow {
            id: TokenId::generate(),
            group_id: group_id.clone(),
            name: name.trim().to_owned(),
            role,
            token_hash: auth::hash_token(&secret),
            created_at: time::now_ms(),
            last_used_at: None,
        };
        tokens::insert_token(self.store.pool(), &token).await?;
        tracing::info!(token_id = %token.id, %group_id, role = role.as_str(), "group token created");
        Ok((token, secret))
    }

    /// Lists a group's tokens, oldest first.
    pub async fn list_tokens(&self, group_id: &GroupId) -> Result<Vec<TokenRow>, KernelError> {
        self.get_group(group_id).await?;
        Ok(tokens::list_tokens(self.store.pool(), group_id).await?)
    }

    /// Revokes a token: it is refused from the next call on (on this node; see [`auth::AdminAuth`]).
    pub async fn revoke_token(&self, id: &TokenId) -> Result<(), KernelError> {
        if !tokens::delete_token(self.store.pool(), id).await? {
            return Err(KernelError::NotFound(format!("token {id} not found")));
        }
        self.admin.forget(|principal| matches!(principal, Principal::Group { token_id, .. } if token_id == id));
        tracing::info!(token_id = %id, "group token revoked");
        Ok(())
    }
}
