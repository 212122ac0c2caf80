//! The admin client: groups, devices, webhooks, and the live event stream of a group.

use hookwire_proto::v1::delivery_service_client::DeliveryServiceClient;
use hookwire_proto::v1::device_admin_service_client::DeviceAdminServiceClient;
use hookwire_proto::v1::event_service_client::EventServiceClient;
use hookwire_proto::v1::group_service_client::GroupServiceClient;
use hookwire_proto::v1::token_service_client::TokenServiceClient;
use hookwire_proto::v1::webhook_service_client::WebhookServiceClient;
use tonic::codec::Streaming;

use crate::connection::{self, AuthenticatedChannel};
use crate::{Result, proto};

/// A client of the admin services, authenticated with an admin token: the root token, or a group token
/// (`hwa_...`) that acts on one group as its role allows.
///
/// Cloning is cheap: clones share one connection. Every method is one gRPC call; the errors the server
/// answers with come back as [`Error::Status`](crate::Error::Status).
#[derive(Debug, Clone)]
pub struct AdminClient {
    groups: GroupServiceClient<AuthenticatedChannel>,
    devices: DeviceAdminServiceClient<AuthenticatedChannel>,
    webhooks: WebhookServiceClient<AuthenticatedChannel>,
    events: EventServiceClient<AuthenticatedChannel>,
    pub(crate) deliveries: DeliveryServiceClient<AuthenticatedChannel>,
    pub(crate) tokens: TokenServiceClient<AuthenticatedChannel>,
}

impl AdminClient {
    /// Connects to `endpoint` (`http://host:port`, `https://host:port` or `host:port`); every call will carry
    /// `token`.
    ///
    /// Fails with [`Error::InvalidEndpoint`](crate::Error::InvalidEndpoint) or
    /// [`Error::InvalidToken`](crate::Error::InvalidToken) before any network traffic, and with
    /// [`Error::Transport`](crate::Error::Transport) when the server cannot be reached.
    pub async fn connect(endpoint: &str, token: &str) -> Result<Self> {
        let (channel, bearer_token) = connection::connect(endpoint, token).await?;
        Ok(Self {
            groups: GroupServiceClient::with_interceptor(channel.clone(), bearer_token.clone()),
            devices: DeviceAdminServiceClient::with_interceptor(channel.clone(), bearer_token.clone()),
            webhooks: WebhookServiceClient::with_interceptor(channel.clone(), bearer_token.clone()),
            events: EventServiceClient::with_interceptor(channel.clone(), bearer_token.clone()),
            deliveries: DeliveryServiceClient::with_interceptor(channel.clone(), bearer_token.clone()),
            tokens: TokenServiceClient::with_interceptor(channel, bearer_token),
        })
    }

    /// Creates a group named `name`.
    pub async fn create_group(&self, name: impl Into<String>) -> Result<proto::Group> {
        let request = proto::CreateGroupRequest { name: name.into() };
        Ok(self.groups.clone().create_group(request).await?.into_inner())
    }

    /// Gets the group `id` (`grp_...`).
    pub async fn get_group(&self, id: impl Into<String>) -> Result<proto::Group> {
        let request = proto::GetGroupRequest { id: id.into() };
        Ok(self.groups.clone().get_group(request).await?.into_inner())
    }

    /// Lists every group, oldest first, fetching the pages one after the other.
    pub async fn list_groups(&self) -> Result<Vec<proto::Group>> {
        self.list_all_groups(proto::ListGroupsRequest::default()).await
    }

    /// Lists every group in the order `request` asks (its `offset` and `limit` are ignored), fetching the pages
    /// one after the other.
    pub async fn list_all_groups(&self, request: proto::ListGroupsRequest) -> Result<Vec<proto::Group>> {
        let mut groups = Vec::new();
        loop {
            let request = proto::ListGroupsRequest { offset: page_offset(groups.len()), limit: MAX_PAGE, ..request };
            let page = self.list_groups_page(request).await?;
            let is_last = page.groups.len() < MAX_PAGE as usize;
            groups.extend(page.groups);
            if is_last || groups.len() >= page.total as usize {
                return Ok(groups);
            }
        }
    }

    /// Lists one page of groups (`offset`, `limit` up to 200, `order_by`, `descending`); the answer's `total`
    /// counts them all.
    pub async fn list_groups_page(&self, request: proto::ListGroupsRequest) -> Result<proto::ListGroupsResponse> {
        Ok(self.groups.clone().list_groups(request).await?.into_inner())
    }

    /// Renames the group `id`.
    pub async fn rename_group(&self, id: impl Into<String>, name: impl Into<String>) -> Result<proto::Group> {
        let request = proto::RenameGroupRequest { id: id.into(), name: name.into() };
        Ok(self.groups.clone().rename_group(request).await?.into_inner())
    }

    /// Deletes the group `id` with its devices and webhooks.
    pub async fn delete_group(&self, id: impl Into<String>) -> Result<()> {
        let request = proto::DeleteGroupRequest { id: id.into() };
        self.groups.clone().delete_group(request).await?;
        Ok(())
    }

    /// Creates a device named `name` (may be empty) in the group `group_id`; the response holds its token, which
    /// the server shows only this once.
    pub async fn create_device(
        &self,
        group_id: impl Into<String>,
        name: impl Into<String>,
    ) -> Result<proto::CreateDeviceResponse> {
        self.create_device_with(proto::CreateDeviceRequest {
            group_id: group_id.into(),
            name: name.into(),
            ..Default::default()
        })
        .await
    }

    /// Creates a device with every field of the request (product id, firmware version, owner).
    pub async fn create_device_with(&self, request: proto::CreateDeviceRequest) -> Result<proto::CreateDeviceResponse> {
        Ok(self.devices.clone().create_device(request).await?.into_inner())
    }

    /// Gets the device `id` (`dev_...`).
    pub async fn get_device(&self, id: impl Into<String>) -> Result<proto::Device> {
        let request = proto::GetDeviceRequest { id: id.into() };
        Ok(self.devices.clone().get_device(request).await?.into_inner())
    }

    /// Lists every device of the group `group_id`, oldest first, fetching the pages one after the other.
    pub async fn list_devices(&self, group_id: impl Into<String>) -> Result<Vec<proto::Device>> {
        self.list_all_devices(proto::ListDevicesRequest { group_id: group_id.into(), ..Default::default() }).await
    }

    /// Lists every device that `request` selects (its group, `name_contains` and order; its `offset` and `limit`
    /// are ignored), fetching the pages one after the other.
    pub async fn list_all_devices(&self, request: proto::ListDevicesRequest) -> Result<Vec<proto::Device>> {
        let mut devices = Vec::new();
        loop {
            let request =
                proto::ListDevicesRequest { offset: page_offset(devices.len()), limit: MAX_PAGE, ..request.clone() };
            let page = self.list_devices_page(request).await?;
            let is_last = page.devices.len() < MAX_PAGE as usize;
            devices.extend(page.devices);
            if is_last || devices.len() >= page.total as usize {
                return Ok(devices);
            }
        }
    }

    /// Lists one page of a group's devices (`offset`, `limit` up to 200, `order_by`, `descending`,
    /// `name_contains`); the answer's `total` counts all that match.
    pub async fn list_devices_page(&self, request: proto::ListDevicesRequest) -> Result<proto::ListDevicesResponse> {
        Ok(self.devices.clone().list_devices(request).await?.into_inner())
    }

    /// Changes a device: each field set in the request replaces the stored one (`name`, and `product_id`,
    /// `firmware_version`, `owner` behind the `PRODUCT_*` template variables). Connections opened afterwards see
    /// the new values.
    pub async fn update_device(&self, request: proto::UpdateDeviceRequest) -> Result<proto::Device> {
        Ok(self.devices.clone().update_device(request).await?.into_inner())
    }

    /// Gives the device `id` a new token, in the answer (shown only this once); the old token is refused at once
    /// and the device's open sessions are closed.
    pub async fn rotate_device_token(&self, id: impl Into<String>) -> Result<proto::CreateDeviceResponse> {
        let request = proto::RotateDeviceTokenRequest { id: id.into() };
        Ok(self.devices.clone().rotate_device_token(request).await?.into_inner())
    }

    /// Deletes the device `id`; its open sessions are closed and the webhooks limited to it are deleted.
    pub async fn delete_device(&self, id: impl Into<String>) -> Result<()> {
        let request = proto::DeleteDeviceRequest { id: id.into() };
        self.devices.clone().delete_device(request).await?;
        Ok(())
    }

    /// Creates a webhook in the group `group_id` from its Particle webhook JSON definition. With
    /// `"x-signing": true`, the answer's `signing_secret` holds its signing secret, which the server shows only
    /// this once.
    pub async fn create_webhook(
        &self,
        group_id: impl Into<String>,
        definition_json: impl Into<String>,
    ) -> Result<proto::Webhook> {
        let request =
            proto::CreateWebhookRequest { group_id: group_id.into(), definition_json: definition_json.into() };
        Ok(self.webhooks.clone().create_webhook(request).await?.into_inner())
    }

    /// Gets the webhook `id` (`whk_...`).
    pub async fn get_webhook(&self, id: impl Into<String>) -> Result<proto::Webhook> {
        let request = proto::GetWebhookRequest { id: id.into() };
        Ok(self.webhooks.clone().get_webhook(request).await?.into_inner())
    }

    /// Lists every webhook of the group `group_id`, oldest first, fetching the pages one after the other; with
    /// `device_id`, only those limited to that device.
    pub async fn list_webhooks(
        &self,
        group_id: impl Into<String>,
        device_id: Option<&str>,
    ) -> Result<Vec<proto::Webhook>> {
        let request = proto::ListWebhooksRequest {
            group_id: group_id.into(),
            device_id: device_id.unwrap_or_default().to_owned(),
            ..Default::default()
        };
        self.list_all_webhooks(request).await
    }

    /// Lists every webhook that `request` selects (its filters and order; its `offset` and `limit` are ignored),
    /// fetching the pages one after the other.
    pub async fn list_all_webhooks(&self, request: proto::ListWebhooksRequest) -> Result<Vec<proto::Webhook>> {
        let mut webhooks = Vec::new();
        loop {
            let request =
                proto::ListWebhooksRequest { offset: page_offset(webhooks.len()), limit: MAX_PAGE, ..request.clone() };
            let page = self.list_webhooks_page(request).await?;
            let is_last = page.webhooks.len() < MAX_PAGE as usize;
            webhooks.extend(page.webhooks);
            if is_last || webhooks.len() >= page.total as usize {
                return Ok(webhooks);
            }
        }
    }

    /// Lists one page of a group's webhooks: `offset`, `limit` up to 200, `order_by`, `descending`, and the
    /// filters `device_id`, `name_contains` (ignoring case), `url_contains` and `metadata` (key = value, all must
    /// match). The answer's `total` counts all that match.
    pub async fn list_webhooks_page(&self, request: proto::ListWebhooksRequest) -> Result<proto::ListWebhooksResponse> {
        Ok(self.webhooks.clone().list_webhooks(request).await?.into_inner())
    }

    /// Creates webhooks in the group `group_id` from their Particle webhook JSON definitions, all or none: when
    /// one is refused, none is stored and the error names it (`webhooks[3].url: ...`). At most 200 at once.
    pub async fn batch_create_webhooks(
        &self,
        group_id: impl Into<String>,
        definitions_json: Vec<String>,
    ) -> Result<Vec<proto::Webhook>> {
        let request = proto::BatchCreateWebhooksRequest { group_id: group_id.into(), webhooks: definitions_json };
        Ok(self.webhooks.clone().batch_create_webhooks(request).await?.into_inner().webhooks)
    }

    /// Deletes webhooks, all or none: when one does not exist, none is deleted and `NOT_FOUND` names it
    /// (`ids[2]: ...`). At most 200 at once.
    pub async fn batch_delete_webhooks(&self, ids: Vec<String>) -> Result<()> {
        let request = proto::BatchDeleteWebhooksRequest { ids };
        self.webhooks.clone().batch_delete_webhooks(request).await?;
        Ok(())
    }

    /// Tests the webhook `id` as Particle's Test button does: an event named after its event prefix, published as
    /// device `api` with `data` (`test-event` when `None`), delivered to this webhook only. Returns its first
    /// attempt (status, error class, response headers and body, duration) and whether it succeeded.
    pub async fn test_webhook(
        &self,
        id: impl Into<String>,
        data: Option<String>,
    ) -> Result<proto::TestWebhookResponse> {
        let request = proto::TestWebhookRequest { id: id.into(), data };
        Ok(self.webhooks.clone().test_webhook(request).await?.into_inner())
    }

    /// Replaces the definition of the webhook `id`; the id stays. When the new definition turns `x-signing` on,
    /// the answer's `signing_secret` holds the new signing secret (shown only this once).
    pub async fn update_webhook(
        &self,
        id: impl Into<String>,
        definition_json: impl Into<String>,
    ) -> Result<proto::Webhook> {
        let request = proto::UpdateWebhookRequest { id: id.into(), definition_json: definition_json.into() };
        Ok(self.webhooks.clone().update_webhook(request).await?.into_inner())
    }

    /// Deletes the webhook `id`.
    pub async fn delete_webhook(&self, id: impl Into<String>) -> Result<()> {
        let request = proto::DeleteWebhookRequest { id: id.into() };
        self.webhooks.clone().delete_webhook(request).await?;
        Ok(())
    }

    /// Enables the webhook `id` after it was disabled at run time (by its `x-failureLimit`, a `410 Gone` with
    /// `x-retry`, or [`disable_webhook`](Self::disable_webhook)) and resets its count of consecutive failures;
    /// returns the webhook with its state.
    pub async fn enable_webhook(&self, id: impl Into<String>) -> Result<proto::Webhook> {
        let request = proto::EnableWebhookRequest { id: id.into() };
        Ok(self.webhooks.clone().enable_webhook(request).await?.into_inner())
    }

    /// Disables the webhook `id` at run time, its definition unchanged (`disabled_reason` "disabled by an admin");
    /// returns the webhook with its state. [`enable_webhook`](Self::enable_webhook) undoes it.
    pub async fn disable_webhook(&self, id: impl Into<String>) -> Result<proto::Webhook> {
        let request = proto::DisableWebhookRequest { id: id.into() };
        Ok(self.webhooks.clone().disable_webhook(request).await?.into_inner())
    }

    /// Gives the signing webhook `id` a new signing secret, in the answer's `signing_secret` (shown only this
    /// once). The old secret keeps signing for `grace_seconds` (one day when `None`, at most seven days), so that
    /// requests carry both signatures meanwhile; `Some(0)` retires every old secret at once.
    pub async fn rotate_webhook_secret(
        &self,
        id: impl Into<String>,
        grace_seconds: Option<u32>,
    ) -> Result<proto::Webhook> {
        let request = proto::RotateWebhookSecretRequest { id: id.into(), grace_seconds };
        Ok(self.webhooks.clone().rotate_webhook_secret(request).await?.into_inner())
    }

    /// Subscribes to the live events of the group `group_id` whose name starts with `prefix` (empty: all of
    /// them). Events are not replayed: the stream holds the events that happen once this returns.
    pub async fn subscribe(&self, group_id: impl Into<String>, prefix: impl Into<String>) -> Result<EventStream> {
        let request = proto::SubscribeEventsRequest { group_id: group_id.into(), prefix: prefix.into() };
        let events = self.events.clone().subscribe(request).await?.into_inner();
        Ok(EventStream { events })
    }
}

/// The largest page the server gives.
const MAX_PAGE: u32 = 200;

/// The offset of the next page after `num_seen` items.
fn page_offset(num_seen: usize) -> u32 {
    u32::try_from(num_seen).unwrap_or(u32::MAX)
}

/// The live events of a group, from [`AdminClient::subscribe`].
#[derive(Debug)]
pub struct EventStream {
    events: Streaming<proto::Event>,
}

impl EventStream {
    /// Waits for the next event; `None` once the server has ended the stream.
    pub async fn next(&mut self) -> Result<Option<proto::Event>> {
        Ok(self.events.message().await?)
    }
}
