-- Web sign-in sessions (the web UI): a person signs in with an API key
-- and gets a random session token in a cookie. Only the token's SHA-256
-- (hex) is stored, never the token. A session lives until it expires,
-- is ended, or its key is revoked (checked on every use) or deleted
-- (the rows go with it). Times are Unix milliseconds.
CREATE TABLE web_sessions (
    -- sha256 hex of the token
    token_hash TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    -- the session's anti-CSRF token, echoed by its forms
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
-- the sweep of expired sessions
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
-- a key's sessions (the cascade when a key row is deleted)
CREATE INDEX web_sessions_key ON web_sessions (key_id);
