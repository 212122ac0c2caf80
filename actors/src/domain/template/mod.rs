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
//!
//! `parse.rs` holds the Mustache and Blynk parsers, `render.rs` the renderer, `print.rs` JavaScript's printing of
//! values and `budget.rs` the [`RenderBudget`].

mod budget;
mod parse;
mod print;
mod render;
#[cfg(test)]
mod tests;

pub use budget::{BudgetExceeded, DEFAULT_MAX_RENDER_BYTES, DEFAULT_MAX_RENDER_STEPS, RenderBudget, RenderLimits};
pub use print::js_print;

use parse::{Raw, build, lex, parse_blynk, strip_standalone};
use serde_json::Value;
use std::fmt;
use std::time::SystemTime;

/// Context key holding the raw event data, the value the Blynk placeholders print.
pub const EVENT_VALUE_KEY: &str = "PARTICLE_EVENT_VALUE";

/// Deepest section nesting [`Template::parse`] accepts, so rendering cannot exhaust the stack.
pub const MAX_SECTION_DEPTH: usize = 100;

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

    /// Tells `read` what a rendering may read of the top level of its context: every name it looks up (the first
    /// segment of a dotted name, in sections too, where it may also resolve in the section's value), the event
    /// value for Blynk's placeholders, and [`RootRead::Whole`] for what may read the context as a whole (the
    /// implicit iterator `.`, a partial). A context that holds what the reported names hold in a larger context
    /// renders exactly as the larger one, with the same budget spent; that is what lets an event's context be built
    /// with only the variables its webhooks read.
    pub fn root_reads(&self, read: &mut dyn FnMut(RootRead<'_>)) {
        fn visit<'t>(nodes: &'t [Node], read: &mut dyn FnMut(RootRead<'t>)) {
            for node in nodes {
                match node {
                    Node::Var { path, .. } => {
                        read(path.first().map_or(RootRead::Whole, |first| RootRead::Name(&first.key)))
                    }
                    Node::Section { path, children, .. } => {
                        read(path.first().map_or(RootRead::Whole, |first| RootRead::Name(&first.key)));
                        visit(children, read);
                    }
                    Node::Partial(_) => read(RootRead::Whole),
                    Node::PinValue | Node::PinPart(_) => read(RootRead::Name(EVENT_VALUE_KEY)),
                    Node::Text(..) | Node::DateTime => {}
                }
            }
        }
        visit(&self.nodes, read);
    }
}

/// What a template reads of the top level of its context ([`Template::root_reads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootRead<'a> {
    /// The value of this name, when the context has one.
    Name(&'a str),
    /// Anything in it.
    Whole,
}
