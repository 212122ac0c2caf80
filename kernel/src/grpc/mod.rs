//! The gRPC layer: adapters from protobuf messages to kernel operations and back. No business logic lives here:
//! each handler authenticates, parses ids (naming the field at fault), states in one line what it needs (the group
//! or object it acts on and the role; see [`crate::access`]), calls the kernel, converts the answer.

pub mod admin;
pub mod deliveries;
pub mod device;
pub mod tokens;

use crate::error::KernelError;
use crate::listing::{DefinitionSummary, Order, Page};
use crate::store::devices::DeviceRow;
use crate::store::groups::GroupRow;
use crate::store::webhooks::WebhookRow;
use hookwire_actors::domain::time::iso8601_ms;
use hookwire_proto::v1 as proto;

impl From<GroupRow> for proto::Group {
    fn from(group: GroupRow) -> Self {
        proto::Group { id: group.id.to_string(), name: group.name, created_at: iso8601_ms(group.created_at) }
    }
}

impl From<DeviceRow> for proto::Device {
    fn from(device: DeviceRow) -> Self {
        proto::Device {
            id: device.id.to_string(),
            group_id: device.group_id.to_string(),
            name: device.name,
            created_at: iso8601_ms(device.created_at),
            product_id: device.product_id,
            firmware_version: device.firmware_version,
            owner: device.owner,
        }
    }
}

impl From<WebhookRow> for proto::Webhook {
    fn from(webhook: WebhookRow) -> Self {
        let summary = DefinitionSummary::of(&webhook.definition);
        proto::Webhook {
            id: webhook.id.to_string(),
            group_id: webhook.group_id.to_string(),
            definition_json: webhook.definition,
            created_at: iso8601_ms(webhook.created_at),
            updated_at: iso8601_ms(webhook.updated_at),
            signing_secret: String::new(),
            auto_disabled: webhook.state.disabled_reason.is_some(),
            disabled_reason: webhook.state.disabled_reason.unwrap_or_default(),
            consecutive_failures: webhook.state.consecutive_failures,
            name: summary.name,
            event: summary.event,
            url: summary.url,
            metadata: summary.metadata.into_iter().collect(),
            ignored_fields: Vec::new(),
        }
    }
}

/// Reads the paging fields of a list request.
pub(crate) fn page(offset: u32, limit: u32, order_by: i32, descending: bool) -> Result<Page, KernelError> {
    let order = match proto::ListOrder::try_from(order_by) {
        Ok(proto::ListOrder::Created) => Order::Created,
        Ok(proto::ListOrder::Name) => Order::Name,
        Err(_) => {
            return Err(KernelError::InvalidArgument(format!(
                "order_by: {order_by} is not a ListOrder (0 created, 1 name)"
            )));
        }
    };
    Page::new(offset, limit, order, descending)
}

/// A count as the protocol carries it.
pub(crate) fn total(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}
