//! Exchanges and exchange partners (Finicity, MX, Flinks): the open-banking link an external
//! party's funding source may be created from, and their HAL renderings.
//!
//! Must not touch: funding sources themselves (they only keep an exchange id).

use serde_json::{Value, json};
use uuid::Uuid;

use super::tables::{Exchange, ExchangePartner, Store};
use crate::sim::clock::SimTime;

impl Store {
    pub fn exchange_partner(&self, id: Uuid) -> Option<&ExchangePartner> {
        self.exchange_partners.iter().find(|t| t.id == id)
    }

    pub fn exchange(&self, id: Uuid) -> Option<&Exchange> {
        self.exchanges.iter().find(|t| t.id == id)
    }

    pub fn exchange_partner_json(&self, p: &ExchangePartner) -> Value {
        json!({
            "_links": {
                "self": self.link(&format!("/exchange-partners/{}", p.id), "exchange-partner"),
            },
            "id": p.id,
            "name": p.name,
            "status": "active",
            "created": p.created,
        })
    }

    pub fn exchange_json(&self, x: &Exchange) -> Value {
        let fs_path = match x.party {
            Some(p) => format!("/external-parties/{p}/funding-sources"),
            None => format!("/accounts/{}/funding-sources", self.account.id),
        };
        json!({
            "_links": {
                "self": self.link(&format!("/exchanges/{}", x.id), "exchange"),
                "exchange-partner": self.link(&format!("/exchange-partners/{}", x.partner), "exchange-partner"),
                "funding-sources": self.link(&fs_path, "funding-source"),
            },
            "id": x.id,
            "status": "active",
            "created": x.created.iso(),
        })
    }
}

impl Store {
    /// Records an exchange for the main account (`party` None) or an external party; the
    /// caller has checked that partner and party exist.
    pub fn add_exchange(&mut self, partner: Uuid, party: Option<Uuid>, now: SimTime) -> Uuid {
        let id = self.new_id();
        self.exchanges.push(Exchange {
            id,
            partner,
            party,
            created: now,
        });
        id
    }
}
