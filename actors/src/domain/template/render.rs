//! Rendering: walking a parsed template over borrowed JSON values into one bounded output string.

use super::print::{print_js, write_iso8601};
use super::{BudgetExceeded, EVENT_VALUE_KEY, Node, RenderBudget, Segment, Template, js_print};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::time::SystemTime;

impl Template {
    /// Renders with optional partials (only the spec tests supply any), spending `budget`.
    pub(super) fn write(
        &self,
        context: &Value,
        now: Option<SystemTime>,
        partials: Option<&HashMap<String, Template>>,
        budget: &mut RenderBudget,
        out: &mut String,
    ) -> Result<(), BudgetExceeded> {
        // Every rendering costs a step, so that even many static ones are bounded.
        let steps_left = budget.limits.max_steps.saturating_sub(budget.num_steps);
        if steps_left == 0 {
            return Err(BudgetExceeded::Steps { max: budget.limits.max_steps });
        }
        if !self.has_tags {
            budget.spend_bytes(self.source.len())?;
            budget.num_steps += 1;
            out.push_str(&self.source);
            return Ok(());
        }
        let start = out.len();
        let mut walk = Walk {
            out: Bounded { buf: out, limit: start.saturating_add(budget.remaining_bytes()) },
            steps_left: steps_left - 1,
        };
        walk.out.buf.reserve(self.source.len().min(budget.remaining_bytes()));
        let env = Env { root: context, now, partials };
        let mut stack = Vec::with_capacity(8);
        stack.push(context);
        let result = render_nodes(&self.source, &self.nodes, &mut stack, &env, &mut walk);
        let steps_taken = steps_left - walk.steps_left;
        budget.num_steps += steps_taken;
        budget.num_bytes += out.len() - start;
        result.map_err(|over| match over {
            Over::Bytes => BudgetExceeded::Bytes { max: budget.limits.max_bytes },
            Over::Steps => BudgetExceeded::Steps { max: budget.limits.max_steps },
        })
    }
}

struct Env<'a> {
    root: &'a Value,
    now: Option<SystemTime>,
    partials: Option<&'a HashMap<String, Template>>,
}

/// Which budget a rendering ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Over {
    Bytes,
    Steps,
}

/// Where text goes: a plain string, a bounded one, or an escaping adapter over either.
pub(super) trait Sink {
    fn put(&mut self, s: &str) -> Result<(), Over>;
}

impl Sink for String {
    fn put(&mut self, s: &str) -> Result<(), Over> {
        self.push_str(s);
        Ok(())
    }
}

/// An output string that refuses to grow past `limit` bytes: each piece is checked before it is
/// written, so the output is never over budget, not even for a moment.
struct Bounded<'o> {
    buf: &'o mut String,
    limit: usize,
}

impl Sink for Bounded<'_> {
    fn put(&mut self, s: &str) -> Result<(), Over> {
        if s.len() > self.limit.saturating_sub(self.buf.len()) {
            return Err(Over::Bytes);
        }
        self.buf.push_str(s);
        Ok(())
    }
}

/// HTML-escapes what goes through it (mustache.js's set for `{{x}}`).
struct Escaping<'s, S: Sink>(&'s mut S);

impl<S: Sink> Sink for Escaping<'_, S> {
    fn put(&mut self, s: &str) -> Result<(), Over> {
        escape_into(s, self.0)
    }
}

/// The state of one rendering: its bounded output and the steps it may still take.
struct Walk<'o> {
    out: Bounded<'o>,
    steps_left: u64,
}

impl Walk<'_> {
    fn spend(&mut self, num_steps: u64) -> Result<(), Over> {
        if num_steps > self.steps_left {
            self.steps_left = 0;
            return Err(Over::Steps);
        }
        self.steps_left -= num_steps;
        Ok(())
    }
}

fn render_nodes<'c>(
    src: &str,
    nodes: &[Node],
    stack: &mut Vec<&'c Value>,
    env: &Env<'c>,
    walk: &mut Walk<'_>,
) -> Result<(), Over> {
    for node in nodes {
        walk.spend(1)?;
        match node {
            Node::Text(start, end) => walk.out.put(&src[*start..*end])?,
            Node::Var { path, escape } => match lookup(stack, path, walk)? {
                Some(value) if *escape => print_js(value, &mut Escaping(&mut walk.out))?,
                Some(value) => print_js(value, &mut walk.out)?,
                None => {}
            },
            Node::Section { path, inverted, children } => match lookup(stack, path, walk)? {
                value if *inverted => {
                    if !truthy(value) {
                        render_nodes(src, children, stack, env, walk)?;
                    }
                }
                value if !truthy(value) => {}
                Some(Value::Array(items)) => {
                    for item in items {
                        walk.spend(1)?;
                        stack.push(item);
                        let result = render_nodes(src, children, stack, env, walk);
                        stack.pop();
                        result?;
                    }
                }
                // mustache.js renders `true` in the current context; other values are pushed.
                Some(Value::Bool(true)) | None => render_nodes(src, children, stack, env, walk)?,
                Some(value) => {
                    stack.push(value);
                    let result = render_nodes(src, children, stack, env, walk);
                    stack.pop();
                    result?;
                }
            },
            Node::Partial(name) => {
                if let Some(partial) = env.partials.and_then(|p| p.get(&**name)) {
                    render_nodes(&partial.source, &partial.nodes, stack, env, walk)?;
                }
            }
            Node::PinValue => walk.out.put(&event_value(env.root))?,
            Node::PinPart(n) => walk.out.put(event_value(env.root).split('\0').nth(*n).unwrap_or(""))?,
            Node::DateTime => {
                let mut time = String::with_capacity(24);
                write_iso8601(env.now.unwrap_or_else(SystemTime::now), &mut time);
                walk.out.put(&time)?;
            }
        }
    }
    Ok(())
}

/// Resolves a name: the first segment through the stack (top first), the rest strictly inside.
/// Costs a step per context looked through and per further segment.
fn lookup<'c>(stack: &[&'c Value], path: &[Segment], walk: &mut Walk<'_>) -> Result<Option<&'c Value>, Over> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(stack.last().copied());
    };
    let mut num_looked = 0;
    let found = stack.iter().rev().find_map(|ctx| {
        num_looked += 1;
        child(ctx, first)
    });
    walk.spend(num_looked)?;
    let Some(mut value) = found else {
        return Ok(None);
    };
    for segment in rest {
        walk.spend(1)?;
        match child(value, segment) {
            Some(inner) => value = inner,
            None => return Ok(None),
        }
    }
    Ok(Some(value))
}

fn child<'c>(value: &'c Value, segment: &Segment) -> Option<&'c Value> {
    match value {
        Value::Object(map) => map.get(&*segment.key),
        Value::Array(items) => segment.index.and_then(|i| items.get(i)),
        _ => None,
    }
}

/// JavaScript truthiness, plus mustache.js's rule that an empty list is falsy.
fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(_)) => true,
    }
}

fn event_value(root: &Value) -> Cow<'_, str> {
    match root.get(EVENT_VALUE_KEY) {
        Some(Value::String(s)) => Cow::Borrowed(s),
        Some(other) => {
            let mut s = String::new();
            js_print(other, &mut s);
            Cow::Owned(s)
        }
        None => Cow::Borrowed(""),
    }
}

/// Writes `s` HTML-escaped with the HTML-significant characters `&`, `<`, `>`, `"` and `'`.
fn escape_into<S: Sink + ?Sized>(s: &str, out: &mut S) -> Result<(), Over> {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.put(&s[last..i])?;
        out.put(entity)?;
        last = i + 1;
    }
    out.put(&s[last..])
}
