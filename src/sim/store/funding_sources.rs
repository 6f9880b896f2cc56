//! Funding sources: bank accounts of the main account (linked to a treasury account) and of
//! external parties, the duplicate-bank rule (by fingerprint, never by stored number), removal,
//! their events and their HAL rendering.
//!
//! Must not touch: transfers (they read `FsOwner`, not the reverse) or the webhook queue
//! beyond emitting events.

use serde_json::{Value, json};
use uuid::Uuid;

use super::tables::{FsOwner, FundingSource, ResourceRef, Store};
use crate::sim::clock::SimTime;

impl Store {
    pub fn funding_source(&self, id: Uuid) -> Option<&FundingSource> {
        self.fs_index.get(&id).map(|&i| &self.funding_sources[i])
    }

    pub fn fingerprint_taken(&self, party: Option<Uuid>, fingerprint: &[u8; 32]) -> Option<Uuid> {
        if !self.fs_fingerprints.contains(&(party, *fingerprint)) {
            return None;
        }
        self.funding_sources
            .iter()
            .find(|f| {
                !f.removed
                    && f.fingerprint.as_ref() == Some(fingerprint)
                    && match &f.owner {
                        FsOwner::Account { .. } => party.is_none(),
                        FsOwner::ExternalParty(p) => party == Some(*p),
                    }
            })
            .map(|f| f.id)
    }

    pub fn party_funding_sources(&self, party: Uuid) -> &[u32] {
        self.fs_by_party.get(&party).map_or(&[], Vec::as_slice)
    }

    pub fn add_funding_source(&mut self, fs: FundingSource, now: SimTime, emit: bool) {
        let party = match fs.owner {
            FsOwner::ExternalParty(p) => Some(p),
            FsOwner::Account { .. } => None,
        };
        if let Some(fp) = fs.fingerprint {
            self.fs_fingerprints.insert((party, fp));
        }
        let id = fs.id;
        let idx = self.funding_sources.len();
        self.fs_index.insert(id, idx);
        if let Some(p) = party {
            self.fs_by_party.entry(p).or_default().push(idx as u32);
        }
        self.funding_sources.push(fs);
        if emit {
            let topic = if party.is_some() {
                "external_party.funding_source:created"
            } else {
                "funding_source:created"
            };
            self.emit(topic, ResourceRef::FundingSource { id, party }, now);
        }
    }

    /// Marks a funding source removed; returns false if it does not exist.
    pub fn remove_funding_source(&mut self, id: Uuid, now: SimTime) -> bool {
        let Some(&idx) = self.fs_index.get(&id) else {
            return false;
        };
        let fs = &mut self.funding_sources[idx];
        if fs.removed {
            return true;
        }
        fs.removed = true;
        let party = match fs.owner {
            FsOwner::ExternalParty(p) => Some(p),
            FsOwner::Account { .. } => None,
        };
        let topic = if party.is_some() {
            "external_party.funding_source:removed"
        } else {
            "funding_source:removed"
        };
        self.emit(topic, ResourceRef::FundingSource { id, party }, now);
        true
    }

    pub fn funding_source_json(&self, fs: &FundingSource) -> Value {
        let mut links = serde_json::Map::new();
        links.insert(
            "self".into(),
            self.link(&format!("/funding-sources/{}", fs.id), "funding-source"),
        );
        match &fs.owner {
            FsOwner::Account {
                treasury_account, ..
            } => {
                links.insert(
                    "treasury-account".into(),
                    self.link(
                        &format!("/treasury-accounts/{treasury_account}"),
                        "treasury-account",
                    ),
                );
                links.insert(
                    "account".into(),
                    self.link(&format!("/accounts/{}", self.account.id), "account"),
                );
            }
            FsOwner::ExternalParty(p) => {
                links.insert(
                    "external-party".into(),
                    self.link(&format!("/external-parties/{p}"), "external-party"),
                );
            }
        }
        if let Some(x) = fs.exchange {
            links.insert(
                "exchange".into(),
                self.link(&format!("/exchanges/{x}"), "exchange"),
            );
        }
        if !fs.removed {
            links.insert(
                "remove".into(),
                self.link(&format!("/funding-sources/{}", fs.id), "funding-source"),
            );
        }
        json!({
            "_links": links,
            "id": fs.id,
            "bankAccountType": fs.bank_account_type,
            "name": fs.name,
            "created": fs.created.iso(),
            "removed": fs.removed,
        })
    }
}
