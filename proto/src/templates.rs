//! The gallery of ready integrations: each template is a small declaration (a name, what it is for, the few
//! fields the service needs, and a webhook definition with `${field}` placeholders) that renders to an ordinary
//! Particle webhook JSON definition, which the user can still edit afterwards.
//!
//! The console's template forms and the CLI (`hookwire template list`, `hookwire webhook create --template NAME
//! --set key=value`) share this module; it lives in the contract crate because both sides already depend on it
//! and it needs nothing beyond the standard library. Placeholders only appear inside JSON strings, and each value
//! is JSON-escaped where it goes, so no value can change the definition's structure. `{{...}}` are the webhook's
//! own Mustache templates, rendered per event, and are left alone.

use std::fmt;

/// Longest value of one template field, in bytes.
pub const MAX_FIELD_BYTES: usize = 2048;

/// A field a template asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateField {
    /// The key, as in `--set key=value` and `${key}`.
    pub key: &'static str,
    /// A short human label.
    pub label: &'static str,
    /// Where to find the value, or what it does.
    pub help: &'static str,
    /// The value when none is given; required fields have none.
    pub default: Option<&'static str>,
    /// A credential: the console asks for it in a password box and never shows it back.
    pub secret: bool,
}

/// A ready integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// Its name, as in `--template NAME`: lowercase, `-` between words.
    pub name: &'static str,
    /// The service's name, for people.
    pub title: &'static str,
    /// One sentence on what the webhook does.
    pub description: &'static str,
    /// The fields asked, in order.
    pub fields: &'static [TemplateField],
    /// The definition, with `${key}` placeholders inside its JSON strings.
    pub definition: &'static str,
}

/// Why a template could not be filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// No template of that name.
    UnknownTemplate(String),
    /// A value given for a field the template does not ask for.
    UnknownField {
        /// The template.
        template: &'static str,
        /// The field given.
        field: String,
    },
    /// A required field without a value.
    MissingField(&'static str),
    /// A value that is too long or holds control characters.
    InvalidValue {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::UnknownTemplate(name) => {
                write!(f, "template: no template `{name}`; `hookwire template list` shows them")
            }
            TemplateError::UnknownField { template, field } => {
                write!(f, "{field}: template {template} has no such field")
            }
            TemplateError::MissingField(field) => write!(f, "{field}: required"),
            TemplateError::InvalidValue { field, reason } => write!(f, "{field}: {reason}"),
        }
    }
}

impl std::error::Error for TemplateError {}

const EVENT: TemplateField = TemplateField {
    key: "event",
    label: "Event name prefix",
    help: "the webhook fires for every event whose name starts with this (case-sensitive)",
    default: None,
    secret: false,
};

/// Every template, in the gallery's order.
pub const TEMPLATES: &[Template] = &[
    Template {
        name: "thingspeak",
        title: "ThingSpeak",
        description: "Writes each event's value into a field of a ThingSpeak channel (field1 unless you say).",
        fields: &[
            EVENT,
            TemplateField {
                key: "api_key",
                label: "Write API key",
                help: "the channel's Write API Key (API Keys tab)",
                default: None,
                secret: true,
            },
            TemplateField {
                key: "field",
                label: "Channel field",
                help: "which field receives the value: field1 to field8",
                default: Some("field1"),
                secret: false,
            },
        ],
        definition: r#"{
  "name": "ThingSpeak ${event}",
  "event": "${event}",
  "url": "https://api.thingspeak.com/update",
  "requestType": "POST",
  "form": {"api_key": "${api_key}", "${field}": "{{{PARTICLE_EVENT_VALUE}}}"},
  "noDefaults": true
}"#,
    },
    Template {
        name: "influxdb",
        title: "InfluxDB (line protocol)",
        description: "Writes each event as one line-protocol point to an InfluxDB 2 or Cloud bucket.",
        fields: &[
            EVENT,
            TemplateField {
                key: "url",
                label: "InfluxDB URL",
                help: "the server's address, e.g. https://eu-central-1-1.aws.cloud2.influxdata.com",
                default: None,
                secret: false,
            },
            TemplateField {
                key: "org",
                label: "Organization",
                help: "the organization name or id",
                default: None,
                secret: false,
            },
            TemplateField {
                key: "bucket",
                label: "Bucket",
                help: "the bucket to write to",
                default: None,
                secret: false,
            },
            TemplateField {
                key: "token",
                label: "API token",
                help: "a token with write access to the bucket",
                default: None,
                secret: true,
            },
            TemplateField {
                key: "measurement",
                label: "Measurement",
                help: "the measurement's name",
                default: Some("particle"),
                secret: false,
            },
        ],
        definition: r#"{
  "name": "InfluxDB ${event}",
  "event": "${event}",
  "url": "${url}/api/v2/write",
  "requestType": "POST",
  "query": {"org": "${org}", "bucket": "${bucket}", "precision": "ms"},
  "headers": {"Authorization": "Token ${token}", "Content-Type": "text/plain; charset=utf-8"},
  "body": "${measurement},device={{{PARTICLE_DEVICE_ID}}},event={{{PARTICLE_EVENT_NAME}}} value={{{PARTICLE_EVENT_VALUE}}}"
}"#,
    },
    Template {
        name: "slack",
        title: "Slack incoming webhook",
        description: "Posts a message to a Slack channel for each event.",
        fields: &[
            EVENT,
            TemplateField {
                key: "webhook_url",
                label: "Incoming webhook URL",
                help: "https://hooks.slack.com/services/..., from the Slack app's Incoming Webhooks page",
                default: None,
                secret: true,
            },
        ],
        definition: r#"{
  "name": "Slack ${event}",
  "event": "${event}",
  "url": "${webhook_url}",
  "requestType": "POST",
  "json": {"text": "{{{PARTICLE_EVENT_NAME}}} from {{{PARTICLE_DEVICE_ID}}}: {{{PARTICLE_EVENT_VALUE}}}"},
  "noDefaults": true
}"#,
    },
    Template {
        name: "discord",
        title: "Discord",
        description: "Posts a message to a Discord channel for each event.",
        fields: &[
            EVENT,
            TemplateField {
                key: "webhook_url",
                label: "Webhook URL",
                help: "https://discord.com/api/webhooks/..., from the channel's Integrations settings",
                default: None,
                secret: true,
            },
        ],
        definition: r#"{
  "name": "Discord ${event}",
  "event": "${event}",
  "url": "${webhook_url}",
  "requestType": "POST",
  "json": {"content": "{{{PARTICLE_EVENT_NAME}}} from {{{PARTICLE_DEVICE_ID}}}: {{{PARTICLE_EVENT_VALUE}}}"},
  "noDefaults": true
}"#,
    },
    Template {
        name: "google-sheets",
        title: "Google Sheets (Apps Script web app)",
        description: "Sends each event to an Apps Script web app that appends a row to a sheet.",
        fields: &[
            EVENT,
            TemplateField {
                key: "script_url",
                label: "Web app URL",
                help: "https://script.google.com/macros/s/.../exec, from Deploy > New deployment > Web app",
                default: None,
                secret: true,
            },
        ],
        definition: r#"{
  "name": "Google Sheets ${event}",
  "event": "${event}",
  "url": "${script_url}",
  "requestType": "POST",
  "json": {
    "event": "{{{PARTICLE_EVENT_NAME}}}",
    "data": "{{{PARTICLE_EVENT_VALUE}}}",
    "coreid": "{{{PARTICLE_DEVICE_ID}}}",
    "published_at": "{{{PARTICLE_PUBLISHED_AT}}}"
  },
  "noDefaults": true
}"#,
    },
    Template {
        name: "ifttt",
        title: "IFTTT Maker (Webhooks)",
        description: "Triggers an IFTTT applet with the event's value, device and time as value1 to value3.",
        fields: &[
            EVENT,
            TemplateField {
                key: "ifttt_event",
                label: "IFTTT event name",
                help: "the event name of the applet's \"Receive a web request\" trigger",
                default: None,
                secret: false,
            },
            TemplateField {
                key: "key",
                label: "Webhooks key",
                help: "from https://ifttt.com/maker_webhooks/settings",
                default: None,
                secret: true,
            },
        ],
        definition: r#"{
  "name": "IFTTT ${event}",
  "event": "${event}",
  "url": "https://maker.ifttt.com/trigger/${ifttt_event}/with/key/${key}",
  "requestType": "POST",
  "json": {
    "value1": "{{{PARTICLE_EVENT_VALUE}}}",
    "value2": "{{{PARTICLE_DEVICE_ID}}}",
    "value3": "{{{PARTICLE_PUBLISHED_AT}}}"
  },
  "noDefaults": true
}"#,
    },
    Template {
        name: "azure-event-grid",
        title: "Azure Event Grid",
        description: "Publishes each event to an Event Grid custom topic (Event Grid schema).",
        fields: &[
            EVENT,
            TemplateField {
                key: "topic_endpoint",
                label: "Topic endpoint",
                help: "https://<topic>.<region>-1.eventgrid.azure.net/api/events",
                default: None,
                secret: false,
            },
            TemplateField {
                key: "access_key",
                label: "Access key",
                help: "one of the topic's access keys (sent as aeg-sas-key)",
                default: None,
                secret: true,
            },
        ],
        definition: r#"{
  "name": "Azure Event Grid ${event}",
  "event": "${event}",
  "url": "${topic_endpoint}",
  "requestType": "POST",
  "headers": {"aeg-sas-key": "${access_key}", "Content-Type": "application/json"},
  "body": "[{\"id\": \"{{{PARTICLE_EVENT_ID}}}\", \"eventType\": \"{{{PARTICLE_EVENT_NAME}}}\", \"subject\": \"devices/{{{PARTICLE_DEVICE_ID}}}\", \"eventTime\": \"{{{PARTICLE_PUBLISHED_AT}}}\", \"data\": {\"value\": \"{{{PARTICLE_EVENT_VALUE}}}\"}, \"dataVersion\": \"1.0\"}]"
}"#,
    },
    Template {
        name: "json",
        title: "Generic JSON POST",
        description: "POSTs each event as JSON (event, data, published_at, coreid and the value) to any URL.",
        fields: &[
            EVENT,
            TemplateField {
                key: "url",
                label: "URL",
                help: "where to send the events, http:// or https://",
                default: None,
                secret: false,
            },
        ],
        definition: r#"{
  "name": "JSON ${event}",
  "event": "${event}",
  "url": "${url}",
  "requestType": "POST",
  "json": {"value": "{{{PARTICLE_EVENT_VALUE}}}"}
}"#,
    },
];

/// The template of that name.
pub fn find(name: &str) -> Result<&'static Template, TemplateError> {
    TEMPLATES
        .iter()
        .find(|template| template.name == name)
        .ok_or_else(|| TemplateError::UnknownTemplate(name.chars().take(64).collect()))
}

impl Template {
    /// Fills the template in with `values` (`key`, `value`), giving the webhook definition's JSON text. Every
    /// value given must be a field of the template; every field without a default must have a non-empty value.
    pub fn render(&self, values: &[(String, String)]) -> Result<String, TemplateError> {
        for (key, _) in values {
            if !self.fields.iter().any(|field| field.key == key) {
                return Err(TemplateError::UnknownField { template: self.name, field: key.chars().take(64).collect() });
            }
        }
        let mut resolved: Vec<(&'static str, String)> = Vec::with_capacity(self.fields.len());
        for field in self.fields {
            let given = values.iter().rev().find(|(key, _)| key == field.key).map(|(_, value)| value.trim());
            let value = match (given, field.default) {
                (Some(value), _) if !value.is_empty() => value,
                (_, Some(default)) => default,
                _ => return Err(TemplateError::MissingField(field.key)),
            };
            if value.len() > MAX_FIELD_BYTES {
                return Err(TemplateError::InvalidValue { field: field.key, reason: "must be at most 2048 bytes" });
            }
            if value.chars().any(char::is_control) {
                return Err(TemplateError::InvalidValue {
                    field: field.key,
                    reason: "must not hold control characters",
                });
            }
            resolved.push((field.key, json_escape(value)));
        }
        let mut output = String::with_capacity(self.definition.len() + 256);
        let mut rest = self.definition;
        while let Some(start) = rest.find("${") {
            output.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                output.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let key = &after[..end];
            match resolved.iter().find(|(name, _)| *name == key) {
                Some((_, value)) => output.push_str(value),
                None => output.push_str(&rest[start..start + 2 + end + 1]),
            }
            rest = &after[end + 1..];
        }
        output.push_str(rest);
        Ok(output)
    }
}

/// Escapes text for the inside of a JSON string.
fn json_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            c if (c as u32) < 0x20 => escaped.push_str(&format!("\\u{:04x}", c as u32)),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
    }

    #[test]
    fn a_template_fills_in_its_fields_and_keeps_mustache_alone() {
        let definition = find("thingspeak").unwrap().render(&set(&[("event", "temp"), ("api_key", "KEY1")])).unwrap();
        assert!(definition.contains(r#""api_key": "KEY1""#), "{definition}");
        assert!(definition.contains(r#""field1": "{{{PARTICLE_EVENT_VALUE}}}""#), "{definition}");
        assert!(!definition.contains("${"), "{definition}");
    }

    #[test]
    fn values_cannot_break_out_of_their_json_string() {
        let definition =
            find("json").unwrap().render(&set(&[("event", "t\"\\"), ("url", "https://x/\", \"y\": \"z")])).unwrap();
        assert!(definition.contains(r#""event": "t\"\\""#), "{definition}");
        assert!(definition.contains(r#""url": "https://x/\", \"y\": \"z""#), "{definition}");
    }

    #[test]
    fn unknown_templates_fields_and_missing_values_are_named() {
        assert!(find("nope").unwrap_err().to_string().starts_with("template:"));
        let slack = find("slack").unwrap();
        assert_eq!(slack.render(&set(&[("event", "t")])).unwrap_err(), TemplateError::MissingField("webhook_url"));
        let error = slack.render(&set(&[("event", "t"), ("webhook_url", "u"), ("chanel", "x")])).unwrap_err();
        assert!(error.to_string().starts_with("chanel:"), "{error}");
        let error = slack.render(&set(&[("event", "t"), ("webhook_url", "a\u{7}")])).unwrap_err();
        assert!(error.to_string().starts_with("webhook_url:"), "{error}");
    }

    #[test]
    fn the_gallery_has_the_integrations_users_ask_for() {
        for name in ["thingspeak", "influxdb", "slack", "discord", "google-sheets", "ifttt", "azure-event-grid", "json"]
        {
            let template = find(name).unwrap();
            assert_eq!(template.fields[0].key, "event", "{name}");
        }
    }
}
