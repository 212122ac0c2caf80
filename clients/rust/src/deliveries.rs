//! The delivery calls of the admin client: the attempt log, daily history and replay of a webhook.

use crate::{AdminClient, Result, proto};

impl AdminClient {
    /// A webhook's last 10 successful and last 10 failed attempts, newest first (as Particle's console shows
    /// them), since `since` (ISO-8601 UTC) when given.
    pub async fn recent_attempts(
        &self,
        webhook_id: impl Into<String>,
        since: Option<&str>,
    ) -> Result<Vec<proto::Attempt>> {
        let request = proto::ListAttemptsRequest {
            webhook_id: webhook_id.into(),
            since: since.unwrap_or_default().to_owned(),
            ..Default::default()
        };
        Ok(self.deliveries.clone().list_attempts(request).await?.into_inner().attempts)
    }

    /// One page of all of a webhook's attempts, newest first; pass the returned token back for the next page.
    pub async fn attempt_page(
        &self,
        webhook_id: impl Into<String>,
        since: Option<&str>,
        limit: u32,
        page_token: Option<&str>,
    ) -> Result<proto::ListAttemptsResponse> {
        let request = proto::ListAttemptsRequest {
            webhook_id: webhook_id.into(),
            all: true,
            since: since.unwrap_or_default().to_owned(),
            limit,
            page_token: page_token.unwrap_or_default().to_owned(),
        };
        Ok(self.deliveries.clone().list_attempts(request).await?.into_inner())
    }

    /// A webhook's delivery counts per day for the last `days` days, today included (0: 31 days).
    pub async fn history(&self, webhook_id: impl Into<String>, days: u32) -> Result<Vec<proto::DayCounts>> {
        let request = proto::GetHistoryRequest { webhook_id: webhook_id.into(), days };
        Ok(self.deliveries.clone().get_history(request).await?.into_inner().days)
    }

    /// Delivers again a webhook's deliveries created since `since` (ISO-8601 UTC) whose status is `status`
    /// (`failed`, `skipped` or `all`); returns how many were queued.
    pub async fn replay(&self, webhook_id: impl Into<String>, since: &str, status: &str) -> Result<u64> {
        let request =
            proto::ReplayRequest { webhook_id: webhook_id.into(), since: since.to_owned(), status: status.to_owned() };
        Ok(self.deliveries.clone().replay(request).await?.into_inner().num_replayed)
    }

    /// Delivers again the delivery of one attempt.
    pub async fn resend_attempt(&self, attempt_id: i64) -> Result<u64> {
        let request = proto::ResendAttemptRequest { attempt_id };
        Ok(self.deliveries.clone().resend_attempt(request).await?.into_inner().num_replayed)
    }
}
