//! The registry on real arbiters, with time injected where it decides (idle hosts).

use super::*;
use crate::actors::testing::services;

fn key(url: &str) -> HostKey {
    HostKey::of(&url.parse().unwrap())
}

#[test]
fn a_webhook_actor_is_started_once_per_id_however_many_ask_at_once() {
    let (services, _journal) = services(|settings| settings.num_arbiters = 2);
    let registry = &services.registry;
    let id = WebhookId::generate();
    let addresses: Vec<Addr<WebhookActor>> = std::thread::scope(|scope| {
        let askers: Vec<_> = (0..8).map(|_| scope.spawn(|| registry.webhook(&id))).collect();
        askers.into_iter().map(|asker| asker.join().unwrap()).collect()
    });
    assert!(addresses.iter().all(|address| *address == addresses[0]), "one actor for the id");
    let other = registry.webhook(&WebhookId::generate());
    assert!(other != addresses[0], "another id, another actor");
    assert_eq!(registry.snapshot().webhook_actors, 2);

    registry.forget_webhook(&id);
    assert_eq!(registry.snapshot().webhook_actors, 1);
    assert!(registry.webhook(&id) != addresses[0], "a forgotten webhook gets a new actor when it has work again");
    registry.stop();
}

#[test]
fn each_id_has_one_arbiter_and_ids_are_spread_over_all_of_them() {
    let (services, _journal) = services(|settings| settings.num_arbiters = 2);
    let registry = &services.registry;
    let arbiter_of = |id: &WebhookId| {
        let handle = registry.arbiter_for(id) as *const ArbiterHandle;
        registry.inner.runtime.arbiters.iter().position(|arbiter| std::ptr::eq(arbiter, handle)).unwrap()
    };
    let ids: Vec<WebhookId> = (0..32).map(|_| WebhookId::generate()).collect();
    assert!(ids.iter().all(|id| arbiter_of(id) == arbiter_of(id)), "always the same arbiter for one id");
    let used: std::collections::HashSet<usize> = ids.iter().map(arbiter_of).collect();
    assert_eq!(used.len(), 2, "32 ids use both arbiters");
    registry.stop();
}

#[test]
fn an_idle_host_actor_is_retired_after_the_idle_timeout_and_a_new_request_starts_a_fresh_one() {
    let (services, _journal) = services(|_| {});
    let registry = &services.registry;
    let idle_timeout = registry.inner.host_settings.idle_timeout;
    let destination = key("http://127.0.0.1:9/");
    let host = registry.host(destination.clone()).unwrap();
    assert!(registry.host(destination.clone()).unwrap() == host, "one actor per destination");

    let now = Instant::now();
    assert_eq!(registry.retire_idle_hosts(now), 0, "a new host is kept for its idle timeout");
    assert_eq!(registry.retire_idle_hosts(now + idle_timeout / 2), 0);
    assert_eq!(registry.retire_idle_hosts(now + idle_timeout), 1, "idle for its whole timeout: retired");
    assert_eq!(registry.snapshot().host_actors, 0);
    assert!(registry.host(destination).unwrap() != host, "a fresh actor for the next request");
    registry.stop();
}

#[test]
fn destinations_refused_before_connecting_get_no_actor_and_new_ones_wait_for_room_at_the_cap() {
    let (services, _journal) = services(|settings| settings.host.max_host_actors = 1);
    let registry = &services.registry;
    let blocked = registry.host(key("http://10.0.0.1/")).unwrap_err();
    assert_eq!(blocked.class, ErrorClass::Blocked);
    assert_eq!(registry.snapshot().host_actors, 0, "no actor for a blocked destination");

    registry.host(key("http://127.0.0.1:9/")).unwrap();
    let refused = registry.host(key("http://127.0.0.1:10/")).unwrap_err();
    assert_eq!(refused.class, ErrorClass::HostLimit, "{}", refused.message);
    let idle_timeout = registry.inner.host_settings.idle_timeout;
    assert_eq!(registry.retire_idle_hosts(Instant::now() + idle_timeout), 1);
    assert!(registry.host(key("http://127.0.0.1:10/")).is_ok(), "room again once the idle one is retired");
    registry.stop();
}
