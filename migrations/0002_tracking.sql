-- payrun ledger, version 2: following sent transfers to their end (issue 5).
-- Times use the ledger's one text form, so text order is time order.

-- What failure_code means for the next payment to this payee (failure::Advice::as_str):
-- retry_may_succeed, fix_bank_details, investigate, fix_payrun_setup, unknown.
ALTER TABLE payouts ADD COLUMN failure_advice TEXT;
-- When tracking last asked Dwolla about this transfer (poll or webhook fetch).
ALTER TABLE payouts ADD COLUMN last_polled_at TEXT;
-- When tracking should ask again; NULL on a submitted payout means "at once", NULL on a
-- processed one whose watch_until is set means "no longer watched".
ALTER TABLE payouts ADD COLUMN next_poll_at TEXT;
-- For processed payouts: the end of the returns window (default 5 banking days after
-- processed was first seen); late returns are looked for until then.
ALTER TABLE payouts ADD COLUMN watch_until TEXT;

-- The payouts tracking follows, by when they are due. Partial, so a settled ledger of
-- millions of payouts costs nothing here.
CREATE INDEX payouts_tracked ON payouts (next_poll_at) WHERE state IN ('submitted', 'processed');
