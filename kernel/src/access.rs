//! Authorization of admin calls on objects named by id. A call that names a group checks it with
//! [`Principal::require`]; a call that names a device, webhook, attempt or token first needs that object's group,
//! which [`Kernel::require_object`] looks up. An object of another group is answered `NOT_FOUND` with the very
//! message of an absent one, so that a group token cannot learn what exists elsewhere.

use crate::Kernel;
use crate::auth::{Principal, Role, TokenId};
use crate::error::KernelError;
use crate::store::{attempts, devices, tokens, webhooks};
use hookwire_actors::domain::ids::{DeviceId, GroupId, WebhookId};

/// An object an admin call names by its id.
#[derive(Debug, Clone, Copy)]
pub enum Object<'a> {
    /// A device.
    Device(&'a DeviceId),
    /// A webhook.
    Webhook(&'a WebhookId),
    /// An attempt of the attempt log; its group is its webhook's.
    Attempt(i64),
    /// A group token.
    Token(&'a TokenId),
}

impl Object<'_> {
    /// The error of an object that does not exist, or is not the caller's to see.
    pub fn not_found(self) -> KernelError {
        KernelError::NotFound(match self {
            Object::Device(id) => format!("device {id} not found"),
            Object::Webhook(id) => format!("webhook {id} not found"),
            Object::Attempt(id) => format!("attempt {id} not found"),
            Object::Token(id) => format!("token {id} not found"),
        })
    }
}

impl Kernel {
    /// Checks a call on `object` that needs `role`. Root may do anything (the call itself then answers
    /// `NOT_FOUND` for an absent object, at no extra query). A group token gets `NOT_FOUND` for an object that is
    /// absent or of another group, alike, and `PERMISSION_DENIED` when its role falls short in its own group.
    pub async fn require_object(&self, who: &Principal, object: Object<'_>, role: Role) -> Result<(), KernelError> {
        let Some(own_group) = who.group() else {
            return Ok(());
        };
        if self.group_of(object).await?.as_ref() != Some(own_group) {
            return Err(object.not_found());
        }
        who.require_role(role)
    }

    /// The group an object belongs to; `None` when it does not exist (or, for an attempt, when its webhook no
    /// longer does: such attempts are only the root token's).
    async fn group_of(&self, object: Object<'_>) -> Result<Option<GroupId>, KernelError> {
        let pool = self.store.pool();
        Ok(match object {
            Object::Device(id) => devices::get_device(pool, id).await?.map(|device| device.group_id),
            Object::Webhook(id) => webhooks::get_webhook(pool, id).await?.map(|webhook| webhook.group_id),
            Object::Attempt(id) => match attempts::get_attempt(pool, id).await? {
                Some(attempt) => webhooks::get_webhook(pool, &WebhookId::from_trusted(&attempt.webhook_id))
                    .await?
                    .map(|webhook| webhook.group_id),
                None => None,
            },
            Object::Token(id) => tokens::get_token(pool, id).await?.map(|token| token.group_id),
        })
    }
}
