-- Admin tokens scoped to one group, with a role (`viewer` or `editor`). Only the token's SHA-256 is stored.
-- last_used_at is written at most once a minute per token (epoch milliseconds; NULL until first used).
CREATE TABLE admin_tokens (
    id            TEXT PRIMARY KEY,
    group_id      TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'editor')),
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX admin_tokens_by_group ON admin_tokens (group_id, id);
