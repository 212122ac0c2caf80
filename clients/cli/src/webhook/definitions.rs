//! Reading webhook definitions from files for `webhook create`, `update` and `import`, and the forwarding webhook
//! of `webhook create --device --url` (Mainflux's shape).

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

/// Reads a file of definitions for `import`: one JSON object, or an array of objects. Each is sent as its own
/// text from the file, preceded by as many line breaks and spaces as put it at its line and column there, so
/// that the lines and columns the server names in a refusal are those of the file.
pub(super) fn read_definitions(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = read_definition(path)?;
    let source = if path == Path::new("-") { "the standard input".to_owned() } else { path.display().to_string() };
    match serde_json::from_str::<Value>(&text).with_context(|| format!("{source} is not JSON"))? {
        Value::Object(_) => Ok(vec![text]),
        Value::Array(elements) if elements.is_empty() => bail!("{source}: the array holds no webhook"),
        Value::Array(elements) => {
            if let Some(index) = elements.iter().position(|element| !element.is_object()) {
                bail!("{source}: element {index} is not a webhook definition (a JSON object)");
            }
            Ok(array_elements(&text).into_iter().map(|range| placed(&text, range)).collect())
        }
        _ => bail!("{source}: expected a webhook definition (a JSON object) or an array of them"),
    }
}

/// The byte ranges of the elements of the JSON array `text` holds (valid JSON, checked before).
fn array_elements(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut start = None;
    for (index, character) in text.char_indices() {
        if in_string {
            match character {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match character {
            '"' => {
                in_string = true;
                start = start.or((depth == 1).then_some(index));
            }
            '{' | '[' => {
                if depth == 1 {
                    start = start.or(Some(index));
                }
                depth += 1;
            }
            '}' | ']' => {
                depth -= 1;
                if depth == 0 {
                    ranges.extend(start.take().map(|start| start..index));
                }
            }
            ',' if depth == 1 => ranges.extend(start.take().map(|start| start..index)),
            c if depth == 1 && !c.is_whitespace() => start = start.or(Some(index)),
            _ => {}
        }
    }
    ranges.into_iter().map(|range| range.start..range.start + text[range].trim_end().len()).collect()
}

/// The text of `range`, preceded by the line breaks and spaces that put it at its line and column in `text`.
fn placed(text: &str, range: std::ops::Range<usize>) -> String {
    let before = &text[..range.start];
    let num_lines = before.matches('\n').count();
    let column = before.rsplit('\n').next().map_or(0, |line| line.chars().count());
    let mut element = String::with_capacity(num_lines + column + range.len());
    element.extend(std::iter::repeat_n('\n', num_lines));
    element.extend(std::iter::repeat_n(' ', column));
    element.push_str(&text[range]);
    element
}

/// A webhook in Mainflux's shape: every event of one device (the empty prefix matches every name) POSTed to a
/// URL with its raw data as the body and static headers.
pub(super) fn forwarding_definition(
    device: &str,
    url: &str,
    name: Option<String>,
    headers: &[String],
) -> anyhow::Result<Value> {
    let mut header_map = Map::new();
    for header in headers {
        let (key, value) = header.split_once('=').with_context(|| format!("--header {header}: expected NAME=VALUE"))?;
        header_map.insert(key.trim().to_owned(), Value::String(value.to_owned()));
    }
    // The Mainflux webhooks service sends JSON; a --header Content-Type=... of the caller's wins.
    if !header_map.keys().any(|name| name.eq_ignore_ascii_case("content-type")) {
        header_map.insert("Content-Type".to_owned(), Value::String("application/json".to_owned()));
    }
    let mut definition = json!({
        "event": "",
        "url": url,
        "deviceID": device,
        "body": "{{{PARTICLE_EVENT_VALUE}}}",
    });
    if !header_map.is_empty() {
        definition["headers"] = Value::Object(header_map);
    }
    if let Some(name) = name {
        definition["name"] = Value::String(name);
    }
    Ok(definition)
}

/// Reads a definition file (`-`: standard input) and checks that it is JSON; the server judges the rest. The
/// text is sent as it is, so that the stored definition keeps its author's order of fields.
pub(super) fn read_definition(path: &Path) -> anyhow::Result<String> {
    let (text, source) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the definition from standard input")?;
        (text, "the standard input".to_owned())
    } else {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        (text, path.display().to_string())
    };
    serde_json::from_str::<Value>(&text).with_context(|| format!("{source} is not JSON"))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_elements_keep_their_lines_and_columns() {
        let text = "[\n  {\"event\": \"a\", \"s\": \"x,]}\\\"\"},\n    {\"event\": [1, 2]}\n]\n";
        let elements: Vec<String> = array_elements(text).into_iter().map(|range| placed(text, range)).collect();
        assert_eq!(elements, ["\n  {\"event\": \"a\", \"s\": \"x,]}\\\"\"}", "\n\n    {\"event\": [1, 2]}"]);
        for element in &elements {
            serde_json::from_str::<Value>(element).unwrap();
        }
    }
}
