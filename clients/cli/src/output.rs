//! Printing results: every command turns its result into a `serde_json::Value` and prints it here, as JSON or
//! as a table whose columns are keys of the value.

use std::io::{self, Write};

use clap::ValueEnum;
use serde_json::Value;

/// How results are printed: `json`, one JSON document per command (one JSON object per line for streaming
/// commands), or `table`, aligned columns for people.
// The variants have no doc comments of their own: clap would show them, one per line, in every command's help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Table,
}

/// The `--field` option: when set, commands print that field of their result instead of the whole document.
/// Set once by `main` before any command runs.
pub static FIELD: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Prints one field of a result (of each element, for an array), a line each: strings bare, anything else as JSON.
fn print_field(stdout: &mut impl Write, value: &Value, field: &str) -> io::Result<()> {
    let records = match value {
        Value::Array(elements) => elements.iter().collect(),
        other => vec![other],
    };
    for record in records {
        match record.get(field) {
            Some(Value::String(text)) => writeln!(stdout, "{text}")?,
            Some(other) => writeln!(stdout, "{other}")?,
            None => {
                let fields: Vec<&str> =
                    record.as_object().map(|map| map.keys().map(String::as_str).collect()).unwrap_or_default();
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("--field {field}: not in the result (its fields: {})", fields.join(", ")),
                ));
            }
        }
    }
    Ok(())
}

/// The columns of `{"deleted": ...}`.
pub const DELETED_COLUMNS: &[&str] = &["deleted"];

/// Prints one result: pretty-printed JSON, or a table with a row per element of an array (one row for anything
/// else) and one column per key in `columns`.
pub fn print_document(format: Format, value: &Value, columns: &[&str]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    if let Some(field) = FIELD.get() {
        print_field(&mut stdout, value, field)?;
        return stdout.flush();
    }
    match format {
        Format::Json => writeln!(stdout, "{value:#}")?,
        Format::Table => {
            let records = match value {
                Value::Array(elements) => elements.iter().collect(),
                other => vec![other],
            };
            let header = header_cells(columns);
            let rows: Vec<Vec<String>> = records.into_iter().map(|record| row_cells(record, columns)).collect();
            let mut widths = vec![0; columns.len()];
            for cells in std::iter::once(&header).chain(&rows) {
                widen(&mut widths, cells);
            }
            for cells in std::iter::once(&header).chain(&rows) {
                write_row(&mut stdout, cells, &widths)?;
            }
        }
    }
    stdout.flush()
}

/// Prints the records of a stream as they come: one compact JSON object per line, or table rows under a header
/// printed once. Rows are aligned with the widest cell seen so far, as later rows are not known yet.
pub struct LinePrinter {
    format: Format,
    columns: &'static [&'static str],
    widths: Vec<usize>,
    has_printed_header: bool,
}

impl LinePrinter {
    /// Makes a printer of records whose table columns are the keys in `columns`.
    pub fn new(format: Format, columns: &'static [&'static str]) -> Self {
        let header = header_cells(columns);
        let mut widths = vec![0; columns.len()];
        widen(&mut widths, &header);
        Self { format, columns, widths, has_printed_header: false }
    }

    /// Prints one record and flushes, so that a reader of the pipe sees it at once.
    pub fn print(&mut self, record: &Value) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        match self.format {
            Format::Json => writeln!(stdout, "{record}")?,
            Format::Table => {
                let cells = row_cells(record, self.columns);
                widen(&mut self.widths, &cells);
                if !self.has_printed_header {
                    write_row(&mut stdout, &header_cells(self.columns), &self.widths)?;
                    self.has_printed_header = true;
                }
                write_row(&mut stdout, &cells, &self.widths)?;
            }
        }
        stdout.flush()
    }
}

/// The header of a table: the keys, upper-cased.
fn header_cells(columns: &[&str]) -> Vec<String> {
    columns.iter().map(|column| column.to_uppercase()).collect()
}

/// The cells of one record: the value of each column's key, empty when the key is absent.
fn row_cells(record: &Value, columns: &[&str]) -> Vec<String> {
    columns.iter().map(|column| record.get(column).map(cell_text).unwrap_or_default()).collect()
}

/// Shows a value in a table cell: text as it is (control characters escaped so that a row stays one line),
/// `null` as nothing, anything else as compact JSON.
fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => {
            let mut cell = String::with_capacity(text.len());
            for character in text.chars() {
                if character.is_control() {
                    cell.extend(character.escape_default());
                } else {
                    cell.push(character);
                }
            }
            cell
        }
        other => other.to_string(),
    }
}

/// Grows `widths` to fit `cells`.
fn widen(widths: &mut [usize], cells: &[String]) {
    for (width, cell) in widths.iter_mut().zip(cells) {
        *width = (*width).max(cell.chars().count());
    }
}

/// Writes one row, cells padded to `widths` and two spaces apart, without trailing spaces.
fn write_row(out: &mut impl Write, cells: &[String], widths: &[usize]) -> io::Result<()> {
    let last_index = cells.len().saturating_sub(1);
    let mut line = String::new();
    for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if index == last_index {
            line.push_str(cell);
        } else {
            line.push_str(&format!("{cell:<width$}  "));
        }
    }
    // Empty trailing cells would leave trailing spaces.
    writeln!(out, "{}", line.trim_end())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn text_cells_escape_control_characters() {
        assert_eq!(cell_text(&json!("a\nb\tc")), "a\\nb\\tc");
        assert_eq!(cell_text(&json!("température")), "température");
    }

    #[test]
    fn other_cells_are_compact_json_and_null_is_empty() {
        assert_eq!(cell_text(&json!(true)), "true");
        assert_eq!(cell_text(&json!(["a", "b"])), r#"["a","b"]"#);
        assert_eq!(cell_text(&Value::Null), "");
    }

    #[test]
    fn rows_are_padded_except_the_last_cell() {
        let mut out = Vec::new();
        let cells = vec!["ID".to_owned(), "NAME".to_owned()];
        write_row(&mut out, &cells, &[5, 10]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "ID     NAME\n");
    }

    #[test]
    fn absent_keys_give_empty_cells() {
        let cells = row_cells(&json!({"id": "whk_1"}), &["id", "disabled"]);
        assert_eq!(cells, vec!["whk_1".to_owned(), String::new()]);
    }
}
