-- One row that readiness probes upsert: proof that the database takes a
-- write (a full disk or a stuck lock fails it).
CREATE TABLE health (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);
