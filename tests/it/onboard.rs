//! The Connect resource commands and `payrun payees`, run as the real binary against an
//! in-process simulator: tables and `--json`, paging, the checks made before calling Dwolla,
//! exit statuses, payee import exactly once, payout files that name payees (ingested and
//! planned), and no full account number anywhere payrun writes. The payee tests, and the
//! funding-source test (a removal updates the payee directory), run on both engines; the other
//! Connect resource commands keep no ledger, so they run once.

use std::process::Command;
use std::time::Duration;

use payrun::dwolla::Client;
use payrun::dwolla::wire::CreateExternalParty;
use payrun::sim::{SimConfig, SimHandle};
use serde_json::Value;

use crate::on_both_engines;
use crate::support::postgres::PgDatabase;
use crate::support::{Run, SendEnv, Workdir, point_at, run_blocking, sim_dwolla_config};

/// A scratch ledger (a file, or a PostgreSQL database), a simulator, and the binary pointed at
/// it.
pub struct OnboardEnv {
    pub work: Workdir,
    pub sim: SimHandle,
    /// Kept for the test's length: dropping it drops the database.
    _pg: Option<PgDatabase>,
}

impl OnboardEnv {
    pub async fn start() -> OnboardEnv {
        OnboardEnv::on(SendEnv::start(SimConfig::new()).await)
    }

    /// The ledger and simulator `on_both_engines!` made.
    pub fn on(env: SendEnv) -> OnboardEnv {
        OnboardEnv {
            work: env.work,
            sim: env.sim,
            _pg: env.pg,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.work.command(args);
        point_at(&mut command, &self.sim).env_remove("PAYRUN_ACCOUNT_NUMBER");
        command
    }

    /// Runs the binary off the async threads, so the in-process simulator keeps answering.
    pub async fn run_command(command: Command) -> Run {
        run_blocking(command).await
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        OnboardEnv::run_command(self.command(args)).await
    }

    /// Runs `args` with `--json`, expecting exit 0; returns the parsed stdout.
    pub async fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let run = self.run(&args).await;
        assert_eq!(run.code, 0, "payrun {args:?}: {}", run.stderr);
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|err| panic!("payrun {args:?} printed no JSON ({err}): {}", run.stdout))
    }

    pub fn client(&self) -> Client {
        Client::new(sim_dwolla_config(&self.sim)).expect("client")
    }

    pub async fn n_parties(&self) -> u64 {
        self.client()
            .list_external_parties()
            .await
            .expect("list parties")
            .total
            .expect("the simulator reports a total")
    }
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|item| item["id"].as_str().expect("an id").to_string())
        .collect()
}

const SEEDED_PARTY: &str = "e0000000-0000-4000-8000-000000000001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_and_treasury_commands_print_tables_and_json() {
    let env = OnboardEnv::start().await;

    let account = env.json(&["accounts", "get"]).await;
    assert_eq!(account["id"], env.sim.account_id());
    let table = env.run(&["accounts", "get"]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.starts_with("id "), "{}", table.stdout);
    assert!(table.stdout.contains(env.sim.account_id()));

    let partners = env.json(&["treasury", "partners"]).await;
    let names: Vec<&str> = partners
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["J.P. Morgan", "Wells Fargo"]);
    let one = env
        .json(&[
            "treasury",
            "partners",
            "50a1a90b-c960-4c9f-bfb3-15a91ba0df60",
        ])
        .await;
    assert_eq!(one[0]["name"], "Wells Fargo");

    // By the partner's name; the id comes back and the account is listed.
    let created = env
        .json(&[
            "treasury",
            "create",
            "--partner",
            "j.p. morgan",
            "--name",
            "Payroll",
            "--ach-co-id",
            "4161803583",
        ])
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let accounts = env.json(&["treasury", "accounts"]).await;
    assert!(ids(&accounts).contains(&id), "{accounts}");
    let table = env.run(&["treasury", "accounts", &id]).await;
    assert!(table.stdout.contains("Payroll"), "{}", table.stdout);
    assert!(
        table.stdout.contains("achCoId 4161803583"),
        "{}",
        table.stdout
    );

    let unknown = env
        .run(&[
            "treasury",
            "create",
            "--partner",
            "Nobody Bank",
            "--name",
            "X",
            "--ach-co-id",
            "1",
        ])
        .await;
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown
            .stderr
            .contains("the partners are J.P. Morgan, Wells Fargo"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parties_are_created_got_and_listed_across_pages() {
    let env = OnboardEnv::start().await;
    let business = env
        .json(&[
            "parties",
            "create",
            "--business-name",
            "Acme Tools LLC",
            "--email",
            "ap@acme-tools.example.com",
        ])
        .await;
    let person = env
        .json(&[
            "parties",
            "create",
            "--first-name",
            "Grace",
            "--last-name",
            "Hopper",
            "--email",
            "grace@example.com",
            "--idempotency-key",
            "onboard-test-grace",
        ])
        .await;
    // The same key again is a replay: the same party, nothing new.
    let again = env
        .json(&[
            "parties",
            "create",
            "--first-name",
            "Grace",
            "--last-name",
            "Hopper",
            "--email",
            "grace@example.com",
            "--idempotency-key",
            "onboard-test-grace",
        ])
        .await;
    assert_eq!(again["id"], person["id"]);

    let got = env
        .json(&["parties", "get", business["location"].as_str().unwrap()])
        .await;
    assert_eq!(got["businessName"], "Acme Tools LLC");
    assert_eq!(got["externalPartyType"], "business");

    // Enough parties for the simulator's 25-item pages to need three of them.
    let client = env.client();
    for n in 0..40 {
        let body = CreateExternalParty::Business {
            business_name: format!("Filler {n}"),
            email: format!("filler{n}@example.com"),
            correlation_id: None,
        };
        client.create_external_party(&body, None).await.unwrap();
    }
    let total = env.n_parties().await;
    assert!(total > 50, "{total}");
    let all = env.json(&["parties", "list"]).await;
    let all_ids = ids(&all);
    assert_eq!(all_ids.len() as u64, total);
    assert!(all_ids.contains(&person["id"].as_str().unwrap().to_string()));
    let unique: std::collections::HashSet<_> = all_ids.iter().collect();
    assert_eq!(unique.len(), all_ids.len(), "no page is read twice");
    assert_eq!(
        ids(&env.json(&["parties", "list", "--max", "30"]).await).len(),
        30
    );

    let table = env.run(&["parties", "list", "--max", "2"]).await;
    assert_eq!(table.stdout.lines().count(), 3, "{}", table.stdout);
    assert!(table.stdout.starts_with("id "), "{}", table.stdout);

    let missing = env
        .run(&["parties", "get", "e0000000-0000-4000-8000-0000000000ff"])
        .await;
    assert_eq!(
        missing.code, 65,
        "a refusal is invalid input: {}",
        missing.stderr
    );
    assert!(missing.stderr.contains("NotFound"), "{}", missing.stderr);
}

on_both_engines!(
    /// `funding-sources remove` updates the payee directory of the ledger: where payrun has
    /// made no ledger yet, it makes none.
    funding_sources_are_checked_before_dwolla_then_added_listed_and_removed,
    SimConfig::new(),
    funding_sources_checked_added_removed
);

async fn funding_sources_checked_added_removed(env: SendEnv) {
    let env = OnboardEnv::on(env);
    let before = env.sim.stats().total_requests;
    let bad_routing = env
        .run(&[
            "funding-sources",
            "add",
            "--party",
            SEEDED_PARTY,
            "--name",
            "Ops",
            "--routing-number",
            "222222262",
            "--account-number",
            "55501234",
            "--account-type",
            "checking",
        ])
        .await;
    assert_eq!(bad_routing.code, 2, "{}", bad_routing.stderr);
    assert!(
        bad_routing.stderr.contains("--routing-number") && bad_routing.stderr.contains("checksum"),
        "{}",
        bad_routing.stderr
    );
    let mut command = env.command(&[
        "funding-sources",
        "add",
        "--party",
        SEEDED_PARTY,
        "--name",
        "Ops",
        "--routing-number",
        "222222226",
        "--account-type",
        "checking",
    ]);
    command.env("PAYRUN_ACCOUNT_NUMBER", "12345678901234567890");
    let bad_account = OnboardEnv::run_command(command).await;
    assert_eq!(bad_account.code, 2, "{}", bad_account.stderr);
    assert!(
        bad_account.stderr.contains("--account-number"),
        "{}",
        bad_account.stderr
    );
    assert!(
        !bad_account.stderr.contains("12345678901234567890"),
        "the number is not echoed: {}",
        bad_account.stderr
    );
    assert_eq!(
        env.sim.stats().total_requests,
        before,
        "nothing reached Dwolla"
    );

    // The account number from the environment, not the command line.
    let mut command = env.command(&[
        "funding-sources",
        "add",
        "--party",
        SEEDED_PARTY,
        "--name",
        "Ops",
        "--routing-number",
        "222222226",
        "--account-type",
        "savings",
        "--json",
    ]);
    command.env("PAYRUN_ACCOUNT_NUMBER", "88801234");
    let added = OnboardEnv::run_command(command).await;
    assert_eq!(added.code, 0, "{}", added.stderr);
    let added: Value = serde_json::from_str(&added.stdout).unwrap();
    let source_id = added["id"].as_str().unwrap().to_string();

    let listed = env
        .json(&["funding-sources", "list", "--party", SEEDED_PARTY])
        .await;
    assert!(ids(&listed).contains(&source_id), "{listed}");
    let got = env.json(&["funding-sources", "get", &source_id]).await;
    assert_eq!(got["bankAccountType"], "savings");
    assert_eq!(got["removed"], false);

    let removed = env.json(&["funding-sources", "remove", &source_id]).await;
    assert_eq!(removed["removed"], true);
    assert!(!env.work.ledger_exists(), "the removal made no ledger");
    let listed = env
        .json(&["funding-sources", "list", "--party", SEEDED_PARTY])
        .await;
    assert!(
        !ids(&listed).contains(&source_id),
        "removed ones are hidden"
    );
    let listed = env
        .json(&["funding-sources", "list", "--party", SEEDED_PARTY, "--all"])
        .await;
    assert!(ids(&listed).contains(&source_id));

    // A main-account bank account, tied to the seeded treasury account.
    let main = env
        .json(&[
            "funding-sources",
            "add",
            "--treasury-account",
            payrun::sim::TREASURY_ACCOUNT_ID,
            "--name",
            "Reserve",
            "--routing-number",
            "021000021",
            "--account-number",
            "4000123456",
            "--account-type",
            "checking",
        ])
        .await;
    let listed = env.json(&["funding-sources", "list"]).await;
    assert!(ids(&listed).contains(&main["id"].as_str().unwrap().to_string()));
    let table = env.run(&["funding-sources", "list"]).await;
    assert!(table.stdout.contains("Reserve"), "{}", table.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_and_transfers_are_created_listed_and_got() {
    let env = OnboardEnv::start().await;
    let partners = env.json(&["exchanges", "partners"]).await;
    assert_eq!(partners.as_array().unwrap().len(), 3);

    let exchange = env
        .json(&[
            "exchanges",
            "create",
            "--party",
            SEEDED_PARTY,
            "--partner",
            "MX",
            "--token",
            "mx-session-token",
        ])
        .await;
    let exchange_id = exchange["id"].as_str().unwrap().to_string();
    let listed = env
        .json(&["exchanges", "list", "--party", SEEDED_PARTY])
        .await;
    assert!(ids(&listed).contains(&exchange_id), "{listed}");
    let got = env.json(&["exchanges", "get", &exchange_id]).await;
    assert_eq!(got["id"], exchange_id.as_str());

    let receipt = env.work.file(
        "finicity.json",
        r#"{"profile":3,"version":"v1","receiptId":"r-1","receiptVersion":"1","customerId":"c-1","partnerId":2445,"products":[],"timestamp":"2024-01-01T00:00:00Z"}"#,
    );
    let main = env
        .json(&[
            "exchanges",
            "create",
            "--partner",
            "Finicity",
            "--finicity",
            receipt.to_str().unwrap(),
        ])
        .await;
    let listed = env.json(&["exchanges", "list"]).await;
    assert!(ids(&listed).contains(&main["id"].as_str().unwrap().to_string()));

    // Transfers made by someone else, found by correlationId and by id.
    let client = env.client();
    let mut created = Vec::new();
    for n in 0..3 {
        let request = payrun::dwolla::TransferRequest {
            source_url: env.sim.source_funding_source(),
            destination_url: env.sim.party_funding_source(1),
            amount: payrun::dwolla::Amount::usd_cents(100 + n),
            correlation_id: format!("onboard-test-{n}"),
            metadata: Default::default(),
        };
        let location = client
            .create_transfer(&uuid::Uuid::new_v4().to_string(), &request.to_body_bytes())
            .await
            .unwrap();
        created.push(location.id().to_string());
    }
    let all = env.json(&["transfers", "list"]).await;
    for id in &created {
        assert!(ids(&all).contains(id), "{all}");
    }
    let one = env
        .json(&["transfers", "list", "--correlation-id", "onboard-test-1"])
        .await;
    assert_eq!(ids(&one), [created[1].clone()]);
    let by_party = env
        .json(&["transfers", "list", "--party", SEEDED_PARTY, "--max", "2"])
        .await;
    assert_eq!(by_party.as_array().unwrap().len(), 2);
    let got = env.json(&["transfers", "get", &created[2]]).await;
    assert_eq!(got["amount"]["value"], "1.02");
    let table = env.run(&["transfers", "get", &created[2]]).await;
    assert!(table.stdout.contains("1.02 USD"), "{}", table.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_exits_69_and_missing_credentials_exit_78() {
    let env = OnboardEnv::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut command = env.command(&["accounts", "get"]);
    command.env("DWOLLA_API_URL", &url);
    let run = OnboardEnv::run_command(command).await;
    assert_eq!(run.code, 69, "{}", run.stderr);

    let mut command = env.command(&["parties", "list"]);
    command.env_remove("DWOLLA_SECRET");
    let run = OnboardEnv::run_command(command).await;
    assert_eq!(run.code, 78, "{}", run.stderr);
}

// ---------------------------------------------------------------------------------------------
// Payees

const PAYEES_HEADER: &str = "reference,business_name,first_name,last_name,email,routing_number,account_number,account_type\n";

/// Distinctive full account numbers, searched for afterwards.
const ACCOUNT_NUMBERS: [&str; 3] = ["73950184627", "4408812390655", "918273645"];

fn payees_csv() -> String {
    format!(
        "{PAYEES_HEADER}\
         V-ACME,Acme Tools LLC,,,ap@acme-tools.example.com,222222226,{},checking\n\
         V-ADA,,Ada,Lovelace,ada@example.com,021000021,{},savings\n\
         V-BOB,Bob's Bikes,,,bob@bikes.example.com,011000015,{},checking\n",
        ACCOUNT_NUMBERS[0], ACCOUNT_NUMBERS[1], ACCOUNT_NUMBERS[2]
    )
}

/// Each payee's reference, external party and funding source ("" before Dwolla gave one).
fn ledger_payees(env: &OnboardEnv) -> Vec<(String, String, String)> {
    env.work
        .query(
            "SELECT reference, external_party_id, funding_source_id FROM payees ORDER BY reference",
        )
        .into_iter()
        .map(|row| (row[0].clone(), row[1].clone(), row[2].clone()))
        .collect()
}

/// Imports the three payees of [`payees_csv`]; returns `payees import --json`'s output.
async fn import_payees(env: &OnboardEnv) -> Value {
    let file = env.work.file("payees.csv", payees_csv());
    env.json(&["payees", "import", file.to_str().unwrap()])
        .await
}

on_both_engines!(
    payees_are_imported_once_and_payout_files_name_them,
    SimConfig::new(),
    imported_once
);

async fn imported_once(env: SendEnv) {
    let env = OnboardEnv::on(env);
    let parties_before = env.n_parties().await;

    let first = import_payees(&env).await;
    let statuses: Vec<&str> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["created", "created", "created"]);
    assert_eq!(first[1]["account"], "savings …0655");
    assert_eq!(env.n_parties().await, parties_before + 3);

    // Again: nothing is sent at all.
    let requests = env.sim.stats().total_requests;
    let file = env.work.path().join("payees.csv");
    let second = env.run(&["payees", "import", file.to_str().unwrap()]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stdout.contains("0 created, 3 unchanged, 0 failed"),
        "{}",
        second.stdout
    );
    assert_eq!(env.sim.stats().total_requests, requests);

    let directory = ledger_payees(&env);
    let acme_source = directory[0].2.clone();
    assert!(!acme_source.is_empty(), "V-ACME has a funding source");
    assert_eq!(
        first[0]["fundingSourceId"].as_str(),
        Some(acme_source.as_str())
    );
    let listed = env.json(&["payees", "list"]).await;
    assert_eq!(listed[0]["reference"], "V-ACME");
    assert_eq!(listed[0]["fundingSourceId"], acme_source.as_str());
    assert_eq!(listed[1]["accountLast4"], "0655");
    assert_eq!(listed[2]["ready"], true);

    // A payout file that names payees; an unknown payee is an error at its line.
    let bad = env.work.file(
        "bad.csv",
        "reference,amount,payee\nP-1,10.00,V-ACME\nP-2,5.00,V-NOBODY\n",
    );
    let run = env.run(&["ingest", bad.to_str().unwrap()]).await;
    assert_eq!(run.code, 65, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("bad.csv:3: payee: \"V-NOBODY\" is not in the payee directory"),
        "{}",
        run.stderr
    );
    let both = env.work.file(
        "both.csv",
        format!("reference,amount,payee,funding_source\nP-1,1.00,V-ACME,{acme_source}\n"),
    );
    let run = env.run(&["ingest", both.to_str().unwrap()]).await;
    assert_eq!(run.code, 65);
    assert!(run.stderr.contains("not both"), "{}", run.stderr);

    let payouts = env.work.file(
        "payouts.csv",
        "reference,amount,payee,memo\nP-1,10.00,V-ACME,June\nP-2,5.25,V-ADA,June\nP-3,7.00,V-BOB,June\n",
    );
    let run = env.run(&["ingest", payouts.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = env
        .run(&[
            "send",
            "--source",
            &env.sim.source_funding_source(),
            "--no-progress",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let transfers = env.sim.transfers();
    assert_eq!(transfers.len(), 3);
    let to_acme = transfers.iter().find(|t| t.amount == "10.00").unwrap();
    assert_eq!(to_acme.destination_funding_source, acme_source);
}

on_both_engines!(
    a_plan_checks_a_file_naming_payees_against_the_payee_directory,
    SimConfig::new(),
    planned_against_the_directory
);

async fn planned_against_the_directory(env: SendEnv) {
    let env = OnboardEnv::on(env);
    let payouts = env.work.file(
        "payouts.csv",
        "reference,amount,payee\nP-1,10.00,V-ACME\nP-2,5.25,V-ADA\nP-3,7.00,V-ACME\n",
    );
    let path = payouts.to_str().unwrap();
    // No payee yet: every row names one the directory does not have.
    let unknown = env.run(&["plan", path]).await;
    assert_eq!(unknown.code, 65, "{}", unknown.stderr);
    assert!(
        unknown
            .stdout
            .contains("payouts.csv:2: payee: \"V-ACME\" is not in the payee directory"),
        "{}",
        unknown.stdout
    );

    import_payees(&env).await;
    let directory = ledger_payees(&env);
    let (acme, ada) = (&directory[0].2, &directory[1].2);
    let planned = env.run(&["plan", path]).await;
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    assert!(
        planned
            .stdout
            .contains("payouts.csv: valid, 3 payouts, total 22.25 USD"),
        "{}",
        planned.stdout
    );
    assert!(
        planned
            .stdout
            .contains(&format!("{acme}: 2 payouts, 17.00 USD (P-1, P-3)")),
        "V-ACME is paid twice, to its funding source: {}",
        planned.stdout
    );
    assert!(
        planned.stdout.contains(&format!("{ada}    1 payouts")),
        "{}",
        planned.stdout
    );
    assert_eq!(
        env.work.query("SELECT COUNT(*) FROM batches"),
        [["0"]],
        "a plan writes nothing"
    );

    // Ingested, the same file is the same payroll; a repeat of most of it is seen.
    let ingested = env.run(&["ingest", path]).await;
    assert_eq!(ingested.code, 0, "{}", ingested.stderr);
    let again = env.run(&["plan", path]).await;
    assert!(
        again.stdout.contains("payouts.csv is already batch 1"),
        "{}",
        again.stdout
    );
    let next = env.work.file(
        "next.csv",
        "reference,amount,payee\nP-1,10.00,V-ACME\nP-2,5.25,V-ADA\nP-4,8.00,V-BOB\n",
    );
    let repeat = env.run(&["plan", next.to_str().unwrap()]).await;
    assert_eq!(repeat.code, 0, "{}", repeat.stderr);
    assert!(
        repeat
            .stdout
            .contains("repeats: 2 of its 3 payouts repeat batch 1 (payouts.csv"),
        "{}",
        repeat.stdout
    );
    assert!(
        repeat
            .stdout
            .contains("previous batch 1: total 22.25 USD; change +1.00 (+4.5 %)"),
        "{}",
        repeat.stdout
    );
}

on_both_engines!(
    /// Removing a payee's funding source at Dwolla takes it out of the payee directory in the same
    /// command, so that no payout file can send money to a bank account that is gone; and on
    /// SQLite a running writer makes the command refuse before anything is removed (on
    /// PostgreSQL, where writers do not exclude each other, an unreachable database does:
    /// `postgres::commands_on_an_unreachable_database_exit_75_and_hide_the_password`).
    removing_a_payees_funding_source_takes_it_out_of_the_directory,
    SimConfig::new(),
    funding_source_removed
);

async fn funding_source_removed(env: SendEnv) {
    let env = OnboardEnv::on(env);
    import_payees(&env).await;
    let directory = ledger_payees(&env);
    let acme_source = directory[0].2.clone();

    if !env.work.is_postgres() {
        let lock = payrun::ledger::WriterLock::acquire(&env.work.ledger()).unwrap();
        let refused = env.run(&["funding-sources", "remove", &acme_source]).await;
        assert_eq!(refused.code, 75, "{}", refused.stderr);
        let source = env.json(&["funding-sources", "get", &acme_source]).await;
        assert_eq!(source["removed"], false, "nothing was removed at Dwolla");
        drop(lock);
    }

    let run = env.run(&["funding-sources", "remove", &acme_source]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("V-ACME") && run.stderr.contains("funding source was removed"),
        "{}",
        run.stderr
    );
    let after = ledger_payees(&env);
    assert_eq!(after[0].2, "", "V-ACME's funding source is gone");
    assert_eq!(after[1..], directory[1..], "the other payees are untouched");

    let payouts = env.work.file(
        "payouts.csv",
        "reference,amount,payee\nP-1,10.00,V-ACME\nP-2,5.25,V-ADA\n",
    );
    let run = env.run(&["ingest", payouts.to_str().unwrap()]).await;
    assert_eq!(run.code, 65, "{}", run.stderr);
    assert!(
        run.stderr.contains("payouts.csv:2: payee: \"V-ACME\"")
            && run.stderr.contains("the funding source was removed"),
        "{}",
        run.stderr
    );
}

on_both_engines!(
    a_lost_ledger_write_or_an_expired_key_creates_nothing_twice,
    SimConfig::new(),
    nothing_twice
);

async fn nothing_twice(env: SendEnv) {
    let env = OnboardEnv::on(env);
    let first = import_payees(&env).await;
    let file = env.work.path().join("payees.csv");
    let directory = ledger_payees(&env);
    let n_parties = env.n_parties().await;

    // A crash after the party was recorded but before its funding source was: the import
    // resumes from the recorded party and the funding source's key replays.
    assert_eq!(
        env.work.query(
            "UPDATE payees SET funding_source_id = NULL WHERE reference = 'V-ADA' RETURNING reference"
        ),
        [["V-ADA"]]
    );
    let resumed = env
        .json(&["payees", "import", file.to_str().unwrap()])
        .await;
    assert_eq!(resumed[1]["status"], "created");
    assert_eq!(resumed[0]["status"], "unchanged");
    assert_eq!(ledger_payees(&env), directory);

    // The ledger lost every write after Dwolla's 201s (the worst crash): the same keys replay.
    lose_the_directory(&env);
    let replayed = env
        .json(&["payees", "import", file.to_str().unwrap()])
        .await;
    assert_eq!(ledger_payees(&env), directory);
    assert_eq!(replayed[0]["fundingSourceId"], first[0]["fundingSourceId"]);
    assert_eq!(env.n_parties().await, n_parties);
    assert!(env.sim.stats().idempotent_replays >= 6);

    // A day later the keys are gone; Dwolla's duplicate refusals lead to the same resources.
    lose_the_directory(&env);
    env.sim.advance_clock(Duration::from_secs(25 * 3600));
    let adopted = env
        .json(&["payees", "import", file.to_str().unwrap()])
        .await;
    assert_eq!(adopted[0]["status"], "created (existing party)");
    assert_eq!(ledger_payees(&env), directory);
    assert_eq!(env.n_parties().await, n_parties);
}

/// A ledger file removed whole, or every payee row of a database deleted.
fn lose_the_directory(env: &OnboardEnv) {
    if env.work.is_postgres() {
        env.work.query("DELETE FROM payees RETURNING reference");
        return;
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", env.work.ledger().display()));
    }
}

on_both_engines!(
    an_invalid_or_changed_payee_file_is_refused_whole,
    SimConfig::new(),
    refused_whole
);

async fn refused_whole(env: SendEnv) {
    let env = OnboardEnv::on(env);
    let bad = env.work.file(
        "payees.csv",
        format!(
            "{PAYEES_HEADER}\
             V-1,Acme,,,ap@acme.example.com,222222226,123456789,checking\n\
             V-2,,Ada,,ada@example.com,222222262,12345678901234567890,cheque\n"
        ),
    );
    let requests = env.sim.stats().total_requests;
    let run = env.run(&["payees", "import", bad.to_str().unwrap()]).await;
    assert_eq!(run.code, 65, "{}", run.stderr);
    assert!(
        run.stderr.contains("payees.csv:3: last_name: is empty"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("payees.csv:3: routing_number:"));
    assert!(
        run.stderr
            .contains("payees.csv:3: account_number: must be 4 to 17 digits")
    );
    assert!(run.stderr.contains("payees.csv:3: account_type:"));
    assert!(!run.stderr.contains("12345678901234567890"));
    assert!(
        run.stdout.contains("nothing was imported"),
        "{}",
        run.stdout
    );
    assert_eq!(env.sim.stats().total_requests, requests, "nothing was sent");

    let good = env.work.file("good.csv", payees_csv());
    assert_eq!(
        env.run(&["payees", "import", good.to_str().unwrap()])
            .await
            .code,
        0
    );
    let changed = env.work.file(
        "changed.csv",
        format!(
            "{PAYEES_HEADER}\
             V-ACME,Acme Tools LLC,,,ap@acme-tools.example.com,222222226,55554444,checking\n\
             V-NEW,New Co,,,ada@example.com,222222226,55553333,checking\n"
        ),
    );
    let requests = env.sim.stats().total_requests;
    let run = env
        .run(&["payees", "import", changed.to_str().unwrap()])
        .await;
    assert_eq!(run.code, 65, "{}", run.stderr);
    assert!(
        run.stderr.contains("changed.csv:2: payee \"V-ACME\" is already imported with a different account number (…4627 in the ledger)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "changed.csv:3: email: \"ada@example.com\" is already the email of payee \"V-ADA\""
        ),
        "{}",
        run.stderr
    );
    assert_eq!(env.sim.stats().total_requests, requests, "nothing was sent");
}

on_both_engines!(
    no_full_account_number_reaches_the_ledger_the_logs_or_the_reports,
    SimConfig::new(),
    no_full_account_number
);

async fn no_full_account_number(env: SendEnv) {
    let env = OnboardEnv::on(env);
    let file = env.work.file("payees.csv", payees_csv());
    let mut outputs = Vec::new();
    for args in [
        vec!["-vv", "payees", "import", file.to_str().unwrap()],
        vec![
            "-v",
            "--log-format",
            "json",
            "payees",
            "import",
            file.to_str().unwrap(),
            "--json",
        ],
        vec!["-v", "payees", "list"],
        vec!["payees", "list", "--json"],
        vec!["status", "--json"],
    ] {
        let run = env.run(&args).await;
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        outputs.push(format!("{args:?}\n{}\n{}", run.stdout, run.stderr));
    }
    // Another payee with the same bank account: its request and log lines carry it too.
    let duplicate = env.work.file(
        "duplicate.csv",
        format!(
            "{PAYEES_HEADER}V-TWIN,Twin LLC,,,twin@example.com,222222226,{},checking\n",
            ACCOUNT_NUMBERS[0]
        ),
    );
    let run = env
        .run(&["-v", "payees", "import", duplicate.to_str().unwrap()])
        .await;
    outputs.push(format!("{}\n{}", run.stdout, run.stderr));

    let ledger_bytes = ledger_contents(&env.work);
    assert!(!ledger_bytes.is_empty());
    let all_output = outputs.join("\n");
    for number in ACCOUNT_NUMBERS {
        assert!(
            !all_output.contains(number),
            "{number} appears in the output:\n{all_output}"
        );
        assert!(
            !ledger_bytes
                .windows(number.len())
                .any(|window| window == number.as_bytes()),
            "{number} appears in the ledger"
        );
        let last4 = &number[number.len() - 4..];
        assert!(
            all_output.contains(&format!("…{last4}")),
            "the last four digits are shown: {all_output}"
        );
    }
}

/// Everything the ledger holds: the file's bytes (and its journals), or every row of every
/// table of the database as text.
fn ledger_contents(work: &Workdir) -> Vec<u8> {
    if work.is_postgres() {
        let tables = work.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1",
        );
        assert!(tables.iter().any(|t| t[0] == "payees"), "{tables:?}");
        return tables
            .iter()
            .flat_map(|table| work.query(&format!("SELECT t::text FROM {} t", table[0])))
            .flatten()
            .collect::<Vec<String>>()
            .join("\n")
            .into_bytes();
    }
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        if let Ok(more) = std::fs::read(format!("{}{suffix}", work.ledger().display())) {
            bytes.extend(more);
        }
    }
    bytes
}
