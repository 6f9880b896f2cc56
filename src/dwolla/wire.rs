//! The JSON Dwolla Connect speaks, as typed values: request bodies we send and resources we read.
//! Field names are exactly those of the Connect spec (`_links`, `_embedded`, camelCase). Resources
//! are read tolerantly: unknown fields are ignored and optional fields may be absent.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::payout::TransferStatus;
use crate::secret::Secret;

// ---------------------------------------------------------------------------------------------
// HAL

/// One HAL link: `{"href": ..., "type": ..., "resource-type": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HalLink {
    pub href: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(
        rename = "resource-type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_type: Option<String>,
}

/// A resource's `_links`, by relation name (`self`, `next`, `source-funding-source`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Links(pub BTreeMap<String, HalLink>);

impl Links {
    /// The `href` of relation `rel`.
    pub fn href(&self, rel: &str) -> Option<&str> {
        self.0.get(rel).map(|link| link.href.as_str())
    }
}

/// One page of a list, with the `_links.next` href that fetches the following page.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The absolute URL of the next page (`_links.next.href`); `None` on the last page.
    pub next: Option<String>,
    /// `total`, when the endpoint reports it.
    pub total: Option<u64>,
}

impl<T> Page<T> {
    /// The `cursor` query parameter of [`Page::next`], for callers that keep cursors rather than
    /// URLs.
    pub fn next_cursor(&self) -> Option<String> {
        let url = reqwest::Url::parse(self.next.as_deref()?).ok()?;
        url.query_pairs()
            .find(|(name, _)| name == "cursor")
            .map(|(_, value)| value.into_owned())
    }
}

/// A HAL collection before its items are typed: `_embedded.<key>` holds them.
#[derive(Deserialize)]
pub(crate) struct HalCollection {
    #[serde(rename = "_links", default)]
    pub links: Links,
    #[serde(rename = "_embedded", default)]
    pub embedded: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub total: Option<u64>,
}

impl HalCollection {
    pub(crate) fn into_page<T: serde::de::DeserializeOwned>(
        mut self,
        key: &str,
    ) -> Result<Page<T>, serde_json::Error> {
        let items = match self.embedded.remove(key) {
            Some(value) => serde_json::from_value(value)?,
            None => Vec::new(),
        };
        Ok(Page {
            items,
            next: self.links.href("next").map(str::to_owned),
            total: self.total,
        })
    }
}

/// `{"href": ...}` inside a request's `_links`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Href {
    pub href: String,
}

fn one_link(rel: &'static str, href: &str) -> BTreeMap<&'static str, Href> {
    BTreeMap::from([(
        rel,
        Href {
            href: href.to_owned(),
        },
    )])
}

// ---------------------------------------------------------------------------------------------
// Transfers

/// `{"currency": "USD", "value": "12.34"}`. The value is a decimal string, never a float.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    pub currency: String,
    pub value: String,
}

impl Amount {
    /// US dollars from a count of cents: `usd_cents(1234)` is `"12.34"`.
    pub fn usd_cents(cents: u64) -> Amount {
        Amount {
            currency: "USD".to_owned(),
            value: crate::money::decimal(cents),
        }
    }
}

/// The body of `POST /transfers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferRequest {
    /// The funding source the money leaves from (a `.../funding-sources/{id}` URL).
    pub source_url: String,
    /// The funding source the money goes to.
    pub destination_url: String,
    pub amount: Amount,
    /// Set by payrun on every transfer, so a transfer can be found again after the
    /// Idempotency-Key has expired.
    pub correlation_id: String,
    /// At most 10 pairs, keys and values under 255 characters (Dwolla's limits).
    pub metadata: BTreeMap<String, String>,
}

/// The wire form of [`TransferRequest`]. Fields are declared in sorted key order (`_` sorts
/// before lower-case letters), and `BTreeMap`s serialize sorted, so the bytes do not depend on
/// serde_json's `preserve_order` feature.
#[derive(Serialize)]
struct TransferBody<'a> {
    #[serde(rename = "_links")]
    links: TransferLinks<'a>,
    amount: &'a Amount,
    #[serde(rename = "correlationId")]
    correlation_id: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct TransferLinks<'a> {
    destination: HrefRef<'a>,
    source: HrefRef<'a>,
}

#[derive(Serialize)]
struct HrefRef<'a> {
    href: &'a str,
}

impl TransferRequest {
    /// Compact JSON with every object's keys sorted. The same request always gives the same
    /// bytes; the sender stores them before the first POST and resends them unchanged, because
    /// Dwolla honours an Idempotency-Key only with an identical body.
    pub fn to_body_bytes(&self) -> Vec<u8> {
        let body = TransferBody {
            links: TransferLinks {
                destination: HrefRef {
                    href: &self.destination_url,
                },
                source: HrefRef {
                    href: &self.source_url,
                },
            },
            amount: &self.amount,
            correlation_id: &self.correlation_id,
            metadata: &self.metadata,
        };
        serde_json::to_vec(&body).expect("a transfer body always serializes")
    }
}

/// `201 Created`: the `Location` of the new (or, on an idempotent replay, the original) resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    pub location: String,
}

impl Created {
    /// The last path segment of the location, which is the resource id.
    pub fn id(&self) -> &str {
        last_segment(&self.location)
    }
}

pub(crate) fn last_segment(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

/// A transfer's `status` as Dwolla sent it: one of payrun's [`TransferStatus`] (the one type
/// for it, in [`crate::payout`]), or the text of a status outside the spec's enum (the docs
/// show `submitted`), kept rather than failing the whole read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReportedStatus {
    Known(TransferStatus),
    Other(String),
}

impl ReportedStatus {
    pub fn as_str(&self) -> &str {
        match self {
            ReportedStatus::Known(status) => status.as_str(),
            ReportedStatus::Other(other) => other,
        }
    }

    /// Exactly the five statuses of the spec are `Known`; anything else is kept as text.
    pub fn parse(value: &str) -> ReportedStatus {
        match value {
            "created" | "pending" | "processed" | "failed" | "returned" => {
                ReportedStatus::Known(value.parse().expect("one of the five statuses"))
            }
            other => ReportedStatus::Other(other.to_owned()),
        }
    }

    /// The status as payrun understands it: a `Known` one, or text that names one
    /// (`submitted` means created); `None` for a status payrun does not know.
    pub fn known(&self) -> Option<TransferStatus> {
        match self {
            ReportedStatus::Known(status) => Some(*status),
            ReportedStatus::Other(text) => text.parse().ok(),
        }
    }
}

impl PartialEq<TransferStatus> for ReportedStatus {
    fn eq(&self, other: &TransferStatus) -> bool {
        *self == ReportedStatus::Known(*other)
    }
}

impl fmt::Display for ReportedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ReportedStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ReportedStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Ok(ReportedStatus::parse(&value))
    }
}

/// Why a transfer failed or was returned: an ACH return code (`R01`) or a Connect code
/// (`GCA-051`). Treat `code` as opaque.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReason {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub explanation: Option<String>,
}

/// A transfer resource.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    pub id: String,
    pub status: ReportedStatus,
    pub amount: Amount,
    /// ISO-8601, as Dwolla sent it.
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Present when the status is `failed` or `returned`.
    #[serde(default)]
    pub failure_reason: Option<FailureReason>,
    #[serde(default)]
    pub processing_channel: Option<String>,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

impl Transfer {
    pub fn self_url(&self) -> Option<&str> {
        self.links.href("self")
    }
    pub fn source_funding_source_url(&self) -> Option<&str> {
        self.links.href("source-funding-source")
    }
    pub fn destination_funding_source_url(&self) -> Option<&str> {
        self.links.href("destination-funding-source")
    }
}

/// Filters and paging for the transfer lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferQuery {
    pub correlation_id: Option<String>,
    /// Items per page, 1..=200 (Dwolla's maximum); the client clamps it.
    pub limit: u32,
    /// A bare cursor, or the whole [`Page::next`] URL. A URL is followed as it is (it carries
    /// its own filters); a bare cursor is sent with `correlation_id` and `limit`.
    pub cursor: Option<String>,
}

impl Default for TransferQuery {
    fn default() -> TransferQuery {
        TransferQuery {
            correlation_id: None,
            limit: MAX_PAGE_LIMIT,
            cursor: None,
        }
    }
}

/// Dwolla's largest `limit` for transfer lists.
pub const MAX_PAGE_LIMIT: u32 = 200;

// ---------------------------------------------------------------------------------------------
// Root and accounts

/// `GET /`: links to the main account and its collections.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Root {
    #[serde(rename = "_links", default)]
    pub links: Links,
}

impl Root {
    /// `_links.account.href`.
    pub fn account_url(&self) -> Option<&str> {
        self.links.href("account")
    }
    /// The id at the end of [`Root::account_url`].
    pub fn account_id(&self) -> Option<&str> {
        self.account_url().map(last_segment)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Account {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub created: String,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

// ---------------------------------------------------------------------------------------------
// Funding sources

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BankAccountType {
    Checking,
    Savings,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FundingSource {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// `checking` or `savings`; a string so that other values do not fail the read.
    #[serde(default)]
    pub bank_account_type: Option<String>,
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub removed: bool,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

/// `POST /funding-sources`: a bank account of the main account, tied to a treasury account.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAccountFundingSource {
    #[serde(rename = "_links", serialize_with = "treasury_account_link")]
    pub treasury_account_url: String,
    pub name: String,
    pub bank_account_type: BankAccountType,
    pub account_number: String,
    pub routing_number: String,
}

fn treasury_account_link<S: Serializer>(href: &str, serializer: S) -> Result<S::Ok, S::Error> {
    one_link("treasury-account", href).serialize(serializer)
}

/// `POST /external-parties/{id}/funding-sources`: a bank account by number, or one from an
/// exchange (open-banking) session.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CreateExternalPartyFundingSource {
    #[serde(rename_all = "camelCase")]
    Bank {
        name: String,
        bank_account_type: BankAccountType,
        account_number: String,
        routing_number: String,
    },
    #[serde(rename_all = "camelCase")]
    Exchange {
        #[serde(rename = "_links", serialize_with = "exchange_link")]
        exchange_url: String,
        bank_account_type: BankAccountType,
        name: String,
    },
}

fn exchange_link<S: Serializer>(href: &str, serializer: S) -> Result<S::Ok, S::Error> {
    one_link("exchange", href).serialize(serializer)
}

/// Account numbers are personal data: `Debug` shows only the last four digits.
fn masked(number: &str) -> String {
    let tail: String = number
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

impl fmt::Debug for CreateAccountFundingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateAccountFundingSource")
            .field("treasury_account_url", &self.treasury_account_url)
            .field("name", &self.name)
            .field("bank_account_type", &self.bank_account_type)
            .field("account_number", &masked(&self.account_number))
            .field("routing_number", &self.routing_number)
            .finish()
    }
}

impl fmt::Debug for CreateExternalPartyFundingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateExternalPartyFundingSource::Bank {
                name,
                bank_account_type,
                account_number,
                routing_number,
            } => f
                .debug_struct("Bank")
                .field("name", name)
                .field("bank_account_type", bank_account_type)
                .field("account_number", &masked(account_number))
                .field("routing_number", routing_number)
                .finish(),
            CreateExternalPartyFundingSource::Exchange {
                exchange_url,
                bank_account_type,
                name,
            } => f
                .debug_struct("Exchange")
                .field("exchange_url", exchange_url)
                .field("bank_account_type", bank_account_type)
                .field("name", name)
                .finish(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// External parties

/// An external party (the party payrun pays). Business parties carry `business_name`, personal
/// ones `first_name` and `last_name`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalParty {
    pub id: String,
    /// `business` or `personal`.
    #[serde(default)]
    pub external_party_type: String,
    #[serde(default)]
    pub business_name: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub created: String,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

/// `POST /external-parties`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CreateExternalParty {
    #[serde(rename_all = "camelCase")]
    Business {
        business_name: String,
        email: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Personal {
        first_name: String,
        last_name: String,
        email: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<String>,
    },
}

// ---------------------------------------------------------------------------------------------
// Treasury partners and accounts

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct TreasuryPartner {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

/// How the treasury partner knows the account: `achCoId` (J.P. Morgan) or `gatewayCompanyId`
/// (Wells Fargo).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TreasuryPartnerContext {
    #[serde(rename = "achCoId")]
    AchCoId(String),
    #[serde(rename = "gatewayCompanyId")]
    GatewayCompanyId(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreasuryAccount {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub treasury_partner_id: Option<String>,
    #[serde(default)]
    pub treasury_partner_context: Option<TreasuryPartnerContext>,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

/// `POST /treasury-accounts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateTreasuryAccount {
    #[serde(rename = "_links", serialize_with = "treasury_partner_link")]
    pub treasury_partner_url: String,
    pub name: String,
    pub treasury_partner_context: TreasuryPartnerContext,
}

fn treasury_partner_link<S: Serializer>(href: &str, serializer: S) -> Result<S::Ok, S::Error> {
    one_link("treasuryPartner", href).serialize(serializer)
}

// ---------------------------------------------------------------------------------------------
// Exchange partners and exchanges

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ExchangePartner {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub created: String,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Exchange {
    pub id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub created: String,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

/// `POST /exchanges` or `POST /external-parties/{id}/exchanges`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CreateExchange {
    /// `finicity` is passed through as Finicity's consent receipt (`profile`, `version`,
    /// `receiptId`, `receiptVersion`, `customerId`, `partnerId`, `products`, `timestamp`).
    Finicity {
        #[serde(rename = "_links", serialize_with = "exchange_partner_link")]
        exchange_partner_url: String,
        finicity: serde_json::Value,
    },
    /// MX and Flinks: a token from the partner's session.
    Token {
        #[serde(rename = "_links", serialize_with = "exchange_partner_link")]
        exchange_partner_url: String,
        token: String,
    },
}

fn exchange_partner_link<S: Serializer>(href: &str, serializer: S) -> Result<S::Ok, S::Error> {
    one_link("exchange-partner", href).serialize(serializer)
}

// ---------------------------------------------------------------------------------------------
// Webhook subscriptions and webhooks

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct WebhookSubscription {
    pub id: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub created: String,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

/// `POST /webhook-subscriptions`. The secret signs every delivery; `Debug` hides it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CreateWebhookSubscription {
    pub url: String,
    #[serde(serialize_with = "expose_secret")]
    pub secret: Secret,
}

fn expose_secret<S: Serializer>(secret: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose())
}

/// One webhook (an event sent to one subscription) with its delivery attempts.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: String,
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub subscription_id: Option<String>,
    #[serde(default)]
    pub attempts: Vec<WebhookAttempt>,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct WebhookAttempt {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub request: Option<WebhookAttemptRequest>,
    /// The spec names it `responses`, the docs `response`.
    #[serde(default, alias = "responses")]
    pub response: Option<WebhookAttemptResponse>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct WebhookAttemptRequest {
    #[serde(default, alias = "created")]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub headers: Vec<NameValue>,
    #[serde(default)]
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAttemptResponse {
    #[serde(default, alias = "created")]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub headers: Vec<NameValue>,
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default)]
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct NameValue {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

// ---------------------------------------------------------------------------------------------
// Client tokens (classic API, for drop-in components)

/// `POST /client-tokens`: `{"action": ..., "_links": {"customer": {"href": ...}}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CreateClientToken {
    pub action: String,
    #[serde(rename = "_links", serialize_with = "customer_link")]
    pub customer_url: String,
}

fn customer_link<S: Serializer>(href: &str, serializer: S) -> Result<S::Ok, S::Error> {
    one_link("customer", href).serialize(serializer)
}

/// A client token; it grants access, so `Debug` hides it.
#[derive(Clone, Debug)]
pub struct ClientToken {
    pub token: Secret,
}

#[derive(Deserialize)]
pub(crate) struct ClientTokenBody {
    pub token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> TransferRequest {
        TransferRequest {
            source_url: "https://api.dwolla.com/funding-sources/src".into(),
            destination_url: "https://api.dwolla.com/funding-sources/dst".into(),
            amount: Amount::usd_cents(1234),
            correlation_id: "batch-1.row-7".into(),
            metadata: BTreeMap::from([
                ("reference".to_owned(), "INV \"7\"".to_owned()),
                ("batch".to_owned(), "b1".to_owned()),
            ]),
        }
    }

    #[test]
    fn transfer_bytes_are_compact_sorted_and_the_same_every_time() {
        let bytes = request().to_body_bytes();
        let expected = concat!(
            r#"{"_links":{"destination":{"href":"https://api.dwolla.com/funding-sources/dst"},"#,
            r#""source":{"href":"https://api.dwolla.com/funding-sources/src"}},"#,
            r#""amount":{"currency":"USD","value":"12.34"},"#,
            r#""correlationId":"batch-1.row-7","#,
            r#""metadata":{"batch":"b1","reference":"INV \"7\""}}"#
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
        assert_eq!(request().clone().to_body_bytes(), bytes);
    }

    #[test]
    fn empty_metadata_is_left_out() {
        let mut request = request();
        request.metadata.clear();
        let text = String::from_utf8(request.to_body_bytes()).unwrap();
        assert!(
            text.ends_with(r#""correlationId":"batch-1.row-7"}"#),
            "{text}"
        );
    }

    #[test]
    fn cents_become_a_two_decimal_string() {
        assert_eq!(Amount::usd_cents(1).value, "0.01");
        assert_eq!(Amount::usd_cents(100).value, "1.00");
        assert_eq!(Amount::usd_cents(123_456_789).value, "1234567.89");
    }

    #[test]
    fn a_transfer_from_the_spec_example_is_read_and_unknown_statuses_survive() {
        let json = r#"{"_links":{"self":{"href":"https://api.dwolla.com/transfers/7a6a","type":"application/vnd.dwolla.v1.hal+json","resource-type":"transfer"},
            "source-funding-source":{"href":"https://api.dwolla.com/funding-sources/f8"},
            "destination-funding-source":{"href":"https://api.dwolla.com/funding-sources/c4"}},
            "id":"7a6a","created":"2023-07-17T20:32:55.679Z","amount":{"value":"10.00","currency":"USD"},
            "status":"failed","processingChannel":"ach",
            "failureReason":{"description":"Invalid combination","code":"GCA-051","explanation":"Check"}}"#;
        let transfer: Transfer = serde_json::from_str(json).unwrap();
        assert_eq!(transfer.status, TransferStatus::Failed);
        assert_eq!(transfer.failure_reason.unwrap().code, "GCA-051");
        assert_eq!(
            transfer.links.href("source-funding-source"),
            Some("https://api.dwolla.com/funding-sources/f8")
        );
        assert_eq!(transfer.correlation_id, None);

        let submitted: Transfer = serde_json::from_str(
            r#"{"id":"1","status":"submitted","amount":{"value":"1.00","currency":"USD"}}"#,
        )
        .unwrap();
        assert_eq!(
            submitted.status,
            ReportedStatus::Other("submitted".to_owned())
        );
        assert_eq!(submitted.status.to_string(), "submitted");
    }

    #[test]
    fn request_bodies_use_the_spec_field_names() {
        let fs = CreateAccountFundingSource {
            treasury_account_url: "https://x/treasury-accounts/1".into(),
            name: "Ops".into(),
            bank_account_type: BankAccountType::Checking,
            account_number: "123456789".into(),
            routing_number: "222222226".into(),
        };
        assert_eq!(
            serde_json::to_string(&fs).unwrap(),
            r#"{"_links":{"treasury-account":{"href":"https://x/treasury-accounts/1"}},"name":"Ops","bankAccountType":"checking","accountNumber":"123456789","routingNumber":"222222226"}"#
        );
        assert!(!format!("{fs:?}").contains("123456789"));

        let ta = CreateTreasuryAccount {
            treasury_partner_url: "https://x/treasury-partners/1".into(),
            name: "JPM".into(),
            treasury_partner_context: TreasuryPartnerContext::AchCoId("4161803583".into()),
        };
        assert_eq!(
            serde_json::to_string(&ta).unwrap(),
            r#"{"_links":{"treasuryPartner":{"href":"https://x/treasury-partners/1"}},"name":"JPM","treasuryPartnerContext":{"achCoId":"4161803583"}}"#
        );

        let party = CreateExternalParty::Personal {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email: "ada@example.com".into(),
            correlation_id: None,
        };
        assert_eq!(
            serde_json::to_string(&party).unwrap(),
            r#"{"firstName":"Ada","lastName":"Lovelace","email":"ada@example.com"}"#
        );

        let token = CreateClientToken {
            action: "customer.update".into(),
            customer_url: "https://x/customers/1".into(),
        };
        assert_eq!(
            serde_json::to_string(&token).unwrap(),
            r#"{"action":"customer.update","_links":{"customer":{"href":"https://x/customers/1"}}}"#
        );
    }

    #[test]
    fn a_page_knows_its_next_cursor() {
        let page: Page<Transfer> = Page {
            items: vec![],
            next: Some("https://api.dwolla.com/transfers?cursor=abc-_9&limit=2".into()),
            total: None,
        };
        assert_eq!(page.next_cursor().as_deref(), Some("abc-_9"));
        assert_eq!(
            last_segment("https://h/transfers/abc?x=1"),
            "abc",
            "query is not part of the id"
        );
    }
}
