//! Templates for webhook requests (url, query, form, json keys and values, body, headers, auth,
//! topics), rendered from an event's JSON context the way Particle's cloud webhooks do.
//!
//! Two dialects exist. [`Dialect::Mustache`] is a small Mustache engine that follows the
//! mustache spec (interpolation, sections, inverted sections, comments, set delimiters and the
//! standalone-line whitespace rules) and mustache.js where the spec is silent: values print as
//! JavaScript's `String(v)` (see [`js_print`]), `{{x}}` escapes `& < > " '` (not `/`, as Particle),
//! `""` and `0` are falsy, and array indexes work as dotted segments (`c.0.ca`). Dotted names
//! follow the spec: the first segment is looked up through the context stack and the rest
//! strictly inside what it found (mustache.js would fall back to outer contexts). Partials
//! (`{{>x}}`) parse but render as empty, since none are ever supplied; lambdas are not
//! supported, and a JavaScript property such as `.length` is not either. [`Dialect::Blynk`] does
//! no Mustache processing at all and only replaces `/pin/`, `%s`, `/pin[0]/`..`/pin[9]/` and
//! `/datetime_iso/`.
//!
//! A template is parsed once into a tree (dotted names pre-split) and rendered many times by
//! walking borrowed JSON values into one output `String`. Every rendering spends a [`RenderBudget`]:
//! output bytes, checked before each piece is written, and steps (nodes visited, section
//! iterations, name lookups), checked as they are taken. A rendering that would go over either
//! stops at once with [`BudgetExceeded`], so no template and no context can make one take much
//! memory or time; it never panics.

use serde_json::{Number, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

/// Context key holding the raw event data, the value the Blynk placeholders print.
pub const EVENT_VALUE_KEY: &str = "PARTICLE_EVENT_VALUE";

/// Deepest section nesting [`Template::parse`] accepts, so rendering cannot exhaust the stack.
pub const MAX_SECTION_DEPTH: usize = 100;

/// The default output budget of a rendering, in bytes: 1 MiB. It is also the largest request body
/// hookwire sends, since a body is rendered output (`max_render_bytes`).
pub const DEFAULT_MAX_RENDER_BYTES: usize = 1024 * 1024;

/// The default work budget of a rendering, in steps: nodes visited, section iterations and name
/// lookups (`max_render_steps`). About a few tens of milliseconds of one thread at most.
pub const DEFAULT_MAX_RENDER_STEPS: u64 = 1_000_000;

/// The two bounds of a [`RenderBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// Most bytes of output (`max_render_bytes`).
    pub max_bytes: usize,
    /// Most steps: nodes visited, section iterations, name segments and context frames looked through
    /// (`max_render_steps`).
    pub max_steps: u64,
}

impl Default for RenderLimits {
    fn default() -> Self {
        RenderLimits { max_bytes: DEFAULT_MAX_RENDER_BYTES, max_steps: DEFAULT_MAX_RENDER_STEPS }
    }
}

/// What renderings may still spend. One budget is shared by every rendering of one request (url,
/// query, form, json, body, headers, auth), so the whole request is bounded, not each field.
#[derive(Debug, Clone)]
pub struct RenderBudget {
    limits: RenderLimits,
    num_bytes: usize,
    num_steps: u64,
}

/// Why a rendering stopped: it would have gone over its budget. The message names the budget and
/// its setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BudgetExceeded {
    /// The output would be larger than `max` bytes.
    #[error("output over the render budget of {max} bytes (max_render_bytes)")]
    Bytes {
        /// The budget, bytes.
        max: usize,
    },
    /// The rendering would take more than `max` steps (sections iterating too much).
    #[error("work over the render budget of {max} steps (max_render_steps): sections iterate too much")]
    Steps {
        /// The budget, steps.
        max: u64,
    },
}

impl RenderBudget {
    /// A fresh budget.
    pub fn new(limits: RenderLimits) -> Self {
        RenderBudget { limits, num_bytes: 0, num_steps: 0 }
    }

    /// The limits this budget started with.
    pub fn limits(&self) -> RenderLimits {
        self.limits
    }

    /// Bytes written so far.
    pub fn num_bytes(&self) -> usize {
        self.num_bytes
    }

    /// Steps taken so far.
    pub fn num_steps(&self) -> u64 {
        self.num_steps
    }

    /// Bytes that may still be written.
    pub fn remaining_bytes(&self) -> usize {
        self.limits.max_bytes.saturating_sub(self.num_bytes)
    }

    /// Spends `num_bytes` of output written outside a template (default fields, separators), or
    /// fails without spending anything when that would go over.
    pub fn spend_bytes(&mut self, num_bytes: usize) -> Result<(), BudgetExceeded> {
        if num_bytes > self.remaining_bytes() {
            return Err(BudgetExceeded::Bytes { max: self.limits.max_bytes });
        }
        self.num_bytes += num_bytes;
        Ok(())
    }

    /// Fails when `total` bytes, all of them output of this budget's renderings, would be over
    /// it: for text made from rendered parts, such as a JSON body serialised from rendered values.
    pub fn check_total(&self, total: usize) -> Result<(), BudgetExceeded> {
        if total > self.limits.max_bytes {
            return Err(BudgetExceeded::Bytes { max: self.limits.max_bytes });
        }
        Ok(())
    }
}

/// The placeholder syntax a template is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Mustache, as rendered by mustache.js.
    #[default]
    Mustache,
    /// Blynk placeholders (`/pin/`, `%s`, `/pin[N]/`, `/datetime_iso/`); everything else literal.
    Blynk,
}

/// Why a template failed to parse, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    message: String,
    offset: usize,
    line: usize,
}

impl TemplateError {
    fn new(source: &str, offset: usize, message: impl Into<String>) -> Self {
        let line = source.as_bytes()[..offset.min(source.len())].iter().filter(|&&b| b == b'\n').count() + 1;
        TemplateError { message: message.into(), offset, line }
    }

    /// What went wrong, without the location (e.g. "unclosed section `x` opened").
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Byte offset in the source of the tag at fault.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// 1-based line of the tag at fault.
    pub fn line(&self) -> usize {
        self.line
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at line {} (byte {})", self.message, self.line, self.offset)
    }
}

impl std::error::Error for TemplateError {}

/// One segment of a dotted name; `index` is set when the segment is a canonical array index.
#[derive(Debug, Clone)]
struct Segment {
    key: Box<str>,
    index: Option<usize>,
}

/// A pre-split dotted name; empty for the implicit iterator `.`.
type Path = Box<[Segment]>;

#[derive(Debug, Clone)]
enum Node {
    /// Literal text: a byte range of the template's source.
    Text(usize, usize),
    Var {
        path: Path,
        escape: bool,
    },
    Section {
        path: Path,
        inverted: bool,
        children: Vec<Node>,
    },
    Partial(Box<str>),
    /// Blynk `/pin/` and `%s`: the whole event value.
    PinValue,
    /// Blynk `/pin[N]/`: the N-th NUL-separated part of the event value.
    PinPart(usize),
    /// Blynk `/datetime_iso/`.
    DateTime,
}

/// A parsed template: parse once with [`Template::parse`], render many times.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    dialect: Dialect,
    nodes: Vec<Node>,
    has_tags: bool,
    prefix_len: usize,
}

impl Template {
    /// Parses `source` in the given dialect. Blynk templates always parse; Mustache ones fail on
    /// an unclosed or mismatched section, an unclosed tag, an empty tag name, a bad
    /// set-delimiter tag or sections nested deeper than [`MAX_SECTION_DEPTH`].
    pub fn parse(source: &str, dialect: Dialect) -> Result<Template, TemplateError> {
        let (nodes, has_tags) = match dialect {
            Dialect::Mustache => {
                let raws = lex(source)?;
                let has_tags = raws.iter().any(|r| matches!(r, Raw::Tag { .. }));
                let kept = strip_standalone(source, &raws);
                (build(source, &mut kept.iter(), None, 0)?, has_tags)
            }
            Dialect::Blynk => parse_blynk(source),
        };
        let prefix_len = match nodes.first() {
            _ if !has_tags => source.len(),
            Some(Node::Text(0, end)) => *end,
            _ => 0,
        };
        Ok(Template { source: source.to_owned(), dialect, nodes, has_tags, prefix_len })
    }

    /// Renders against `context` into a new string, spending `budget`; stops as soon as the
    /// output or the work would go over it. Never panics, whatever the context.
    pub fn render(&self, context: &Value, budget: &mut RenderBudget) -> Result<String, BudgetExceeded> {
        let mut out = String::new();
        self.render_into(context, budget, &mut out)?;
        Ok(out)
    }

    /// Appends the rendering to `out`, spending `budget` (Blynk's `/datetime_iso/` uses the current
    /// time). On failure `out` holds whatever was written before the budget ran out.
    pub fn render_into(
        &self,
        context: &Value,
        budget: &mut RenderBudget,
        out: &mut String,
    ) -> Result<(), BudgetExceeded> {
        self.write(context, None, None, budget, out)
    }

    /// Renders with `now` as the time for Blynk's `/datetime_iso/`; Mustache templates ignore it.
    pub fn render_at(
        &self,
        context: &Value,
        now: SystemTime,
        budget: &mut RenderBudget,
    ) -> Result<String, BudgetExceeded> {
        let mut out = String::new();
        self.write(context, Some(now), None, budget, &mut out)?;
        Ok(out)
    }

    /// True when the template has no tags or placeholders at all, so every rendering equals
    /// [`Template::source`]. A template holding only a comment is not static.
    pub fn is_static(&self) -> bool {
        !self.has_tags
    }

    /// The literal text every rendering starts with: the source before the first tag (less any
    /// whitespace a standalone first tag removes), or the whole source when static.
    pub fn static_prefix(&self) -> &str {
        &self.source[..self.prefix_len]
    }

    /// The template text as given to [`Template::parse`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The dialect the template was parsed in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Renders with optional partials (only the spec tests supply any), spending `budget`.
    fn write(
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

// ---------------------------------------------------------------------------------------------
// Mustache parsing: lex into a flat list, drop standalone-line whitespace, build the tree.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Var { escape: bool },
    Section,
    Inverted,
    Close,
    Partial,
    Comment,
    Delimiters,
}

/// A lexed piece: text never spans a newline (a piece ends right after its `\n`).
#[derive(Debug, Clone, Copy)]
enum Raw<'s> {
    Text(usize, usize),
    Tag { kind: Kind, name: &'s str, at: usize },
}

fn push_text(raws: &mut Vec<Raw<'_>>, src: &str, mut start: usize, end: usize) {
    while start < end {
        let stop = src[start..end].find('\n').map_or(end, |i| start + i + 1);
        raws.push(Raw::Text(start, stop));
        start = stop;
    }
}

fn lex(src: &str) -> Result<Vec<Raw<'_>>, TemplateError> {
    let mut raws = Vec::new();
    let (mut open, mut close) = (String::from("{{"), String::from("}}"));
    let mut pos = 0;
    while pos < src.len() {
        let Some(found) = src[pos..].find(open.as_str()) else {
            push_text(&mut raws, src, pos, src.len());
            break;
        };
        let at = pos + found;
        push_text(&mut raws, src, pos, at);
        let mut inner = at + open.len();
        let (kind, closer) = match src.as_bytes().get(inner) {
            Some(b'{') => (Kind::Var { escape: false }, format!("}}{close}")),
            Some(b'&') => (Kind::Var { escape: false }, close.clone()),
            Some(b'#') => (Kind::Section, close.clone()),
            Some(b'^') => (Kind::Inverted, close.clone()),
            Some(b'/') => (Kind::Close, close.clone()),
            Some(b'>') => (Kind::Partial, close.clone()),
            Some(b'!') => (Kind::Comment, close.clone()),
            Some(b'=') => (Kind::Delimiters, format!("={close}")),
            _ => (Kind::Var { escape: true }, close.clone()),
        };
        if kind != (Kind::Var { escape: true }) {
            inner += 1;
        }
        let Some(len) = src[inner..].find(closer.as_str()) else {
            let what = if kind == Kind::Delimiters { "set-delimiter tag" } else { "tag" };
            return Err(TemplateError::new(src, at, format!("unclosed {what} (no `{closer}`)")));
        };
        let content = &src[inner..inner + len];
        pos = inner + len + closer.len();
        let name = match kind {
            Kind::Comment => "",
            Kind::Delimiters => {
                let parts: Vec<&str> = content.split_whitespace().collect();
                let [new_open, new_close] = parts[..] else {
                    return Err(bad_delimiters(src, at, content));
                };
                if new_open.contains('=') || new_close.contains('=') {
                    return Err(bad_delimiters(src, at, content));
                }
                (open, close) = (new_open.to_owned(), new_close.to_owned());
                ""
            }
            _ => {
                let name = content.trim();
                if name.is_empty() {
                    return Err(TemplateError::new(src, at, "empty tag name"));
                }
                name
            }
        };
        raws.push(Raw::Tag { kind, name, at });
    }
    Ok(raws)
}

fn bad_delimiters(src: &str, at: usize, content: &str) -> TemplateError {
    let message = format!("bad set-delimiter tag `{}` (want two delimiters without whitespace or `=`)", content.trim());
    TemplateError::new(src, at, message)
}

/// Applies the standalone rule: on a line holding only whitespace and tags that print nothing
/// (sections, inverted, closing, comments, partials, set-delimiters), the whitespace and the line
/// ending are dropped. Like mustache.js, several such tags may share the line.
fn strip_standalone<'s>(src: &str, raws: &[Raw<'s>]) -> Vec<Raw<'s>> {
    let mut kept = Vec::with_capacity(raws.len());
    let mut line_start = 0;
    for (i, raw) in raws.iter().enumerate() {
        let ends_line = matches!(raw, Raw::Text(_, end) if src.as_bytes()[end - 1] == b'\n');
        if !ends_line && i + 1 < raws.len() {
            continue;
        }
        let line = &raws[line_start..=i];
        line_start = i + 1;
        let mut has_tag = false;
        let standalone = line.iter().all(|r| match r {
            Raw::Text(s, e) => src[*s..*e].bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')),
            Raw::Tag { kind: Kind::Var { .. }, .. } => false,
            Raw::Tag { .. } => {
                has_tag = true;
                true
            }
        });
        let drop_text = standalone && has_tag;
        kept.extend(line.iter().filter(|r| !(drop_text && matches!(r, Raw::Text(..)))));
    }
    kept
}

fn parse_path(name: &str) -> Path {
    if name == "." {
        return Box::new([]);
    }
    let index = |s: &str| {
        let canonical = s == "0" || (!s.starts_with('0') && !s.is_empty());
        (canonical && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    name.split('.').map(|s| Segment { key: s.into(), index: index(s) }).collect()
}

/// Builds nodes up to the closing tag of `open` (a section's name and offset), or to the end of
/// the template when `open` is `None`.
fn build<'s>(
    src: &str,
    raws: &mut std::slice::Iter<'_, Raw<'s>>,
    open: Option<(&'s str, usize)>,
    depth: usize,
) -> Result<Vec<Node>, TemplateError> {
    let mut nodes = Vec::new();
    while let Some(&raw) = raws.next() {
        let (kind, name, at) = match raw {
            Raw::Tag { kind, name, at } => (kind, name, at),
            Raw::Text(start, end) => {
                match nodes.last_mut() {
                    Some(Node::Text(_, last_end)) if *last_end == start => *last_end = end,
                    _ => nodes.push(Node::Text(start, end)),
                }
                continue;
            }
        };
        match kind {
            Kind::Var { escape } => nodes.push(Node::Var { path: parse_path(name), escape }),
            Kind::Partial => nodes.push(Node::Partial(name.into())),
            Kind::Comment | Kind::Delimiters => {}
            Kind::Section | Kind::Inverted => {
                if depth == MAX_SECTION_DEPTH {
                    let message = format!("sections nested deeper than {MAX_SECTION_DEPTH}");
                    return Err(TemplateError::new(src, at, message));
                }
                let children = build(src, raws, Some((name, at)), depth + 1)?;
                let (path, inverted) = (parse_path(name), kind == Kind::Inverted);
                nodes.push(Node::Section { path, inverted, children });
            }
            Kind::Close => {
                let message = match open {
                    Some((open_name, _)) if open_name == name => return Ok(nodes),
                    Some((open_name, open_at)) => format!(
                        "mismatched closing tag `{name}` (section `{open_name}` opened at line {})",
                        TemplateError::new(src, open_at, "").line
                    ),
                    None => format!("closing tag `{name}` without an open section"),
                };
                return Err(TemplateError::new(src, at, message));
            }
        }
    }
    match open {
        Some((name, at)) => {
            let message = format!("unclosed section `{name}` opened");
            Err(TemplateError::new(src, at, message))
        }
        None => Ok(nodes),
    }
}

// ---------------------------------------------------------------------------------------------
// Blynk parsing.

fn parse_blynk(src: &str) -> (Vec<Node>, bool) {
    let bytes = src.as_bytes();
    let (mut nodes, mut text_start, mut i) = (Vec::new(), 0, 0);
    while i < bytes.len() {
        let rest = &bytes[i..];
        let (node, len) = if rest.starts_with(b"/pin/") {
            (Node::PinValue, 5)
        } else if rest.starts_with(b"%s") {
            (Node::PinValue, 2)
        } else if rest.starts_with(b"/datetime_iso/") {
            (Node::DateTime, 14)
        } else if rest.len() >= 8 && rest.starts_with(b"/pin[") && rest[5].is_ascii_digit() && &rest[6..8] == b"]/" {
            (Node::PinPart(usize::from(rest[5] - b'0')), 8)
        } else {
            i += 1;
            continue;
        };
        if text_start < i {
            nodes.push(Node::Text(text_start, i));
        }
        nodes.push(node);
        i += len;
        text_start = i;
    }
    let has_tags = !nodes.is_empty();
    if text_start < bytes.len() {
        nodes.push(Node::Text(text_start, bytes.len()));
    }
    (nodes, has_tags)
}

// ---------------------------------------------------------------------------------------------
// Rendering.

struct Env<'a> {
    root: &'a Value,
    now: Option<SystemTime>,
    partials: Option<&'a HashMap<String, Template>>,
}

/// Which budget a rendering ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    Bytes,
    Steps,
}

/// Where text goes: a plain string, a bounded one, or an escaping adapter over either.
trait Sink {
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

/// Appends `value` as JavaScript's `String(value)` prints it: strings as they are, numbers in
/// JavaScript's shortest form (`85`, `1.21`, `20` for `20.0`, `1e+21`), `true`/`false`, arrays
/// joined with `,` (nested arrays flattened the same way, null elements empty), objects as
/// `[object Object]`. Null prints nothing, as in mustache.js interpolation. Integers print
/// exactly, even beyond 2^53 where JavaScript would round.
pub fn js_print(value: &Value, out: &mut String) {
    let _ = print_js(value, out);
}

/// [`js_print`] into any sink, stopping at the first piece it refuses.
fn print_js<S: Sink + ?Sized>(value: &Value, out: &mut S) -> Result<(), Over> {
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
fn write_iso8601(time: SystemTime, out: &mut String) {
    let ms = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |m| -m),
    };
    crate::domain::time::write_iso8601_ms(ms, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn budget() -> RenderBudget {
        RenderBudget::new(RenderLimits::default())
    }

    fn render(template: &str, context: Value) -> String {
        Template::parse(template, Dialect::Mustache).unwrap().render(&context, &mut budget()).unwrap()
    }

    fn parse_err(template: &str) -> String {
        Template::parse(template, Dialect::Mustache).unwrap_err().to_string()
    }

    fn run_spec(file: &str, json: &str) {
        let spec: Value = serde_json::from_str(json).unwrap();
        let tests = spec["tests"].as_array().unwrap();
        let mut failures = Vec::new();
        for test in tests {
            let name = test["name"].as_str().unwrap();
            let template = test["template"].as_str().unwrap();
            let expected = test["expected"].as_str().unwrap();
            let partials: HashMap<String, Template> = test["partials"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), Template::parse(v.as_str().unwrap(), Dialect::Mustache).unwrap()))
                .collect();
            let actual = match Template::parse(template, Dialect::Mustache) {
                Ok(t) => {
                    let mut out = String::new();
                    t.write(&test["data"], None, Some(&partials), &mut budget(), &mut out).unwrap();
                    out
                }
                Err(e) => format!("<parse error: {e}>"),
            };
            if actual != expected {
                failures.push(format!(
                    "{file} / {name}\n  template: {template:?}\n  expected: {expected:?}\n  actual:   {actual:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{} of {} failed:\n{}", failures.len(), tests.len(), failures.join("\n"));
    }

    macro_rules! spec_test {
        ($test:ident, $file:literal) => {
            #[test]
            fn $test() {
                run_spec($file, include_str!(concat!("../../../tests/conformance/mustache-spec/", $file, ".json")));
            }
        };
    }
    spec_test!(spec_interpolation, "interpolation");
    spec_test!(spec_sections, "sections");
    spec_test!(spec_inverted, "inverted");
    spec_test!(spec_comments, "comments");
    spec_test!(spec_delimiters, "delimiters");

    #[test]
    fn particle_docs_examples() {
        let ctx = json!({"a": {"aa": "testing", "ab": 1234}, "b": "xxx",
            "c": [{"ca": "first", "cb": 123}, {"ca": "second", "cb": 456}]});
        let t = "{{{a.aa}}}|{{{a.ab}}}|{{{b}}}|{{{c.0.ca}}}|{{{c.1.cb}}}";
        assert_eq!(render(t, ctx), "testing|1234|xxx|first|456");

        let ctx = json!({"b": "xxx", "c": [{"ca": "first"}, {"ca": "second"}]});
        let t = "{{#b}}{{{b}}}{{/b}}{{^b}}Missing{{/b}}/{{#z}}{{{z}}}{{/z}}{{^z}}Missing{{/z}}/\
                 {{#c}}{{{ca}}}~{{/c}}";
        assert_eq!(render(t, ctx), "xxx/Missing/first~second~");

        let ctx = json!({"a": 123, "b": "test", "c": true, "d": [1, 2, 3], "e": {"f": 444, "g": 5.5}});
        let t = "{{{c}}}|{{{d.1}}}|{{{e}}}|{{{a}}},{{{e.f}}}|{{{d}}}";
        assert_eq!(render(t, ctx), "true|2|[object Object]|123,444|1,2,3");

        assert_eq!(render("{{a}}|{{{a}}}", json!({"a": "<x>"})), "&lt;x&gt;|<x>");
    }

    #[test]
    fn escapes_html_but_leaves_slashes_as_particle_does() {
        // Particle's documented output keeps `/` in `{{PARTICLE_EVENT_NAME}}` (Temperature/Kitchen), so the set is
        // the HTML-significant characters only, not the wider set of later mustache.js releases.
        let ctx = json!({"x": "a&b<c>d\"e'f/g`h=i é", "l": ["<", "/"]});
        let escaped = "a&amp;b&lt;c&gt;d&quot;e&#39;f/g`h=i é";
        assert_eq!(render("{{x}}", ctx.clone()), escaped);
        assert_eq!(render("{{&x}}|{{l}}", ctx), "a&b<c>d\"e'f/g`h=i é|&lt;,/");
    }

    #[test]
    fn js_print_matches_javascript() {
        let cases = [
            (json!(1608.637939453125), "1608.637939453125"),
            (json!(-104.984703), "-104.984703"),
            (json!(85), "85"),
            (json!(-7), "-7"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(20.0), "20"),
            (json!(-0.0), "0"),
            (json!(1e21), "1e+21"),
            (json!(1.5e300), "1.5e+300"),
            (json!(123e18), "123000000000000000000"),
            (json!(0.000001), "0.000001"),
            (json!(1.5e-7), "1.5e-7"),
            (json!(-0.0000012), "-0.0000012"),
            (json!(1e-6), "0.000001"),
            (json!(9.99e-7), "9.99e-7"),
            (json!(-1e21), "-1e+21"),
            (json!(999999999999999900000.0), "999999999999999900000"),
            (json!(0.1 + 0.2), "0.30000000000000004"),
            (json!(null), ""),
            (json!(false), "false"),
            (json!([1, [2, 3], null, "x", {}, [], true]), "1,2,3,,x,[object Object],,true"),
            (json!([[], []]), ","),
        ];
        for (value, want) in cases {
            let mut out = String::new();
            js_print(&value, &mut out);
            assert_eq!(out, want, "{value}");
        }
        let mut deep = json!([1]);
        for _ in 0..100_000 {
            deep = Value::Array(vec![deep]);
        }
        let mut out = String::new();
        js_print(&deep, &mut out);
        assert_eq!(out, "1");
        std::mem::forget(deep); // dropping it recursively could overflow the test thread's stack
    }

    #[test]
    fn truthiness_follows_mustache_js() {
        let ctx = json!({"e": "", "z": 0, "zf": 0.0, "s": "0", "o": {}, "l": [0, null], "t": true});
        let t = "{{#e}}E{{/e}}{{#z}}Z{{/z}}{{#zf}}F{{/zf}}{{#s}}S{{/s}}{{#o}}O{{/o}}{{#l}}({{.}}){{/l}}";
        assert_eq!(render(t, ctx.clone()), "SO(0)()");
        let t = "{{^e}}e{{/e}}{{^z}}z{{/z}}{{^s}}s{{/s}}{{^o}}o{{/o}}{{^l}}l{{/l}}";
        assert_eq!(render(t, ctx.clone()), "ez");
        // `true` does not push itself: `.` is still the enclosing object.
        let t = "{{#t}}{{.}}{{/t}}|{{#s}}{{.}}{{/s}}";
        assert_eq!(render(t, ctx), "[object Object]|0");
    }

    #[test]
    fn names_indexes_and_misses() {
        let ctx = json!({"d": [10, 20, {"x": "y"}], "m": {"d": null}, "a.b": 1});
        let t = "{{d.0}}|{{d.2.x}}|{{d.01}}|{{d.9}}|{{d.+1}}|{{nope}}|{{nope.x}}|{{a.b}}";
        assert_eq!(render(t, ctx.clone()), "10|y||||||");
        // A key holding null still stops the lookup in that context.
        assert_eq!(render("{{#m}}[{{d}}]{{/m}}", ctx.clone()), "[]");
        assert_eq!(render("{{#d}}{{.}};{{/d}}", ctx), "10;20;[object Object];");
    }

    #[test]
    fn standalone_lines() {
        // Several non-printing tags may share a standalone line (mustache.js does the same).
        let t = "a\r\n  {{#x}}{{! c }}\t\r\n{{.}}\n{{/x}}\nb";
        assert_eq!(render(t, json!({"x": [1, 2]})), "a\r\n1\n2\nb");
        assert_eq!(render("  {{x}}\n", json!({"x": 1})), "  1\n");
    }

    #[test]
    fn never_panics_on_odd_contexts() {
        let t = "{{a.b}}{{#a}}{{.}}{{0}}{{/a}}{{^x}}-{{/x}}{{.}}{{>p}}";
        let t = Template::parse(t, Dialect::Mustache).unwrap();
        for ctx in [json!(null), json!(3), json!("s"), json!([1, 2]), json!({"a": [[1], {"b": 2}]})] {
            let _ = t.render(&ctx, &mut budget());
        }
        assert_eq!(t.render(&json!({"a": "é/"}), &mut budget()).unwrap(), "é/-[object Object]");
    }

    #[test]
    fn render_into_appends() {
        let t = Template::parse("b={{b}}", Dialect::Mustache).unwrap();
        let mut out = String::from("a&");
        t.render_into(&json!({"b": 2}), &mut budget(), &mut out).unwrap();
        assert_eq!(out, "a&b=2");
    }

    #[test]
    fn partials_parse_and_render_empty() {
        assert_eq!(render("[{{> inc}}]\n  {{>inc}}\nx", json!({})), "[]\nx");
    }

    #[test]
    fn static_templates_and_prefixes() {
        let cases = [
            ("https://example.com/a?b=c", Dialect::Mustache, true, "https://example.com/a?b=c"),
            ("https://x.io/{{id}}/y", Dialect::Mustache, false, "https://x.io/"),
            ("{{#a}}x{{/a}}", Dialect::Mustache, false, ""),
            ("a {{! note }}b", Dialect::Mustache, false, "a "),
            ("a\n  {{! note }}\nb", Dialect::Mustache, false, "a\n"),
            ("", Dialect::default(), true, ""),
            ("http://h/?v=%s", Dialect::Blynk, false, "http://h/?v="),
            ("{{x}}/pin", Dialect::Blynk, true, "{{x}}/pin"),
        ];
        for (source, dialect, is_static, prefix) in cases {
            let t = Template::parse(source, dialect).unwrap();
            assert_eq!((t.is_static(), t.static_prefix()), (is_static, prefix), "{source}");
            assert_eq!((t.source(), t.dialect()), (source, dialect));
            assert!(t.render(&json!({}), &mut budget()).unwrap().starts_with(prefix));
        }
    }

    #[test]
    fn parse_errors_say_what_and_where() {
        let cases = [
            ("{{#x}}a", "unclosed section `x` opened at line 1 (byte 0)"),
            ("a\n{{#x}}\n{{/y}}", "mismatched closing tag `y` (section `x` opened at line 2) at line 3 (byte 9)"),
            ("ok {{/x}}", "closing tag `x` without an open section at line 1 (byte 3)"),
            ("a {{x", "unclosed tag (no `}}`) at line 1 (byte 2)"),
            ("{{{x}}", "unclosed tag (no `}}}`) at line 1 (byte 0)"),
            ("{{ }}", "empty tag name at line 1 (byte 0)"),
            ("{{#}}{{/}}", "empty tag name at line 1 (byte 0)"),
            ("{{>}}", "empty tag name at line 1 (byte 0)"),
            ("\n{{=<% %>}}", "unclosed set-delimiter tag (no `=}}`) at line 2 (byte 1)"),
        ];
        for (template, want) in cases {
            assert_eq!(parse_err(template), want);
        }
        for bad in ["{{=<%=}}", "{{=a b c=}}", "{{=a= b=}}", "{{==}}"] {
            assert!(parse_err(bad).starts_with("bad set-delimiter tag `"), "{bad}");
        }
        let err = Template::parse("x {{#a}}", Dialect::Mustache).unwrap_err();
        assert_eq!((err.message(), err.line(), err.offset()), ("unclosed section `a` opened", 1, 2));
        let nested = |n| "{{#a}}".repeat(n) + &"{{/a}}".repeat(n);
        let too_deep = parse_err(&nested(MAX_SECTION_DEPTH + 1));
        assert!(too_deep.starts_with("sections nested deeper than 100"));
        assert_eq!(render(&nested(MAX_SECTION_DEPTH), json!({"a": true})), "");
    }

    #[test]
    fn blynk_placeholders() {
        let blynk = |t: &str, value: Value| {
            let ctx = json!({ EVENT_VALUE_KEY: value, "x": "no" });
            Template::parse(t, Dialect::Blynk).unwrap().render(&ctx, &mut budget()).unwrap()
        };
        let t = "http://h/update?api_key=x&field1=/pin/";
        assert_eq!(blynk(t, json!("42")), "http://h/update?api_key=x&field1=42");
        let t = "?value=/pin[0]/&value=/pin[1]/&value=/pin[2]/";
        assert_eq!(blynk(t, json!("10\u{0}11\u{0}12")), "?value=10&value=11&value=12");
        let t = "a=%s&b=/pin[7]/&c={{x}}&d=/pin[x]/é";
        assert_eq!(blynk(t, json!("1\u{0}2")), "a=1\u{0}2&b=&c={{x}}&d=/pin[x]/é");
        assert_eq!(blynk("/pin/", json!(3.5)), "3.5");
        let t = Template::parse("v=/pin/", Dialect::Blynk).unwrap();
        assert_eq!(t.render(&json!(null), &mut budget()).unwrap(), "v=");
    }

    #[test]
    fn blynk_datetime_is_iso8601_utc() {
        let t = Template::parse("t=/datetime_iso/", Dialect::Blynk).unwrap();
        let at = |ms: i64| {
            let offset = Duration::from_millis(ms.unsigned_abs());
            let now = if ms >= 0 { UNIX_EPOCH + offset } else { UNIX_EPOCH - offset };
            t.render_at(&json!({}), now, &mut budget()).unwrap()
        };
        assert_eq!(at(0), "t=1970-01-01T00:00:00.000Z");
        assert_eq!(at(1_795_343_645_123), "t=2026-11-22T10:34:05.123Z");
        assert_eq!(at(1_709_251_199_999), "t=2024-02-29T23:59:59.999Z");
        assert_eq!(at(-1000), "t=1969-12-31T23:59:59.000Z");
        assert_eq!(t.render(&json!({}), &mut budget()).unwrap().len(), "t=2026-11-22T10:34:05.123Z".len());
        let m = Template::parse("{{a}}", Dialect::Mustache).unwrap();
        assert_eq!(m.render_at(&json!({"a": 1}), UNIX_EPOCH, &mut budget()).unwrap(), "1");
    }

    fn ones(n: usize) -> Value {
        json!({ "a": vec![1; n], EVENT_VALUE_KEY: format!("{{\"a\":[{}]}}", vec!["1"; n].join(",")) })
    }

    #[test]
    fn the_issue_13_attack_stops_at_the_output_budget_while_rendering() {
        // Three nested sections over 505 ones, each printing the 1 KiB data: 2 GB of output without a budget.
        let t = "{{#a}}{{#a}}{{#a}}{{{PARTICLE_EVENT_VALUE}}}{{/a}}{{/a}}{{/a}}";
        let t = Template::parse(t, Dialect::Mustache).unwrap();
        let limits = RenderLimits { max_bytes: 64 * 1024, max_steps: u64::MAX };
        let mut budget = RenderBudget::new(limits);
        let mut out = String::new();
        let error = t.render_into(&ones(505), &mut budget, &mut out).unwrap_err();
        assert_eq!(error, BudgetExceeded::Bytes { max: 64 * 1024 });
        assert_eq!(error.to_string(), "output over the render budget of 65536 bytes (max_render_bytes)");
        assert!(out.len() <= 64 * 1024, "the output never goes over, not even for a moment");
        assert_eq!(budget.num_bytes(), out.len());
    }

    #[test]
    fn nested_empty_sections_stop_at_the_work_budget() {
        // Four nested empty sections over 505 ones: 505^4 iterations and no output at all.
        let t = "{{#a}}{{#a}}{{#a}}{{#a}}{{/a}}{{/a}}{{/a}}{{/a}}";
        let t = Template::parse(t, Dialect::Mustache).unwrap();
        let mut small = RenderBudget::new(RenderLimits { max_bytes: usize::MAX, max_steps: 10_000 });
        let error = t.render(&ones(505), &mut small).unwrap_err();
        assert_eq!(error, BudgetExceeded::Steps { max: 10_000 });
        assert!(error.to_string().contains("10000 steps (max_render_steps)"), "{error}");
        assert_eq!(small.num_steps(), 10_000);
        // The default budget stops it too, and a legitimate loop over the same data fits easily.
        let error = t.render(&ones(505), &mut budget()).unwrap_err();
        assert_eq!(error, BudgetExceeded::Steps { max: DEFAULT_MAX_RENDER_STEPS });
        let legit = Template::parse("{{#a}}{{.}},{{/a}}", Dialect::Mustache).unwrap();
        assert_eq!(legit.render(&ones(505), &mut budget()).unwrap().len(), 1010);
    }

    #[test]
    fn escaping_growth_and_long_names_are_counted_too() {
        // `{{x}}` turns each `"` into six bytes: the budget counts the escaped bytes.
        let t = Template::parse("{{x}}", Dialect::Mustache).unwrap();
        let mut budget = RenderBudget::new(RenderLimits { max_bytes: 12, max_steps: 100 });
        assert_eq!(t.render(&json!({"x": "\"\""}), &mut budget).unwrap(), "&quot;&quot;");
        let mut budget = RenderBudget::new(RenderLimits { max_bytes: 12, max_steps: 100 });
        assert!(t.render(&json!({"x": "\"\"\""}), &mut budget).is_err());
        // A long dotted name costs a step per segment.
        let name = vec!["a"; 50].join(".");
        let t = Template::parse(&format!("{{{{{name}}}}}"), Dialect::Mustache).unwrap();
        let mut budget = RenderBudget::new(RenderLimits { max_bytes: 100, max_steps: 20 });
        assert!(t.render(&json!({"a": {"a": {"a": 1}}}), &mut budget).is_ok());
        let mut deep = json!(1);
        for _ in 0..50 {
            deep = json!({ "a": deep });
        }
        let mut budget = RenderBudget::new(RenderLimits { max_bytes: 100, max_steps: 20 });
        assert!(matches!(t.render(&deep, &mut budget), Err(BudgetExceeded::Steps { max: 20 })));
    }

    #[test]
    fn one_budget_bounds_several_renderings_and_blynk_placeholders() {
        let t = Template::parse("%s%s%s%s", Dialect::Blynk).unwrap();
        let context = json!({ EVENT_VALUE_KEY: "x".repeat(1000) });
        let mut budget = RenderBudget::new(RenderLimits { max_bytes: 10_000, max_steps: 1000 });
        assert_eq!(t.render(&context, &mut budget).unwrap().len(), 4000);
        assert_eq!(t.render(&context, &mut budget).unwrap().len(), 4000);
        let error = t.render(&context, &mut budget).unwrap_err();
        assert_eq!(error, BudgetExceeded::Bytes { max: 10_000 });
        assert!(budget.num_bytes() <= 10_000);
        // Static templates and bytes written outside templates spend it as well.
        let mut budget = RenderBudget::new(RenderLimits { max_bytes: 5, max_steps: 2 });
        let static_template = Template::parse("abc", Dialect::Mustache).unwrap();
        assert_eq!(static_template.render(&json!({}), &mut budget).unwrap(), "abc");
        assert!(budget.spend_bytes(3).is_err());
        budget.spend_bytes(2).unwrap();
        assert!(static_template.render(&json!({}), &mut budget).is_err());
        let mut budget = RenderBudget::new(RenderLimits { max_bytes: 100, max_steps: 2 });
        for _ in 0..2 {
            static_template.render(&json!({}), &mut budget).unwrap();
        }
        assert_eq!(static_template.render(&json!({}), &mut budget), Err(BudgetExceeded::Steps { max: 2 }));
    }

    #[test]
    fn template_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + fmt::Debug>() {}
        check::<Template>();
        check::<TemplateError>();
    }
}
