//! Mustache parsing: lex into a flat list, drop standalone-line whitespace, build the tree; and Blynk parsing.

use super::{MAX_SECTION_DEPTH, Node, Path, Segment, TemplateError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
pub(super) enum Raw<'s> {
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

pub(super) fn lex(src: &str) -> Result<Vec<Raw<'_>>, TemplateError> {
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
pub(super) fn strip_standalone<'s>(src: &str, raws: &[Raw<'s>]) -> Vec<Raw<'s>> {
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
pub(super) fn build<'s>(
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

// Blynk parsing.

pub(super) fn parse_blynk(src: &str) -> (Vec<Node>, bool) {
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
