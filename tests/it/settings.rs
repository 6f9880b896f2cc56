//! Every documented `payrun.toml` setting takes effect in each command it concerns, and a flag
//! still wins over it: `serve` (`[webhooks] listen`, `secret`), `track`
//! (`[tracking] returns_window_days`), `ingest` and `plan` (`max_amount`, `allow_partial`,
//! `require_approval`).

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use payrun::signature::{SIGNATURE_HEADER, sign};
use payrun::sim::SimConfig;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::on_both_engines;
use crate::support::SendEnv;
use crate::support::Workdir;

/// `payrun serve --store-only` in `work`, where its payrun.toml is; returns the child and the
/// address it printed.
fn spawn_serve(work: &Workdir, extra: &[&str], env_secret: Option<&str>) -> (Child, String) {
    let mut command = work.command(&["serve", "--store-only"]);
    command
        .args(extra)
        .env_remove(payrun::webhooks::SECRET_ENV)
        .env_remove("PAYRUN_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(secret) = env_secret {
        command.env(payrun::webhooks::SECRET_ENV, secret);
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let started: Value = serde_json::from_str(&line).expect("serve prints one JSON line");
    (child, started["listening"].as_str().unwrap().to_string())
}

async fn delivery_status(base: &str, id: &str, secret: &str) -> u16 {
    let body = serde_json::to_vec(&json!({"id": id, "topic": "transfer:created"})).unwrap();
    reqwest::Client::new()
        .post(format!("{base}/webhooks/dwolla"))
        .header(SIGNATURE_HEADER, sign(secret.as_bytes(), &body))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

on_both_engines!(
    serve_listens_where_the_file_says_and_accepts_its_secret,
    SimConfig::new(),
    serve_takes_the_files_settings
);

async fn serve_takes_the_files_settings(env: SendEnv) {
    let work = &env.work;
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    work.file(
        "payrun.toml",
        format!("[webhooks]\nlisten = \"127.0.0.1:{port}\"\nsecret = \"file-secret-0123456789\"\n"),
    );

    let (mut from_file, base) = spawn_serve(work, &[], None);
    assert_eq!(base, format!("http://127.0.0.1:{port}"));
    assert_eq!(
        delivery_status(&base, "ev-1", "file-secret-0123456789").await,
        200
    );
    assert_eq!(
        delivery_status(&base, "ev-2", "another-secret-0000").await,
        401
    );
    from_file.kill().unwrap();
    from_file.wait().unwrap();

    // The flag wins over the file, and the environment's secret over the file's.
    let (mut overridden, base) = spawn_serve(
        work,
        &["--listen", "127.0.0.1:0"],
        Some("env-secret-0123456789"),
    );
    assert_ne!(base, format!("http://127.0.0.1:{port}"));
    assert_eq!(
        delivery_status(&base, "ev-3", "env-secret-0123456789").await,
        200
    );
    assert_eq!(
        delivery_status(&base, "ev-4", "file-secret-0123456789").await,
        401
    );
    overridden.kill().unwrap();
    overridden.wait().unwrap();
    // What was accepted is stored in the ledger's event spool, and nothing else.
    let spool = work.place().open_spool().unwrap();
    assert_eq!(spool.event_ids().unwrap(), ["ev-1", "ev-3"]);
}

/// Calendar days from the moment `track` ran until the end of the payout's returns watch, on
/// `env`'s fresh ledger.
async fn returns_watch_days(env: &SendEnv, file_days: Option<u32>, flag: Option<&str>) -> i64 {
    // 2.01 goes straight to processed at the simulator.
    let payouts = env.work.file(
        "one.csv",
        "reference,amount,funding_source\nP-1,2.01,fd000000-0000-4000-8000-000000000001\n",
    );
    env.ingest_file(&payouts);
    let client = env.client(1000, 4, Duration::from_secs(5));
    env.send(client, env.send_config(4)).await;
    if let Some(days) = file_days {
        env.work.file(
            "payrun.toml",
            format!("[tracking]\nreturns_window_days = {days}\n"),
        );
    }
    let mut args = vec!["track", "--until-settled", "--timeout", "20s"];
    args.extend(["--poll-every", "20ms"]);
    if let Some(flag) = flag {
        args.extend(["--returns-window-days", flag]);
    }
    let run = env.run(&args).await;
    assert_eq!(run.code, 0, "{run:?}");
    let rows = env.query("SELECT state, watch_until FROM payouts");
    let [row] = &rows[..] else {
        panic!("one payout: {rows:?}")
    };
    assert_eq!(row[0], "processed");
    let until = OffsetDateTime::parse(&row[1], &Rfc3339).unwrap();
    (until.date() - OffsetDateTime::now_utc().date()).whole_days()
}

on_both_engines!(
    track_watches_for_returns_as_long_as_the_file_says_unless_the_flag_says_otherwise,
    SimConfig::new(),
    track_takes_the_files_returns_window
);

async fn track_takes_the_files_returns_window(env: SendEnv) {
    // 5 banking days are 5 to 8 calendar days; 20 are at least 26; 1 is at most 4.
    let standard = returns_watch_days(&env, None, None).await;
    assert!((5..=8).contains(&standard), "{standard}");
    let from_file = returns_watch_days(&env.another(SimConfig::new()).await, Some(20), None).await;
    assert!(from_file >= 26, "{from_file}");
    let from_flag =
        returns_watch_days(&env.another(SimConfig::new()).await, Some(20), Some("1")).await;
    assert!((1..=4).contains(&from_flag), "{from_flag}");
}

on_both_engines!(
    cli: ingest_and_plan_take_the_files_limits_approval_and_partial_acceptance,
    ingest_and_plan_take_the_files_settings
);

fn ingest_and_plan_take_the_files_settings(work: Workdir) {
    let payouts = work.file(
        "pay.csv",
        "reference,amount,funding_source\n\
         A-1,50.00,fd000000-0000-4000-8000-000000000001\n\
         A-2,150.00,fd000000-0000-4000-8000-000000000002\n",
    );
    let path = payouts.to_str().unwrap();
    let with_file = |toml: &str, args: &[&str]| {
        work.file("payrun.toml", toml);
        let mut command = work.command(args);
        command.env_remove("PAYRUN_CONFIG");
        crate::support::Run::from(command.output().unwrap())
    };

    // max_amount: A-2 is over it, for plan and for ingest; a flag raises it again.
    let planned = with_file("max_amount = \"100.00\"\n", &["plan", path]);
    assert_eq!(planned.code, 65, "{planned:?}");
    assert!(planned.stdout.contains(":3"), "{}", planned.stdout);
    let refused = with_file("max_amount = \"100.00\"\n", &["ingest", path]);
    assert_eq!(refused.code, 65, "{refused:?}");
    assert!(
        refused.stderr.contains("pay.csv:3: amount"),
        "{}",
        refused.stderr
    );
    let raised = with_file(
        "max_amount = \"100.00\"\n",
        &["plan", "--max-amount", "200.00", path],
    );
    assert_eq!(raised.code, 0, "{raised:?}");

    // allow_partial and require_approval: the valid row is taken and waits for approval.
    let toml = "max_amount = \"100.00\"\nallow_partial = true\nrequire_approval = true\n";
    let planned = with_file(toml, &["plan", path]);
    assert_eq!(planned.code, 0, "{planned:?}");
    let taken = with_file(toml, &["ingest", path]);
    assert_eq!(taken.code, 0, "{taken:?}");
    assert!(
        taken.stdout.contains("batch 1, 1 payout,"),
        "{}",
        taken.stdout
    );
    assert!(
        taken.stdout.contains("waits for `payrun approve 1`"),
        "{}",
        taken.stdout
    );
    let status = work.status_json();
    assert_eq!(
        status["batches"][0]["status"], "awaiting_approval",
        "{status}"
    );
}

on_both_engines!(
    run_takes_everything_from_the_file_alone,
    SimConfig::new(),
    run_takes_everything_from_the_file
);

async fn run_takes_everything_from_the_file(env: SendEnv) {
    let ledger = match &env.pg {
        Some(pg) => pg.url.clone(),
        None => "file.db".to_string(),
    };
    let drop = env.work.path().join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    std::fs::write(
        drop.join("pay.csv"),
        "reference,amount,funding_source\nP-1,2.01,fd000000-0000-4000-8000-000000000001\n",
    )
    .unwrap();
    env.work.file(
        "payrun.toml",
        format!(
            "ledger = \"{}\"\nrequire_approval = true\n\
             [inbox]\ndir = \"drop\"\nstable_seconds = 0\nreports = \"out\"\n\
             [dwolla]\napi_url = \"{}\"\nkey = \"{}\"\nsecret = \"{}\"\nsource_funding_source = \"{}\"\n\
             [send]\nrate = 50\nmax_attempts = 3\n",
            ledger,
            env.sim.base_url(),
            env.sim.key(),
            env.sim.secret(),
            env.sim.source_funding_source()
        ),
    );
    // No flag, no environment: only the file says where everything is.
    let bare = |args: &[&str]| {
        let mut command = Command::new(crate::support::payrun_bin());
        command
            .current_dir(env.work.path())
            .args(args)
            .env_remove("PAYRUN_LEDGER")
            .env_remove("PAYRUN_CONFIG")
            .env_remove("DWOLLA_API_URL")
            .env_remove("DWOLLA_ENV")
            .env_remove("DWOLLA_KEY")
            .env_remove("DWOLLA_SECRET")
            .env_remove("PAYRUN_SOURCE_FUNDING_SOURCE")
            .env_remove("RUST_LOG");
        crate::support::Run::from(command.output().unwrap())
    };
    let held = bare(&["run", "--once"]);
    assert_eq!(held.code, 3, "the batch waits for approval: {held:?}");
    assert!(held.stdout.contains("pay.csv: batch 1"), "{}", held.stdout);
    // The ledger the file names took the batch.
    match &env.pg {
        Some(_) => assert_eq!(env.query("SELECT count(*) FROM batches"), [["1"]]),
        None => assert!(env.work.path().join("file.db").exists()),
    }
    assert!(
        env.work
            .path()
            .join("out")
            .join("payrun-report.csv")
            .exists()
    );
    assert!(env.sim.transfers().is_empty());

    assert_eq!(bare(&["approve", "1"]).code, 0);
    let sent = bare(&["run", "--once"]);
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(env.sim.transfers().len(), 1);
    let check = bare(&["config", "check"]);
    assert!(
        check.stdout.contains("rate                 50/s"),
        "{}",
        check.stdout
    );
}
