//! One subcommand per Connect resource: `accounts`, `treasury`, `parties`, `funding-sources`,
//! `exchanges` and `transfers`. Each one is a call (or a paged walk) on [`Client`] plus
//! printing; lists follow `_links.next` to the end unless `--max` says otherwise.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::runtime::runtime;
use super::table::{Table, print_fields};
use super::{DwollaArgs, Failure};
use crate::config::FileConfig;
use crate::dwolla::Disposition;
use crate::dwolla::all_pages;
use crate::dwolla::wire::{
    Account, BankAccountType, CreateAccountFundingSource, CreateExchange, CreateExternalParty,
    CreateExternalPartyFundingSource, CreateTreasuryAccount, Exchange, ExchangePartner,
    ExternalParty, FundingSource, Links, TreasuryAccount, TreasuryPartner, TreasuryPartnerContext,
};
use crate::dwolla::{Client, Created, DwollaError, Transfer, TransferQuery};
use crate::exit;
use crate::ledger::PayeeLedger;
use crate::onboard::bank::{AccountNumber, RoutingNumber, parse_account_type};
use crate::onboard::embedded_errors;
use crate::secret::Secret;

// ---------------------------------------------------------------------------------------------
// Arguments

/// Flags every Dwolla-facing command of this module takes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub dwolla: DwollaArgs,
}

/// The exit status and message for a failed Dwolla call: a refusal (the request was wrong,
/// or the resource does not exist) is invalid input, 65; anything else (unreachable, 5xx,
/// refused credentials) is 69. Dwolla's per-field errors follow the message, one per line.
pub(super) fn dwolla_failure(context: &str, err: &DwollaError) -> Failure {
    let status = match err.disposition() {
        Disposition::Final => exit::INVALID_INPUT,
        Disposition::Retry { .. } | Disposition::Unauthorized => exit::UNAVAILABLE,
    };
    Failure {
        status,
        message: format!("{context}: {err}{}", embedded_errors(err)),
    }
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// The main account (or the account with this id).
    Get(AccountGetArgs),
}

#[derive(Debug, Args)]
pub struct AccountGetArgs {
    /// An account id or URL [default: the main account].
    pub id: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Subcommand)]
pub enum TreasuryCommand {
    /// The treasury partners Dwolla supports (or one, by id).
    Partners(OptionalIdArgs),
    /// Your treasury accounts (or one, by id).
    Accounts(OptionalIdArgs),
    /// Create a treasury account with a treasury partner.
    Create(TreasuryCreateArgs),
}

#[derive(Debug, Args)]
pub struct OptionalIdArgs {
    /// An id or URL; without it, the whole list.
    pub id: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// An id or URL.
    pub id: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("context").required(true).args(["ach_co_id", "gateway_company_id"])))]
pub struct TreasuryCreateArgs {
    /// The treasury partner: an id, a URL, or its name ("J.P. Morgan", "Wells Fargo").
    #[arg(long)]
    pub partner: String,
    /// A name for the account.
    #[arg(long)]
    pub name: String,
    /// J.P. Morgan's ACH company id.
    #[arg(long)]
    pub ach_co_id: Option<String>,
    /// Wells Fargo's gateway company id.
    #[arg(long)]
    pub gateway_company_id: Option<String>,
    #[command(flatten)]
    pub create: CreateArgs,
}

/// Flags of every create.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Sent as the Idempotency-Key, so that running the same command again within 24 hours
    /// creates nothing new [default: a fresh random key].
    #[arg(long)]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Subcommand)]
pub enum PartiesCommand {
    /// Create an external party: a business (--business-name) or a person (--first-name and
    /// --last-name).
    Create(PartyCreateArgs),
    /// Every external party.
    List(ListArgs),
    /// One external party.
    Get(IdArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["business_name", "first_name"])))]
pub struct PartyCreateArgs {
    #[arg(long, conflicts_with_all = ["first_name", "last_name"])]
    pub business_name: Option<String>,
    #[arg(long, requires = "last_name")]
    pub first_name: Option<String>,
    #[arg(long, requires = "first_name")]
    pub last_name: Option<String>,
    #[arg(long)]
    pub email: String,
    /// Your own id for the party (1-255 characters of a-z A-Z 0-9 - . _).
    #[arg(long)]
    pub correlation_id: Option<String>,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Stop after this many items [default: all].
    #[arg(long)]
    pub max: Option<usize>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Subcommand)]
pub enum FundingSourcesCommand {
    /// Add a bank account to the main account (--treasury-account) or to an external party
    /// (--party). The routing number's checksum and the account number's format are checked
    /// before anything is sent.
    Add(FundingSourceAddArgs),
    /// The main account's funding sources, or an external party's (--party).
    List(FundingSourceListArgs),
    /// One funding source.
    Get(IdArgs),
    /// Remove a funding source; transfers can no longer use it.
    Remove(IdArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("owner").required(true).args(["party", "treasury_account"])))]
pub struct FundingSourceAddArgs {
    /// The external party (id or URL) that owns the bank account.
    #[arg(long)]
    pub party: Option<String>,
    /// For a main-account bank account: the treasury account (id or URL) it is tied to.
    #[arg(long)]
    pub treasury_account: Option<String>,
    /// A name for the funding source (at most 50 characters).
    #[arg(long, value_parser = parse_funding_source_name)]
    pub name: String,
    /// The ABA routing number (9 digits).
    #[arg(long)]
    pub routing_number: RoutingNumber,
    /// The account number (4-17 digits). Prefer the environment variable: a flag is visible to
    /// other users in the process list. Checked by payrun, which never prints it (clap would
    /// echo an invalid value, so it is parsed here as a secret).
    #[arg(long, env = "PAYRUN_ACCOUNT_NUMBER", hide_env_values = true, value_parser = parse_secret)]
    pub account_number: Secret,
    /// checking or savings.
    #[arg(long, value_parser = parse_account_type)]
    pub account_type: BankAccountType,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Debug, Args)]
pub struct FundingSourceListArgs {
    /// An external party (id or URL) [default: the main account].
    #[arg(long)]
    pub party: Option<String>,
    /// Include removed funding sources.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Subcommand)]
pub enum ExchangesCommand {
    /// The exchange (open banking) partners: Finicity, MX, Flinks (or one, by id).
    Partners(OptionalIdArgs),
    /// Create an exchange from a partner session, for the main account or a party (--party).
    Create(ExchangeCreateArgs),
    /// The main account's exchanges, or an external party's (--party).
    List(ExchangeListArgs),
    /// One exchange.
    Get(IdArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("session").required(true).args(["token", "finicity"])))]
pub struct ExchangeCreateArgs {
    /// The external party (id or URL) [default: the main account].
    #[arg(long)]
    pub party: Option<String>,
    /// The exchange partner: an id, a URL or its name (Finicity, MX, Flinks).
    #[arg(long)]
    pub partner: String,
    /// The token from an MX or Flinks session.
    #[arg(long)]
    pub token: Option<String>,
    /// A JSON file with Finicity's consent receipt (profile, version, receiptId, ...).
    #[arg(long)]
    pub finicity: Option<PathBuf>,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Debug, Args)]
pub struct ExchangeListArgs {
    /// An external party (id or URL) [default: the main account].
    #[arg(long)]
    pub party: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Subcommand)]
pub enum TransfersCommand {
    /// One transfer.
    Get(IdArgs),
    /// The main account's transfers (newest first), or an external party's (--party).
    List(TransferListArgs),
}

#[derive(Debug, Args)]
pub struct TransferListArgs {
    /// An external party (id or URL) [default: the main account].
    #[arg(long)]
    pub party: Option<String>,
    /// Only the transfer with this correlationId (payrun sets one on every payout).
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// Stop after this many transfers [default: all].
    #[arg(long)]
    pub max: Option<usize>,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn parse_secret(text: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(text))
}

fn parse_funding_source_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() {
        Err("is empty".to_string())
    } else if name.chars().count() > 50 {
        Err(format!(
            "has {} characters; Dwolla allows at most 50",
            name.chars().count()
        ))
    } else {
        Ok(name.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Running

pub fn run_accounts(file: &FileConfig, command: &AccountsCommand) -> anyhow::Result<u8> {
    match command {
        AccountsCommand::Get(args) => with_client(file, &args.common, |client| async move {
            let id = match &args.id {
                Some(id) => id.clone(),
                None => main_account_id(&client).await?,
            };
            let account = client
                .get_account(&id)
                .await
                .map_err(|e| dwolla_failure("cannot get the account", &e))?;
            show_one(&args.common, account_json(&account), || {
                vec![
                    ("id", account.id.clone()),
                    ("name", account.name.clone()),
                    ("created", account.created.clone()),
                ]
            });
            Ok(exit::OK)
        }),
    }
}

pub fn run_treasury(file: &FileConfig, command: &TreasuryCommand) -> anyhow::Result<u8> {
    match command {
        TreasuryCommand::Partners(args) => treasury_partners(file, args),
        TreasuryCommand::Accounts(args) => treasury_accounts(file, args),
        TreasuryCommand::Create(args) => create_treasury_account(file, args),
    }
}

fn treasury_partners(file: &FileConfig, args: &OptionalIdArgs) -> anyhow::Result<u8> {
    with_client(file, &args.common, |client| async move {
        let partners = match &args.id {
            Some(id) => vec![
                client
                    .get_treasury_partner(id)
                    .await
                    .map_err(|e| dwolla_failure("cannot get the treasury partner", &e))?,
            ],
            None => list(&client, client.list_treasury_partners().await, None)
                .await
                .map_err(|e| dwolla_failure("cannot list treasury partners", &e))?,
        };
        show_list(
            &args.common,
            &partners,
            treasury_partner_json,
            &["id", "name"],
            |p| vec![p.id.clone(), p.name.clone()],
        );
        Ok(exit::OK)
    })
}

fn treasury_accounts(file: &FileConfig, args: &OptionalIdArgs) -> anyhow::Result<u8> {
    with_client(file, &args.common, |client| async move {
        let accounts = match &args.id {
            Some(id) => vec![
                client
                    .get_treasury_account(id)
                    .await
                    .map_err(|e| dwolla_failure("cannot get the treasury account", &e))?,
            ],
            None => list(&client, client.list_treasury_accounts().await, None)
                .await
                .map_err(|e| dwolla_failure("cannot list treasury accounts", &e))?,
        };
        show_list(
            &args.common,
            &accounts,
            treasury_account_json,
            &["id", "name", "partner context", "created"],
            |a| {
                vec![
                    a.id.clone(),
                    a.name.clone(),
                    context_text(a.treasury_partner_context.as_ref()),
                    a.created.clone(),
                ]
            },
        );
        Ok(exit::OK)
    })
}

fn create_treasury_account(file: &FileConfig, args: &TreasuryCreateArgs) -> anyhow::Result<u8> {
    with_client(file, &args.create.common, |client| async move {
        let partner_id = match looks_like_id(&args.partner) {
            true => id_of(&args.partner).to_string(),
            false => {
                let partners = list(&client, client.list_treasury_partners().await, None)
                    .await
                    .map_err(|e| dwolla_failure("cannot list treasury partners", &e))?;
                find_by_name(&partners, &args.partner, |p| (&p.id, &p.name))?
            }
        };
        let context = match (&args.ach_co_id, &args.gateway_company_id) {
            (Some(ach), _) => TreasuryPartnerContext::AchCoId(ach.clone()),
            (None, Some(gateway)) => TreasuryPartnerContext::GatewayCompanyId(gateway.clone()),
            (None, None) => unreachable!("clap requires one of them"),
        };
        let body = CreateTreasuryAccount {
            treasury_partner_url: resource_url(&client, "treasury-partners", &partner_id),
            name: args.name.clone(),
            treasury_partner_context: context,
        };
        let created = client
            .create_treasury_account(&body, args.create.idempotency_key.as_deref())
            .await
            .map_err(|e| dwolla_failure("Dwolla did not create the treasury account", &e))?;
        show_created(&args.create.common, "treasury account", &created);
        Ok(exit::OK)
    })
}

pub fn run_parties(file: &FileConfig, command: &PartiesCommand) -> anyhow::Result<u8> {
    match command {
        PartiesCommand::Create(args) => {
            with_client(file, &args.create.common, |client| async move {
                let email = args.email.trim().to_string();
                if !crate::ingest::row::looks_like_email(&email) {
                    return Err(usage(format!("--email: {email:?} is not an email address")));
                }
                let body = match (&args.business_name, &args.first_name, &args.last_name) {
                    (Some(business_name), _, _) => CreateExternalParty::Business {
                        business_name: business_name.trim().to_string(),
                        email,
                        correlation_id: args.correlation_id.clone(),
                    },
                    (None, Some(first), Some(last)) => CreateExternalParty::Personal {
                        first_name: first.trim().to_string(),
                        last_name: last.trim().to_string(),
                        email,
                        correlation_id: args.correlation_id.clone(),
                    },
                    _ => {
                        return Err(usage(
                            "give --business-name, or --first-name and --last-name".to_string(),
                        ));
                    }
                };
                let created = client
                    .create_external_party(&body, args.create.idempotency_key.as_deref())
                    .await
                    .map_err(|e| dwolla_failure("Dwolla did not create the external party", &e))?;
                show_created(&args.create.common, "external party", &created);
                Ok(exit::OK)
            })
        }
        PartiesCommand::List(args) => with_client(file, &args.common, |client| async move {
            let parties = list(&client, client.list_external_parties().await, args.max)
                .await
                .map_err(|e| dwolla_failure("cannot list external parties", &e))?;
            show_list(
                &args.common,
                &parties,
                party_json,
                &["id", "type", "name", "email", "created"],
                |p| {
                    vec![
                        p.id.clone(),
                        p.external_party_type.clone(),
                        party_name(p),
                        p.email.clone(),
                        p.created.clone(),
                    ]
                },
            );
            Ok(exit::OK)
        }),
        PartiesCommand::Get(args) => with_client(file, &args.common, |client| async move {
            let party = client
                .get_external_party(&args.id)
                .await
                .map_err(|e| dwolla_failure("cannot get the external party", &e))?;
            show_one(&args.common, party_json(&party), || {
                vec![
                    ("id", party.id.clone()),
                    ("type", party.external_party_type.clone()),
                    ("name", party_name(&party)),
                    ("email", party.email.clone()),
                    (
                        "correlation id",
                        party.correlation_id.clone().unwrap_or_default(),
                    ),
                    ("created", party.created.clone()),
                ]
            });
            Ok(exit::OK)
        }),
    }
}

/// `ledger` opens the ledger whose payee directory a removal updates (`None`: no ledger yet).
pub fn run_funding_sources<L: PayeeLedger>(
    ledger: impl FnOnce() -> anyhow::Result<Option<L>>,
    file: &FileConfig,
    command: &FundingSourcesCommand,
) -> anyhow::Result<u8> {
    match command {
        FundingSourcesCommand::Add(args) => {
            let account_number: AccountNumber = args
                .account_number
                .expose()
                .parse()
                .map_err(|message| usage(format!("--account-number: {message}")))?;
            add_funding_source(file, args, account_number)
        }
        FundingSourcesCommand::List(args) => with_client(file, &args.common, |client| async move {
            let first = match &args.party {
                Some(party) => {
                    client
                        .list_external_party_funding_sources(id_of(party))
                        .await
                }
                None => {
                    let account = main_account_id(&client).await?;
                    client.list_account_funding_sources(&account).await
                }
            };
            let mut sources = list(&client, first, None)
                .await
                .map_err(|e| dwolla_failure("cannot list funding sources", &e))?;
            if !args.all {
                sources.retain(|s| !s.removed);
            }
            show_list(
                &args.common,
                &sources,
                funding_source_json,
                &["id", "name", "type", "removed", "created"],
                funding_source_row,
            );
            Ok(exit::OK)
        }),
        FundingSourcesCommand::Get(args) => with_client(file, &args.common, |client| async move {
            let source = client
                .get_funding_source(&args.id)
                .await
                .map_err(|e| dwolla_failure("cannot get the funding source", &e))?;
            show_one(&args.common, funding_source_json(&source), || {
                funding_source_fields(&source)
            });
            Ok(exit::OK)
        }),
        FundingSourcesCommand::Remove(args) => remove_funding_source(ledger()?, file, args),
    }
}

/// Removes a funding source at Dwolla and, when there is a ledger, takes it out of the payee
/// directory in the same command, so that no payout file can name a payee whose bank account
/// is gone (Dwolla would refuse every transfer to it).
///
/// The ledger is opened before Dwolla is asked: if another payrun is writing a ledger file,
/// or a PostgreSQL ledger cannot be reached, this exits 75 having changed nothing anywhere.
fn remove_funding_source(
    ledger: Option<impl PayeeLedger>,
    file: &FileConfig,
    args: &IdArgs,
) -> anyhow::Result<u8> {
    let client = args.common.dwolla.client(file)?;
    let source = runtime()?
        .block_on(client.remove_funding_source(&args.id))
        .map_err(|e| dwolla_failure("Dwolla did not remove the funding source", &e))?;
    if let Some(mut ledger) = ledger {
        let now = crate::ledger::timestamp(time::OffsetDateTime::now_utc());
        for payee in ledger.forget_payee_funding_source(&source.id, &now)? {
            tracing::warn!(
                payee = %payee,
                funding_source = %source.id,
                "this payee's funding source was removed: payout files can no longer name the \
                 payee, which stays in the directory without one (see `payrun payees list`)"
            );
        }
    }
    show_one(&args.common, funding_source_json(&source), || {
        funding_source_fields(&source)
    });
    Ok(exit::OK)
}

fn add_funding_source(
    file: &FileConfig,
    args: &FundingSourceAddArgs,
    account_number: AccountNumber,
) -> anyhow::Result<u8> {
    with_client(file, &args.create.common, |client| async move {
        let key = args.create.idempotency_key.as_deref();
        let created = match (&args.party, &args.treasury_account) {
            (Some(party), _) => {
                let body = CreateExternalPartyFundingSource::Bank {
                    name: args.name.clone(),
                    bank_account_type: args.account_type,
                    account_number: account_number.expose().to_string(),
                    routing_number: args.routing_number.as_str().to_string(),
                };
                client
                    .create_external_party_funding_source(id_of(party), &body, key)
                    .await
            }
            (None, Some(treasury_account)) => {
                let body = CreateAccountFundingSource {
                    treasury_account_url: resource_url(
                        &client,
                        "treasury-accounts",
                        id_of(treasury_account),
                    ),
                    name: args.name.clone(),
                    bank_account_type: args.account_type,
                    account_number: account_number.expose().to_string(),
                    routing_number: args.routing_number.as_str().to_string(),
                };
                client.create_funding_source(&body, key).await
            }
            (None, None) => unreachable!("clap requires one of them"),
        }
        .map_err(|e| dwolla_failure("Dwolla did not add the funding source", &e))?;
        tracing::info!(
            funding_source = created.id(),
            account = %account_number,
            "funding source added"
        );
        show_created(&args.create.common, "funding source", &created);
        Ok(exit::OK)
    })
}

pub fn run_exchanges(file: &FileConfig, command: &ExchangesCommand) -> anyhow::Result<u8> {
    match command {
        ExchangesCommand::Partners(args) => exchange_partners(file, args),
        ExchangesCommand::Create(args) => create_exchange(file, args),
        ExchangesCommand::List(args) => list_exchanges(file, args),
        ExchangesCommand::Get(args) => get_exchange(file, args),
    }
}

fn exchange_partners(file: &FileConfig, args: &OptionalIdArgs) -> anyhow::Result<u8> {
    with_client(file, &args.common, |client| async move {
        let partners = match &args.id {
            Some(id) => vec![
                client
                    .get_exchange_partner(id)
                    .await
                    .map_err(|e| dwolla_failure("cannot get the exchange partner", &e))?,
            ],
            None => list(&client, client.list_exchange_partners().await, None)
                .await
                .map_err(|e| dwolla_failure("cannot list exchange partners", &e))?,
        };
        show_list(
            &args.common,
            &partners,
            exchange_partner_json,
            &["id", "name", "status", "created"],
            |p| {
                vec![
                    p.id.clone(),
                    p.name.clone(),
                    p.status.clone().unwrap_or_default(),
                    p.created.clone(),
                ]
            },
        );
        Ok(exit::OK)
    })
}

fn create_exchange(file: &FileConfig, args: &ExchangeCreateArgs) -> anyhow::Result<u8> {
    // Read the receipt before any network call, so a bad file costs nothing.
    let finicity = match &args.finicity {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", crate::names::shown(path)))?;
            let value: Value = serde_json::from_str(&text).map_err(|err| Failure {
                status: exit::INVALID_INPUT,
                message: format!("{}: not JSON: {err}", crate::names::shown(path)),
            })?;
            if !value.is_object() {
                return Err(Failure {
                    status: exit::INVALID_INPUT,
                    message: format!(
                        "{}: Finicity's receipt must be a JSON object",
                        crate::names::shown(path)
                    ),
                }
                .into());
            }
            Some(value)
        }
        None => None,
    };
    with_client(file, &args.create.common, |client| async move {
        let partner_id = match looks_like_id(&args.partner) {
            true => id_of(&args.partner).to_string(),
            false => {
                let partners = list(&client, client.list_exchange_partners().await, None)
                    .await
                    .map_err(|e| dwolla_failure("cannot list exchange partners", &e))?;
                find_by_name(&partners, &args.partner, |p| (&p.id, &p.name))?
            }
        };
        let exchange_partner_url = resource_url(&client, "exchange-partners", &partner_id);
        let body = match (finicity, &args.token) {
            (Some(finicity), _) => CreateExchange::Finicity {
                exchange_partner_url,
                finicity,
            },
            (None, Some(token)) => CreateExchange::Token {
                exchange_partner_url,
                token: token.clone(),
            },
            (None, None) => unreachable!("clap requires one of them"),
        };
        let key = args.create.idempotency_key.as_deref();
        let created = match &args.party {
            Some(party) => {
                client
                    .create_external_party_exchange(id_of(party), &body, key)
                    .await
            }
            None => client.create_exchange(&body, key).await,
        }
        .map_err(|e| dwolla_failure("Dwolla did not create the exchange", &e))?;
        show_created(&args.create.common, "exchange", &created);
        Ok(exit::OK)
    })
}

fn list_exchanges(file: &FileConfig, args: &ExchangeListArgs) -> anyhow::Result<u8> {
    with_client(file, &args.common, |client| async move {
        let first = match &args.party {
            Some(party) => client.list_external_party_exchanges(id_of(party)).await,
            None => client.list_exchanges().await,
        };
        let exchanges = list(&client, first, None)
            .await
            .map_err(|e| dwolla_failure("cannot list exchanges", &e))?;
        show_list(
            &args.common,
            &exchanges,
            exchange_json,
            &["id", "status", "partner", "created"],
            exchange_row,
        );
        Ok(exit::OK)
    })
}

fn get_exchange(file: &FileConfig, args: &IdArgs) -> anyhow::Result<u8> {
    with_client(file, &args.common, |client| async move {
        let exchange = client
            .get_exchange(&args.id)
            .await
            .map_err(|e| dwolla_failure("cannot get the exchange", &e))?;
        show_one(&args.common, exchange_json(&exchange), || {
            let row = exchange_row(&exchange);
            vec![
                ("id", row[0].clone()),
                ("status", row[1].clone()),
                ("partner", row[2].clone()),
                ("created", row[3].clone()),
            ]
        });
        Ok(exit::OK)
    })
}

pub fn run_transfers(file: &FileConfig, command: &TransfersCommand) -> anyhow::Result<u8> {
    match command {
        TransfersCommand::Get(args) => get_transfer(file, args),
        TransfersCommand::List(args) => list_transfers(file, args),
    }
}

fn get_transfer(file: &FileConfig, args: &IdArgs) -> anyhow::Result<u8> {
    with_client(file, &args.common, |client| async move {
        let transfer = client
            .get_transfer(&args.id)
            .await
            .map_err(|e| dwolla_failure("cannot get the transfer", &e))?;
        show_one(&args.common, transfer_json(&transfer), || {
            let failure = transfer.failure_reason.as_ref();
            vec![
                ("id", transfer.id.clone()),
                ("status", transfer.status.to_string()),
                (
                    "amount",
                    format!("{} {}", transfer.amount.value, transfer.amount.currency),
                ),
                ("created", transfer.created.clone()),
                (
                    "correlation id",
                    transfer.correlation_id.clone().unwrap_or_default(),
                ),
                (
                    "source",
                    transfer
                        .source_funding_source_url()
                        .unwrap_or_default()
                        .to_string(),
                ),
                (
                    "destination",
                    transfer
                        .destination_funding_source_url()
                        .unwrap_or_default()
                        .to_string(),
                ),
                (
                    "failure",
                    failure
                        .map(|f| format!("{}: {}", f.code, f.description))
                        .unwrap_or_default(),
                ),
            ]
        });
        Ok(exit::OK)
    })
}

fn list_transfers(file: &FileConfig, args: &TransferListArgs) -> anyhow::Result<u8> {
    with_client(file, &args.common, |client| async move {
        let query = TransferQuery {
            correlation_id: args.correlation_id.clone(),
            ..TransferQuery::default()
        };
        let first = match &args.party {
            Some(party) => {
                client
                    .list_external_party_transfers(id_of(party), &query)
                    .await
            }
            None => {
                let account = main_account_id(&client).await?;
                client.list_account_transfers(&account, &query).await
            }
        };
        let transfers = list(&client, first, args.max)
            .await
            .map_err(|e| dwolla_failure("cannot list transfers", &e))?;
        show_list(
            &args.common,
            &transfers,
            transfer_json,
            &[
                "id",
                "created",
                "status",
                "amount",
                "correlation id",
                "failure",
            ],
            |t| {
                vec![
                    t.id.clone(),
                    t.created.clone(),
                    t.status.to_string(),
                    t.amount.value.clone(),
                    t.correlation_id.clone().unwrap_or_default(),
                    t.failure_reason
                        .as_ref()
                        .map(|f| f.code.clone())
                        .unwrap_or_default(),
                ]
            },
        );
        Ok(exit::OK)
    })
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

/// Builds the client, then runs `body` on a fresh runtime. A failure chooses its exit status.
fn with_client<'a, F, Fut>(file: &FileConfig, common: &'a CommonArgs, body: F) -> anyhow::Result<u8>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<u8, Failure>> + 'a,
{
    let client = common.dwolla.client(file)?;
    Ok(runtime()?.block_on(body(client))?)
}

fn usage(message: String) -> Failure {
    Failure {
        status: exit::USAGE,
        message,
    }
}

pub(crate) async fn main_account_id(client: &Client) -> Result<String, Failure> {
    let root = client
        .root()
        .await
        .map_err(|e| dwolla_failure("cannot read the API root", &e))?;
    root.account_id().map(str::to_owned).ok_or_else(|| Failure {
        status: exit::UNAVAILABLE,
        message: "the API root links to no account".to_string(),
    })
}

async fn list<T: crate::dwolla::Embedded>(
    client: &Client,
    first: Result<crate::dwolla::Page<T>, DwollaError>,
    max: Option<usize>,
) -> Result<Vec<T>, DwollaError> {
    all_pages(client, first?, max).await
}

/// `{base}/{collection}/{id}` on the configured API, whatever host a pasted URL named.
fn resource_url(client: &Client, collection: &str, id: &str) -> String {
    format!("{}/{collection}/{}", client.base_url(), id_of(id))
}

/// An id or URL, as opposed to a partner's name.
fn looks_like_id(text: &str) -> bool {
    let id = id_of(text);
    text.contains('/') || uuid::Uuid::parse_str(id).is_ok()
}

fn find_by_name<T>(
    items: &[T],
    name: &str,
    key: impl Fn(&T) -> (&String, &String),
) -> Result<String, Failure> {
    let wanted = name.trim();
    items
        .iter()
        .map(&key)
        .find(|(_, n)| n.eq_ignore_ascii_case(wanted))
        .map(|(id, _)| id.clone())
        .ok_or_else(|| {
            let names: Vec<&str> = items.iter().map(|i| key(i).1.as_str()).collect();
            usage(format!(
                "--partner: no partner is named {wanted:?}; the partners are {}",
                names.join(", ")
            ))
        })
}

fn show_one(
    common: &CommonArgs,
    json: Value,
    fields: impl FnOnce() -> Vec<(&'static str, String)>,
) {
    if common.json {
        print_json(&json);
    } else {
        print_fields(&fields());
    }
}

fn show_list<T>(
    common: &CommonArgs,
    items: &[T],
    to_json: fn(&T) -> Value,
    header: &[&'static str],
    to_row: impl Fn(&T) -> Vec<String>,
) {
    if common.json {
        print_json(&Value::Array(items.iter().map(to_json).collect()));
    } else {
        let mut table = Table::new(header);
        for item in items {
            table.row(to_row(item));
        }
        table.print();
    }
}

fn show_created(common: &CommonArgs, what: &str, created: &Created) {
    if common.json {
        print_json(&json!({"id": created.id(), "location": created.location}));
    } else {
        println!("created {what} {} ({})", created.id(), created.location);
    }
}

fn links_json(links: &Links) -> Value {
    Value::Object(
        links
            .0
            .iter()
            .map(|(rel, link)| (rel.clone(), Value::String(link.href.clone())))
            .collect(),
    )
}

fn context_text(context: Option<&TreasuryPartnerContext>) -> String {
    match context {
        Some(TreasuryPartnerContext::AchCoId(id)) => format!("achCoId {id}"),
        Some(TreasuryPartnerContext::GatewayCompanyId(id)) => format!("gatewayCompanyId {id}"),
        None => String::new(),
    }
}

fn party_name(party: &ExternalParty) -> String {
    match &party.business_name {
        Some(name) => name.clone(),
        None => format!(
            "{} {}",
            party.first_name.as_deref().unwrap_or_default(),
            party.last_name.as_deref().unwrap_or_default()
        )
        .trim()
        .to_string(),
    }
}

fn account_json(account: &Account) -> Value {
    json!({
        "id": account.id,
        "name": account.name,
        "created": account.created,
        "links": links_json(&account.links),
    })
}

fn treasury_partner_json(partner: &TreasuryPartner) -> Value {
    json!({"id": partner.id, "name": partner.name, "links": links_json(&partner.links)})
}

fn treasury_account_json(account: &TreasuryAccount) -> Value {
    json!({
        "id": account.id,
        "name": account.name,
        "created": account.created,
        "treasuryPartnerContext": account.treasury_partner_context,
        "links": links_json(&account.links),
    })
}

pub(crate) fn party_json(party: &ExternalParty) -> Value {
    json!({
        "id": party.id,
        "externalPartyType": party.external_party_type,
        "businessName": party.business_name,
        "firstName": party.first_name,
        "lastName": party.last_name,
        "email": party.email,
        "correlationId": party.correlation_id,
        "created": party.created,
        "links": links_json(&party.links),
    })
}

fn funding_source_json(source: &FundingSource) -> Value {
    json!({
        "id": source.id,
        "name": source.name,
        "bankAccountType": source.bank_account_type,
        "removed": source.removed,
        "created": source.created,
        "links": links_json(&source.links),
    })
}

fn funding_source_row(source: &FundingSource) -> Vec<String> {
    vec![
        source.id.clone(),
        source.name.clone(),
        source.bank_account_type.clone().unwrap_or_default(),
        if source.removed { "yes" } else { "no" }.to_string(),
        source.created.clone(),
    ]
}

fn funding_source_fields(source: &FundingSource) -> Vec<(&'static str, String)> {
    let owner = source
        .links
        .href("external-party")
        .or_else(|| source.links.href("account"))
        .unwrap_or_default()
        .to_string();
    vec![
        ("id", source.id.clone()),
        ("name", source.name.clone()),
        ("type", source.bank_account_type.clone().unwrap_or_default()),
        ("removed", source.removed.to_string()),
        ("created", source.created.clone()),
        ("owner", owner),
    ]
}

fn exchange_partner_json(partner: &ExchangePartner) -> Value {
    json!({
        "id": partner.id,
        "name": partner.name,
        "status": partner.status,
        "created": partner.created,
        "links": links_json(&partner.links),
    })
}

fn exchange_json(exchange: &Exchange) -> Value {
    json!({
        "id": exchange.id,
        "status": exchange.status,
        "created": exchange.created,
        "links": links_json(&exchange.links),
    })
}

fn exchange_row(exchange: &Exchange) -> Vec<String> {
    vec![
        exchange.id.clone(),
        exchange.status.clone().unwrap_or_default(),
        exchange
            .links
            .href("exchange-partner")
            .map(id_of)
            .unwrap_or_default()
            .to_string(),
        exchange.created.clone(),
    ]
}

fn transfer_json(transfer: &Transfer) -> Value {
    json!({
        "id": transfer.id,
        "status": transfer.status,
        "amount": transfer.amount,
        "created": transfer.created,
        "correlationId": transfer.correlation_id,
        "metadata": transfer.metadata,
        "failureReason": transfer.failure_reason,
        "processingChannel": transfer.processing_channel,
        "links": links_json(&transfer.links),
    })
}

/// The id in `text`, which may be a bare id or a Dwolla URL (the last path segment).
pub(super) fn id_of(text: &str) -> &str {
    crate::dwolla::wire::last_segment(text.trim())
}

/// Prints `value` as one compact line.
pub(super) fn print_json(value: &Value) {
    println!("{value}");
}
