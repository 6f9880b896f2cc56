//! External parties: who they are (business or person), the email uniqueness rule, their
//! `external_party:created` event and their HAL rendering.
//!
//! Must not touch: funding sources or transfers of a party (their own files index them).

use serde_json::{Value, json};
use uuid::Uuid;

use super::tables::{ExternalParty, PartyKind, ResourceRef, Store};
use crate::sim::clock::SimTime;

impl Store {
    pub fn external_party(&self, id: Uuid) -> Option<&ExternalParty> {
        self.party_index
            .get(&id)
            .map(|&i| &self.external_parties[i])
    }

    pub fn email_taken(&self, email: &str) -> bool {
        self.party_emails.contains(&email.to_ascii_lowercase())
    }

    pub fn add_external_party(&mut self, party: ExternalParty, now: SimTime, emit: bool) {
        let id = party.id;
        self.party_emails.insert(party.email.to_ascii_lowercase());
        self.party_index.insert(id, self.external_parties.len());
        self.external_parties.push(party);
        if emit {
            self.emit(
                "external_party:created",
                ResourceRef::ExternalParty(id),
                now,
            );
        }
    }

    pub fn external_party_json(&self, p: &ExternalParty) -> Value {
        let mut v = json!({
            "_links": {
                "self": self.link(&format!("/external-parties/{}", p.id), "external-party"),
                "funding-sources": self.link(&format!("/external-parties/{}/funding-sources", p.id), "funding-source"),
                "transfers": self.link(&format!("/external-parties/{}/transfers", p.id), "transfer"),
                "exchanges": self.link(&format!("/external-parties/{}/exchanges", p.id), "exchange"),
            },
            "id": p.id,
            "created": p.created.iso(),
            "email": p.email,
        });
        match &p.kind {
            PartyKind::Business { business_name } => {
                v["businessName"] = json!(business_name);
                v["externalPartyType"] = json!("business");
            }
            PartyKind::Personal {
                first_name,
                last_name,
            } => {
                v["firstName"] = json!(first_name);
                v["lastName"] = json!(last_name);
                v["externalPartyType"] = json!("personal");
            }
        }
        if let Some(c) = &p.correlation_id {
            v["correlationId"] = json!(c);
        }
        v
    }
}
