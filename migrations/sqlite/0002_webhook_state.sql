-- The run-time state of webhooks that must survive restarts (x-failureLimit): consecutive failed deliveries (a
-- delivery that finally failed counts once, whatever its retries), and why the webhook is disabled at run time
-- (`5 consecutive failures`, `410 Gone from example.com`, `disabled by an admin`), NULL while it is enabled.
-- Written by the journal in its batched transactions; a webhook without a row has no failures and is enabled.

CREATE TABLE webhook_state (
    webhook_id            TEXT PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    consecutive_failures  BIGINT NOT NULL DEFAULT 0,
    disabled_reason       TEXT,
    updated_at            BIGINT NOT NULL
);
