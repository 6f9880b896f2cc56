//! Accounts and treasury: the main account, treasury partners and treasury accounts, and
//! their HAL renderings.
//!
//! Must not touch: funding sources, transfers or webhooks (a treasury account emits no event).

use serde_json::{Value, json};
use uuid::Uuid;

use super::tables::{Store, TreasuryAccount, TreasuryPartner};

impl Store {
    pub fn treasury_account(&self, id: Uuid) -> Option<&TreasuryAccount> {
        self.treasury_accounts.iter().find(|t| t.id == id)
    }

    pub fn treasury_partner(&self, id: Uuid) -> Option<&TreasuryPartner> {
        self.treasury_partners.iter().find(|t| t.id == id)
    }

    pub fn add_treasury_account(&mut self, account: TreasuryAccount) {
        self.treasury_accounts.push(account);
    }

    pub fn account_json(&self) -> Value {
        let id = self.account.id;
        json!({
            "_links": {
                "self": self.link(&format!("/accounts/{id}"), "account"),
                "funding-sources": self.link(&format!("/accounts/{id}/funding-sources"), "funding-source"),
                "transfers": self.link(&format!("/accounts/{id}/transfers"), "transfer"),
                "exchanges": self.link("/exchanges", "exchange"),
            },
            "id": id,
            "name": self.account.name,
            "created": self.account.created.iso(),
        })
    }

    pub fn treasury_partner_json(&self, p: &TreasuryPartner) -> Value {
        json!({
            "_links": {"self": self.link(&format!("/treasury-partners/{}", p.id), "treasury-partners")},
            "id": p.id,
            "name": p.name,
        })
    }

    pub fn treasury_account_json(&self, t: &TreasuryAccount) -> Value {
        json!({
            "_links": {
                "self": self.link(&format!("/treasury-accounts/{}", t.id), "treasury-account"),
                "treasury-partner": self.link(&format!("/treasury-partners/{}", t.partner), "treasury-partners"),
                "account": self.link(&format!("/accounts/{}", self.account.id), "account"),
            },
            "id": t.id,
            "name": t.name,
            "created": t.created.iso(),
            "accountId": self.account.id,
            "treasuryPartnerId": t.partner,
            "treasuryPartnerContext": {t.context_field: t.context_value},
        })
    }
}
