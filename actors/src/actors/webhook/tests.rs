//! Unit tests of the webhook actor's answers.

use super::report::{chunks, render_response, response_text};
use crate::actors::host::HttpResponse;
use crate::domain::definition::CompiledWebhook;
use crate::domain::ids::WebhookId;
use crate::domain::template::{RenderLimits, Template};

#[test]
fn chunks_are_512_bytes_from_index_0_and_respect_characters() {
    let body = "a".repeat(1300);
    let sizes: Vec<usize> = chunks(&body, 512).map(str::len).collect();
    assert_eq!(sizes, [512, 512, 276]);
    let accented = "é".repeat(300);
    assert!(chunks(&accented, 512).all(|chunk| chunk.len() <= 512));
    assert_eq!(chunks(&accented, 512).collect::<String>(), accented);
    assert_eq!(chunks("", 512).count(), 0);
}

const MAX: usize = 100 * 1024;

fn webhook(json: &str) -> CompiledWebhook {
    let definition = crate::domain::definition::WebhookDefinition::from_json(json).unwrap();
    CompiledWebhook::compile(WebhookId::generate(), crate::domain::ids::GroupId::generate(), definition).unwrap()
}

fn text(webhook: &CompiledWebhook, response: &HttpResponse, max_body_bytes: usize) -> String {
    response_text(webhook, response, max_body_bytes, RenderLimits::default()).unwrap()
}

fn response(content_type: Option<&str>, body: &'static [u8]) -> HttpResponse {
    let mut headers = http::HeaderMap::new();
    if let Some(content_type) = content_type {
        headers.insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
    }
    HttpResponse { status: 200, headers, body: bytes::Bytes::from_static(body) }
}

#[test]
fn a_binary_body_becomes_a_data_url_when_asked_and_text_stays_text() {
    let with_data_url = webhook(r#"{"event":"a","url":"http://x/","dataUrlResponseEvent":true}"#);
    let binary = response(Some("image/png"), &[0x89, b'P', b'N', b'G', 0xff, 0x00]);
    assert_eq!(text(&with_data_url, &binary, MAX), "data:image/png;base64,iVBOR/8A");
    let untyped = response(None, &[0xff]);
    assert_eq!(text(&with_data_url, &untyped, MAX), "data:application/octet-stream;base64,/w==");
    let spaced = response(Some("text/plain; charset=latin1"), &[0xe9]);
    assert_eq!(text(&with_data_url, &spaced, MAX), "data:text/plain;charset=latin1;base64,6Q==");
    assert_eq!(text(&with_data_url, &response(Some("image/png"), "été".as_bytes()), MAX), "été");
    let plain = webhook(r#"{"event":"a","url":"http://x/"}"#);
    assert_eq!(text(&plain, &binary, MAX), "\u{fffd}PNG\u{fffd}\u{0}");
}

#[test]
fn a_body_cut_inside_a_character_is_text_cut_short_not_binary() {
    let with_data_url = webhook(r#"{"event":"a","url":"http://x/","dataUrlResponseEvent":true}"#);
    let cut = response(Some("text/plain"), &[b'a', 0xc3]);
    assert_eq!(text(&with_data_url, &cut, 2), "a", "the host kept 2 bytes of a longer text");
    assert_eq!(text(&with_data_url, &cut, MAX), "data:text/plain;base64,YcM=", "a whole body");
}

#[test]
fn a_response_template_reads_the_json_response() {
    let template = Template::parse("{{{results.0.elevation}}}", crate::domain::template::Dialect::Mustache).unwrap();
    let body = br#"{"results":[{"elevation":1608.637939453125}],"status":"OK"}"#;
    assert_eq!(render_response(&template, body, RenderLimits::default()).unwrap(), "1608.637939453125");
}

#[test]
fn a_response_template_over_the_budget_gives_the_error_that_names_it() {
    let hostile = webhook(
        r#"{"event":"a","url":"http://x/","responseTemplate":"{{#a}}{{#a}}{{#a}}{{#a}}{{/a}}{{/a}}{{/a}}{{/a}}"}"#,
    );
    let body = format!("{{\"a\":[{}]}}", vec!["1"; 505].join(","));
    let answer = HttpResponse { status: 200, headers: http::HeaderMap::new(), body: body.into() };
    let error = response_text(&hostile, &answer, MAX, RenderLimits::default()).unwrap_err();
    assert_eq!(
        error,
        "RENDER: responseTemplate: work over the render budget of 1000000 steps (max_render_steps): sections iterate too much"
    );
    let limits = RenderLimits { max_bytes: 10, ..RenderLimits::default() };
    let copy = webhook(r#"{"event":"a","url":"http://x/","responseTemplate":"{{a}}"}"#);
    let error = response_text(&copy, &answer, MAX, limits).unwrap_err();
    assert_eq!(error, "RENDER: responseTemplate: output over the render budget of 10 bytes (max_render_bytes)");
}
