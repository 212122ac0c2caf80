//! Dispatching deliveries taken from the database: those the rescuer claimed (start-up recovery, a takeover; see
//! [`crate::cluster::rescue`]) and those a replay or resend reopened. Each goes to its webhook actor with its
//! original delivery id, its next attempt number and its stored due time, so that the backoff of a retry is
//! honoured whoever sends it.

use crate::Kernel;
use crate::store::journal::{PendingDelivery, drop_deliveries};
use hookwire_actors::actors::messages::Dispatch;
use hookwire_actors::actors::webhook::DispatchAt;
use hookwire_actors::domain::request::render_context;
use hookwire_actors::domain::time;
use std::sync::Arc;

/// Deliveries loaded per page.
pub const PAGE_SIZE: i64 = 1000;

/// Hands deliveries to their webhook actors as new attempts (same delivery id) at their due times; those whose
/// webhook no longer exists are marked dropped. Returns how many were dispatched.
pub async fn dispatch(kernel: &Kernel, deliveries: Vec<PendingDelivery>) -> usize {
    let mut orphans = Vec::new();
    let mut num_dispatched = 0;
    let mut is_index_reloaded = false;
    for pending in deliveries {
        let mut webhook = kernel.services.index.find(&pending.event.group_id, &pending.webhook_id);
        if webhook.is_none() && !is_index_reloaded {
            // A webhook created through another kernel moments ago may not be in this kernel's index yet: look at
            // the database before taking its delivery for an orphan.
            is_index_reloaded = true;
            if let Err(error) = kernel.load_index().await {
                tracing::warn!(%error, "could not reload the webhook index");
            }
            webhook = kernel.services.index.find(&pending.event.group_id, &pending.webhook_id);
        }
        let Some(webhook) = webhook else {
            orphans.push(pending.delivery_id);
            continue;
        };
        let due_at_ms = pending.next_attempt_at_ms.filter(|due| *due > time::now_ms());
        // Waiting for a place among the webhook's deliveries in memory paces recovery to the delivery rate; one
        // that waits for its due time takes no place meanwhile, as a retry.
        let admission = match due_at_ms {
            None => Some(webhook.runtime.admit().await),
            Some(_) => None,
        };
        let context = Arc::new(render_context(&pending.event, &pending.profile));
        let dispatch = Dispatch {
            delivery_id: pending.delivery_id,
            webhook,
            event: Arc::new(pending.event),
            context,
            attempt: pending.num_attempts + 1,
            admission,
        };
        kernel.services.registry.webhook(&dispatch.webhook.id).do_send(DispatchAt { dispatch, due_at_ms });
        num_dispatched += 1;
    }
    if !orphans.is_empty()
        && let Err(error) = drop_deliveries(kernel.store.pool(), kernel.membership.node_id(), &orphans).await
    {
        tracing::warn!(%error, "could not mark deliveries of deleted webhooks as dropped");
    }
    num_dispatched
}
