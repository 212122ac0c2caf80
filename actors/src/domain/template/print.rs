//! Values printed as JavaScript's `String(v)` prints them, and times as ISO-8601.

use super::render::{Over, Sink};
use serde_json::{Number, Value};
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `value` as JavaScript's `String(value)` prints it: strings as they are, numbers in
/// JavaScript's shortest form (`85`, `1.21`, `20` for `20.0`, `1e+21`), `true`/`false`, arrays
/// joined with `,` (nested arrays flattened the same way, null elements empty), objects as
/// `[object Object]`. Null prints nothing, as in mustache.js interpolation. Integers print
/// exactly, even beyond 2^53 where JavaScript would round.
pub fn js_print(value: &Value, out: &mut String) {
    let _ = print_js(value, out);
}

/// [`js_print`] into any sink, stopping at the first piece it refuses.
pub(super) fn print_js<S: Sink + ?Sized>(value: &Value, out: &mut S) -> Result<(), Over> {
    let items = match value {
        Value::Null => return Ok(()),
        Value::Bool(b) => return out.put(if *b { "true" } else { "false" }),
        Value::Number(n) => return print_number(n, out),
        Value::String(s) => return out.put(s),
        Value::Object(_) => return out.put("[object Object]"),
        Value::Array(items) => items,
    };
    // Array.prototype.join, iteratively so a deeply nested value cannot overflow the stack.
    let mut stack = vec![(items.iter(), true)];
    while let Some((iter, first)) = stack.last_mut() {
        let Some(item) = iter.next() else {
            stack.pop();
            continue;
        };
        if !std::mem::replace(first, false) {
            out.put(",")?;
        }
        match item {
            Value::Array(inner) => stack.push((inner.iter(), true)),
            other => print_js(other, out)?,
        }
    }
    Ok(())
}

fn print_number<S: Sink + ?Sized>(n: &Number, out: &mut S) -> Result<(), Over> {
    let mut text = String::with_capacity(24);
    match n.as_f64() {
        Some(f) if n.is_f64() => print_js_float(f, &mut text),
        _ => {
            let _ = write!(text, "{n}");
        }
    }
    out.put(&text)
}

/// Number.prototype.toString for a finite `f` (serde_json holds no NaN or infinity). Rust and
/// JavaScript both print the shortest round-trip digits; JavaScript writes them plainly for
/// 1e-6 <= |f| < 1e21 (as Rust's `{}` always does) and otherwise as `1.5e+300` / `1.5e-7`.
fn print_js_float(f: f64, out: &mut String) {
    if f == 0.0 {
        out.push('0'); // also for -0
    } else if (1e-6..1e21).contains(&f.abs()) {
        let _ = write!(out, "{f}");
    } else {
        let sci = format!("{f:e}");
        match sci.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => {
                let _ = write!(out, "{mantissa}e+{exp}");
            }
            _ => out.push_str(&sci),
        }
    }
}

/// Writes `time` as UTC ISO-8601 with milliseconds, e.g. `2026-11-22T10:34:05.123Z`.
pub(super) fn write_iso8601(time: SystemTime, out: &mut String) {
    let ms = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |m| -m),
    };
    crate::domain::time::write_iso8601_ms(ms, out);
}
