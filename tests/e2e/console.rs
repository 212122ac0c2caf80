//! The web console: sign-in and sessions, access exactly as in the API (a group token never reaches another
//! group, a viewer changes nothing, a forged cross-site form is refused), and every page and action driven in a
//! real headless Chromium against a real kernel and receiver.

use hookwire_client::proto;
use hookwire_tests::browser::Browser;
use hookwire_tests::console::ConsoleClient;
use hookwire_tests::{FakeReceiver, Fixture, ROOT_TOKEN, Reply, TestKernel};
use std::time::Duration;

async fn kernel_with_console() -> (TestKernel, String) {
    console_kernel(|_| {}).await
}

/// A kernel with its console on a loopback port, and the console's URL.
pub(crate) async fn console_kernel(
    configure: impl FnOnce(&mut hookwire_kernel::settings::Settings),
) -> (TestKernel, String) {
    let kernel = TestKernel::spawn_with(|settings| {
        settings.console_listen = hookwire_kernel::settings::ConsoleListen(Some("127.0.0.1:0".parse().unwrap()));
        configure(settings);
    })
    .await;
    let url = kernel.console_url.clone().expect("a console");
    (kernel, url)
}

async fn group_token(fixture: &Fixture, role: proto::Role) -> String {
    fixture.admin.create_token(fixture.group_id.clone(), role, "console").await.expect("create token").token
}

#[tokio::test]
async fn signing_in_gives_a_strict_http_only_cookie_and_the_token_never_shows() {
    let (kernel, url) = kernel_with_console().await;
    let fixture = kernel.fixture().await;
    let token = group_token(&fixture, proto::Role::Editor).await;

    let refused = ConsoleClient::new(&url).post("/signin", &[("token", "hwa_not-a-token")], &[]).await;
    assert_eq!(refused.status, 401);
    assert!(refused.set_cookie.is_none());
    assert!(!refused.body.contains("hwa_not-a-token"), "a refused token is not echoed");
    let anonymous = ConsoleClient::new(&url).get(&format!("/groups/{}", fixture.group_id)).await;
    assert_eq!((anonymous.status, anonymous.location.as_deref()), (303, Some("/signin")));

    let page = ConsoleClient::new(&url).post("/signin", &[("token", &token)], &[]).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some(format!("/groups/{}", fixture.group_id).as_str()));
    let cookie = page.set_cookie.expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(cookie.contains(attribute), "{attribute} missing from {cookie}");
    }
    assert!(!cookie.contains(&token) && !page.location.unwrap().contains(&token));

    let console = ConsoleClient::sign_in(&url, &token).await;
    let group_page = console.get(&format!("/groups/{}", fixture.group_id)).await;
    assert_eq!(group_page.status, 200, "{}", group_page.body);
    assert!(!group_page.body.contains(&token), "the token never appears in a page");

    let signed_out = console.post_form(&format!("/groups/{}", fixture.group_id), "/signout", &[]).await;
    assert_eq!(signed_out.status, 303);
    assert!(signed_out.set_cookie.unwrap().contains("Max-Age=0"));
    let after = console.get(&format!("/groups/{}", fixture.group_id)).await;
    assert_eq!(after.location.as_deref(), Some("/signin"), "the old cookie no longer opens anything");

    // Revoking the token ends the access of a session opened with it, at once.
    let console = ConsoleClient::sign_in(&url, &token).await;
    let tokens = fixture.admin.list_tokens(fixture.group_id.clone()).await.unwrap();
    for listed in tokens {
        fixture.admin.revoke_token(listed.id).await.unwrap();
    }
    let after = console.get(&format!("/groups/{}", fixture.group_id)).await;
    assert_eq!(after.location.as_deref(), Some("/signin"));
}

#[tokio::test]
async fn a_group_token_cannot_reach_another_groups_pages_or_actions() {
    let (kernel, url) = kernel_with_console().await;
    let own = kernel.fixture().await;
    let other = kernel.fixture().await;
    let other_webhook = other.webhook(serde_json::json!({"event": "t", "url": "http://127.0.0.1:9/x"})).await;
    let token = group_token(&own, proto::Role::Editor).await;
    let console = ConsoleClient::sign_in(&url, &token).await;
    let home = format!("/groups/{}", own.group_id);

    for path in [
        format!("/groups/{}", other.group_id),
        format!("/groups/{}/devices", other.group_id),
        format!("/groups/{}/live", other.group_id),
        format!("/groups/{}/live/stream", other.group_id),
        format!("/groups/{}/templates", other.group_id),
        format!("/groups/{}/templates/slack", other.group_id),
    ] {
        let page = console.get(&path).await;
        assert_eq!(page.status, 403, "{path}: {}", page.body);
        assert!(!page.body.contains(&other_webhook));
    }
    let page = console.get(&format!("/webhooks/{other_webhook}")).await;
    assert_eq!(page.status, 404, "another group's webhook is not found, as in the API");
    let groups = console.get("/groups").await;
    assert_eq!(groups.location.as_deref(), Some(home.as_str()), "a group token sees only its group");

    for action in ["disable", "test", "rotate-secret", "definition"] {
        let page = console
            .post_form(&home, &format!("/webhooks/{other_webhook}/{action}"), &[("definition", "{}"), ("since", "1h")])
            .await;
        assert_eq!(page.status, 404, "{action}: {}", page.body);
    }
    let page = console.post_form(&home, &format!("/groups/{}/devices", other.group_id), &[("name", "x")]).await;
    assert_eq!(page.status, 403);
    let page = console.post_form(&home, &format!("/devices/{}/rotate", other.device_id), &[]).await;
    assert_eq!(page.status, 404);
    let page = console
        .post_form(
            &home,
            &format!("/groups/{}/templates/json", other.group_id),
            &[("event", "x"), ("url", "https://a")],
        )
        .await;
    assert_eq!(page.status, 403);

    let webhook = other.admin.get_webhook(other_webhook.clone()).await.unwrap();
    assert!(webhook.disabled_reason.is_empty(), "nothing changed in the other group");
    assert_eq!(other.admin.list_devices(other.group_id.clone()).await.unwrap().len(), 1);
    assert_eq!(other.admin.list_webhooks(other.group_id.clone(), None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_viewer_sees_everything_of_its_group_and_can_change_nothing() {
    let receiver = FakeReceiver::start().await;
    let (kernel, url) = kernel_with_console().await;
    let fixture = kernel.fixture().await;
    let webhook = fixture.webhook(serde_json::json!({"event": "t", "url": format!("{}/x", receiver.base_url)})).await;
    kernel.device(&fixture.device_token).await.publish("t", "1").await.unwrap();
    receiver.wait_for(1, Duration::from_secs(5)).await;
    let token = group_token(&fixture, proto::Role::Viewer).await;
    let console = ConsoleClient::sign_in(&url, &token).await;

    let page = console.get(&format!("/webhooks/{webhook}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("read only"), "{}", page.body);
    assert!(!page.body.contains("/disable\""), "no action forms for a viewer");
    for path in [format!("/groups/{}", fixture.group_id), format!("/groups/{}/devices", fixture.group_id)] {
        assert_eq!(console.get(&path).await.status, 200, "{path}");
    }
    let webhook_page = format!("/webhooks/{webhook}");
    for action in ["disable", "enable", "test", "replay", "definition", "rotate-secret"] {
        let page = console
            .post_form(
                &webhook_page,
                &format!("/webhooks/{webhook}/{action}"),
                &[("definition", "{}"), ("since", "1h")],
            )
            .await;
        assert_eq!(page.status, 403, "{action}: {}", page.body);
    }
    let attempt = fixture.admin.recent_attempts(webhook.clone(), None).await.unwrap()[0].id;
    let page = console.post_form(&webhook_page, &format!("/attempts/{attempt}/resend"), &[]).await;
    assert_eq!(page.status, 403);
    let page =
        console.post_form(&webhook_page, &format!("/groups/{}/devices", fixture.group_id), &[("name", "x")]).await;
    assert_eq!(page.status, 403);
    let page =
        console.post_form(&webhook_page, &format!("/devices/{}/rename", fixture.device_id), &[("name", "x")]).await;
    assert_eq!(page.status, 403);
    assert!(fixture.admin.get_webhook(webhook).await.unwrap().disabled_reason.is_empty());
    assert_eq!(receiver.requests().len(), 1, "no test or replay was sent");
}

#[tokio::test]
async fn a_forged_cross_site_form_is_refused() {
    let (kernel, url) = kernel_with_console().await;
    let fixture = kernel.fixture().await;
    let webhook = fixture.webhook(serde_json::json!({"event": "t", "url": "http://127.0.0.1:9/x"})).await;
    let console = ConsoleClient::sign_in(&url, ROOT_TOKEN).await;
    let action = format!("/webhooks/{webhook}/disable");
    let csrf = console.get(&format!("/webhooks/{webhook}")).await.csrf().unwrap();
    let host = url.trim_start_matches("http://");

    let no_token = console.post(&action, &[], &[]).await;
    assert_eq!(no_token.status, 403, "{}", no_token.body);
    let wrong_token = console.post(&action, &[("csrf", "forged")], &[]).await;
    assert_eq!(wrong_token.status, 403);
    let cross_origin =
        console.post(&action, &[("csrf", &csrf)], &[("origin", "http://evil.example"), ("host", host)]).await;
    assert_eq!(cross_origin.status, 403);
    let cross_site = console.post(&action, &[("csrf", &csrf)], &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(cross_site.status, 403);
    let login_csrf =
        ConsoleClient::new(&url).post("/signin", &[("token", ROOT_TOKEN)], &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(login_csrf.status, 403, "a cross-site form cannot sign a browser in either");
    assert!(fixture.admin.get_webhook(webhook.clone()).await.unwrap().disabled_reason.is_empty());

    let same_origin =
        console.post(&action, &[("csrf", &csrf)], &[("origin", &url), ("sec-fetch-site", "same-origin")]).await;
    assert_eq!(same_origin.status, 303, "{}", same_origin.body);
    assert!(!fixture.admin.get_webhook(webhook).await.unwrap().disabled_reason.is_empty());
}

#[tokio::test]
async fn hostile_definitions_and_event_data_are_shown_escaped() {
    let receiver = FakeReceiver::start().await;
    receiver.reply_with(Reply { body: "<script>alert(2)</script>".into(), ..Reply::default() });
    let (kernel, url) = kernel_with_console().await;
    let fixture = kernel.fixture().await;
    let webhook = fixture
        .webhook(serde_json::json!({"event": "t", "name": "<img src=x onerror=alert(1)>", "url": format!("{}/x", receiver.base_url)}))
        .await;
    kernel.device(&fixture.device_token).await.publish("t", "<script>alert(3)</script>").await.unwrap();
    receiver.wait_for(1, Duration::from_secs(5)).await;
    let console = ConsoleClient::sign_in(&url, ROOT_TOKEN).await;
    for _ in 0..50 {
        if !fixture.admin.recent_attempts(webhook.clone(), None).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for path in [format!("/groups/{}", fixture.group_id), format!("/webhooks/{webhook}")] {
        let page = console.get(&path).await;
        assert_eq!(page.status, 200);
        assert!(!page.body.contains("<img src=x"), "{path}");
        assert!(!page.body.contains("<script>alert"), "{path}");
    }
    let page = console.get(&format!("/webhooks/{webhook}")).await;
    assert!(page.body.contains("&lt;script&gt;alert(2)&lt;/script&gt;"), "the response is shown, escaped");
}

#[tokio::test]
async fn the_attempt_log_pages_through_every_attempt_newest_first() {
    let receiver = FakeReceiver::start().await;
    let (kernel, url) = kernel_with_console().await;
    let fixture = kernel.fixture().await;
    let webhook = fixture.webhook(serde_json::json!({"event": "t", "url": format!("{}/x", receiver.base_url)})).await;
    let device = kernel.device(&fixture.device_token).await;
    for number in 0..55 {
        device.publish("t", format!("reading-{number}")).await.unwrap();
    }
    receiver.wait_for(55, Duration::from_secs(10)).await;
    // Every attempt written first (the history counts a delivery once its attempt is in).
    for _ in 0..200 {
        let days = fixture.admin.history(webhook.clone(), 1).await.unwrap();
        if days.iter().map(|day| day.succeeded).sum::<u64>() == 55 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let console = ConsoleClient::sign_in(&url, ROOT_TOKEN).await;
    let count = |body: &str| body.matches(r#"<li class="attempt""#).count();
    let first = console.get(&format!("/webhooks/{webhook}?all=1&since=1h")).await;
    assert_eq!(count(&first.body), 50, "a page holds 50");
    let start = first.body.find(r#"id="older-attempts" href=""#).expect("a link to older attempts") + 26;
    let link = first.body[start..].split('"').next().unwrap().replace("&amp;", "&");
    let second = console.get(&link).await;
    assert_eq!(count(&second.body), 5, "the rest on the next page");
    assert!(!second.body.contains("older-attempts"));
    let shown: Vec<String> = [&first.body, &second.body]
        .iter()
        .flat_map(|body| body.split("reading-").skip(1).map(|rest| rest.split('"').next().unwrap().to_owned()))
        .collect();
    let distinct: std::collections::HashSet<&String> = shown.iter().collect();
    assert_eq!(distinct.len(), 55, "every attempt once");
    let recent = console.get(&format!("/webhooks/{webhook}")).await;
    assert_eq!(count(&recent.body), 10, "by default the last 10 successes (and no errors)");
    assert!(recent.body.contains("reading-54"), "newest first");
    let future = console.get(&format!("/webhooks/{webhook}?all=1&since=2999-01-01T00:00:00Z")).await;
    assert_eq!(count(&future.body), 0, "the time filter applies");
    // The group's list shows each webhook's last attempt: this one's, and none yet for a webhook without one.
    let idle = fixture.webhook(serde_json::json!({"event": "never", "url": format!("{}/y", receiver.base_url)})).await;
    let group = console.get(&format!("/groups/{}", fixture.group_id)).await;
    let row = |id: &str| group.body.split(&format!(r#"href="/webhooks/{id}""#)).nth(1).unwrap().split("</tr>").next();
    let busy_row = row(&webhook).unwrap();
    assert!(busy_row.contains(r#"<span class="badge ok">200</span>"#), "{busy_row}");
    assert!(row(&idle).unwrap().contains("none yet"));
}

fn screenshot_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("HOOKWIRE_SCREENSHOTS").map(|folder| std::path::PathBuf::from(folder).join(format!("{name}.png")))
}

async fn shoot(browser: &Browser, name: &str) {
    if let Some(path) = screenshot_path(name) {
        browser.script("window.scrollTo(0, 0)").await;
        browser.screenshot(&path).await;
    }
}

#[tokio::test]
async fn every_page_and_action_works_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let receiver = FakeReceiver::start().await;
    receiver.respond(200, r#"{"ok":true}"#);
    let (kernel, url) = kernel_with_console().await;
    let fixture = kernel.fixture().await;
    let device = kernel.device(&fixture.device_token).await;

    // Sign in; a root token lands on the groups.
    browser.goto(&format!("{url}/")).await;
    shoot(&browser, "signin").await;
    browser.fill("#token", ROOT_TOKEN).await;
    browser.click("#signin").await;
    browser.find("#groups").await;
    assert!(browser.url().await.ends_with("/groups"));
    browser.click(&format!("#groups a[href='/groups/{}']", fixture.group_id)).await;
    browser.find("#webhooks").await;

    // A webhook from a template: the generic JSON POST to the receiver.
    browser.goto(&format!("{url}/groups/{}/templates", fixture.group_id)).await;
    assert_eq!(browser.script("return document.querySelectorAll('#templates li').length").await, 8);
    shoot(&browser, "templates").await;
    browser.click(&format!("a[href='/groups/{}/templates/json']", fixture.group_id)).await;
    browser.fill("#field-event", "temp").await;
    browser.fill("#field-url", "ftp://nowhere").await;
    browser.click("#create-from-template").await;
    browser.wait_for_text("url:").await;
    browser.fill("#field-url", &format!("{}/readings", receiver.base_url)).await;
    browser.click("#create-from-template").await;
    browser.wait_for_text("Webhook created").await;
    let webhook_url = browser.url().await;
    let webhook_path = webhook_url.trim_start_matches(&url).split('?').next().unwrap().to_owned();
    let webhook_id = webhook_path.trim_start_matches("/webhooks/").to_owned();

    // Events flow; the chart and the attempt log show them.
    for value in ["21.5", "22", "22.5"] {
        device.publish("temperature", value).await.unwrap();
    }
    receiver.wait_for(3, Duration::from_secs(10)).await;
    let mut succeeded = String::new();
    for _ in 0..50 {
        browser.goto(&format!("{url}{webhook_path}")).await;
        succeeded = browser.text("#total-succeeded").await;
        if succeeded == "3" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(succeeded, "3", "the chart counts today's deliveries");
    let bars = browser.script("return document.querySelectorAll('#history-chart g.day').length").await;
    assert_eq!(bars, 30);
    let attempts = browser.script("return document.querySelectorAll('#attempts li').length").await;
    assert_eq!(attempts, 3);
    browser.click("#attempts li summary").await;
    assert!(browser.text("#attempts li .exchange").await.contains("HTTP 200"));
    shoot(&browser, "webhook").await;

    // Test, as Particle's test button: the destination's answer is shown.
    browser.fill("#test-data", "from the console").await;
    browser.click("#test").await;
    browser.wait_for_text("Success: the destination answered 200").await;
    assert!(browser.text("#test-outcome").await.contains("200"));
    shoot(&browser, "test").await;
    assert!(receiver.wait_for(4, Duration::from_secs(5)).await.iter().any(|r| r.text().contains("from the console")));

    // Disable, enable.
    browser.goto(&webhook_url).await;
    browser.click(&format!("form[action='/webhooks/{webhook_id}/disable'] button")).await;
    browser.wait_for_text("Webhook disabled.").await;
    assert!(browser.text("#webhook-state").await.contains("disabled by an admin"));
    browser.click(&format!("form[action='/webhooks/{webhook_id}/enable'] button")).await;
    browser.wait_for_text("Webhook enabled.").await;

    // Replay since an hour, resend one attempt.
    browser.fill("#replay-since", "1h").await;
    browser.script("document.getElementById('replay-status').value = 'all'").await;
    browser.click("#replay").await;
    browser.wait_for_text("deliveries queued again").await;
    receiver.wait_for(8, Duration::from_secs(10)).await;
    browser.goto(&format!("{url}{webhook_path}")).await;
    browser.click("#attempts li summary").await;
    browser.click("#attempts li form button").await;
    browser.wait_for_text("Delivery queued again.").await;
    receiver.wait_for(9, Duration::from_secs(10)).await;

    // The full log pages and filters by time.
    browser.goto(&format!("{url}{webhook_path}?all=1&since=1h")).await;
    let all = browser.script("return document.querySelectorAll('#attempts li').length").await;
    assert!(all.as_u64().unwrap() >= 9, "{all}");

    // The definition: an error shows at its field; signing on shows the secret once; rotating shows a new one.
    let definition =
        r#"{"event": "temp", "url": "ftp://x", "json": {"value": "{{{PARTICLE_EVENT_VALUE}}}"}}"#.to_owned();
    browser.fill("#definition", &definition).await;
    browser.click("#save-definition").await;
    browser.wait_for_text("definition-error").await;
    assert!(browser.text("#definition-error").await.contains("url"));
    assert!(browser.text("#definition-error").await.contains("line 1"));
    let definition = format!(
        r#"{{"event": "temp", "name": "readings", "url": "{}/readings", "x-signing": true}}"#,
        receiver.base_url
    );
    browser.fill("#definition", &definition).await;
    browser.click("#save-definition").await;
    browser.wait_for_text("signs its requests").await;
    assert!(browser.text("#secret").await.starts_with("whsec_"));
    browser.click("#continue").await;
    browser.click("#rotate-secret").await;
    browser.wait_for_text("The new signing secret").await;
    let rotated = browser.text("#secret").await;
    assert!(rotated.starts_with("whsec_"));
    browser.goto(&webhook_url).await;
    assert!(!browser.source().await.contains(&rotated), "a secret is shown once only");

    // Devices: create (token once), rename, rotate.
    browser.goto(&format!("{url}/groups/{}/devices", fixture.group_id)).await;
    browser.fill("#device-name", "greenhouse sensor").await;
    browser.click("#create-device").await;
    browser.wait_for_text("Its token").await;
    let token = browser.text("#secret").await;
    assert!(token.starts_with("hwd_"));
    kernel.device(&token).await.publish("other", "1").await.expect("the shown token works");
    browser.click("#continue").await;
    let rename = format!("#rename-{}", fixture.device_id);
    browser.fill(&rename, "renamed in the console").await;
    browser.click(&format!("form[action='/devices/{}/rename'] button", fixture.device_id)).await;
    browser.wait_for_text("renamed in the console").await;
    shoot(&browser, "devices").await;
    browser.click(&format!("form[action='/devices/{}/rotate'] button", fixture.device_id)).await;
    browser.wait_for_text("has a new token").await;
    let new_token = browser.text("#secret").await;
    assert!(device.publish("temperature", "1").await.is_err(), "the old token is refused");
    let device = kernel.device(&new_token).await;

    // Live events: the group's stream by prefix, updating as events arrive.
    browser.goto(&format!("{url}/groups/{}/live?prefix=temp", fixture.group_id)).await;
    browser.wait_for_text("following").await;
    device.publish("temperature", "live-23.5").await.unwrap();
    device.publish("humidity", "not-shown").await.unwrap();
    browser.wait_for_text("live-23.5").await;
    assert!(!browser.source().await.contains("not-shown"), "the prefix filters the stream");
    shoot(&browser, "live").await;

    // A phone's width: nothing overflows sideways.
    browser.resize(390, 844).await;
    for path in
        [format!("/groups/{}", fixture.group_id), format!("/groups/{}/devices", fixture.group_id), webhook_path.clone()]
    {
        browser.goto(&format!("{url}{path}")).await;
        let overflow = browser.script("return document.documentElement.scrollWidth - window.innerWidth").await;
        assert!(overflow.as_i64().unwrap() <= 0, "{path} overflows by {overflow} px at 390 px");
    }
    shoot(&browser, "webhook-phone").await;
    browser.resize(1280, 900).await;

    // Keyboard: the first Tab reaches the skip link; the actions are buttons and links, reachable in order.
    browser.goto(&webhook_url).await;
    assert_eq!(browser.tab(1).await, "Skip to content");
    let focusable = browser.script("return [...document.querySelectorAll('button, a, input, select, textarea')].filter(e => e.tabIndex < 0).length").await;
    assert_eq!(focusable, 0, "nothing interactive is taken out of the tab order");

    // A forged cross-site form, from another origin in the same browser, is refused.
    let forged = FakeReceiver::start().await;
    forged.reply_with(Reply {
        body: format!(
            r#"<html><body><form id="f" method="post" action="{url}/webhooks/{webhook_id}/disable"><input name="csrf" value="guess"></form><script>document.getElementById('f').submit()</script></body></html>"#
        )
        .into(),
        headers: vec![("content-type".into(), "text/html".into())],
        ..Reply::default()
    });
    browser.goto(&format!("{}/forged", forged.base_url)).await;
    browser.wait_for_text("refused").await;
    assert!(fixture.admin.get_webhook(webhook_id.clone()).await.unwrap().disabled_reason.is_empty());

    // Sign out ends the session.
    browser.goto(&webhook_url).await;
    browser.click("#signout").await;
    browser.find("#token").await;
    browser.goto(&webhook_url).await;
    browser.find("#token").await;
    browser.quit().await;
}

/// The page-load bench: a group of 1,000 webhooks and 100,000 attempts over 30 days (half of them on one webhook,
/// the worst case for its page), then each main page loaded 20 times, printing the median, p95 and slowest
/// server time. Run it with:
/// `cargo test --release -p hookwire-tests --test e2e -- --ignored console_page_load_bench --nocapture`.
#[tokio::test]
#[ignore = "a bench: prints figures, asserts none"]
async fn console_page_load_bench() {
    use sqlx::Executor as _;
    let (kernel, url) = kernel_with_console().await;
    let fixture = kernel.fixture().await;
    let mut webhook_ids = Vec::new();
    for batch in 0..5 {
        let definitions = (0..200)
            .map(|index| {
                serde_json::json!({"event": format!("e{batch}-{index}"), "name": format!("hook {batch}-{index}"), "url": "https://example.com/in"})
                    .to_string()
            })
            .collect();
        let created = fixture.admin.batch_create_webhooks(fixture.group_id.clone(), definitions).await.unwrap();
        webhook_ids.extend(created.into_iter().map(|webhook| webhook.id));
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&kernel.settings.database).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let started = std::time::Instant::now();
    let mut transaction = pool.begin().await.unwrap();
    for number in 0..100_000i64 {
        let webhook = if number % 2 == 0 { &webhook_ids[0] } else { &webhook_ids[(number as usize / 2) % 999 + 1] };
        let at = now - (number * 25_920) % (30 * 86_400_000);
        let failed = number % 10 == 0;
        let delivery = format!("dlv_bench{number:027}");
        sqlx::query("INSERT INTO deliveries (id, event_id, webhook_id, status, num_attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, 1, $5, $5)")
            .bind(delivery.as_str())
            .bind(format!("evt_bench{number:027}"))
            .bind(webhook.as_str())
            .bind(if failed { 2i64 } else { 1i64 })
            .bind(at)
            .execute(&mut *transaction)
            .await
            .unwrap();
        sqlx::query("INSERT INTO attempts (delivery_id, webhook_id, event_id, attempt, started_at, duration_ms, request_method, request_url, response_status, error_class, error_message, delivery_status, request_headers, request_body, response_headers, response_body) VALUES ($1, $2, $3, 1, $4, 12, 'POST', 'https://example.com/in', $5, $6, $7, $8, '{\"content-type\":\"application/json\"}', $9, '{\"content-type\":\"application/json\"}', $10)")
            .bind(delivery.as_str())
            .bind(webhook.as_str())
            .bind(format!("evt_bench{number:027}"))
            .bind(at)
            .bind(if failed { 500i64 } else { 200i64 })
            .bind(failed.then_some("HTTP_5XX"))
            .bind(failed.then_some("error status 500 from example.com"))
            .bind(if failed { 2i64 } else { 1i64 })
            .bind(br#"{"event":"temp","data":"21.5"}"#.to_vec())
            .bind(br#"{"ok":true}"#.to_vec())
            .execute(&mut *transaction)
            .await
            .unwrap();
    }
    // The daily outcome summary, filled as migration 0008 fills it on a database that has deliveries.
    sqlx::query(
        "INSERT INTO daily_outcomes (webhook_id, day, succeeded, failed, skipped, dropped) \
             SELECT webhook_id, updated_at / 86400000, SUM(CASE WHEN status = 1 THEN 1 ELSE 0 END), \
             SUM(CASE WHEN status = 2 THEN 1 ELSE 0 END), SUM(CASE WHEN status = 3 THEN 1 ELSE 0 END), \
             SUM(CASE WHEN status = 4 THEN 1 ELSE 0 END) FROM deliveries WHERE status <> 0 \
             GROUP BY webhook_id, updated_at / 86400000",
    )
    .execute(&mut *transaction)
    .await
    .unwrap();
    transaction.commit().await.unwrap();
    let _ = pool.execute("ANALYZE").await;
    let backend = if kernel.settings.database.starts_with("postgres") { "PostgreSQL" } else { "SQLite" };
    println!("{backend}: seeded 1,000 webhooks and 100,000 attempts in {:.1} s", started.elapsed().as_secs_f64());

    let console = ConsoleClient::sign_in(&url, ROOT_TOKEN).await;
    let hot = &webhook_ids[0];
    let cold = &webhook_ids[500];
    let pages = [
        ("group page (50 webhooks with state and last attempt)", format!("/groups/{}", fixture.group_id)),
        ("group page, last page", format!("/groups/{}?page=19", fixture.group_id)),
        ("webhook with 50,000 attempts (chart, last 10+10)", format!("/webhooks/{hot}")),
        ("same, all attempts, first page of 50", format!("/webhooks/{hot}?all=1")),
        ("same, all attempts since 2d", format!("/webhooks/{hot}?all=1&since=2d")),
        ("webhook with 50 attempts", format!("/webhooks/{cold}")),
        ("devices", format!("/groups/{}/devices", fixture.group_id)),
    ];
    println!("{:<55} {:>9} {:>9} {:>9}", "page", "median ms", "p95 ms", "max ms");
    for (label, path) in pages {
        let mut times = Vec::new();
        for _ in 0..20 {
            let started = std::time::Instant::now();
            let page = console.get(&path).await;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(page.status, 200, "{path}");
        }
        times.sort_by(f64::total_cmp);
        println!("{label:<55} {:>9.1} {:>9.1} {:>9.1}", times[10], times[18], times[19]);
    }
}
