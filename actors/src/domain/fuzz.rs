//! Fuzzing on stable Rust (no `cargo fuzz`, which needs nightly): seeded random inputs, part grammar-aware and
//! part plain noise, thrown at what strangers and tenants control. Each target is a `fuzz_*` test:
//!
//! - `fuzz_template_parse_and_render_within_budget`: Mustache and Blynk templates (sections, inverted sections,
//!   comments, partials, set-delimiter tags, dotted names and indexes, unbalanced tags, raw noise) rendered
//!   against nested JSON contexts under random budgets. No panic; output and work never over the budget; a
//!   rendering that fits gives the same text as one with a budget too large to matter.
//! - `fuzz_webhook_definitions_compile_and_build_requests_within_budget`: Particle-shaped definitions (every
//!   field, with values of every JSON type and template strings), mutated definition text, and noise, through
//!   `WebhookDefinition::from_json` (what Particle import and the admin API use), export and re-import, `compile`
//!   and `build_request` with event data of every shape. No panic; bodies and URLs never over the budget.
//! - `fuzz_device_publish_validation`: event names and data as a device frame carries them, through
//!   `validate_publish`. No panic; whatever it accepts keeps every promise it makes.
//!
//! `cargo test` runs a few hundred cases of each in seconds. The long run sets the number of cases, or a time
//! per target (and, to replay a failure, the seed each test prints when it fails):
//!
//! ```text
//! HOOKWIRE_FUZZ_CASES=1000000 cargo test --release --locked -p hookwire-actors fuzz_
//! HOOKWIRE_FUZZ_CASES=1000000000 HOOKWIRE_FUZZ_SECONDS=200 cargo test --release --locked -p hookwire-actors fuzz_ -- --test-threads=1 --nocapture
//! HOOKWIRE_FUZZ_SEED=1234 HOOKWIRE_FUZZ_CASES=5678 cargo test -p hookwire-actors fuzz_template
//! ```
//!
//! (a failing test prints the seed and case count to replay it with).

use crate::domain::definition::{CompiledWebhook, WebhookDefinition};
use crate::domain::event::{Event, MAX_NAME_BYTES, is_hook_event, validate_publish};
use crate::domain::ids::{DeviceId, GroupId, WebhookId};
use crate::domain::request::{DeviceProfile, build_request, render_context, render_context_for};
use crate::domain::template::{BudgetExceeded, Dialect, RenderBudget, RenderLimits, RootRead, Template};
use crate::domain::time::Instant;
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

/// Cases per target when `HOOKWIRE_FUZZ_CASES` is not set: a few seconds of a debug build.
const SHORT_RUN_CASES: u64 = 300;

/// SplitMix64: small, fast, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Runs `case` for each case number with its own generator, and on a panic fails with the seed and the case
/// number that reproduce it (the panic's own message, printed by the hook, shows the input). Stops after
/// `HOOKWIRE_FUZZ_CASES` cases, or after `HOOKWIRE_FUZZ_SECONDS` seconds when that comes first.
fn run(target: &str, mut case: impl FnMut(&mut Rng)) {
    let env = |name: &str| std::env::var(name).ok().and_then(|value| value.parse::<u64>().ok());
    let num_cases = env("HOOKWIRE_FUZZ_CASES").unwrap_or(SHORT_RUN_CASES);
    let deadline = env("HOOKWIRE_FUZZ_SECONDS").map(|secs| Instant::now() + Duration::from_secs(secs));
    let seed = env("HOOKWIRE_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    });
    let started = Instant::now();
    let mut seeds = Rng(seed);
    let mut num_run = 0;
    while num_run < num_cases {
        if num_run % 1024 == 0 && deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
        let case_seed = seeds.next();
        let outcome = catch_unwind(AssertUnwindSafe(|| case(&mut Rng(case_seed))));
        assert!(
            outcome.is_ok(),
            "{target}: case {num_run} panicked; replay it with HOOKWIRE_FUZZ_SEED={seed} HOOKWIRE_FUZZ_CASES={} \
             (case seed {case_seed})",
            num_run + 1
        );
        num_run += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!("{target}: {num_run} cases in {secs:.1} s, seed {seed}, no failure");
}

// ---------------------------------------------------------------------------------------------
// Generators.

const NAMES: [&str; 19] = [
    "a",
    "b",
    "c",
    ".",
    "a.b",
    "a.0",
    "c.1.d",
    "0",
    "PARTICLE_EVENT_VALUE",
    "PARTICLE_EVENT_NAME",
    "PARTICLE_DEVICE_ID",
    "PARTICLE_EVENT_JSON",
    "PARTICLE_EVENT_BASE64",
    "SPARK_PUBLISHED_AT",
    "PRODUCT_ID",
    "x.y.z",
    "a.b.c.d.e",
    "é",
    "PARTICLE_EVENT_JSON.name",
];

const NOISE: [&str; 22] = [
    "{", "}", "{{", "}}", "{{{", "}}}", "#", "^", "/", "!", "&", ">", "=", " ", "\n", "\r\n", "\t", "%s", "/pin/",
    "/pin[", "]/", "\u{0}",
];

fn random_text(rng: &mut Rng, max_len: usize) -> String {
    let len = rng.below(max_len + 1);
    let mut text = String::with_capacity(len);
    for _ in 0..len {
        let c = match rng.below(10) {
            0..=5 => char::from(b'a' + rng.below(26) as u8),
            6 => *rng.pick(&['{', '}', '#', '/', '^', '&', '<', '>', '"', '\'', '=', '!', '.', '%', '[', ']']),
            7 => *rng.pick(&[' ', '\n', '\r', '\t', '\u{0}']),
            8 => *rng.pick(&['é', '€', '😀', '\u{fffd}', '\u{202e}']),
            _ => char::from(b'0' + rng.below(10) as u8),
        };
        text.push(c);
    }
    text
}

/// A Mustache template: mostly well formed (balanced sections, delimiters changed and used), sometimes broken.
fn mustache_template(rng: &mut Rng) -> String {
    let mut out = String::new();
    let mut delimiters = (String::from("{{"), String::from("}}"));
    mustache_nodes(rng, &mut out, &mut delimiters, 0);
    if rng.one_in(10) {
        // Break it somewhere: cut, or splice noise in.
        let mut cut = rng.below(out.len() + 1);
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        if rng.one_in(2) {
            out.truncate(cut);
        } else {
            let noise = *rng.pick(&NOISE);
            out.insert_str(cut, noise);
        }
    }
    out
}

fn mustache_nodes(rng: &mut Rng, out: &mut String, delimiters: &mut (String, String), depth: usize) {
    let num_nodes = rng.below(6) + usize::from(depth == 0);
    for _ in 0..num_nodes {
        let (open, close) = (delimiters.0.clone(), delimiters.1.clone());
        let name = *rng.pick(&NAMES);
        match rng.below(12) {
            0 | 1 => out.push_str(&random_text(rng, 8)),
            2 | 3 => write!(out, "{open}{name}{close}").unwrap_or(()),
            4 => write!(out, "{open}{{{name}}}{close}").unwrap_or(()),
            5 => write!(out, "{open}& {name} {close}").unwrap_or(()),
            6 | 7 if depth < 5 => {
                let sigil = if rng.one_in(3) { '^' } else { '#' };
                let standalone = if rng.one_in(3) { "\n  " } else { "" };
                write!(out, "{standalone}{open}{sigil}{name}{close}{standalone}").unwrap_or(());
                mustache_nodes(rng, out, delimiters, depth + 1);
                // Delimiters changed inside are used for the closing tag too.
                let (open, close) = (&delimiters.0, &delimiters.1);
                let closing = if rng.one_in(20) { *rng.pick(&NAMES) } else { name };
                write!(out, "{open}/{closing}{close}").unwrap_or(());
            }
            8 => write!(out, "{open}! {} {close}", random_text(rng, 6).replace(close.as_str(), "")).unwrap_or(()),
            9 => write!(out, "{open}> {name}{close}").unwrap_or(()),
            10 => {
                let new = rng.pick(&[("<%", "%>"), ("[[", "]]"), ("{{", "}}"), ("|", "|"), ("<", ">")]);
                write!(out, "{open}={} {}={close}", new.0, new.1).unwrap_or(());
                *delimiters = (new.0.to_owned(), new.1.to_owned());
            }
            _ => {
                let noise = *rng.pick(&NOISE);
                out.push_str(noise);
            }
        }
    }
}

/// A Blynk template: placeholders among text.
fn blynk_template(rng: &mut Rng) -> String {
    let mut out = String::new();
    for _ in 0..rng.below(8) {
        match rng.below(6) {
            0 => out.push_str("/pin/"),
            1 => out.push_str("%s"),
            2 => write!(out, "/pin[{}]/", rng.below(12)).unwrap_or(()),
            3 => out.push_str("/datetime_iso/"),
            _ => out.push_str(&random_text(rng, 6)),
        }
    }
    out
}

fn any_template(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => random_text(rng, 40),
        1 => blynk_template(rng),
        _ => mustache_template(rng),
    }
}

fn json_key(rng: &mut Rng) -> String {
    if rng.one_in(4) {
        random_text(rng, 4)
    } else {
        let name = *rng.pick(&NAMES);
        name.split('.').next().unwrap_or(name).to_owned()
    }
}

/// A JSON value, nested up to `depth`, with now and then a long array (the issue's `[1,1,...]`).
fn json_value(rng: &mut Rng, depth: usize) -> Value {
    let leaf = depth == 0 || rng.one_in(3);
    match rng.below(if leaf { 5 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => match rng.below(4) {
            0 => json!(rng.below(1000)),
            1 => json!(-(rng.below(1000) as i64)),
            2 => json!(rng.next()),
            _ => json!(f64::from_bits(rng.next()).clamp(-1e300, 1e300) * if rng.one_in(2) { 1e-10 } else { 1.0 }),
        },
        3 | 4 => Value::String(if rng.one_in(3) { any_template(rng) } else { random_text(rng, 16) }),
        5 if rng.one_in(6) => Value::Array(vec![json!(1); rng.below(600)]),
        5 | 6 => Value::Array((0..rng.below(5)).map(|_| json_value(rng, depth - 1)).collect()),
        _ => Value::Object((0..rng.below(5)).map(|_| (json_key(rng), json_value(rng, depth - 1))).collect()),
    }
}

fn random_limits(rng: &mut Rng) -> RenderLimits {
    match rng.below(4) {
        0 => RenderLimits::default(),
        1 => RenderLimits { max_bytes: rng.below(64), max_steps: rng.below(64) as u64 },
        _ => RenderLimits { max_bytes: rng.below(100_000), max_steps: rng.below(50_000) as u64 },
    }
}

// ---------------------------------------------------------------------------------------------
// Targets.

#[test]
fn fuzz_template_parse_and_render_within_budget() {
    // Parsed, rendered, over the output budget, over the work budget.
    let mut counts = [0u64; 4];
    run("fuzz_template_parse_and_render_within_budget", |rng| {
        let source = any_template(rng);
        let dialect = if rng.one_in(4) { Dialect::Blynk } else { Dialect::Mustache };
        let Ok(template) = Template::parse(&source, dialect) else {
            return;
        };
        counts[0] += 1;
        let context = match rng.below(4) {
            0 => json_value(rng, 4),
            _ => Value::Object((0..rng.below(6)).map(|_| (json_key(rng), json_value(rng, 4))).collect()),
        };
        let limits = random_limits(rng);
        let mut budget = RenderBudget::new(limits);
        // One instant for Blynk's `/datetime_iso/`, so that two renderings can be compared.
        let now = std::time::UNIX_EPOCH + Duration::from_millis(rng.next() >> 22);
        let result = template.render_at(&context, now, &mut budget);
        // A context with only what the template says it reads renders the same, spending the same.
        let mut is_whole = false;
        let mut names = Vec::new();
        template.root_reads(&mut |read| match read {
            RootRead::Whole => is_whole = true,
            RootRead::Name(name) => names.push(name.to_owned()),
        });
        if let (false, Value::Object(map)) = (is_whole, &context) {
            let only_read = map.iter().filter(|(key, _)| names.contains(key)).map(|(k, v)| (k.clone(), v.clone()));
            let mut reduced_budget = RenderBudget::new(limits);
            let reduced = template.render_at(&Value::Object(only_read.collect()), now, &mut reduced_budget);
            assert_eq!(reduced, result, "{source:?} reads {names:?} of {context}");
            assert_eq!(reduced_budget.num_steps(), budget.num_steps(), "{source:?}");
        }
        assert!(budget.num_bytes() <= limits.max_bytes, "{source:?} over the output budget");
        assert!(budget.num_steps() <= limits.max_steps, "{source:?} over the work budget");
        let big = RenderLimits { max_bytes: 64 << 20, max_steps: 20_000_000 };
        match result {
            Ok(text) => {
                counts[1] += 1;
                assert!(text.len() <= limits.max_bytes, "{source:?} rendered {} bytes", text.len());
                assert_eq!(budget.num_bytes(), text.len());
                // The budget stops a rendering; it never changes one.
                let unbounded = template.render_at(&context, now, &mut RenderBudget::new(big));
                assert_eq!(unbounded.as_ref(), Ok(&text), "{source:?}");
            }
            Err(BudgetExceeded::Bytes { max }) => {
                counts[2] += 1;
                assert_eq!(max, limits.max_bytes);
            }
            Err(BudgetExceeded::Steps { max }) => {
                counts[3] += 1;
                assert_eq!(max, limits.max_steps);
            }
        }
    });
    let [parsed, rendered, over_bytes, over_steps] = counts;
    eprintln!(
        "  {parsed} parsed, {rendered} rendered, {over_bytes} over the output budget, {over_steps} over the work budget"
    );
}

/// A Particle-shaped definition: a random subset of the fields, each with a value of a likely or an unlikely type.
fn definition_json(rng: &mut Rng) -> Value {
    let mut map = Map::new();
    let template_or_any =
        |rng: &mut Rng| -> Value { if rng.one_in(6) { json_value(rng, 2) } else { Value::String(any_template(rng)) } };
    let pairs = |rng: &mut Rng| -> Value {
        if rng.one_in(8) {
            return json_value(rng, 2);
        }
        let pairs = (0..rng.below(5)).map(|_| {
            let key = if rng.one_in(3) { any_template(rng) } else { json_key(rng) };
            let value = match rng.below(6) {
                0 => json!(rng.below(100)),
                1 => json!(rng.one_in(2)),
                2 => json_value(rng, 1),
                _ => Value::String(any_template(rng)),
            };
            (key, value)
        });
        Value::Object(pairs.collect())
    };
    map.insert("event".into(), if rng.one_in(10) { json_value(rng, 1) } else { json!(random_text(rng, 12)) });
    let url = match rng.below(6) {
        0 => json!(any_template(rng)),
        1 => json_value(rng, 1),
        _ => json!(format!(
            "{}://{}/{}",
            rng.pick(&["http", "https", "HTTP", "ftp"]),
            rng.pick(&["example.com", "127.0.0.1:8080", "{{a}}", "", "[::1]", "h"]),
            any_template(rng)
        )),
    };
    map.insert("url".into(), url);
    if rng.one_in(2) {
        map.insert("requestType".into(), json!(rng.pick(&["GET", "POST", "PUT", "DELETE", "PATCH", "get", "HEAD"])));
    }
    match rng.below(5) {
        0 => {
            let json_field = if rng.one_in(3) { json!(any_template(rng)) } else { json_value(rng, 4) };
            map.insert("json".into(), json_field);
        }
        1 => {
            map.insert("form".into(), pairs(rng));
        }
        2 => {
            map.insert("body".into(), template_or_any(rng));
        }
        _ => {}
    }
    for (field, chance) in [("query", 3), ("headers", 3)] {
        if rng.one_in(chance) {
            map.insert(field.into(), pairs(rng));
        }
    }
    if rng.one_in(4) {
        let auth = if rng.one_in(5) {
            json_value(rng, 1)
        } else {
            json!({"username": any_template(rng), "password": any_template(rng)})
        };
        map.insert("auth".into(), auth);
    }
    for field in ["responseTemplate", "responseTopic", "errorResponseTopic", "name"] {
        if rng.one_in(4) {
            map.insert(field.into(), template_or_any(rng));
        }
    }
    for field in ["noDefaults", "rejectUnauthorized", "unchunked", "dataUrlResponseEvent", "disabled", "mydevices"] {
        if rng.one_in(5) {
            map.insert(field.into(), if rng.one_in(6) { json_value(rng, 1) } else { json!(rng.one_in(2)) });
        }
    }
    if rng.one_in(6) {
        map.insert("x-dialect".into(), json!(rng.pick(&["mustache", "blynk", "other"])));
    }
    if rng.one_in(6) {
        map.insert("x-minIntervalMs".into(), json!(rng.next() >> rng.below(64)));
    }
    if rng.one_in(6) {
        let retry = match rng.below(3) {
            0 => json!({"attempts": rng.below(30), "backoff": [rng.below(1000), rng.below(100_000)]}),
            1 => {
                json!({"attempts": rng.below(30), "base": rng.next() >> 40, "cap": rng.next() >> 30, "jitter": rng.one_in(2)})
            }
            _ => json_value(rng, 2),
        };
        map.insert("x-retry".into(), retry);
    }
    if rng.one_in(8) {
        map.insert(
            "deviceID".into(),
            json!(if rng.one_in(2) { DeviceId::generate().to_string() } else { random_text(rng, 10) }),
        );
    }
    if rng.one_in(10) {
        map.insert(random_text(rng, 8), json_value(rng, 1));
    }
    Value::Object(map)
}

/// Definition text: a generated definition, that text damaged, or noise.
fn definition_text(rng: &mut Rng) -> String {
    let text = definition_json(rng).to_string();
    match rng.below(10) {
        0 => random_text(rng, 200),
        1 | 2 => {
            let mut bytes = text.into_bytes();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len());
                match rng.below(3) {
                    0 if !bytes.is_empty() => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, *rng.pick(b"{}[]\",:\\0a")),
                    _ if !bytes.is_empty() => bytes[at] = *rng.pick(b"{}[]\",:\\0a"),
                    _ => {}
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => text,
    }
}

/// Event data as devices send it: JSON objects of every shape, the issue's `{"a":[1,...]}`, and plain text.
fn event_data(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 => random_text(rng, 64),
        1 => format!("{{\"a\":[{}]}}", vec!["1"; rng.below(506)].join(",")),
        _ => {
            let object: Map<String, Value> = (0..rng.below(6)).map(|_| (json_key(rng), json_value(rng, 3))).collect();
            let text = Value::Object(object).to_string();
            if text.len() > 1024 { text[..text.floor_char_boundary(1024)].to_owned() } else { text }
        }
    }
}

#[test]
fn fuzz_webhook_definitions_compile_and_build_requests_within_budget() {
    // Definitions read, compiled; requests built, refused (over budget or not renderable).
    let mut counts = [0u64; 4];
    run("fuzz_webhook_definitions_compile_and_build_requests_within_budget", |rng| {
        let text = definition_text(rng);
        let Ok(definition) = WebhookDefinition::from_json(&text) else {
            return;
        };
        counts[0] += 1;
        // An exported definition imports again and compiles the same way (Particle import/export).
        let exported = definition.to_json();
        let reimported = WebhookDefinition::from_json(&exported);
        assert!(reimported.is_ok(), "{text} exported as {exported} does not import: {reimported:?}");
        let compiled = CompiledWebhook::compile(WebhookId::generate(), GroupId::generate(), definition);
        let recompiled =
            reimported.map(|again| CompiledWebhook::compile(WebhookId::generate(), GroupId::generate(), again));
        assert_eq!(compiled.as_ref().err(), recompiled.as_ref().ok().and_then(|again| again.as_ref().err()), "{text}");
        let Ok(webhook) = compiled else {
            return;
        };
        counts[1] += 1;
        let _ = webhook.matches(&random_text(rng, 10), None);
        for _ in 0..3 {
            let data = event_data(rng);
            let device = rng.one_in(4).then(DeviceId::generate);
            let event = Event::new(GroupId::generate(), device, random_text(rng, 10), data, 0);
            let profile = DeviceProfile {
                id: None,
                product_id: random_text(rng, 4),
                firmware_version: random_text(rng, 4),
                owner: random_text(rng, 4),
            };
            let context = render_context(&event, &profile);
            let limits = random_limits(rng);
            let built = build_request(&webhook, &event, &context, limits);
            // The context built with what the webhook reads gives the same request, or the same error, and the same
            // topics (the published time is the event's, so both contexts hold the same).
            let reduced = render_context_for(&event, &profile, webhook.context_needs);
            let rebuilt = build_request(&webhook, &event, &reduced, limits);
            let parts = |request: &crate::domain::request::RenderedRequest| {
                (request.method.clone(), request.uri.clone(), request.headers.clone(), request.body.clone())
            };
            assert_eq!(
                rebuilt.as_ref().map(parts),
                built.as_ref().map(parts),
                "{text}: with only {:?}",
                webhook.context_needs
            );
            for topic in [&webhook.response_topic, &webhook.error_response_topic].into_iter().flatten() {
                let render = |context: &Value| topic.template.render(context, &mut RenderBudget::new(limits));
                assert_eq!(render(&reduced), render(&context), "{text}: topic {}", topic.template.source());
            }
            let Ok(request) = built else {
                counts[3] += 1;
                continue;
            };
            counts[2] += 1;
            assert!(request.body.len() <= limits.max_bytes, "{text}: a body of {} bytes", request.body.len());
            let url_len = request.uri.to_string().len();
            assert!(url_len <= limits.max_bytes + 1, "{text}: a URL of {url_len} bytes");
        }
    });
    let [read, compiled, built, refused] = counts;
    eprintln!("  {read} definitions read, {compiled} compiled, {built} requests built, {refused} refused");
}

#[test]
fn fuzz_device_publish_validation() {
    let mut num_accepted = 0u64;
    run("fuzz_device_publish_validation", |rng| {
        let device = DeviceId::generate();
        let name = match rng.below(6) {
            0 => format!("{}/{}", if rng.one_in(2) { device.as_str() } else { "dev_x" }, random_text(rng, 20)),
            1 => format!(
                "{}{}",
                rng.pick(&["hook-sent", "hook-response", "hook-error", "hook-", "hook-sentinel"]),
                random_text(rng, 6)
            ),
            2 => random_text(rng, 80),
            _ => random_text(rng, 12),
        };
        let data = if rng.one_in(2) { event_data(rng) } else { random_text(rng, 1100) };
        let max = *rng.pick(&[0, 1, 64, 1024, 4096]);
        let _ = crate::domain::event::addressed_device(&name);
        if validate_publish(&name, &data, max).is_ok() {
            num_accepted += 1;
            assert!(!name.is_empty() && name.len() <= MAX_NAME_BYTES, "{name:?}");
            assert!(!name.chars().any(char::is_control), "{name:?}");
            assert!(!is_hook_event(&name), "{name:?}");
            assert!(data.len() <= max, "{} bytes of data over {max}", data.len());
        }
    });
    eprintln!("  {num_accepted} accepted");
}
