use super::*;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

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
            run_spec($file, include_str!(concat!("../../../../tests/conformance/mustache-spec/", $file, ".json")));
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
