//! The token calls of the admin client: group tokens with a role.

use crate::{AdminClient, Result, proto};

impl AdminClient {
    /// Creates a token that acts on the group `group_id` as `role` (`proto::Role::Viewer` reads,
    /// `proto::Role::Editor` also changes), named `name` (may be empty). The response's `token` is the bearer
    /// token, which the server shows only this once. Needs the root token or an editor of the group.
    pub async fn create_token(
        &self,
        group_id: impl Into<String>,
        role: proto::Role,
        name: impl Into<String>,
    ) -> Result<proto::CreateTokenResponse> {
        let request = proto::CreateTokenRequest { group_id: group_id.into(), role: role.into(), name: name.into() };
        Ok(self.tokens.clone().create_token(request).await?.into_inner())
    }

    /// Lists the tokens of the group `group_id`, oldest first, without their secrets.
    pub async fn list_tokens(&self, group_id: impl Into<String>) -> Result<Vec<proto::AdminToken>> {
        let request = proto::ListTokensRequest { group_id: group_id.into() };
        Ok(self.tokens.clone().list_tokens(request).await?.into_inner().tokens)
    }

    /// Revokes the token `id` (`tok_...`): it is refused from the next call on.
    pub async fn revoke_token(&self, id: impl Into<String>) -> Result<()> {
        let request = proto::RevokeTokenRequest { id: id.into() };
        self.tokens.clone().revoke_token(request).await?;
        Ok(())
    }
}
