//! The webhook index: for each group, an immutable snapshot of its compiled webhooks, swapped atomically when a
//! webhook changes. Matching an event takes no lock and sends no message: a device actor loads the snapshot
//! (one atomic load) and scans its group's entries, which are sorted by prefix.

use crate::domain::definition::CompiledWebhook;
use crate::domain::ids::{DeviceId, GroupId, WebhookId};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;

/// The webhooks of one group, sorted by event prefix.
#[derive(Debug, Default)]
pub struct GroupIndex {
    webhooks: Vec<Arc<CompiledWebhook>>,
}

impl GroupIndex {
    /// Builds a group's index.
    pub fn new(mut webhooks: Vec<Arc<CompiledWebhook>>) -> Self {
        webhooks.sort_by(|a, b| a.definition.event.cmp(&b.definition.event).then_with(|| a.id.cmp(&b.id)));
        GroupIndex { webhooks }
    }

    /// Appends to `out` every webhook that an event of this name from this device triggers.
    pub fn matching_into(&self, name: &str, device_id: Option<&DeviceId>, out: &mut Vec<Arc<CompiledWebhook>>) {
        // Prefixes sort before every name they are a prefix of, so the scan can stop at the first prefix that
        // sorts after the name.
        for webhook in &self.webhooks {
            if webhook.definition.event.as_str() > name {
                break;
            }
            if webhook.matches(name, device_id) {
                out.push(webhook.clone());
            }
        }
    }

    /// The group's webhooks.
    pub fn webhooks(&self) -> &[Arc<CompiledWebhook>] {
        &self.webhooks
    }
}

/// Every group's webhooks.
#[derive(Debug, Default)]
pub struct WebhookIndex {
    groups: ArcSwap<HashMap<GroupId, Arc<GroupIndex>>>,
}

impl WebhookIndex {
    /// The current snapshot of a group.
    pub fn group(&self, group_id: &GroupId) -> Option<Arc<GroupIndex>> {
        self.groups.load().get(group_id).cloned()
    }

    /// Replaces a group's webhooks (an admin change: the map is copied, then swapped in).
    ///
    /// A webhook already in the group keeps its run-time state (failure count, disabled): its new compiled form
    /// takes over the [`WebhookRuntime`](crate::domain::definition::WebhookRuntime) of the old one, which deliveries in
    /// flight still hold, so an edit neither resets nor forks the count. Webhooks are handed in freshly compiled;
    /// one that is already shared gets a copy of the old state instead.
    pub fn replace_group(&self, group_id: &GroupId, mut webhooks: Vec<Arc<CompiledWebhook>>) {
        if let Some(current) = self.group(group_id) {
            for webhook in &mut webhooks {
                let Some(old) = current.webhooks.iter().find(|old| old.id == webhook.id) else {
                    continue;
                };
                if Arc::ptr_eq(&old.runtime, &webhook.runtime) {
                    continue;
                }
                match Arc::get_mut(webhook) {
                    Some(fresh) => fresh.runtime = old.runtime.clone(),
                    None => webhook.runtime.restore(old.runtime.consecutive_failures(), old.runtime.disabled_reason()),
                }
            }
        }
        let index = Arc::new(GroupIndex::new(webhooks));
        self.groups.rcu(|groups| {
            let mut groups = HashMap::clone(groups);
            groups.insert(group_id.clone(), index.clone());
            groups
        });
    }

    /// The groups that have an index.
    pub fn group_ids(&self) -> Vec<GroupId> {
        self.groups.load().keys().cloned().collect()
    }

    /// Forgets a group.
    pub fn remove_group(&self, group_id: &GroupId) {
        self.groups.rcu(|groups| {
            let mut groups = HashMap::clone(groups);
            groups.remove(group_id);
            groups
        });
    }

    /// Finds a webhook of a group by id (admin, recovery and replay paths: it scans the group).
    pub fn find(&self, group_id: &GroupId, webhook_id: &WebhookId) -> Option<Arc<CompiledWebhook>> {
        self.group(group_id)?.webhooks.iter().find(|webhook| &webhook.id == webhook_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::definition::WebhookDefinition;

    fn webhook(group: &GroupId, event: &str) -> Arc<CompiledWebhook> {
        let definition = WebhookDefinition { event: event.into(), url: "http://x/".into(), ..Default::default() };
        Arc::new(CompiledWebhook::compile(WebhookId::generate(), group.clone(), definition).unwrap())
    }

    #[test]
    fn matching_finds_every_prefix_of_the_name_and_nothing_else() {
        let group = GroupId::generate();
        let index = WebhookIndex::default();
        index.replace_group(
            &group,
            vec![webhook(&group, "temp"), webhook(&group, ""), webhook(&group, "te"), webhook(&group, "tex")],
        );
        let mut out = Vec::new();
        index.group(&group).unwrap().matching_into("temperature", None, &mut out);
        let mut prefixes: Vec<_> = out.iter().map(|w| w.definition.event.clone()).collect();
        prefixes.sort();
        assert_eq!(prefixes, ["", "te", "temp"]);
        assert!(index.group(&GroupId::generate()).is_none());
    }

    #[test]
    fn an_edited_webhook_keeps_its_run_time_state() {
        let group = GroupId::generate();
        let index = WebhookIndex::default();
        let original = webhook(&group, "temp");
        original.runtime.record_failure();
        original.runtime.disable("1 consecutive failures".into());
        index.replace_group(&group, vec![original.clone(), webhook(&group, "other")]);

        let definition =
            WebhookDefinition { event: "temperature".into(), url: "http://y/".into(), ..Default::default() };
        let edited = Arc::new(CompiledWebhook::compile(original.id.clone(), group.clone(), definition).unwrap());
        let added = webhook(&group, "new");
        index.replace_group(&group, vec![edited, added.clone()]);

        let found = index.find(&group, &original.id).unwrap();
        assert_eq!(found.definition.event, "temperature", "the new definition");
        assert!(Arc::ptr_eq(&found.runtime, &original.runtime), "the same state as deliveries in flight");
        assert!(found.runtime.is_disabled() && found.runtime.consecutive_failures() == 1);
        assert!(!index.find(&group, &added.id).unwrap().runtime.is_disabled(), "a new webhook starts afresh");

        found.runtime.enable();
        let mut out = Vec::new();
        index.group(&group).unwrap().matching_into("temperature", None, &mut out);
        assert_eq!(out.len(), 1, "enabled again, it matches");
    }
}
