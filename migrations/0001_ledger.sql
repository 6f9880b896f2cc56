-- payrun ledger, version 1: batches, payouts, their append-only history, and rejected rows.
-- Times are UTC text in one fixed-width form (2026-11-20T23:24:21.123Z) so that text order is
-- time order. Money is integer cents.

CREATE TABLE batches (
    id              INTEGER PRIMARY KEY,
    -- Random per batch; prefixes every correlation id so that they are unique across ledgers.
    batch_key       TEXT    NOT NULL UNIQUE,
    file_name       TEXT    NOT NULL,
    file_sha256     TEXT    NOT NULL UNIQUE,
    row_count       INTEGER NOT NULL CHECK (row_count >= 0),
    total_cents     INTEGER NOT NULL CHECK (total_cents >= 0),
    rejected_rows   INTEGER NOT NULL DEFAULT 0 CHECK (rejected_rows >= 0),
    received_at     TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('ready', 'awaiting_approval', 'cancelled')),
    approved_at     TEXT
);

CREATE TABLE payouts (
    -- (batch_id << 32) | line: the primary key itself makes (batch, line) unique, so ingest
    -- appends to one B-tree and maintains no secondary index (measured 2-3x faster).
    id                  INTEGER PRIMARY KEY CHECK (id = (batch_id << 32) | line),
    batch_id            INTEGER NOT NULL REFERENCES batches (id),
    line                INTEGER NOT NULL CHECK (line BETWEEN 1 AND 4294967295),
    reference           TEXT    NOT NULL,
    -- The destination funding source id (a UUID); its URL is built from the configured API.
    destination         TEXT    NOT NULL,
    amount_cents        INTEGER NOT NULL CHECK (amount_cents > 0),
    currency            TEXT    NOT NULL CHECK (currency = 'USD'),
    name                TEXT,
    email               TEXT,
    memo                TEXT,
    -- The file's metadata.<key> columns as a JSON object, or NULL.
    metadata            TEXT,
    -- 'pr-<batch_key>-<line>': unique because batch keys and (batch_id, line) are, and parsed
    -- back to (batch, line) to find a payout, so it needs no index of its own.
    correlation_id      TEXT    NOT NULL,
    -- Set at ingest, never changed: every POST of this payout carries it.
    idempotency_key     TEXT    NOT NULL,
    state               TEXT    NOT NULL CHECK (state IN ('pending', 'submitting', 'submitted', 'processed',
                                    'failed', 'returned', 'rejected', 'needs_review', 'cancelled')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     TEXT,
    first_attempt_at    TEXT,
    -- The exact bytes POSTed, committed before the first attempt and resent byte-identical.
    request_body        BLOB,
    transfer_url        TEXT,
    -- Dwolla's own status of the transfer (created, pending, processed, failed, returned).
    transfer_status     TEXT,
    failure_code        TEXT,
    failure_description TEXT,
    failure_explanation TEXT,
    -- For Dwolla refusals: the JSON pointer of the offending request field.
    failure_path        TEXT,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL
);

-- Payouts whose outcome is unknown, by when to try again. Empty at ingest (rows arrive as
-- pending), so it costs the ingest nothing; pending rows are found through the primary key.
CREATE INDEX payouts_in_doubt ON payouts (next_attempt_at) WHERE state = 'submitting';

CREATE TABLE payout_history (
    id          INTEGER PRIMARY KEY,
    payout_id   INTEGER NOT NULL REFERENCES payouts (id),
    at          TEXT    NOT NULL,
    old_state   TEXT    NOT NULL,
    new_state   TEXT    NOT NULL,
    -- Who saw it: 'send', 'poll', 'webhook:<event id>', 'lookup', 'approval', ...
    source      TEXT    NOT NULL,
    reason      TEXT
);

CREATE INDEX payout_history_by_payout ON payout_history (payout_id);

CREATE TRIGGER payout_history_is_append_only_update BEFORE UPDATE ON payout_history
BEGIN
    SELECT RAISE(ABORT, 'payout_history is append-only');
END;

CREATE TRIGGER payout_history_is_append_only_delete BEFORE DELETE ON payout_history
BEGIN
    SELECT RAISE(ABORT, 'payout_history is append-only');
END;

-- Rows refused under --allow-partial, with every problem found on the line.
CREATE TABLE rejected_rows (
    batch_id    INTEGER NOT NULL REFERENCES batches (id),
    line        INTEGER NOT NULL,
    errors      TEXT    NOT NULL,
    PRIMARY KEY (batch_id, line)
);
