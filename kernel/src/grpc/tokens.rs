//! The token service: group tokens with a role.

use crate::Kernel;
use crate::access::Object;
use crate::auth::{Role, TokenId};
use crate::error::{KernelError, parse_id};
use crate::store::tokens::TokenRow;
use hookwire_actors::domain::ids::GroupId;
use hookwire_actors::domain::time::iso8601_ms;
use hookwire_proto::v1 as proto;
use hookwire_proto::v1::token_service_server::TokenService;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The token service.
#[derive(Debug, Clone)]
pub struct TokenApi {
    kernel: Arc<Kernel>,
}

impl TokenApi {
    /// Serves `kernel`.
    pub fn new(kernel: Arc<Kernel>) -> Self {
        TokenApi { kernel }
    }
}

type Reply<T> = Result<Response<T>, Status>;

impl From<Role> for proto::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Viewer => proto::Role::Viewer,
            Role::Editor => proto::Role::Editor,
        }
    }
}

impl From<TokenRow> for proto::AdminToken {
    fn from(token: TokenRow) -> Self {
        proto::AdminToken {
            id: token.id.to_string(),
            group_id: token.group_id.to_string(),
            name: token.name,
            role: proto::Role::from(token.role).into(),
            created_at: iso8601_ms(token.created_at),
            last_used_at: token.last_used_at.map(iso8601_ms).unwrap_or_default(),
        }
    }
}

/// Reads the `role` field.
fn parse_role(role: i32) -> Result<Role, KernelError> {
    match proto::Role::try_from(role) {
        Ok(proto::Role::Viewer) => Ok(Role::Viewer),
        Ok(proto::Role::Editor) => Ok(Role::Editor),
        Ok(proto::Role::Unspecified) => {
            Err(KernelError::InvalidArgument("role: required (ROLE_VIEWER or ROLE_EDITOR)".into()))
        }
        Err(_) => Err(KernelError::InvalidArgument(format!(
            "role: {role} is not a role (ROLE_VIEWER = 1 or ROLE_EDITOR = 2)"
        ))),
    }
}

#[tonic::async_trait]
impl TokenService for TokenApi {
    async fn create_token(&self, request: Request<proto::CreateTokenRequest>) -> Reply<proto::CreateTokenResponse> {
        let who = self.kernel.admin.authenticate(&self.kernel.store, request.metadata()).await?;
        let message = request.into_inner();
        let group_id = parse_id("group_id", &message.group_id, GroupId::parse)?;
        who.require("group_id", &group_id, Role::Editor)?;
        let role = parse_role(message.role)?;
        let (token, secret) = self.kernel.create_token(&group_id, role, &message.name).await?;
        Ok(Response::new(proto::CreateTokenResponse { admin_token: Some(token.into()), token: secret }))
    }

    async fn list_tokens(&self, request: Request<proto::ListTokensRequest>) -> Reply<proto::ListTokensResponse> {
        let who = self.kernel.admin.authenticate(&self.kernel.store, request.metadata()).await?;
        let group_id = parse_id("group_id", &request.get_ref().group_id, GroupId::parse)?;
        who.require("group_id", &group_id, Role::Viewer)?;
        let tokens = self.kernel.list_tokens(&group_id).await?.into_iter().map(Into::into).collect();
        Ok(Response::new(proto::ListTokensResponse { tokens }))
    }

    async fn revoke_token(&self, request: Request<proto::RevokeTokenRequest>) -> Reply<proto::RevokeTokenResponse> {
        let who = self.kernel.admin.authenticate(&self.kernel.store, request.metadata()).await?;
        let id = parse_id("id", &request.get_ref().id, TokenId::parse)?;
        self.kernel.require_object(&who, Object::Token(&id), Role::Editor).await?;
        self.kernel.revoke_token(&id).await?;
        Ok(Response::new(proto::RevokeTokenResponse {}))
    }
}
