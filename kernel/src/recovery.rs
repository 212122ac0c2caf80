//! Recovery: after a start, every delivery the journal holds as pending (acked but not finished when the previous
//! process stopped or crashed) is dispatched again with its original delivery id, in bounded pages. Replay uses
//! the same dispatch.

use crate::Kernel;
use crate::store::journal::{PendingDelivery, drop_deliveries, pending_deliveries};
use hookwire_actors::messages::Dispatch;
use hookwire_actors::request::render_context;
use std::sync::Arc;

/// Deliveries loaded per page.
pub const PAGE_SIZE: i64 = 1000;

/// Dispatches every pending delivery again; returns how many.
pub async fn redeliver_pending(kernel: Arc<Kernel>) -> usize {
    let mut after = None;
    let mut num_dispatched = 0;
    loop {
        let page = match pending_deliveries(kernel.store.pool(), after.as_ref(), PAGE_SIZE).await {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(%error, "could not load pending deliveries; they will be retried at the next start");
                return num_dispatched;
            }
        };
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.delivery_id.clone());
        num_dispatched += dispatch(&kernel, page).await;
    }
    if num_dispatched > 0 {
        tracing::info!(num_dispatched, "redelivering pending deliveries from before the restart");
    }
    num_dispatched
}

/// Hands deliveries to their webhook actors as new attempts (same delivery id); those whose webhook no longer
/// exists are marked dropped. Returns how many were dispatched.
pub async fn dispatch(kernel: &Kernel, deliveries: Vec<PendingDelivery>) -> usize {
    let mut orphans = Vec::new();
    let mut num_dispatched = 0;
    for pending in deliveries {
        let Some(webhook) = kernel.services.index.find(&pending.event.group_id, &pending.webhook_id) else {
            orphans.push(pending.delivery_id);
            continue;
        };
        // Waiting for a place among the webhook's deliveries in memory paces recovery to the delivery rate.
        let admission = Some(webhook.runtime.admit().await);
        let context = Arc::new(render_context(&pending.event, &pending.profile));
        kernel.services.supervisor.webhook(&webhook.id).do_send(Dispatch {
            delivery_id: pending.delivery_id,
            webhook,
            event: Arc::new(pending.event),
            context,
            attempt: pending.num_attempts + 1,
            admission,
        });
        num_dispatched += 1;
    }
    if !orphans.is_empty()
        && let Err(error) = drop_deliveries(kernel.store.pool(), &orphans).await
    {
        tracing::warn!(%error, "could not mark deliveries of deleted webhooks as dropped");
    }
    num_dispatched
}
