//! The compiled form of a definition: every template parsed once, at create time, so that delivery only renders;
//! and the checks made while compiling (URL, header names, sizes, policies).

use super::{
    DefinitionError, JsonField, QuotaOverflow, RequestType, RetryDefinition, WebhookDefinition, WebhookRuntime,
};
use crate::domain::ids::{DeviceId, GroupId, WebhookId};
use crate::domain::policy::RetryPolicy;
use crate::domain::request::ContextNeeds;
use crate::domain::template::{Dialect, Template};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// A template with the field it came from, for render errors that name it.
#[derive(Debug, Clone)]
pub struct FieldTemplate {
    /// The field (`url`, `form.field1`).
    pub field: Arc<str>,
    /// The parsed template.
    pub template: Template,
}

/// The compiled `json` field.
#[derive(Debug, Clone)]
pub enum CompiledJson {
    /// A JSON value whose object keys and strings are templates.
    Value(JsonTemplate),
    /// One template that renders to JSON text.
    Text(FieldTemplate),
}

/// A JSON value with templates in its keys and strings.
#[derive(Debug, Clone)]
pub enum JsonTemplate {
    /// A value without strings (number, bool, null) is sent as it is.
    Literal(Value),
    /// A string template: renders to a JSON string.
    String(Template),
    /// An array of templates.
    Array(Vec<JsonTemplate>),
    /// An object whose keys are templates too.
    Object(Vec<(Template, JsonTemplate)>),
}

/// A webhook ready to deliver: the definition and its templates parsed. Shared by reference through the index.
#[derive(Debug)]
pub struct CompiledWebhook {
    /// The webhook.
    pub id: WebhookId,
    /// Its group.
    pub group_id: GroupId,
    /// The definition as stored.
    pub definition: WebhookDefinition,
    /// The devices it is limited to (empty: every device of the group).
    pub devices: Vec<DeviceId>,
    /// The method.
    pub method: http::Method,
    /// The URL template.
    pub url: FieldTemplate,
    /// The `json` field.
    pub json: Option<CompiledJson>,
    /// The `form` fields.
    pub form: Option<Vec<(FieldTemplate, FieldTemplate)>>,
    /// The `query` fields.
    pub query: Vec<(FieldTemplate, FieldTemplate)>,
    /// The `body` template.
    pub body: Option<FieldTemplate>,
    /// Header names and values.
    pub headers: Vec<(FieldTemplate, FieldTemplate)>,
    /// Basic credentials.
    pub auth: Option<(FieldTemplate, FieldTemplate)>,
    /// Whether the defaults are merged in.
    pub add_defaults: bool,
    /// `responseTemplate`.
    pub response_template: Option<FieldTemplate>,
    /// `responseTopic`.
    pub response_topic: Option<FieldTemplate>,
    /// `errorResponseTopic`.
    pub error_response_topic: Option<FieldTemplate>,
    /// What the templates rendered with the event's context read of it (all but `responseTemplate`, which reads
    /// the response): an event's context is built with only that.
    pub context_needs: ContextNeeds,
    /// Responses go only to the triggering device.
    pub only_triggering_device: bool,
    /// TLS certificates are verified.
    pub verify_tls: bool,
    /// The keys that sign requests (`x-signing`): filled by the kernel from its store, never from the definition.
    pub signing: Option<Arc<crate::domain::signing::SigningKeys>>,
    /// The rate quota (`x-minIntervalMs`): the least time between two requests; `None` for no quota.
    pub min_interval: Option<Duration>,
    /// What happens to events over the quota.
    pub quota_overflow: QuotaOverflow,
    /// Consecutive failed deliveries that disable the webhook (`x-failureLimit`); 0 for never.
    pub failure_limit: u32,
    /// The retry policy (`x-retry`); `None`: one attempt per delivery.
    pub retry: Option<RetryPolicy>,
    /// What the webhook's deliveries have done to it: shared by every compiled version of the webhook (the index
    /// carries it over when the webhook is edited) and by the deliveries in flight.
    pub runtime: Arc<WebhookRuntime>,
}

/// A Blynk webhook's `x-minIntervalMs` when it gives none: Blynk sends at most one request a second.
pub const BLYNK_MIN_INTERVAL_MS: u64 = 1000;
/// A Blynk webhook's `x-failureLimit` when it gives none: Blynk disables a webhook after 10 failures in a row.
pub const BLYNK_FAILURE_LIMIT: u32 = 10;

/// The largest `x-minIntervalMs`: one day.
pub const MAX_MIN_INTERVAL_MS: u64 = 86_400_000;

impl CompiledWebhook {
    /// Validates a definition and parses its templates. Every refusal names the field at fault.
    pub fn compile(
        id: WebhookId,
        group_id: GroupId,
        definition: WebhookDefinition,
    ) -> Result<CompiledWebhook, DefinitionError> {
        let dialect = definition.dialect.unwrap_or_default();
        let parse = |field: &str, source: &str| -> Result<FieldTemplate, DefinitionError> {
            Template::parse(source, dialect)
                .map(|template| FieldTemplate { field: field.into(), template })
                .map_err(|error| DefinitionError::new(field, error.to_string()))
        };

        if definition.event.len() > crate::domain::event::MAX_NAME_BYTES {
            return Err(DefinitionError::new("event", "must be at most 64 bytes"));
        }
        if definition.name.as_ref().is_some_and(|name| name.chars().count() > 200) {
            return Err(DefinitionError::new("name", "must be at most 200 characters"));
        }
        let bodies = [definition.json.is_some(), definition.form.is_some(), definition.body.is_some()];
        if bodies.iter().filter(|present| **present).count() > 1 {
            return Err(DefinitionError::new("json", "json, form and body are mutually exclusive: give at most one"));
        }

        let url = parse("url", &definition.url)?;
        validate_url(&url.template)?;

        let mut devices = Vec::new();
        if let Some(device) = &definition.device_id {
            devices.push(DeviceId::parse(device).map_err(|error| DefinitionError::new("deviceID", error.to_string()))?);
        }
        for (index, device) in definition.devices.iter().flatten().enumerate() {
            let device = DeviceId::parse(device)
                .map_err(|error| DefinitionError::new(format!("x-devices.{index}"), error.to_string()))?;
            if !devices.contains(&device) {
                devices.push(device);
            }
        }

        let json = match &definition.json {
            None => None,
            Some(JsonField::Template(source)) => Some(CompiledJson::Text(parse("json", source)?)),
            Some(JsonField::Object(map)) => {
                Some(CompiledJson::Value(compile_json(&Value::Object(map.clone()), "json", dialect)?))
            }
        };
        let form = definition.form.as_ref().map(|map| compile_pairs(map, "form", &parse)).transpose()?;
        let query =
            definition.query.as_ref().map(|map| compile_pairs(map, "query", &parse)).transpose()?.unwrap_or_default();
        let body = definition.body.as_deref().map(|source| parse("body", source)).transpose()?;
        let headers = definition
            .headers
            .as_ref()
            .map(|map| compile_pairs(map, "headers", &parse))
            .transpose()?
            .unwrap_or_default();
        for (name, _) in &headers {
            if name.template.is_static() && http::HeaderName::from_bytes(name.template.source().as_bytes()).is_err() {
                return Err(DefinitionError::new(&*name.field, "not a valid header name"));
            }
        }
        let auth = definition
            .auth
            .as_ref()
            .map(|auth| {
                Ok::<_, DefinitionError>((
                    parse("auth.username", &auth.username)?,
                    parse("auth.password", &auth.password)?,
                ))
            })
            .transpose()?;
        let response_template =
            definition.response_template.as_deref().map(|source| parse("responseTemplate", source)).transpose()?;
        let response_topic =
            definition.response_topic.as_deref().map(|source| parse("responseTopic", source)).transpose()?;
        let error_response_topic =
            definition.error_response_topic.as_deref().map(|source| parse("errorResponseTopic", source)).transpose()?;
        // Blynk's own limits are a Blynk webhook's defaults: one request a second, disabled after 10 failures.
        let is_blynk = dialect == Dialect::Blynk;
        let min_interval_ms = definition.min_interval_ms.unwrap_or(if is_blynk { BLYNK_MIN_INTERVAL_MS } else { 0 });
        if min_interval_ms > MAX_MIN_INTERVAL_MS {
            return Err(DefinitionError::new(
                "x-minIntervalMs",
                format!("must be at most {MAX_MIN_INTERVAL_MS} (a day)"),
            ));
        }
        let min_interval = (min_interval_ms > 0).then(|| Duration::from_millis(min_interval_ms));
        let retry = definition.retry.as_ref().map(RetryDefinition::policy).transpose()?;

        let mut context_needs = ContextNeeds::NONE;
        let pairs = [&query[..], form.as_deref().unwrap_or_default(), &headers[..]];
        let pair_templates = pairs.into_iter().flatten().chain(&auth).flat_map(|(key, value)| [key, value]);
        let single_templates = [Some(&url), body.as_ref(), response_topic.as_ref(), error_response_topic.as_ref()];
        for template in pair_templates.chain(single_templates.into_iter().flatten()) {
            context_needs.add(&template.template);
        }
        match &json {
            Some(CompiledJson::Text(template)) => context_needs.add(&template.template),
            Some(CompiledJson::Value(value)) => add_json_needs(value, &mut context_needs),
            None => {}
        }

        Ok(CompiledWebhook {
            id,
            group_id,
            devices,
            method: definition
                .request_type
                .unwrap_or(if is_blynk { RequestType::Get } else { RequestType::Post })
                .method(),
            url,
            json,
            form,
            query,
            body,
            headers,
            auth,
            // Blynk has no default fields: a Blynk webhook adds Particle's only when it says `"noDefaults": false`.
            add_defaults: !definition.no_defaults.unwrap_or(is_blynk),
            response_template,
            response_topic,
            error_response_topic,
            context_needs,
            only_triggering_device: definition.only_triggering_device.unwrap_or(true),
            verify_tls: definition.reject_unauthorized.unwrap_or(true),
            signing: None,
            min_interval,
            quota_overflow: definition.quota_overflow.unwrap_or_default(),
            failure_limit: definition.failure_limit.unwrap_or(if is_blynk { BLYNK_FAILURE_LIMIT } else { 0 }),
            retry,
            runtime: Arc::default(),
            definition,
        })
    }

    /// The address the URL names when its host is a literal IP address written out in full (not from a template),
    /// so that the egress rules can refuse it when the webhook is created.
    pub fn literal_destination(&self) -> Option<std::net::IpAddr> {
        let template = &self.url.template;
        let prefix = template.static_prefix();
        let scheme_end = prefix.find("://")? + 3;
        let rest = &prefix[scheme_end..];
        let authority_end = rest.find(['/', '?', '#']);
        // With a template after the host, the host may go on in it: only a host that ends in the text counts.
        if authority_end.is_none() && !template.is_static() {
            return None;
        }
        let authority = &rest[..authority_end.unwrap_or(rest.len())];
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port);
        let host = match host_port.strip_prefix('[') {
            Some(bracketed) => bracketed.split_once(']')?.0,
            None => host_port.split(':').next()?,
        };
        host.parse().ok()
    }

    /// Whether an answer with this status is a success: 2xx, and for a Blynk webhook also 302 (Blynk counts 200
    /// and 302 as success).
    pub fn is_success_status(&self, status: u16) -> bool {
        (200..300).contains(&status) || (status == 302 && self.definition.dialect == Some(Dialect::Blynk))
    }

    /// True when an event of this name from this device triggers the webhook.
    pub fn matches(&self, name: &str, device_id: Option<&DeviceId>) -> bool {
        self.definition.is_enabled()
            && !self.runtime.is_disabled()
            && name.starts_with(self.definition.event.as_str())
            && (self.devices.is_empty() || device_id.is_some_and(|device| self.devices.contains(device)))
            && !crate::domain::event::is_hook_event(name)
    }
}

/// Adds what the templates of a `json` value read.
fn add_json_needs(value: &JsonTemplate, needs: &mut ContextNeeds) {
    match value {
        JsonTemplate::Literal(_) => {}
        JsonTemplate::String(template) => needs.add(template),
        JsonTemplate::Array(items) => items.iter().for_each(|item| add_json_needs(item, needs)),
        JsonTemplate::Object(entries) => {
            for (key, value) in entries {
                needs.add(key);
                add_json_needs(value, needs);
            }
        }
    }
}

/// Refuses URLs whose static part is not `http://` or `https://` followed by a host, or that do not parse when
/// they have no template at all.
fn validate_url(url: &Template) -> Result<(), DefinitionError> {
    let prefix = url.static_prefix();
    let lower = prefix.to_ascii_lowercase();
    let rest = ["https://", "http://"].iter().find_map(|scheme| lower.strip_prefix(scheme));
    let Some(rest) = rest else {
        return Err(DefinitionError::new("url", "must start with http:// or https://"));
    };
    // The authority as written (templates included): userinfo there is never sent as credentials (hyper drops it)
    // and would show in logs, so it is refused with the way that works.
    let source = url.source();
    let after_scheme = source.find("://").map_or(source, |index| &source[index + 3..]);
    let authority = &after_scheme[..after_scheme.find(['/', '?', '#']).unwrap_or(after_scheme.len())];
    if authority.contains('@') {
        return Err(DefinitionError::new(
            "url",
            "must not hold credentials (user:password@): use `auth` for HTTP Basic authentication, or `headers`",
        ));
    }
    if url.is_static() {
        if rest.is_empty() || rest.starts_with('/') {
            return Err(DefinitionError::new("url", "has no host"));
        }
        let uri: http::Uri =
            url.source().parse().map_err(|error| DefinitionError::new("url", format!("not a valid URL: {error}")))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err(DefinitionError::new("url", "has no host"));
        }
    }
    Ok(())
}

type Parse<'a> = dyn Fn(&str, &str) -> Result<FieldTemplate, DefinitionError> + 'a;

fn compile_pairs(
    map: &Map<String, Value>,
    field: &str,
    parse: &Parse<'_>,
) -> Result<Vec<(FieldTemplate, FieldTemplate)>, DefinitionError> {
    map.iter()
        .map(|(key, value)| {
            let path = format!("{field}.{key}");
            let value = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                _ => {
                    return Err(DefinitionError::new(path, "must be a string, a number or a boolean"));
                }
            };
            Ok((parse(&path, key)?, parse(&path, &value)?))
        })
        .collect()
}

fn compile_json(value: &Value, path: &str, dialect: Dialect) -> Result<JsonTemplate, DefinitionError> {
    let parse = |path: &str, source: &str| {
        Template::parse(source, dialect).map_err(|error| DefinitionError::new(path, error.to_string()))
    };
    Ok(match value {
        Value::String(source) => JsonTemplate::String(parse(path, source)?),
        Value::Array(items) => JsonTemplate::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| compile_json(item, &format!("{path}.{index}"), dialect))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => JsonTemplate::Object(
            map.iter()
                .map(|(key, item)| {
                    let child = format!("{path}.{key}");
                    Ok((parse(&child, key)?, compile_json(item, &child, dialect)?))
                })
                .collect::<Result<_, DefinitionError>>()?,
        ),
        literal => JsonTemplate::Literal(literal.clone()),
    })
}
