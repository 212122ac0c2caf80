-- Signing secrets of webhooks with `x-signing` (Standard Webhooks). A secret is kept as it was shown to the user
-- (`whsec_` and the base64 of 32 random bytes): the server must read it to sign, HMAC being symmetric.
-- expires_at NULL marks the current secret (one per webhook); a secret rotated out keeps signing until
-- expires_at (epoch milliseconds), is ignored after, and is pruned at the next rotation.

CREATE TABLE webhook_secrets (
    webhook_id  TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    PRIMARY KEY (webhook_id, secret)
);
CREATE UNIQUE INDEX webhook_secrets_current ON webhook_secrets (webhook_id) WHERE expires_at IS NULL;
