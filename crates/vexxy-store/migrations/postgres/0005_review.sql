-- The human review loop (issue 15): statements stored per finding
-- (organisation × image digest × vulnerability × package), the
-- decisions people make on them, the images an organisation analysed and
-- the versions of each image's VEX. Times are Unix milliseconds; flags
-- are 0/1 BIGINTs as elsewhere; scores are DOUBLE PRECISION (f64).

-- An organisation's review settings; no row means the defaults.
CREATE TABLE org_review_settings (
    org_id TEXT PRIMARY KEY REFERENCES orgs(id),
    -- not_affected verdicts below this confidence wait for a person
    review_below DOUBLE PRECISION NOT NULL,
    -- 1: not_affected on high and critical findings waits for a person
    four_eyes BIGINT NOT NULL DEFAULT 0,
    -- re-run an image's analysis once its last run is older than this
    rerun_after_ms BIGINT,
    updated_at BIGINT NOT NULL
);

CREATE TABLE images (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    digest TEXT NOT NULL,
    repository TEXT NOT NULL,
    reference TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_analysed_at BIGINT NOT NULL,
    last_analysis_job TEXT NOT NULL,
    -- the last analysis with a traced run
    last_run_job TEXT,
    last_run_at BIGINT,
    -- the newest row of vex_versions (0: none issued)
    vex_version BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, digest)
);
CREATE INDEX images_repository ON images (org_id, repository, last_analysed_at);

CREATE TABLE statements (
    -- derived from (org_id, image_digest, vulnerability_id, package_key)
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    image_digest TEXT NOT NULL,
    repository TEXT NOT NULL,
    vulnerability_id TEXT NOT NULL,
    -- the purl without qualifiers and subpath, with the version
    package_key TEXT NOT NULL,
    package_name TEXT NOT NULL,
    package_version TEXT NOT NULL,
    package_purl TEXT,
    severity TEXT NOT NULL,
    -- unknown 0 … critical 5
    severity_rank BIGINT NOT NULL,
    epss DOUBLE PRECISION,
    -- known exploited (CISA KEV)
    kev BIGINT NOT NULL DEFAULT 0,
    fix_state TEXT NOT NULL,
    -- what the automation decided
    auto_status TEXT NOT NULL,
    auto_justification TEXT,
    auto_confidence DOUBLE PRECISION NOT NULL,
    -- the StatementRecord (JSON), evidence included
    record TEXT NOT NULL,
    evidence_fingerprint TEXT NOT NULL,
    -- the analysis that last recorded it
    job_id TEXT NOT NULL,
    -- 0: the image's latest analysis no longer reports it (kept for history)
    present BIGINT NOT NULL DEFAULT 1,
    -- why it waits for a person (NULL: it does not)
    review_reason TEXT,
    -- the human decision in force (review_decisions.id)
    decision_id TEXT,
    -- the effective status and justification: the decision's, else the automation's
    status TEXT NOT NULL,
    justification TEXT,
    decision_expires_at BIGINT,
    -- a decision on the same evidence in another image of the repository, not applied
    offered_decision_id TEXT,
    assignee TEXT,
    -- optimistic concurrency: bumped by every change of the findings,
    -- presence, decision or assignee
    version BIGINT NOT NULL DEFAULT 1,
    first_seen_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, image_digest, vulnerability_id, package_key)
);
-- (an image's statements: the unique index above)
CREATE INDEX statements_queue ON statements (org_id, present, decision_id, review_reason);
-- a repository's statements, and the offers (same repository, finding)
CREATE INDEX statements_repository ON statements (org_id, repository, vulnerability_id, package_key);
CREATE INDEX statements_vulnerability ON statements (org_id, vulnerability_id);

CREATE TABLE review_decisions (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    statement_id TEXT NOT NULL REFERENCES statements(id),
    -- approve, override, revert, accept_offer
    action TEXT NOT NULL,
    status TEXT,
    justification TEXT,
    impact_statement TEXT,
    action_statement TEXT,
    reason TEXT NOT NULL,
    -- who decided (the key's owner, else its name) and with which key
    author TEXT NOT NULL,
    key_id TEXT NOT NULL,
    -- what the statement rested on when decided
    evidence_fingerprint TEXT NOT NULL,
    auto_status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    -- set when a later decision on the statement replaced it
    superseded_at BIGINT
);
CREATE INDEX review_decisions_statement ON review_decisions (statement_id, created_at);
CREATE INDEX review_decisions_org ON review_decisions (org_id, created_at);

CREATE TABLE vex_versions (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    image_digest TEXT NOT NULL,
    version BIGINT NOT NULL,
    -- the OpenVEX document in the evidence store (kept by retention)
    document_digest TEXT NOT NULL,
    -- its DSSE envelope, when signed
    envelope_digest TEXT,
    -- analysis, decision or reevaluation
    cause TEXT NOT NULL,
    job_id TEXT,
    author TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- what was attached to the image (JSON)
    attestation TEXT,
    PRIMARY KEY (org_id, image_digest, version)
);
CREATE INDEX vex_versions_document ON vex_versions (document_digest);
CREATE INDEX vex_versions_envelope ON vex_versions (envelope_digest);

-- Who a key belongs to (a person's name or address); decisions name it,
-- else the key's name.
ALTER TABLE api_keys ADD COLUMN owner TEXT;
