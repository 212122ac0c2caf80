//! Events: what devices publish and what deliveries report (`hook-sent`, `hook-response`, `hook-error`).

use crate::domain::ids::{DeviceId, EventId, GroupId};
use crate::domain::time;
use std::sync::Arc;

/// The default largest event data, in bytes (Particle's limit).
pub const DEFAULT_MAX_DATA_BYTES: usize = 1024;
/// The largest event name, in bytes (Particle's limit).
pub const MAX_NAME_BYTES: usize = 64;
/// The largest subscription prefix, in bytes: room for `<device id>/hook-response/<event name>/<index>` with any
/// valid event name (36 + 15 + 64 + 4 = 119 bytes), which product firmware subscribes to, as on Particle.
pub const MAX_PREFIX_BYTES: usize = 128;
/// The time to live of an event that gives none, in seconds.
pub const DEFAULT_TTL_SECS: u32 = 60;

/// One event. Shared by reference (`Arc<Event>`) between the journal, the webhooks it matched and the event bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Time-ordered unique id.
    pub id: EventId,
    /// The event name.
    pub name: String,
    /// The data, UTF-8 text.
    pub data: String,
    /// The publishing device, or for `hook-*` events the device whose event triggered them; `None` for events
    /// the kernel made without a device.
    pub device_id: Option<DeviceId>,
    /// The group.
    pub group_id: GroupId,
    /// When the kernel received it, epoch milliseconds.
    pub published_at_ms: i64,
    /// Time to live, seconds.
    pub ttl: u32,
}

impl Event {
    /// Makes a new event stamped now with a fresh id.
    pub fn new(group_id: GroupId, device_id: Option<DeviceId>, name: String, data: String, ttl: u32) -> Self {
        Event {
            id: EventId::generate(),
            name,
            data,
            device_id,
            group_id,
            published_at_ms: time::now_ms(),
            ttl: if ttl == 0 { DEFAULT_TTL_SECS } else { ttl },
        }
    }

    /// Returns `published_at` in ISO-8601 UTC with milliseconds.
    pub fn published_at(&self) -> String {
        time::iso8601_ms(self.published_at_ms)
    }

    /// Returns the device a `<device id>/...` event is addressed to, when its name starts with a device id.
    /// Such events reach only that device (and admin subscribers), whatever prefix another device subscribed to.
    pub fn addressed_device(&self) -> Option<&str> {
        addressed_device(&self.name)
    }

    /// Converts to the wire form.
    pub fn to_proto(&self) -> hookwire_proto::v1::Event {
        hookwire_proto::v1::Event {
            id: self.id.to_string(),
            name: self.name.clone(),
            data: self.data.clone(),
            device_id: self.device_id.as_ref().map(ToString::to_string).unwrap_or_default(),
            group_id: self.group_id.to_string(),
            published_at: self.published_at(),
            ttl: self.ttl,
        }
    }
}

/// Returns the device id a name like `dev_.../hook-response/x` is addressed to.
pub fn addressed_device(name: &str) -> Option<&str> {
    let (head, _) = name.split_once('/')?;
    DeviceId::parse(head).ok().map(|_| head)
}

/// True for the names of events the kernel makes about deliveries (`hook-sent`, `hook-response`, `hook-error`,
/// with or without a device prefix); such events never trigger webhooks, so a webhook cannot feed itself.
pub fn is_hook_event(name: &str) -> bool {
    let name = match addressed_device(name) {
        Some(device) => &name[device.len() + 1..],
        // The answers to a test event are addressed to its device, `api` (`api/hook-response/...`).
        None => name.strip_prefix("api/").unwrap_or(name),
    };
    ["hook-sent", "hook-response", "hook-error"]
        .iter()
        .any(|kind| name.strip_prefix(kind).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

/// The first name segments of the events the kernel itself emits: deliveries' `hook-sent`, `hook-response` and
/// `hook-error` (also under a device prefix, `<device id>/hook-response/...`), and `webhook-disabled/<webhook id>`
/// when a webhook reaches its failure limit. No device may publish under them.
pub const KERNEL_TOPICS: [&str; 4] = ["hook-sent", "hook-response", "hook-error", "webhook-disabled"];

/// True for names under a kernel topic ([`KERNEL_TOPICS`]), with or without a device prefix: the topic is the
/// whole name or followed by `/`.
pub fn is_kernel_topic(name: &str) -> bool {
    let name = match addressed_device(name) {
        Some(device) => &name[device.len() + 1..],
        None => name,
    };
    KERNEL_TOPICS
        .iter()
        .any(|topic| name.strip_prefix(topic).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

/// Why a published event is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The name is empty, too long or has control characters.
    #[error("name: {0}")]
    InvalidName(&'static str),
    /// The data is larger than the configured maximum.
    #[error("data: {size} bytes is more than the maximum of {max}")]
    DataTooLarge {
        /// The data's size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The journal could not store the event; nothing was acked and the device may retry.
    #[error("storage unavailable, retry later: {0}")]
    Unavailable(String),
    /// Storage refused this event's data; retrying the same event will not help.
    #[error("data: refused by storage: {0}")]
    Refused(String),
}

impl PublishError {
    /// The error's code.
    pub fn code(&self) -> hookwire_proto::ErrorCode {
        use hookwire_proto::ErrorCode;
        match self {
            PublishError::InvalidName(_) => ErrorCode::InvalidArgument,
            PublishError::DataTooLarge { .. } => ErrorCode::ResourceExhausted,
            PublishError::Unavailable(_) => ErrorCode::Unavailable,
            PublishError::Refused(_) => ErrorCode::InvalidArgument,
        }
    }
}

/// Checks a name and data a device wants to publish.
pub fn validate_publish(name: &str, data: &str, max_data_bytes: usize) -> Result<(), PublishError> {
    if name.is_empty() {
        return Err(PublishError::InvalidName("must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(PublishError::InvalidName("must be at most 64 bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(PublishError::InvalidName("must not contain control characters"));
    }
    if is_kernel_topic(name) {
        return Err(PublishError::InvalidName(
            "hook-sent, hook-response, hook-error and webhook-disabled are reserved for the kernel",
        ));
    }
    if data.len() > max_data_bytes {
        return Err(PublishError::DataTooLarge { size: data.len(), max: max_data_bytes });
    }
    Ok(())
}

/// Checks that `publisher` may publish under `name`: a name that starts with a device id followed by `/` is
/// addressed to that device (the bus delivers it to that device alone), so only that device itself may publish it.
/// Kept apart from [`validate_publish`], which needs no publisher.
pub fn check_publisher(name: &str, publisher: Option<&DeviceId>) -> Result<(), PublishError> {
    match addressed_device(name) {
        Some(addressed) if publisher.is_none_or(|publisher| publisher.as_str() != addressed) => {
            Err(PublishError::InvalidName(
                "must not start with another device's id: `<device id>/...` is addressed to that device, and only it may publish there",
            ))
        }
        _ => Ok(()),
    }
}

/// The shared form events travel in.
pub type SharedEvent = Arc<Event>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_events_are_recognised_with_and_without_a_device_prefix() {
        let device = DeviceId::generate();
        assert!(is_hook_event("hook-sent/temp"));
        assert!(is_hook_event("hook-response/temp/0"));
        assert!(is_hook_event(&format!("{device}/hook-error/temp/0")));
        assert!(is_hook_event("api/hook-response/temp/0"), "the answer to a test event");
        assert!(!is_hook_event("api/temp"));
        assert!(!is_hook_event("hook-sentinel"));
        assert!(!is_hook_event("temp"));
        assert!(!is_hook_event(&format!("{device}/temp")));
    }

    #[test]
    fn addressed_device_needs_a_real_device_id_before_the_slash() {
        let device = DeviceId::generate();
        assert_eq!(addressed_device(&format!("{device}/hook-response/x/0")), Some(device.as_str()));
        assert_eq!(addressed_device("dev_abc/hook-response"), None);
        assert_eq!(addressed_device("temp/kitchen"), None);
    }

    #[test]
    fn a_device_publishes_under_its_own_id_only() {
        let (own, other) = (DeviceId::generate(), DeviceId::generate());
        assert!(check_publisher(&format!("{own}/custom/0"), Some(&own)).is_ok());
        assert!(check_publisher("custom/0", Some(&own)).is_ok());
        let error = check_publisher(&format!("{other}/custom/0"), Some(&own)).unwrap_err();
        assert!(error.to_string().starts_with("name: must not start with another device's id"), "{error}");
        assert!(check_publisher(&format!("{other}/custom/0"), None).is_err());
        assert!(is_kernel_topic(&format!("{own}/webhook-disabled/x")));
    }

    /// Device frame validation, fuzzed on stable with a fixed-seed generator: names are built from the pieces
    /// the rules look at (device ids, kernel topics, `/`, multi-byte and control characters). Validation never
    /// panics, and every accepted name keeps the rules.
    #[test]
    fn validation_of_generated_names_never_panics_and_accepted_names_keep_the_rules() {
        let (own, other) = (DeviceId::generate(), DeviceId::generate());
        let pieces: Vec<String> = vec![
            own.to_string(),
            other.to_string(),
            "dev_".into(),
            "dev_0123".into(),
            "hook-sent".into(),
            "hook-response".into(),
            "hook-error".into(),
            "webhook-disabled".into(),
            "hook-".into(),
            "/".into(),
            "//".into(),
            "temp".into(),
            "é".into(),
            "日本".into(),
            "\u{0}".into(),
            "\n".into(),
            "x".repeat(40),
            String::new(),
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..50_000 {
            let num_pieces = next() % 5;
            let name: String =
                (0..num_pieces).map(|_| pieces[(next() % pieces.len() as u64) as usize].as_str()).collect();
            let publisher = match next() % 3 {
                0 => None,
                1 => Some(&own),
                _ => Some(&other),
            };
            let accepted = validate_publish(&name, "", 1024).and_then(|()| check_publisher(&name, publisher)).is_ok();
            if !accepted {
                continue;
            }
            assert!(!name.is_empty() && name.len() <= MAX_NAME_BYTES, "{name:?}");
            assert!(!name.chars().any(char::is_control), "{name:?}");
            assert!(!is_kernel_topic(&name) && !is_hook_event(&name), "{name:?}");
            if let Some(addressed) = addressed_device(&name) {
                assert_eq!(Some(addressed), publisher.map(DeviceId::as_str), "{name:?} by {publisher:?}");
            }
        }
    }

    #[test]
    fn publish_validation_names_the_field() {
        assert!(validate_publish("temp", "21", 1024).is_ok());
        assert_eq!(validate_publish("", "x", 1024), Err(PublishError::InvalidName("must not be empty")));
        assert!(validate_publish(&"x".repeat(65), "", 1024).is_err());
        assert!(validate_publish("a\nb", "", 1024).is_err());
        assert!(validate_publish("hook-sent/x", "", 1024).is_err());
        assert!(validate_publish("webhook-disabled/whk_1", "", 1024).is_err());
        assert!(validate_publish("webhook-disabled", "", 1024).is_err());
        assert!(validate_publish("webhook-disabledness", "", 1024).is_ok());
        let error = validate_publish("temp", &"x".repeat(1025), 1024).unwrap_err();
        assert_eq!(error.to_string(), "data: 1025 bytes is more than the maximum of 1024");
    }
}
