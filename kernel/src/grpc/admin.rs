//! Admin services: groups, devices, webhooks and the group event stream.

use crate::Kernel;
use crate::access::Object;
use crate::admin::{DeviceFields, DeviceUpdate};
use crate::auth::{Principal, Role};
use crate::error::{KernelError, parse_id};
use crate::grpc::{page, total};
use crate::listing::WebhookFilter;
use futures::Stream;
use hookwire_actors::domain::ids::{DeviceId, GroupId, WebhookId};
use hookwire_proto::v1 as proto;
use hookwire_proto::v1::device_admin_service_server::DeviceAdminService;
use hookwire_proto::v1::event_service_server::EventService;
use hookwire_proto::v1::group_service_server::GroupService;
use hookwire_proto::v1::webhook_service_server::WebhookService;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The admin services, sharing the kernel.
#[derive(Debug, Clone)]
pub struct AdminApi {
    kernel: Arc<Kernel>,
}

impl AdminApi {
    /// Serves `kernel`.
    pub fn new(kernel: Arc<Kernel>) -> Self {
        AdminApi { kernel }
    }

    /// Authenticates an admin call; the handler then states what it needs of the caller (see [`crate::access`]).
    async fn authorize<T>(&self, request: &Request<T>) -> Result<Principal, KernelError> {
        self.kernel.admin.authenticate(&self.kernel.store, request.metadata()).await
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl GroupService for AdminApi {
    async fn create_group(&self, request: Request<proto::CreateGroupRequest>) -> Reply<proto::Group> {
        self.authorize(&request).await?.require_root("create groups")?;
        let group = self.kernel.create_group(&request.into_inner().name).await?;
        Ok(Response::new(group.into()))
    }

    async fn get_group(&self, request: Request<proto::GetGroupRequest>) -> Reply<proto::Group> {
        let who = self.authorize(&request).await?;
        let id = parse_id("id", &request.get_ref().id, GroupId::parse)?;
        who.require("id", &id, Role::Viewer)?;
        Ok(Response::new(self.kernel.get_group(&id).await?.into()))
    }

    async fn list_groups(&self, request: Request<proto::ListGroupsRequest>) -> Reply<proto::ListGroupsResponse> {
        let who = self.authorize(&request).await?;
        let message = request.into_inner();
        let page = page(message.offset, message.limit, message.order_by, message.descending)?;
        // A group token sees its own group only.
        let (groups, count) = match who.group() {
            None => self.kernel.list_groups_page(&page).await?,
            Some(own) => (vec![self.kernel.get_group(own).await?], 1),
        };
        let groups = groups.into_iter().map(Into::into).collect();
        Ok(Response::new(proto::ListGroupsResponse { groups, total: total(count) }))
    }

    async fn rename_group(&self, request: Request<proto::RenameGroupRequest>) -> Reply<proto::Group> {
        let who = self.authorize(&request).await?;
        let message = request.into_inner();
        let id = parse_id("id", &message.id, GroupId::parse)?;
        who.require("id", &id, Role::Editor)?;
        let group = self.kernel.get_group(&id).await?;
        Ok(Response::new(self.kernel.rename_group(group, &message.name).await?.into()))
    }

    async fn delete_group(&self, request: Request<proto::DeleteGroupRequest>) -> Reply<proto::DeleteGroupResponse> {
        // Groups are the root token's: deleting one also deletes its tokens, so not even its editors may.
        self.authorize(&request).await?.require_root("delete groups")?;
        let id = parse_id("id", &request.get_ref().id, GroupId::parse)?;
        self.kernel.delete_group(&id).await?;
        Ok(Response::new(proto::DeleteGroupResponse {}))
    }
}

#[tonic::async_trait]
impl DeviceAdminService for AdminApi {
    async fn create_device(&self, request: Request<proto::CreateDeviceRequest>) -> Reply<proto::CreateDeviceResponse> {
        let who = self.authorize(&request).await?;
        let message = request.into_inner();
        let group_id = parse_id("group_id", &message.group_id, GroupId::parse)?;
        who.require("group_id", &group_id, Role::Editor)?;
        let fields = DeviceFields {
            name: message.name,
            product_id: message.product_id,
            firmware_version: message.firmware_version,
            owner: message.owner,
        };
        let (device, token) = self.kernel.create_device(&group_id, fields).await?;
        Ok(Response::new(proto::CreateDeviceResponse { device: Some(device.into()), token }))
    }

    async fn get_device(&self, request: Request<proto::GetDeviceRequest>) -> Reply<proto::Device> {
        let who = self.authorize(&request).await?;
        let id = parse_id("id", &request.get_ref().id, DeviceId::parse)?;
        self.kernel.require_object(&who, Object::Device(&id), Role::Viewer).await?;
        Ok(Response::new(self.kernel.get_device(&id).await?.into()))
    }

    async fn list_devices(&self, request: Request<proto::ListDevicesRequest>) -> Reply<proto::ListDevicesResponse> {
        let who = self.authorize(&request).await?;
        let message = request.into_inner();
        let group_id = parse_id("group_id", &message.group_id, GroupId::parse)?;
        who.require("group_id", &group_id, Role::Viewer)?;
        let page = page(message.offset, message.limit, message.order_by, message.descending)?;
        let (devices, count) = self.kernel.list_devices_page(&group_id, &message.name_contains, &page).await?;
        let devices = devices.into_iter().map(Into::into).collect();
        Ok(Response::new(proto::ListDevicesResponse { devices, total: total(count) }))
    }

    async fn update_device(&self, request: Request<proto::UpdateDeviceRequest>) -> Reply<proto::Device> {
        let who = self.authorize(&request).await?;
        let message = request.into_inner();
        let id = parse_id("id", &message.id, DeviceId::parse)?;
        self.kernel.require_object(&who, Object::Device(&id), Role::Editor).await?;
        let device = self.kernel.get_device(&id).await?;
        let update = DeviceUpdate {
            name: message.name,
            product_id: message.product_id,
            firmware_version: message.firmware_version,
            owner: message.owner,
        };
        Ok(Response::new(self.kernel.update_device(device, update).await?.into()))
    }

    async fn rotate_device_token(
        &self,
        request: Request<proto::RotateDeviceTokenRequest>,
    ) -> Reply<proto::CreateDeviceResponse> {
        let who = self.authorize(&request).await?;
        let id = parse_id("id", &request.get_ref().id, DeviceId::parse)?;
        self.kernel.require_object(&who, Object::Device(&id), Role::Editor).await?;
        let device = self.kernel.get_device(&id).await?;
        let (device, token) = self.kernel.rotate_device_token(device).await?;
        Ok(Response::new(proto::CreateDeviceResponse { device: Some(device.into()), token }))
    }

    async fn delete_device(&self, request: Request<proto::DeleteDeviceRequest>) -> Reply<proto::DeleteDeviceResponse> {
        let who = self.authorize(&request).await?;
        let id = parse_id("id", &request.get_ref().id, DeviceId::parse)?;
        self.kernel.require_object(&who, Object::Device(&id), Role::Editor).await?;
        self.kernel.delete_device(&id).await?;
        Ok(Response::new(proto::DeleteDeviceResponse {}))
    }
}

#[tonic::async_trait]
impl WebhookService for AdminApi {
    async fn create_webhook(&self, request: Request<proto::CreateWebhookRequest>) -> Reply<proto::Webhook> {
        let who = self.authorize(&request).await?;
        let message = request.into_inner();
        let group_id = parse_id("group_id", &message.group_id, GroupId::parse)?;
        who.require("group_id", &group_id, Role::Editor)?;
        let saved = self.kernel.create_webhook(&group_id, &message.definition_json).await?;
        Ok(Response::new(saved_webhook(saved)))
    }

    async fn get_webhook(&self, request: Request<proto::GetWebhookRequest>) -> Reply<proto::Webhook> {
        let who = self.authorize(&request).await?;
        let id = parse_id("id", &request.get_ref().id, WebhookId::parse)?;
        self.kernel.require_object(&who, Object::Webhook(&id), Role::Viewer).await?;
        Ok(Response::new(self.kernel.get_webhook(&id).await?.into()))
    }

    async fn list_webhooks(&self, request: Request<proto::ListWebhooksRequest>) -> Reply<proto::ListWebhooksResponse> {
        let who = self.authorize(&request).await?;
        let message = request.into_inner();
        let group_id = parse_id("group_id", &message.group_id, GroupId::parse)?;
        who.require("group_id", &group_id, Role::Viewer)?;
        let device_id = match message.device_id.as_str() {
            "" => None,
            device_id => Some(parse_id("device_id", device_id, DeviceId::parse)?),
        };
        let page = page(message.offset, message.limit, message.order_by, message.descending)?;
        let filter = WebhookFilter {
            name_contains: message.name_contains,
            url_contains: message.url_contains,
            metadata: message.metadata.into_iter().collect(),
        };
        let (webhooks, count) = self.kernel.list_webhooks_page(&group_id, device_id.as_ref(), &filter, &page).await?;
        let webhooks = webhooks.into_iter().map(Into::into).collect();
        Ok(Response::new(proto::ListWebhooksResponse { webhooks, total: total(count) }))
    }

    async fn batch_create_webhooks(
        &self,
        request: Request<proto::BatchCreateWebhooksRequest>,
    ) -> Reply<proto::BatchCreateWebhooksResponse> {
        let who = self.authorize(&request).await?;
        let message = request.into_inner();
        let group_id = parse_id("group_id", &message.group_id, GroupId::parse)?;
        who.require("group_id", &group_id, Role::Editor)?;
        let created = self.kernel.batch_create_webhooks(&group_id, &message.webhooks).await?;
        let webhooks = created.into_iter().map(saved_webhook).collect();
        Ok(Response::new(proto::BatchCreateWebhooksResponse { webhooks }))
    }

    async fn batch_delete_webhooks(
        &self,
        request: Request<proto::BatchDeleteWebhooksRequest>,
    ) -> Reply<proto::BatchDeleteWebhooksResponse> {
        let who = self.authorize(&request).await?;
        let message = request.into_inner();
        if message.ids.is_empty() || message.ids.len() > crate::listing::MAX_BATCH {
            let error = format!("ids: give 1 to {} webhook ids, got {}", crate::listing::MAX_BATCH, message.ids.len());
            return Err(KernelError::InvalidArgument(error).into());
        }
        let mut ids = Vec::with_capacity(message.ids.len());
        for (index, id) in message.ids.iter().enumerate() {
            let id = parse_id(&format!("ids[{index}]"), id, WebhookId::parse)?;
            if let Some(first) = ids.iter().position(|seen| seen == &id) {
                let error = format!("ids[{index}]: {id} is already ids[{first}]");
                return Err(KernelError::InvalidArgument(error).into());
            }
            ids.push(id);
        }
        // Every id is checked before anything is deleted; another group's webhook answers as one that does not
        // exist.
        let rows = self.kernel.get_webhooks(&ids).await?;
        if let Some(own) = who.group()
            && let Some(index) = rows.iter().position(|row| &row.group_id != own)
        {
            return Err(KernelError::NotFound(format!("ids[{index}]: webhook {} not found", ids[index])).into());
        }
        who.require_role(Role::Editor)?;
        self.kernel.batch_delete_webhooks(&rows).await?;
        Ok(Response::new(proto::BatchDeleteWebhooksResponse {}))
    }

    async fn test_webhook(&self, request: Request<proto::TestWebhookRequest>) -> Reply<proto::TestWebhookResponse> {
        let who = self.authorize(&request).await?;
        let message = request.into_inner();
        let id = parse_id("id", &message.id, WebhookId::parse)?;
        // A test sends a real request: an editor's call.
        self.kernel.require_object(&who, Object::Webhook(&id), Role::Editor).await?;
        let webhook = self.kernel.get_webhook(&id).await?;
        let outcome = self.kernel.test_webhook(&webhook, message.data).await?;
        let attempt: proto::Attempt = outcome.attempt.into();
        Ok(Response::new(proto::TestWebhookResponse {
            succeeded: attempt.error_class.is_empty(),
            event_id: outcome.event_id.to_string(),
            attempt: Some(attempt),
        }))
    }

    async fn update_webhook(&self, request: Request<proto::UpdateWebhookRequest>) -> Reply<proto::Webhook> {
        let who = self.authorize(&request).await?;
        let message = request.into_inner();
        let id = parse_id("id", &message.id, WebhookId::parse)?;
        self.kernel.require_object(&who, Object::Webhook(&id), Role::Editor).await?;
        let saved = self.kernel.update_webhook(&id, &message.definition_json).await?;
        Ok(Response::new(saved_webhook(saved)))
    }

    async fn delete_webhook(
        &self,
        request: Request<proto::DeleteWebhookRequest>,
    ) -> Reply<proto::DeleteWebhookResponse> {
        let who = self.authorize(&request).await?;
        let id = parse_id("id", &request.get_ref().id, WebhookId::parse)?;
        self.kernel.require_object(&who, Object::Webhook(&id), Role::Editor).await?;
        self.kernel.delete_webhook(&id).await?;
        Ok(Response::new(proto::DeleteWebhookResponse {}))
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<proto::RotateWebhookSecretRequest>,
    ) -> Reply<proto::Webhook> {
        let who = self.authorize(&request).await?;
        let message = request.into_inner();
        let id = parse_id("id", &message.id, WebhookId::parse)?;
        self.kernel.require_object(&who, Object::Webhook(&id), Role::Editor).await?;
        let (webhook, signing_secret) = self.kernel.rotate_webhook_secret(&id, message.grace_seconds).await?;
        Ok(Response::new(with_secret(webhook.into(), Some(signing_secret))))
    }

    async fn enable_webhook(&self, request: Request<proto::EnableWebhookRequest>) -> Reply<proto::Webhook> {
        let who = self.authorize(&request).await?;
        let id = parse_id("id", &request.get_ref().id, WebhookId::parse)?;
        self.kernel.require_object(&who, Object::Webhook(&id), Role::Editor).await?;
        Ok(Response::new(self.kernel.enable_webhook(&id).await?.into()))
    }

    async fn disable_webhook(&self, request: Request<proto::DisableWebhookRequest>) -> Reply<proto::Webhook> {
        let who = self.authorize(&request).await?;
        let id = parse_id("id", &request.get_ref().id, WebhookId::parse)?;
        self.kernel.require_object(&who, Object::Webhook(&id), Role::Editor).await?;
        Ok(Response::new(self.kernel.disable_webhook(&id).await?.into()))
    }
}

/// A webhook answer carrying a secret shown this once.
/// The answer to a create or an update: the webhook, its new secret and the fields that were ignored, this once.
fn saved_webhook(saved: crate::admin::SavedWebhook) -> proto::Webhook {
    proto::Webhook { ignored_fields: saved.ignored_fields, ..with_secret(saved.row.into(), saved.signing_secret) }
}

fn with_secret(webhook: proto::Webhook, signing_secret: Option<String>) -> proto::Webhook {
    proto::Webhook { signing_secret: signing_secret.unwrap_or_default(), ..webhook }
}

/// The stream of a group's events.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<proto::Event, Status>> + Send>>;

#[tonic::async_trait]
impl EventService for AdminApi {
    type SubscribeStream = EventStream;

    async fn subscribe(&self, request: Request<proto::SubscribeEventsRequest>) -> Reply<Self::SubscribeStream> {
        let who = self.authorize(&request).await?;
        let message = request.into_inner();
        let group_id = parse_id("group_id", &message.group_id, GroupId::parse)?;
        who.require("group_id", &group_id, Role::Viewer)?;
        if message.prefix.len() > hookwire_actors::domain::event::MAX_PREFIX_BYTES {
            let max = hookwire_actors::domain::event::MAX_PREFIX_BYTES;
            return Err(KernelError::InvalidArgument(format!("prefix: must be at most {max} bytes")).into());
        }
        self.kernel.get_group(&group_id).await?;
        let bus = &self.kernel.services.bus;
        let (guard, receiver) = bus.sink(group_id, None, self.kernel.services.settings.subscriber_queue_capacity);
        guard.subscribe(&message.prefix);
        // The guard lives as long as the stream: when the client goes away, the subscription goes with it. The
        // stream ends when the kernel shuts down.
        let shutting_down = self.kernel.shutting_down.clone();
        let state = (guard, receiver, shutting_down);
        let stream = futures::stream::unfold(state, |(guard, mut receiver, mut shutting_down)| async move {
            let event = tokio::select! {
                event = receiver.recv() => event?,
                _ = shutting_down.wait_for(|down| *down) => return None,
            };
            Some((Ok(event.to_proto()), (guard, receiver, shutting_down)))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
