-- Indexes for the review views at scale (an organisation with hundreds of
-- images and tens of thousands of statements): an image's current
-- statements, the verdict counts, the queue's oldest item and first-seen
-- order. Measured by crates/vexxy-web/benches/render.rs.
CREATE INDEX statements_image ON statements (org_id, image_digest, present);
CREATE INDEX statements_status ON statements (org_id, present, status);
CREATE INDEX statements_first_seen ON statements (org_id, first_seen_at);
CREATE INDEX statements_backlog ON statements (org_id, present, decision_id, review_reason, decision_expires_at, first_seen_at);
