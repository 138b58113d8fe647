-- vcguard's shared state: approval requests and ticket claims.
-- Portable SQL (SQLite and PostgreSQL): TEXT ids, times as BIGINT unix seconds,
-- lists and records as JSON text.

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    approver_group TEXT NOT NULL,
    policy TEXT NOT NULL,
    reason TEXT,
    summary TEXT NOT NULL,
    state TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_by TEXT,
    comment TEXT,
    decided_at BIGINT,
    window_until BIGINT,
    uses_left BIGINT NOT NULL
);

CREATE INDEX approvals_key ON approvals (requester, action, target, body_hash);
CREATE INDEX approvals_state ON approvals (state);

CREATE TABLE ticket_claims (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    ticket_kind TEXT NOT NULL,
    ticket_context TEXT NOT NULL,
    hosts TEXT NOT NULL,
    actions TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    until_at BIGINT NOT NULL,
    released_at BIGINT
);

CREATE INDEX ticket_claims_user ON ticket_claims (user_name);
