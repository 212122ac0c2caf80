//! The console's sign-in throttling and its sessions shared through the database: a session opened through one
//! kernel works through another on the same database (behind a load balancer) and survives a restart.

use crate::console::console_kernel;
use hookwire_tests::ROOT_TOKEN;
use hookwire_tests::console::ConsoleClient;

#[tokio::test]
async fn failed_sign_ins_from_one_address_are_refused_for_a_while_whatever_the_token() {
    let (_kernel, url) = console_kernel(|settings| settings.console_signin_failures = 3).await;
    let stranger = ConsoleClient::new(&url);
    for attempt in 0..3 {
        let refused = stranger.post("/signin", &[("token", &format!("hwa_guess-{attempt}"))], &[]).await;
        assert_eq!(refused.status, 401, "failure {attempt} is an ordinary refusal");
    }
    let throttled = stranger.post("/signin", &[("token", "hwa_guess-3")], &[]).await;
    assert_eq!(throttled.status, 429);
    assert!(throttled.body.contains("Too many failed sign-ins from your address: try again in"), "{}", throttled.body);
    assert!(throttled.set_cookie.is_none());
    // Not even the right token is looked at until the minute is over.
    let valid = stranger.post("/signin", &[("token", ROOT_TOKEN)], &[]).await;
    assert_eq!(valid.status, 429, "refused before the token is checked");
}

#[tokio::test]
async fn a_session_opened_through_one_kernel_works_through_another_and_after_a_restart() {
    let (kernel, url) = console_kernel(|_| {}).await;
    let fixture = kernel.fixture().await;
    let group_page = format!("/groups/{}", fixture.group_id);
    let console = ConsoleClient::sign_in(&url, ROOT_TOKEN).await;
    assert_eq!(console.get(&group_page).await.status, 200);

    if kernel.settings.database.starts_with("postgres") {
        // A second kernel on the same database: the same cookie opens its pages and its forms take the session's
        // CSRF token; signing out through it ends the session through the first as well.
        let database = kernel.settings.database.clone();
        let (_other, other_url) = console_kernel(|settings| settings.database = database).await;
        let there = console.with_base(&other_url);
        let page = there.get(&group_page).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let signed_out = there.post_form(&group_page, "/signout", &[]).await;
        assert_eq!(signed_out.status, 303);
        assert_eq!(console.get(&group_page).await.location.as_deref(), Some("/signin"));
        assert_eq!(there.get(&group_page).await.location.as_deref(), Some("/signin"));
        return;
    }
    // SQLite serves one kernel: the session survives its restart.
    let kernel = kernel.restart().await;
    let url = kernel.console_url.clone().expect("a console");
    let after = console.with_base(&url);
    let page = after.get(&group_page).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(after.post_form(&group_page, "/signout", &[]).await.status, 303);
    assert_eq!(after.get(&group_page).await.location.as_deref(), Some("/signin"));
}
