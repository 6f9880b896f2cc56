//! Webhook topics are opaque strings: Dwolla's sources disagree on their spelling
//! (`transfer:processed`, `account.transfer:processed`, classic `transfer_completed`), so
//! tracking routes on this table and ignores every topic it does not name.

use std::collections::HashMap;

use crate::payout::TransferStatus;

/// Topic → the transfer status the event announces. Only a hint: the applier fetches the
/// transfer and stores what Dwolla says now; the hint lets it skip events already stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMap(HashMap<String, TransferStatus>);

impl TopicMap {
    /// The Connect topics (webhook-events page), and the `account.transfer:*` form of the
    /// webhooks guide and sandbox table.
    pub fn dwolla_connect() -> TopicMap {
        let mut map = TopicMap(HashMap::new());
        for (status, name) in [
            (TransferStatus::Created, "created"),
            (TransferStatus::Pending, "pending"),
            (TransferStatus::Processed, "processed"),
            (TransferStatus::Failed, "failed"),
            (TransferStatus::Returned, "returned"),
        ] {
            map.insert(format!("transfer:{name}"), status);
            map.insert(format!("account.transfer:{name}"), status);
        }
        map
    }

    pub fn insert(&mut self, topic: impl Into<String>, status: TransferStatus) {
        self.0.insert(topic.into(), status);
    }

    /// `None` for a topic that is not about a transfer's status: ignore the event.
    pub fn transfer_status(&self, topic: &str) -> Option<TransferStatus> {
        self.0.get(topic).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_topics_map_and_everything_else_is_ignored() {
        let map = TopicMap::dwolla_connect();
        assert_eq!(
            map.transfer_status("transfer:returned"),
            Some(TransferStatus::Returned)
        );
        assert_eq!(
            map.transfer_status("account.transfer:pending"),
            Some(TransferStatus::Pending)
        );
        for other in [
            "external_party:created",
            "funding_source:removed",
            "",
            "TRANSFER:PENDING",
        ] {
            assert_eq!(map.transfer_status(other), None, "{other}");
        }
    }
}
