-- Organisations' signing keys, registry credentials and registry
-- allow-lists. Private keys and passwords are stored sealed
-- (XChaCha20-Poly1305 under the server's secret key, bound to the
-- organisation, the purpose and the row; src/secrets.rs), never in plain.

CREATE TABLE org_signing_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    -- ecdsa-p256 or ed25519
    algorithm TEXT NOT NULL,
    public_key_pem TEXT NOT NULL,
    -- as vexxy-attest (and securesystemslib) computes it
    keyid TEXT NOT NULL,
    -- the PKCS#8 PEM, sealed; emptied when the key is revoked
    private_key_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- 1 for the one key the organisation's jobs sign with
    active BIGINT NOT NULL DEFAULT 0,
    revoked_at BIGINT
);
CREATE INDEX org_signing_keys_org ON org_signing_keys (org_id, created_at);
CREATE UNIQUE INDEX org_signing_keys_active ON org_signing_keys (org_id) WHERE active = 1;

CREATE TABLE org_registry_credentials (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    -- host[:port] as image references name the registry (docker.io for Docker Hub)
    registry TEXT NOT NULL,
    username TEXT NOT NULL,
    password_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, registry)
);

CREATE TABLE org_registry_allow (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    -- host, host:port or *.suffix
    pattern TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, pattern)
);

-- What a job that signed and attached its VEX attached (JSON), once complete.
ALTER TABLE jobs ADD COLUMN attestation TEXT;
