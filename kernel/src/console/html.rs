//! HTML building: escaping and the page layout. Pages are plain strings built with `format!`; every value that
//! comes from a user, a device, a destination or the store goes through [`escape`] (webhook definitions, event
//! data and responses are hostile). Scripts and styles come only from `/assets/` (the Content-Security-Policy
//! allows nothing inline), so markup that slipped through could not run anyway.

use crate::auth::Principal;
use std::fmt::Write as _;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Percent-encodes a query value.
pub fn url_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Who is signed in, as the page header shows it, and the CSRF token its forms carry.
#[derive(Debug)]
pub struct Viewer<'a> {
    /// The principal.
    pub who: &'a Principal,
    /// The session's CSRF token.
    pub csrf: &'a str,
}

impl Viewer<'_> {
    /// The hidden CSRF field every form carries.
    pub fn csrf_field(&self) -> String {
        format!(r#"<input type="hidden" name="csrf" value="{}">"#, escape(self.csrf))
    }

    /// True when the principal may change things in `group`: root, or an editor token.
    pub fn can_edit(&self) -> bool {
        match self.who {
            Principal::Root => true,
            Principal::Group { role, .. } => *role >= crate::auth::Role::Editor,
        }
    }

    /// A one-button form posting to `action`.
    pub fn button(&self, action: &str, label: &str, class: &str) -> String {
        format!(
            r#"<form method="post" action="{}" class="inline">{}<button type="submit" class="{}">{}</button></form>"#,
            escape(action),
            self.csrf_field(),
            escape(class),
            escape(label)
        )
    }

    fn describe(&self) -> String {
        match self.who {
            Principal::Root => "root".to_owned(),
            Principal::Group { group_id, role, .. } => format!("{} of {}", role.as_str(), group_id),
        }
    }
}

/// A whole page: `crumbs` are (label, link) pairs leading to it; `body` is trusted markup.
pub fn page(title: &str, viewer: Option<&Viewer<'_>>, crumbs: &[(&str, String)], body: &str) -> String {
    let mut html = String::with_capacity(body.len() + 2048);
    let _ = write!(
        html,
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} · hookwire</title><link rel="stylesheet" href="/assets/console.css"><script src="/assets/console.js" defer></script></head>
<body><a class="skip-link" href="#main">Skip to content</a><header><nav aria-label="main"><a class="brand" href="/">hookwire</a>"##,
        escape(title)
    );
    for (label, link) in crumbs {
        let _ = write!(html, r#"<span class="sep">/</span><a href="{}">{}</a>"#, escape(link), escape(label));
    }
    html.push_str("</nav>");
    if let Some(viewer) = viewer {
        let _ = write!(
            html,
            r#"<div class="who"><span id="signed-in-as">{}</span><form method="post" action="/signout" class="inline">{}<button type="submit" id="signout">Sign out</button></form></div>"#,
            escape(&viewer.describe()),
            viewer.csrf_field()
        );
    }
    let _ = write!(
        html,
        r#"</header><main id="main" tabindex="-1"><h1>{}</h1>{}</main></body></html>"#,
        escape(title),
        body
    );
    html
}

/// A message box: `kind` is `error`, `notice` or `secret`.
pub fn message(kind: &str, text: &str) -> String {
    format!(
        r#"<p class="message {kind}" role="{}">{}</p>"#,
        if kind == "error" { "alert" } else { "status" },
        escape(text)
    )
}

/// Shows bytes as text: UTF-8 as it is (lossy), escaped.
pub fn bytes_text(bytes: &[u8]) -> String {
    escape(&String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_attribute_quotes() {
        assert_eq!(escape(r#"<script>"x"&'y'</script>"#), "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;");
        assert_eq!(url_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }
}
