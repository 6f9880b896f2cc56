//! The data every simulator starts with, under ids that never change so that sample files and
//! tests can name them. README lists them; keep both in step.

use uuid::Uuid;

use super::clock::SimTime;
use super::store::{
    ExchangePartner, ExternalParty, FsOwner, FundingSource, PartyKind, Store, TreasuryAccount,
    TreasuryPartner,
};

pub const ACCOUNT_ID: &str = "a0000000-0000-4000-8000-000000000001";
pub const ACCOUNT_NAME: &str = "Payrun Demo Co";
pub const TREASURY_ACCOUNT_ID: &str = "7a000000-0000-4000-8000-000000000001";
/// The source funding source: linked to the treasury account; transfers from it are credits.
pub const SOURCE_FUNDING_SOURCE_ID: &str = "f0000000-0000-4000-8000-000000000001";
/// A main-account funding source whose treasury link does not match: transfers from it fail
/// with GCA-051.
pub const UNLINKED_FUNDING_SOURCE_ID: &str = "f0000000-0000-4000-8000-000000000002";

/// Treasury partner ids as in the Connect spec's examples.
pub const JP_MORGAN_ID: &str = "63a5f9d2-de34-40ae-a96e-0ab02cb7abd9";
pub const WELLS_FARGO_ID: &str = "50a1a90b-c960-4c9f-bfb3-15a91ba0df60";

/// Exchange partner ids as in the Connect spec's examples.
pub const FINICITY_ID: &str = "292317ec-e252-47d8-93c3-2d128e037aa4";
pub const MX_ID: &str = "e5e9f2d3-a96c-4abd-a097-8ec7ae28aa8a";
pub const FLINKS_ID: &str = "a0b22a57-68df-4450-b507-47c937e64e89";

/// The id of external party `n` (1..=50).
pub fn external_party_id(n: u8) -> Uuid {
    id(&format!("e0000000-0000-4000-8000-0000000000{n:02}"))
}

/// The id of external party `n`'s funding source (1..=50).
pub fn party_funding_source_id(n: u8) -> Uuid {
    id(&format!("fd000000-0000-4000-8000-0000000000{n:02}"))
}

pub fn id(text: &str) -> Uuid {
    Uuid::parse_str(text).expect("seed ids are valid UUIDs")
}

enum Who {
    Person(&'static str, &'static str),
    Business(&'static str),
}

/// (who, email, funding-source name, bank account type). Parties 9 to 13 carry funding sources
/// named after ACH return codes, which the lifecycle turns into failures and returns.
const PARTIES: [(Who, &str, &str, &str); 13] = [
    (
        Who::Person("Ana", "Souza"),
        "ana.souza@example.com",
        "Checking",
        "checking",
    ),
    (
        Who::Business("Northwind Landscaping LLC"),
        "billing@northwind-landscaping.example.com",
        "Business Checking",
        "checking",
    ),
    (
        Who::Person("Marcus", "Chen"),
        "marcus.chen@example.com",
        "Checking",
        "checking",
    ),
    (
        Who::Business("Bluebird Bakery Inc."),
        "accounts@bluebird-bakery.example.com",
        "Operating Checking",
        "checking",
    ),
    (
        Who::Person("Priya", "Raman"),
        "priya.raman@example.com",
        "Savings",
        "savings",
    ),
    (
        Who::Person("Tomas", "Alvarez"),
        "tomas.alvarez@example.com",
        "Checking",
        "checking",
    ),
    (
        Who::Business("Harbor Lane Couriers LLC"),
        "payables@harborlane-couriers.example.com",
        "Business Checking",
        "checking",
    ),
    (
        Who::Person("Grace", "O'Neill"),
        "grace.oneill@example.com",
        "Checking",
        "checking",
    ),
    (
        Who::Person("Jordan", "Reyes"),
        "jordan.reyes@example.com",
        "R01",
        "checking",
    ),
    (
        Who::Business("Quill & Ink Stationers"),
        "office@quill-ink.example.com",
        "R03",
        "checking",
    ),
    (
        Who::Person("Sam", "Patel"),
        "sam.patel@example.com",
        "R01-late",
        "checking",
    ),
    (
        Who::Business("Redwood Plumbing LLC"),
        "ap@redwood-plumbing.example.com",
        "R03-late",
        "checking",
    ),
    (
        Who::Person("Lena", "Fischer"),
        "lena.fischer@example.com",
        "R02",
        "checking",
    ),
];

/// Ordinary payees 14 to 50 (first name, last name, email): with 1 to 13 they are the 50
/// employees of `samples/payroll.csv`, so the sample and the demo pay real seeded payees.
const MORE_PAYEES: [(&str, &str, &str); 37] = [
    ("Diego", "Larsen", "diego.larsen@example.com"),
    ("Ivy", "Mendes", "ivy.mendes@example.com"),
    ("Samuel", "Novak", "samuel.novak@example.com"),
    ("Leila", "Fischer", "leila.fischer@example.com"),
    ("Owen", "Ibrahim", "owen.ibrahim@example.com"),
    ("Nina", "Walsh", "nina.walsh@example.com"),
    ("Caleb", "Moreau", "caleb.moreau@example.com"),
    ("Sofia", "Nguyen", "sofia.nguyen@example.com"),
    ("Elijah", "Patel", "elijah.patel@example.com"),
    ("Aria", "Garcia", "aria.garcia@example.com"),
    ("Jonah", "Kim", "jonah.kim@example.com"),
    ("Mila", "Okafor", "mila.okafor@example.com"),
    ("Isaac", "Rossi", "isaac.rossi@example.com"),
    ("Ruby", "Schmidt", "ruby.schmidt@example.com"),
    ("Felix", "Haddad", "felix.haddad@example.com"),
    ("Aisha", "Silva", "aisha.silva@example.com"),
    ("Theo", "Cohen", "theo.cohen@example.com"),
    ("Clara", "Murphy", "clara.murphy@example.com"),
    ("Kai", "Tanaka", "kai.tanaka@example.com"),
    ("Elena", "Dubois", "elena.dubois@example.com"),
    ("Marcus", "Larsen", "marcus.larsen@example.com"),
    ("Julia", "Mendes", "julia.mendes@example.com"),
    ("Rafael", "Novak", "rafael.novak@example.com"),
    ("Tessa", "Fischer", "tessa.fischer@example.com"),
    ("Hugo", "Ibrahim", "hugo.ibrahim@example.com"),
    ("Naomi", "Walsh", "naomi.walsh@example.com"),
    ("Victor", "Moreau", "victor.moreau@example.com"),
    ("Lena", "Nguyen", "lena.nguyen@example.com"),
    ("Arjun", "Patel", "arjun.patel@example.com"),
    ("Paige", "Garcia", "paige.garcia@example.com"),
    ("Mason", "Kim", "mason.kim@example.com"),
    ("Yara", "Okafor", "yara.okafor@example.com"),
    ("Dmitri", "Rossi", "dmitri.rossi@example.com"),
    ("Rosa", "Schmidt", "rosa.schmidt@example.com"),
    ("Wes", "Haddad", "wes.haddad@example.com"),
    ("Ines", "Silva", "ines.silva@example.com"),
    ("Tobias", "Cohen", "tobias.cohen@example.com"),
];

/// A fixed creation time for seeded resources (2025-01-06T15:00:00Z), a little apart each.
fn seeded_at(n: i64) -> SimTime {
    SimTime(1_736_175_600_000 + n * 1_000)
}

/// Everything a fresh simulator holds: partners, the treasury account, the main account's two
/// funding sources and the 50 payees with one funding source each.
pub fn seed(store: &mut Store) {
    seed_partners(store);
    seed_account(store);
    seed_payees(store);
}

/// The treasury and exchange partners of the Connect spec's examples.
fn seed_partners(store: &mut Store) {
    store.treasury_partners = vec![
        TreasuryPartner {
            id: id(JP_MORGAN_ID),
            name: "J.P. Morgan",
            context_field: "achCoId",
        },
        TreasuryPartner {
            id: id(WELLS_FARGO_ID),
            name: "Wells Fargo",
            context_field: "gatewayCompanyId",
        },
    ];
    store.exchange_partners = vec![
        ExchangePartner {
            id: id(FINICITY_ID),
            name: "Finicity",
            created: "2022-05-17T16:08:52.146Z",
        },
        ExchangePartner {
            id: id(MX_ID),
            name: "MX",
            created: "2022-08-30T19:31:59.106Z",
        },
        ExchangePartner {
            id: id(FLINKS_ID),
            name: "Flinks",
            created: "2023-05-15T14:43:47.615Z",
        },
    ];
}

/// The treasury account and the main account's linked and unlinked funding sources.
fn seed_account(store: &mut Store) {
    let treasury = id(TREASURY_ACCOUNT_ID);
    store.add_treasury_account(TreasuryAccount {
        id: treasury,
        name: "Payrun Demo Co - J.P. Morgan operating".into(),
        created: seeded_at(1),
        partner: id(JP_MORGAN_ID),
        context_field: "achCoId",
        context_value: "4161803583".into(),
    });
    let now = seeded_at(2);
    for (fs_id, name, mismatch) in [
        (SOURCE_FUNDING_SOURCE_ID, "Operating account", false),
        (UNLINKED_FUNDING_SOURCE_ID, "Unlinked account", true),
    ] {
        store.add_funding_source(
            FundingSource {
                id: id(fs_id),
                owner: FsOwner::Account {
                    treasury_account: treasury,
                    ach_mismatch: mismatch,
                },
                name: name.into(),
                bank_account_type: "checking".into(),
                created: now,
                removed: false,
                fingerprint: None,
                exchange: None,
            },
            now,
            false,
        );
    }
}

/// One seeded payee: who, email, funding-source name, bank account type.
type Payee = (PartyKind, &'static str, &'static str, &'static str);

/// The 50 payees, `PARTIES` first and `MORE_PAYEES` after, numbered from 1.
fn payees() -> impl Iterator<Item = Payee> {
    let named = PARTIES.iter().map(|(who, email, fs_name, kind)| {
        let kind_of_party = match who {
            Who::Person(first, last) => PartyKind::Personal {
                first_name: (*first).into(),
                last_name: (*last).into(),
            },
            Who::Business(name) => PartyKind::Business {
                business_name: (*name).into(),
            },
        };
        (kind_of_party, *email, *fs_name, *kind)
    });
    let ordinary = MORE_PAYEES.iter().map(|(first, last, email)| {
        let kind_of_party = PartyKind::Personal {
            first_name: (*first).into(),
            last_name: (*last).into(),
        };
        (kind_of_party, *email, "Checking", "checking")
    });
    named.chain(ordinary)
}

fn seed_payees(store: &mut Store) {
    for (i, (kind_of_party, email, fs_name, kind)) in payees().enumerate() {
        let n = (i + 1) as u8;
        let created = seeded_at(10 + i as i64);
        let party = external_party_id(n);
        store.add_external_party(
            ExternalParty {
                id: party,
                kind: kind_of_party,
                email: email.into(),
                correlation_id: None,
                created,
            },
            created,
            false,
        );
        store.add_funding_source(
            FundingSource {
                id: party_funding_source_id(n),
                owner: FsOwner::ExternalParty(party),
                name: fs_name.into(),
                bank_account_type: kind.into(),
                created,
                removed: false,
                fingerprint: None,
                exchange: None,
            },
            created,
            false,
        );
    }
}
