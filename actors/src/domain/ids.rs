//! Typed ids. Every id is a string with a short type prefix (`grp_`, `dev_`, `whk_`, `evt_`, `dlv_`) followed by
//! 32 hex digits of a UUIDv7, so ids sort by creation time and a misplaced id is caught at the edge: parsing a
//! `dev_` string as a [`WebhookId`] fails with a message naming the expected kind.

use std::fmt;
use std::sync::Arc;

/// Why a string is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {kind} id (expected `{prefix}` followed by 32 hex digits)")]
pub struct IdError {
    /// The text that was given (cut to 80 bytes).
    pub value: String,
    /// What was expected (`device`).
    pub kind: &'static str,
    /// The expected prefix (`dev_`).
    pub prefix: &'static str,
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Makes a new, time-ordered id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()).into())
            }

            /// Parses an id, refusing any string that is not this kind's prefix followed by 32 hex digits.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                let valid = value
                    .strip_prefix($prefix)
                    .is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()));
                if valid {
                    Ok(Self(value.into()))
                } else {
                    let mut shown = value.to_owned();
                    if shown.len() > 80 {
                        let mut cut = 80;
                        while !shown.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        shown.truncate(cut);
                    }
                    Err(IdError { value: shown, kind: $kind, prefix: $prefix })
                }
            }

            /// Wraps a string read back from storage, where it was validated when written.
            pub fn from_trusted(value: &str) -> Self {
                Self(value.into())
            }

            /// Returns the id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

typed_id!(
    /// A group: the unit of tenancy.
    GroupId, "grp_", "group"
);
typed_id!(
    /// A device.
    DeviceId, "dev_", "device"
);
typed_id!(
    /// A webhook.
    WebhookId, "whk_", "webhook"
);
typed_id!(
    /// An event.
    EventId, "evt_", "event"
);
typed_id!(
    /// A delivery: one event matched to one webhook.
    DeliveryId, "dlv_", "delivery"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back_and_sort_by_creation() {
        let first = DeviceId::generate();
        let second = DeviceId::generate();
        assert_eq!(DeviceId::parse(first.as_str()).unwrap(), first);
        assert!(first < second);
    }

    #[test]
    fn an_id_of_another_kind_is_refused_by_name() {
        let device = DeviceId::generate();
        let error = WebhookId::parse(device.as_str()).unwrap_err();
        assert_eq!(error.kind, "webhook");
        assert!(error.to_string().contains("is not a webhook id"), "{error}");
        assert!(GroupId::parse("grp_xyz").is_err());
        assert!(GroupId::parse("").is_err());
    }
}
