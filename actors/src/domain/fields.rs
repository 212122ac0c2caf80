//! The top-level fields of a webhook definition as its author wrote them: which are known, which are Particle's
//! read-only fields (ignored, so that a webhook as Particle's API lists it imports as it is), and where each one
//! stands in the author's text, so that every unknown field is reported at once, at its line and column, with a
//! "did you mean" when a known field is close.

use crate::domain::definition::DefinitionError;

/// Every field a definition may hold, hookwire's `x-` fields included.
pub const KNOWN_FIELDS: [&str; 29] = [
    "event",
    "url",
    "requestType",
    "deviceID",
    "json",
    "form",
    "query",
    "body",
    "headers",
    "auth",
    "noDefaults",
    "rejectUnauthorized",
    "responseTemplate",
    "responseTopic",
    "errorResponseTopic",
    "unchunked",
    "dataUrlResponseEvent",
    "disabled",
    "name",
    "mydevices",
    "x-dialect",
    "x-devices",
    "x-metadata",
    "x-onlyTriggeringDevice",
    "x-signing",
    "x-minIntervalMs",
    "x-quotaOverflow",
    "x-failureLimit",
    "x-retry",
];

/// Other names Particle accepts for a field: `(alias, field)`. `eventName` is the name of Particle's reference
/// example and of its CLI.
pub const ALIASES: [(&str, &str); 1] = [("eventName", "event")];

/// The fields Particle's API adds to a webhook it lists or returns (its id, creation time, the URL it calls,
/// counters and recent logs). They describe Particle's copy of the webhook, not the webhook: a definition that
/// holds them is accepted, they are ignored (not stored), and the answer names them.
pub const PARTICLE_READ_ONLY_FIELDS: [&str; 7] =
    ["id", "created_at", "hookUrl", "integration_type", "counter", "logs", "errors"];

/// A top-level field of a definition and where its name starts in the text (1-based line and column, columns in
/// characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPosition {
    /// The field's name.
    pub name: String,
    /// The line of its name's opening quote.
    pub line: usize,
    /// The column of its name's opening quote.
    pub column: usize,
}

/// The top-level fields of the JSON object `text` holds, in order, with their positions. `text` must be valid
/// JSON (parse it first); `None` when it is not an object.
pub fn top_level_fields(text: &str) -> Option<Vec<FieldPosition>> {
    let mut fields = Vec::new();
    let mut depth = 0usize;
    let mut line = 1;
    let mut column = 0;
    let mut chars = text.char_indices().peekable();
    let mut seen_object = false;
    while let Some((index, character)) = chars.next() {
        column += 1;
        match character {
            '\n' => {
                line += 1;
                column = 0;
            }
            '{' | '[' => {
                if depth == 0 {
                    if character != '{' {
                        return None;
                    }
                    seen_object = true;
                }
                depth += 1;
            }
            '}' | ']' => depth = depth.saturating_sub(1),
            '"' => {
                let (start_line, start_column) = (line, column);
                let mut end = index + 1;
                let mut escaped = false;
                for (inner_index, inner) in chars.by_ref() {
                    column += 1;
                    end = inner_index + inner.len_utf8();
                    match inner {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => break,
                        _ => {}
                    }
                }
                if depth != 1 {
                    continue;
                }
                // A string at the top level of the object is a field name when a colon follows it.
                let is_name = text[end..].trim_start().starts_with(':');
                if is_name && let Ok(name) = serde_json::from_str::<String>(&text[index..end]) {
                    fields.push(FieldPosition { name, line: start_line, column: start_column });
                }
            }
            _ => {}
        }
    }
    seen_object.then_some(fields)
}

/// Checks the top-level fields of a definition: every unknown one is reported at once, each at its place and with
/// a suggestion when a known field is close; Particle's read-only fields are returned, to be ignored.
pub fn check_fields(fields: &[FieldPosition]) -> Result<Vec<String>, DefinitionError> {
    let mut ignored = Vec::new();
    let mut unknown = Vec::new();
    for field in fields {
        let name = field.name.as_str();
        if KNOWN_FIELDS.contains(&name) || ALIASES.iter().any(|(alias, _)| *alias == name) {
            continue;
        }
        if PARTICLE_READ_ONLY_FIELDS.contains(&name) {
            if !ignored.iter().any(|seen| seen == name) {
                ignored.push(name.to_owned());
            }
            continue;
        }
        let mut reason = format!("unknown field (line {}, column {})", field.line, field.column);
        if let Some(suggestion) = suggestion(name) {
            reason.push_str(&format!(", did you mean `{suggestion}`?"));
        }
        unknown.push((name, reason));
    }
    let Some(((first, first_reason), rest)) = unknown.split_first() else {
        return Ok(ignored);
    };
    let mut reason = first_reason.clone();
    for (name, other) in rest {
        reason.push_str(&format!("; {name}: {other}"));
    }
    Err(DefinitionError { field: (*first).to_owned(), reason })
}

/// The known field closest to an unknown name: the same ignoring case, else at most two edits away (one for
/// short names).
fn suggestion(name: &str) -> Option<&'static str> {
    let candidates = KNOWN_FIELDS.iter().copied().chain(ALIASES.iter().map(|(alias, _)| *alias));
    let lower = name.to_ascii_lowercase();
    let mut best: Option<(usize, &'static str)> = None;
    for candidate in candidates {
        if candidate.to_ascii_lowercase() == lower {
            return Some(candidate);
        }
        let distance = edit_distance(&lower, &candidate.to_ascii_lowercase());
        let allowed = if candidate.len() <= 4 { 1 } else { 2 };
        if distance <= allowed && best.is_none_or(|(best_distance, _)| distance < best_distance) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// The Levenshtein distance between two short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_fields_are_found_with_their_places_and_nested_ones_are_not() {
        let text =
            "{\n  \"event\": \"a\",\n  \"json\": {\"inner\": \"x:\\\"y\"},\n  \"caf\\u00e9\" : [1, {\"deep\": 2}]\n}";
        let fields = top_level_fields(text).unwrap();
        let names: Vec<_> = fields.iter().map(|field| (field.name.as_str(), field.line, field.column)).collect();
        assert_eq!(names, [("event", 2, 3), ("json", 3, 3), ("café", 4, 3)]);
        assert_eq!(top_level_fields("[{\"a\": 1}]"), None);
    }

    #[test]
    fn every_unknown_field_is_reported_at_once_with_suggestions_and_read_only_ones_are_ignored() {
        let text = "{\"id\": \"5a\", \"evnt\": \"a\",\n \"url\": \"http://x/\", \"deviceId\": \"d\", \"colour\": 1, \"created_at\": \"t\"}";
        let error = check_fields(&top_level_fields(text).unwrap()).unwrap_err();
        assert_eq!(error.field, "evnt");
        assert_eq!(
            error.to_string(),
            "evnt: unknown field (line 1, column 14), did you mean `event`?; deviceId: unknown field (line 2, column \
             22), did you mean `deviceID`?; colour: unknown field (line 2, column 39)"
        );
        let ignored = check_fields(&top_level_fields(r#"{"id": "1", "eventName": "a", "hookUrl": "h"}"#).unwrap());
        assert_eq!(ignored.unwrap(), ["id", "hookUrl"]);
    }
}
