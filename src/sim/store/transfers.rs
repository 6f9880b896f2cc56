//! Transfers and their lifecycle: creation between a main-account and an external-party
//! funding source, the plan of steps each transfer will take (sentinel amounts, return-code
//! names, GCA-051), the lifecycle queue applied on the simulator's clock, the indexes lists
//! page through, and the HAL rendering.
//!
//! Must not touch: validation of requests (the HTTP layer does it before calling in) or
//! webhook delivery (a step only emits an event).

use std::cmp::Reverse;

use serde_json::{Value, json};
use uuid::Uuid;

use super::tables::{FsOwner, FundingSource, Plan, ResourceRef, Store, Transfer, TransferStatus};
use crate::sim::clock::SimTime;
use crate::sim::failures::{GCA_051, SENTINEL_FAILURE_CODE, failure_text};
use crate::sim::validate::{format_cents, return_code_name};

impl TransferStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferStatus::Created => "created",
            TransferStatus::Pending => "pending",
            TransferStatus::Processed => "processed",
            TransferStatus::Failed => "failed",
            TransferStatus::Returned => "returned",
        }
    }

    fn topic(self) -> &'static str {
        match self {
            TransferStatus::Created => "transfer:created",
            TransferStatus::Pending => "transfer:pending",
            TransferStatus::Processed => "transfer:processed",
            TransferStatus::Failed => "transfer:failed",
            TransferStatus::Returned => "transfer:returned",
        }
    }
}

impl Store {
    pub fn transfer(&self, id: Uuid) -> Option<&Transfer> {
        self.transfer_index
            .get(&id)
            .map(|&i| &self.transfers[i as usize])
    }

    pub fn transfers_for_correlation(&self, correlation_id: &str) -> &[u32] {
        self.transfers_by_correlation
            .get(correlation_id)
            .map_or(&[], Vec::as_slice)
    }

    pub fn transfers_for_party(&self, party: Uuid) -> &[u32] {
        self.transfers_by_party
            .get(&party)
            .map_or(&[], Vec::as_slice)
    }

    /// Creates a transfer between two validated funding sources and schedules its lifecycle.
    #[allow(clippy::too_many_arguments)]
    pub fn add_transfer(
        &mut self,
        source_fs: Uuid,
        dest_fs: Uuid,
        cents: i64,
        correlation_id: Option<String>,
        metadata: Option<Value>,
        idempotency_key: Option<String>,
        now: SimTime,
    ) -> Uuid {
        let (credit, party, plan) = self.route(source_fs, dest_fs, cents);
        let id = self.new_id();
        let seq = self.transfers.len() as u32;
        if let Some(c) = &correlation_id {
            self.transfers_by_correlation
                .entry(c.clone())
                .or_default()
                .push(seq);
        }
        self.transfers_by_party.entry(party).or_default().push(seq);
        self.transfer_index.insert(id, seq);
        let has_steps = !plan.is_empty();
        self.transfers.push(Transfer {
            id,
            created: now,
            cents,
            source_fs,
            dest_fs,
            credit,
            party,
            correlation_id,
            metadata,
            status: TransferStatus::Created,
            failure_code: None,
            idempotency_key,
            plan,
            next_step: 0,
        });
        if has_steps {
            let due = now.plus(self.config.settle);
            self.lifecycle.push(Reverse((due.0, seq)));
        }
        self.emit(
            TransferStatus::Created.topic(),
            ResourceRef::Transfer(seq),
            now,
        );
        id
    }

    /// Which way a new transfer goes (credit: from the main account), the external party it
    /// involves, and the steps it will take.
    fn route(&self, source_fs: Uuid, dest_fs: Uuid, cents: i64) -> (bool, Uuid, Plan) {
        let source = self.funding_source(source_fs).expect("validated source");
        let dest = self.funding_source(dest_fs).expect("validated destination");
        let (credit, account_fs, party_fs): (bool, &FundingSource, &FundingSource) =
            match (&source.owner, &dest.owner) {
                (FsOwner::Account { .. }, _) => (true, source, dest),
                _ => (false, dest, source),
            };
        let party = match party_fs.owner {
            FsOwner::ExternalParty(p) => p,
            FsOwner::Account { .. } => unreachable!("validated: one side is an external party"),
        };
        let ach_mismatch = matches!(
            account_fs.owner,
            FsOwner::Account {
                ach_mismatch: true,
                ..
            }
        );
        (
            credit,
            party,
            lifecycle_plan(ach_mismatch, cents, &party_fs.name),
        )
    }

    /// Applies every lifecycle step due by `now`, in time order, each stamped with its own due
    /// time (so a clock jump of several steps leaves a plausible history).
    pub fn catch_up(&mut self, now: SimTime) {
        while let Some(&Reverse((due, seq))) = self.lifecycle.peek() {
            if due > now.0 {
                break;
            }
            self.lifecycle.pop();
            let transfer = &mut self.transfers[seq as usize];
            let (status, failure) = transfer.plan[transfer.next_step].clone();
            transfer.status = status;
            if failure.is_some() {
                transfer.failure_code = failure;
            }
            transfer.next_step += 1;
            let more = transfer.next_step < transfer.plan.len();
            if more {
                let next_due = SimTime(due).plus(self.config.settle);
                self.lifecycle.push(Reverse((next_due.0, seq)));
            }
            self.emit(status.topic(), ResourceRef::Transfer(seq), SimTime(due));
        }
    }

    /// When the next lifecycle step falls due, if any.
    pub fn next_lifecycle_due(&self) -> Option<SimTime> {
        self.lifecycle.peek().map(|Reverse((due, _))| SimTime(*due))
    }

    pub fn transfer_json(&self, t: &Transfer) -> Value {
        let account_link = self.link(&format!("/accounts/{}", self.account.id), "account");
        let party_link = self.link(&format!("/external-parties/{}", t.party), "external-party");
        let (source, destination) = if t.credit {
            (account_link, party_link)
        } else {
            (party_link, account_link)
        };
        let mut v = json!({
            "_links": {
                "self": self.link(&format!("/transfers/{}", t.id), "transfer"),
                "source": source,
                "source-funding-source": self.link(&format!("/funding-sources/{}", t.source_fs), "funding-source"),
                "destination": destination,
                "destination-funding-source": self.link(&format!("/funding-sources/{}", t.dest_fs), "funding-source"),
            },
            "id": t.id,
            "created": t.created.iso(),
            "amount": {"value": format_cents(t.cents), "currency": "USD"},
            "status": t.status.as_str(),
            "processingChannel": "ach",
        });
        if let Some(c) = &t.correlation_id {
            v["correlationId"] = json!(c);
        }
        if let Some(m) = &t.metadata {
            v["metadata"] = m.clone();
        }
        if matches!(t.status, TransferStatus::Failed | TransferStatus::Returned)
            && let Some(code) = &t.failure_code
        {
            let text = failure_text(code);
            v["failureReason"] = json!({
                "code": code,
                "description": text.description,
                "explanation": text.explanation,
            });
        }
        v
    }
}

/// The steps a new transfer will take after `created`, one per settle interval. Precedence:
/// a treasury mismatch (GCA-051) first, because such a transfer never reaches the bank; then
/// Dwolla's sentinel amounts; then a return-code name on the external party's funding source;
/// otherwise pending then processed.
fn lifecycle_plan(ach_mismatch: bool, cents: i64, party_fs_name: &str) -> Plan {
    use TransferStatus::*;
    if ach_mismatch {
        return vec![(Failed, Some(GCA_051.to_string()))];
    }
    match cents {
        101 => return vec![],
        102 => return vec![(Pending, None)],
        201 => return vec![(Processed, None)],
        999 => return vec![(Failed, Some(SENTINEL_FAILURE_CODE.to_string()))],
        _ => {}
    }
    match return_code_name(party_fs_name) {
        Some((code, true)) => vec![(Pending, None), (Processed, None), (Returned, Some(code))],
        Some((code, false)) => vec![(Pending, None), (Failed, Some(code))],
        None => vec![(Pending, None), (Processed, None)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_the_documented_precedence() {
        use TransferStatus::*;
        assert_eq!(lifecycle_plan(false, 101, "R01"), vec![]);
        assert_eq!(
            lifecycle_plan(false, 102, "Checking"),
            vec![(Pending, None)]
        );
        assert_eq!(lifecycle_plan(false, 201, "R01"), vec![(Processed, None)]);
        assert_eq!(
            lifecycle_plan(false, 999, "Checking"),
            vec![(Failed, Some("R01".into()))]
        );
        assert_eq!(
            lifecycle_plan(true, 201, "Checking"),
            vec![(Failed, Some("GCA-051".into()))]
        );
        assert_eq!(
            lifecycle_plan(false, 500, "R03-late"),
            vec![
                (Pending, None),
                (Processed, None),
                (Returned, Some("R03".into()))
            ]
        );
        assert_eq!(
            lifecycle_plan(false, 500, "R02"),
            vec![(Pending, None), (Failed, Some("R02".into()))]
        );
        assert_eq!(
            lifecycle_plan(false, 500, "Checking"),
            vec![(Pending, None), (Processed, None)]
        );
    }
}
