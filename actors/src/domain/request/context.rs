//! The template context of an event: the event data's keys when it is a JSON object, overlaid with Particle's
//! predefined variables (which win, so that data cannot spoof `PARTICLE_DEVICE_ID`).
//!
//! Building all of it costs a parse of the data and fourteen strings per event, two of them a JSON serialization
//! and its base64, about a seventh of the kernel's CPU per delivery when the webhook reads one variable
//! (`docs/performance.md`). So each compiled webhook knows what its templates read ([`ContextNeeds`], from
//! [`Template::root_reads`]), and an event's context is built with what its matched webhooks read together
//! ([`render_context_for`]): a template renders exactly as it would against the whole context.

use crate::domain::event::Event;
use crate::domain::ids::DeviceId;
use crate::domain::request::DeviceProfile;
use crate::domain::template::{RootRead, Template};
use base64::Engine as _;
use serde_json::{Map, Value};

/// The predefined variables, in the order they are added to the context.
const PREDEFINED: [&str; 14] = [
    "PARTICLE_DEVICE_ID",
    "PARTICLE_EVENT_NAME",
    "PARTICLE_EVENT_VALUE",
    "PARTICLE_PUBLISHED_AT",
    "PARTICLE_EVENT_ID",
    "PRODUCT_ID",
    "PRODUCT_USER_ID",
    "PRODUCT_VERSION",
    "PARTICLE_EVENT_BASE64",
    "PARTICLE_EVENT_JSON",
    // Particle's legacy names (from when it was Spark), still found in old webhooks: their twins' values.
    "SPARK_CORE_ID",
    "SPARK_EVENT_NAME",
    "SPARK_EVENT_VALUE",
    "SPARK_PUBLISHED_AT",
];

/// What a webhook's templates read of an event's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextNeeds {
    /// The event data's keys (some name read is not a predefined variable).
    data: bool,
    /// The predefined variables read, one bit per place in [`PREDEFINED`].
    predefined: u16,
}

impl ContextNeeds {
    /// Nothing: a webhook without templates.
    pub const NONE: ContextNeeds = ContextNeeds { data: false, predefined: 0 };
    /// The whole context.
    pub const ALL: ContextNeeds = ContextNeeds { data: true, predefined: (1 << PREDEFINED.len()) - 1 };

    /// Adds what `template` reads.
    pub fn add(&mut self, template: &Template) {
        template.root_reads(&mut |read| match read {
            RootRead::Whole => *self = ContextNeeds::ALL,
            RootRead::Name(name) => match PREDEFINED.iter().position(|predefined| *predefined == name) {
                Some(index) => self.predefined |= 1 << index,
                None => self.data = true,
            },
        });
    }

    /// What either reads.
    #[must_use]
    pub fn union(self, other: ContextNeeds) -> ContextNeeds {
        ContextNeeds { data: self.data || other.data, predefined: self.predefined | other.predefined }
    }
}

/// The places in [`PREDEFINED`] of the variables that hold the event's JSON (`PARTICLE_EVENT_BASE64`,
/// `PARTICLE_EVENT_JSON`), and of those that need its time (the JSON's and `*_PUBLISHED_AT`).
const JSON_BITS: u16 = 1 << 8 | 1 << 9;
const TIME_BITS: u16 = JSON_BITS | 1 << 3 | 1 << 13;

/// The whole template context of an event.
pub fn render_context(event: &Event, profile: &DeviceProfile) -> Value {
    render_context_for(event, profile, ContextNeeds::ALL)
}

/// The template context of an event with what `needs` reads: the data's keys only when a name read is not a
/// predefined variable, and only the predefined variables read.
pub fn render_context_for(event: &Event, profile: &DeviceProfile, needs: ContextNeeds) -> Value {
    // Only data that starts as an object can become one: other data is not parsed at all.
    let parsed =
        (needs.data && event.data.trim_start().starts_with('{')).then(|| serde_json::from_str::<Value>(&event.data));
    let mut context = match parsed {
        Some(Ok(Value::Object(map))) => map,
        _ => Map::with_capacity(needs.predefined.count_ones() as usize),
    };
    if needs.predefined == 0 {
        return Value::Object(context);
    }
    let device_id = event.device_id.as_ref().map_or("api", DeviceId::as_str);
    let published_at = if needs.predefined & TIME_BITS != 0 { event.published_at() } else { String::new() };
    let event_json = if needs.predefined & JSON_BITS != 0 {
        event_json(event, device_id, &published_at, profile)
    } else {
        String::new()
    };
    for (index, name) in PREDEFINED.iter().enumerate() {
        if needs.predefined & (1 << index) == 0 {
            continue;
        }
        let value = match *name {
            "PARTICLE_DEVICE_ID" | "SPARK_CORE_ID" => device_id.to_owned(),
            "PARTICLE_EVENT_NAME" | "SPARK_EVENT_NAME" => event.name.clone(),
            "PARTICLE_EVENT_VALUE" | "SPARK_EVENT_VALUE" => event.data.clone(),
            "PARTICLE_PUBLISHED_AT" | "SPARK_PUBLISHED_AT" => published_at.clone(),
            "PARTICLE_EVENT_ID" => event.id.to_string(),
            "PRODUCT_ID" => profile.product_id.clone(),
            "PRODUCT_USER_ID" => profile.owner.clone(),
            "PRODUCT_VERSION" => profile.firmware_version.clone(),
            "PARTICLE_EVENT_BASE64" => base64::engine::general_purpose::STANDARD.encode(&event_json),
            _ => event_json.clone(),
        };
        context.insert((*name).to_owned(), Value::String(value));
    }
    Value::Object(context)
}

/// `PARTICLE_EVENT_JSON`: the whole event as one JSON object, as Particle's "the entire event (name, value,
/// published at, etc) as a JSON string". Its keys, in this order: `name`, `data`, `ttl`, `published_at`, `coreid`
/// (the device id, `api` for a test event), then only when the device has them `productID`, `version` (its
/// firmware version) and `userid` (its owner), as Particle's event stream names them.
fn event_json(event: &Event, device_id: &str, published_at: &str, profile: &DeviceProfile) -> String {
    let mut object = Map::with_capacity(8);
    object.insert("name".to_owned(), Value::String(event.name.clone()));
    object.insert("data".to_owned(), Value::String(event.data.clone()));
    object.insert("ttl".to_owned(), Value::from(event.ttl));
    object.insert("published_at".to_owned(), Value::String(published_at.to_owned()));
    object.insert("coreid".to_owned(), Value::String(device_id.to_owned()));
    let product_fields =
        [("productID", &profile.product_id), ("version", &profile.firmware_version), ("userid", &profile.owner)];
    for (key, value) in product_fields {
        if !value.is_empty() {
            object.insert(key.to_owned(), Value::String(value.clone()));
        }
    }
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::definition::{CompiledWebhook, WebhookDefinition};
    use crate::domain::ids::{GroupId, WebhookId};

    fn needs(definition: &str) -> ContextNeeds {
        let definition = WebhookDefinition::from_json(definition).unwrap();
        CompiledWebhook::compile(WebhookId::generate(), GroupId::generate(), definition).unwrap().context_needs
    }

    fn keys(context: &Value) -> Vec<&str> {
        context.as_object().unwrap().keys().map(String::as_str).collect()
    }

    #[test]
    fn an_events_context_holds_what_its_webhooks_read_and_no_more() {
        let event = Event::new(GroupId::generate(), None, "t".into(), r#"{"temp":21,"hum":40}"#.into(), 60);
        let profile = DeviceProfile::default();
        let value_only = needs(r#"{"event":"t","url":"https://example.com/","body":"{{{PARTICLE_EVENT_VALUE}}}"}"#);
        let context = render_context_for(&event, &profile, value_only);
        assert_eq!(keys(&context), ["PARTICLE_EVENT_VALUE"], "the data is not even parsed");

        let with_data =
            needs(r#"{"event":"t","url":"https://example.com/{{temp}}","json":{"at":"{{SPARK_PUBLISHED_AT}}"}}"#);
        let context = render_context_for(&event, &profile, with_data);
        assert_eq!(keys(&context), ["temp", "hum", "SPARK_PUBLISHED_AT"]);

        // Every field rendered with the event's context counts; `responseTemplate` reads the response instead.
        let topics = needs(
            r#"{"event":"t","url":"https://example.com/","responseTopic":"{{PARTICLE_EVENT_NAME}}","responseTemplate":"{{temp}}","headers":{"X-Id":"{{PARTICLE_DEVICE_ID}}"}}"#,
        );
        assert_eq!(keys(&render_context_for(&event, &profile, topics)), ["PARTICLE_DEVICE_ID", "PARTICLE_EVENT_NAME"]);
        assert_eq!(needs(r#"{"event":"t","url":"https://example.com/"}"#), ContextNeeds::NONE);

        // The context itself (`.`) or a partial: all of it, in the order of the whole context.
        for whole in [
            r#"{"event":"t","url":"https://example.com/","body":"{{.}}"}"#,
            r#"{"event":"t","url":"https://example.com/","body":"{{> p}}"}"#,
        ] {
            assert_eq!(needs(whole), ContextNeeds::ALL);
        }
        let union = value_only.union(with_data);
        assert_eq!(
            keys(&render_context_for(&event, &profile, union)),
            ["temp", "hum", "PARTICLE_EVENT_VALUE", "SPARK_PUBLISHED_AT"]
        );
        assert_eq!(render_context_for(&event, &profile, ContextNeeds::ALL), render_context(&event, &profile));
        assert_eq!(keys(&render_context(&event, &profile)).len(), 2 + PREDEFINED.len());
    }

    #[test]
    fn the_masks_name_the_variables_they_stand_for() {
        let bits = |names: &[&str]| -> u16 {
            names.iter().map(|name| 1 << PREDEFINED.iter().position(|predefined| predefined == name).unwrap()).sum()
        };
        assert_eq!(JSON_BITS, bits(&["PARTICLE_EVENT_BASE64", "PARTICLE_EVENT_JSON"]));
        assert_eq!(
            TIME_BITS,
            bits(&["PARTICLE_EVENT_BASE64", "PARTICLE_EVENT_JSON", "PARTICLE_PUBLISHED_AT", "SPARK_PUBLISHED_AT"])
        );
    }
}
