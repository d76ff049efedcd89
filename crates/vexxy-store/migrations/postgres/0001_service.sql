-- vexxy service schema (PostgreSQL). Times are Unix milliseconds (BIGINT)
-- so one set of queries serves SQLite and PostgreSQL alike.

CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    tier TEXT NOT NULL,
    monthly_quota BIGINT,
    webhook_secret TEXT NOT NULL,
    submit_seq BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_used_at BIGINT
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    dedupe_key TEXT,
    image_ref TEXT NOT NULL,
    image_digest TEXT,
    request TEXT NOT NULL,
    callback_url TEXT,
    priority BIGINT NOT NULL,
    state TEXT NOT NULL,
    progress BIGINT NOT NULL DEFAULT 0,
    phase TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_after BIGINT NOT NULL,
    lease_owner TEXT,
    lease_token BIGINT NOT NULL DEFAULT 0,
    lease_expires_at BIGINT,
    timeout_ms BIGINT NOT NULL,
    error TEXT,
    summary TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    completed_at BIGINT,
    updated_at BIGINT NOT NULL,
    expired_at BIGINT
);
CREATE UNIQUE INDEX jobs_dedupe ON jobs (org_id, dedupe_key);
CREATE INDEX jobs_claim ON jobs (state, priority DESC, created_at);
CREATE INDEX jobs_org ON jobs (org_id, created_at);
CREATE INDEX jobs_lease ON jobs (state, lease_expires_at);

CREATE TABLE job_events (
    id BIGSERIAL PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    at BIGINT NOT NULL,
    state TEXT NOT NULL,
    worker TEXT,
    attempt BIGINT NOT NULL,
    detail TEXT
);
CREATE INDEX job_events_job ON job_events (job_id, id);

CREATE TABLE blobs (
    digest TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    last_referenced_at BIGINT NOT NULL
);

CREATE TABLE artifacts (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    size BIGINT NOT NULL,
    media_type TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, name)
);
CREATE INDEX artifacts_digest ON artifacts (digest);

CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    org_id TEXT,
    key_id TEXT,
    action TEXT NOT NULL,
    job_id TEXT,
    detail TEXT
);
CREATE INDEX audit_log_org ON audit_log (org_id, at);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    org_id TEXT NOT NULL REFERENCES orgs(id),
    url TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    delivered_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_due ON webhook_deliveries (state, next_attempt_at);

CREATE TABLE webhook_attempts (
    id BIGSERIAL PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id),
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status_code BIGINT,
    error TEXT,
    duration_ms BIGINT NOT NULL
);
