-- payrun ledger, version 5: pay dates, holds, and a file's identity by its records (issues 13
-- and 16). Everything here is per batch, on the batches table, so ingest writes nothing more
-- per payout.
--
-- A payroll's identity is (records_sha256, pay_date): the same rows for another pay date are a
-- new payroll, so the raw file hash can no longer be UNIQUE. SQLite cannot drop a UNIQUE
-- constraint in place, so this is its documented table rebuild, as in 0004 (foreign keys off;
-- payouts and rejected_rows refer to batches; `PRAGMA foreign_key_check` runs before commit).

CREATE TABLE batches_v5 (
    id              INTEGER PRIMARY KEY,
    -- Random per batch; prefixes every correlation id so that they are unique across ledgers.
    batch_key       TEXT    NOT NULL UNIQUE,
    file_name       TEXT    NOT NULL,
    -- SHA-256 of the file's bytes, kept beside the identity below (no longer unique).
    file_sha256     TEXT    NOT NULL,
    -- SHA-256 of the parsed, normalised records: line endings, BOM, trailing blank lines,
    -- spaces around fields, header case and column order do not change it. NULL for batches
    -- ingested before version 5.
    records_sha256  TEXT,
    row_count       INTEGER NOT NULL CHECK (row_count >= 0),
    total_cents     INTEGER NOT NULL CHECK (total_cents >= 0),
    rejected_rows   INTEGER NOT NULL DEFAULT 0 CHECK (rejected_rows >= 0),
    received_at     TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('ready', 'awaiting_approval', 'cancelled')),
    approved_at     TEXT,
    -- Why the batch waits for approval beyond require_approval (the repeat guard's message).
    approval_reason TEXT,
    -- YYYY-MM-DD, or NULL: no pay date, sent as soon as possible.
    pay_date        TEXT,
    -- Ledger timestamps: not sent before send_after; sent after send_by it is late.
    send_after      TEXT,
    send_by         TEXT,
    -- 1 when accepted with --send-late although the pay date could not be met.
    send_late       INTEGER NOT NULL DEFAULT 0 CHECK (send_late = 0 OR send_late = 1),
    -- When the send window was first seen open (at ingest, or by a run at or after
    -- send_after); the sender claims payouts only of batches where it is set. Kept as a column
    -- because the claim query takes no "now" and the ledger never reads the clock.
    send_open_at    TEXT,
    -- When a run first found payouts of this batch committed for sending (its sent date).
    sent_at         TEXT,
    -- payrun hold: nothing pending is sent while held_at is set.
    held_at         TEXT,
    held_by         TEXT,
    hold_reason     TEXT
);

INSERT INTO batches_v5 (
    id, batch_key, file_name, file_sha256, row_count, total_cents, rejected_rows, received_at,
    status, approved_at, send_open_at, sent_at)
SELECT
    id, batch_key, file_name, file_sha256, row_count, total_cents, rejected_rows, received_at,
    status, approved_at, received_at,
    -- A batch sent before version 5: its first commit for sending is its sent date.
    (SELECT min(p.first_attempt_at) FROM payouts p
     WHERE p.id BETWEEN batches.id << 32 AND (batches.id << 32) | 4294967295)
FROM batches;

DROP TABLE batches;
ALTER TABLE batches_v5 RENAME TO batches;

-- The raw hash still finds a byte-identical file at once, before parsing it.
CREATE INDEX batches_by_file_sha256 ON batches (file_sha256);
-- The same records for the same pay date are one payroll, never two batches.
CREATE UNIQUE INDEX batches_by_identity ON batches (records_sha256, coalesce(pay_date, ''))
    WHERE records_sha256 IS NOT NULL;
