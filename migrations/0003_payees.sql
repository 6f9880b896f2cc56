-- payrun ledger: the payee directory (payrun payees import). Independent of every other table,
-- so it applies after whichever migrations precede it.
--
-- A payee is a reference the operator chose, mapped to an external party and its bank funding
-- source at Dwolla. The full bank account number is never stored: only its last four digits.

CREATE TABLE payees (
    reference           TEXT    PRIMARY KEY,
    -- Exactly one of business_name and (first_name, last_name), as at Dwolla.
    business_name       TEXT,
    first_name          TEXT,
    last_name           TEXT,
    email               TEXT    NOT NULL,
    routing_number      TEXT    NOT NULL CHECK (length(routing_number) = 9),
    account_last4       TEXT    NOT NULL CHECK (length(account_last4) = 4),
    account_type        TEXT    NOT NULL CHECK (account_type IN ('checking', 'savings')),
    -- Dwolla's ids, NULL until created (or found) there. A payee can be paid only once it has
    -- a funding source.
    external_party_id   TEXT,
    funding_source_id   TEXT,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL,
    CHECK ((business_name IS NOT NULL) + (first_name IS NOT NULL AND last_name IS NOT NULL) = 1),
    CHECK (funding_source_id IS NULL OR external_party_id IS NOT NULL)
);
