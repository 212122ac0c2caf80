//! The in-memory webhook index, built from the store: one group after a change, all at start, and again when
//! another kernel on the same database changed webhooks. Stored signing secrets become each webhook's keys.

use crate::Kernel;
use crate::error::KernelError;
use crate::store::secrets::{self, SecretRow};
use crate::store::webhook_state;
use crate::store::webhooks::{self, WebhookRow};
use hookwire_actors::domain::definition::{CompiledWebhook, WebhookDefinition};
use hookwire_actors::domain::ids::{GroupId, WebhookId};
use hookwire_actors::domain::signing::{SigningKey, SigningKeys};
use hookwire_actors::domain::time;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

impl Kernel {
    /// Rebuilds a group's webhook index from the store.
    pub async fn refresh_group_index(&self, group_id: &GroupId) -> Result<(), KernelError> {
        let rows = webhooks::list_webhooks(self.store.pool(), group_id, None).await?;
        let mut keys = signing_keys(secrets::list_group_secrets(self.store.pool(), group_id, time::now_ms()).await?);
        let compiled = rows
            .into_iter()
            .filter_map(|row| {
                let signing = keys.remove(&row.id);
                compile_stored(row, signing)
            })
            .collect();
        self.services.index.replace_group(group_id, compiled);
        Ok(())
    }

    /// Builds the whole index from the store (at start).
    pub async fn load_index(&self) -> Result<usize, KernelError> {
        let rows = webhooks::list_all_webhooks(self.store.pool()).await?;
        let num_webhooks = rows.len();
        self.index_rows(rows).await?;
        Ok(num_webhooks)
    }

    /// Reloads the index when the webhooks in the database changed since `seen` (their fingerprint, updated):
    /// another kernel on the same database created, updated or deleted some. Run-time state (failure counts,
    /// enabling and disabling) stays this kernel's own. Returns whether it reloaded.
    pub async fn sync_index(&self, seen: &mut Option<(i64, i64, i64)>) -> Result<bool, KernelError> {
        let fingerprint = webhooks::fingerprint(self.store.pool()).await?;
        match seen.replace(fingerprint) {
            Some(previous) if previous != fingerprint => {}
            // The first look only notes the fingerprint: the index was loaded at start.
            _ => return Ok(false),
        }
        let stale: HashSet<GroupId> = self.services.index.group_ids().into_iter().collect();
        let loaded = self.index_rows(webhooks::list_all_webhooks(self.store.pool()).await?).await?;
        for group_id in stale.difference(&loaded) {
            self.services.index.replace_group(group_id, Vec::new());
        }
        Ok(true)
    }

    /// Compiles stored webhooks into the index, a group at a time; returns the groups indexed.
    async fn index_rows(&self, rows: Vec<WebhookRow>) -> Result<HashSet<GroupId>, KernelError> {
        let mut keys = signing_keys(secrets::list_all_secrets(self.store.pool(), time::now_ms()).await?);
        let mut states = webhook_state::list_all_states(self.store.pool()).await?;
        let mut by_group: std::collections::HashMap<GroupId, Vec<Arc<CompiledWebhook>>> =
            std::collections::HashMap::new();
        for row in rows {
            let group_id = row.group_id.clone();
            let signing = keys.remove(&row.id);
            if let Some(compiled) = compile_stored(row, signing) {
                // Failure counts and run-time disabling survive restarts; afterwards the index carries them over.
                if let Some(state) = states.remove(&compiled.id) {
                    compiled.runtime.restore(state.consecutive_failures, state.disabled_reason);
                }
                by_group.entry(group_id).or_default().push(compiled);
            }
        }
        let groups = by_group.keys().cloned().collect();
        for (group_id, compiled) in by_group {
            self.services.index.replace_group(&group_id, compiled);
        }
        Ok(groups)
    }
}

/// Compiles a stored webhook with its signing keys; one that no longer compiles (it was valid when stored) is
/// logged and left out.
fn compile_stored(row: WebhookRow, signing: Option<Arc<SigningKeys>>) -> Option<Arc<CompiledWebhook>> {
    let compiled = WebhookDefinition::from_json(&row.definition)
        .and_then(|definition| CompiledWebhook::compile(row.id.clone(), row.group_id.clone(), definition));
    match compiled {
        Ok(mut compiled) => {
            compiled.signing = signing;
            Some(Arc::new(compiled))
        }
        Err(error) => {
            tracing::error!(webhook_id = %row.id, %error, "stored webhook does not compile; it will not fire");
            None
        }
    }
}

/// Turns stored secrets (current and in their grace period) into each webhook's signing keys. A secret that does
/// not parse is logged, without its value, and left out: its webhook then fails its attempts rather than send
/// requests its receiver cannot verify.
fn signing_keys(rows: Vec<SecretRow>) -> HashMap<WebhookId, Arc<SigningKeys>> {
    let mut current = HashMap::new();
    let mut previous: HashMap<WebhookId, Vec<(SigningKey, i64)>> = HashMap::new();
    for row in rows {
        let key = match SigningKey::from_secret(&row.secret) {
            Ok(key) => key,
            Err(error) => {
                tracing::error!(webhook_id = %row.webhook_id, %error, "stored signing secret is unusable");
                continue;
            }
        };
        match row.expires_at {
            None => {
                current.insert(row.webhook_id, key);
            }
            Some(expires_at) => previous.entry(row.webhook_id).or_default().push((key, expires_at)),
        }
    }
    current
        .into_iter()
        .map(|(webhook_id, key)| {
            let keys = previous
                .remove(&webhook_id)
                .into_iter()
                .flatten()
                .fold(SigningKeys::new(key), |keys, (key, expires_at)| keys.with_previous(key, expires_at));
            (webhook_id, Arc::new(keys))
        })
        .collect()
}
