//! A real PostgreSQL server for the tests that need one, and a fresh database per test.
//!
//! `PAYRUN_TEST_POSTGRES_URL` names a server to use (`.ci/run` starts one and sets it). Without
//! it, the first test that asks starts a throwaway cluster of its own: `initdb` into a
//! temporary folder (as the `postgres` user when the tests run as root, since PostgreSQL
//! refuses to), `pg_ctl start` on a free loopback port, and a watchdog that stops the server
//! and removes the folder once this test process has exited. Where neither works the test
//! says why and skips; with `PAYRUN_REQUIRE_POSTGRES=1` (CI) it fails instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A database of its own for one test, dropped (best effort) when this goes.
pub struct PgDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

impl PgDatabase {
    /// Rows of `sql`, each as its columns' text (`NULL` as an empty string).
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        query(&self.url, sql)
    }
}

/// Rows of `sql` on the database at `url`, each as its columns' text (`NULL` as an empty
/// string).
pub fn query(url: &str, sql: &str) -> Vec<Vec<String>> {
    psql(url, sql)
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| line.split('\u{1f}').map(str::to_string).collect())
        .collect()
}

/// A new database on the test server, or `None` (with a note on stderr) where no server can
/// be had and CI did not ask for one.
pub fn database(test: &str) -> Option<PgDatabase> {
    let admin_url = match server() {
        Ok(url) => url,
        Err(why) => {
            if std::env::var_os("PAYRUN_REQUIRE_POSTGRES").is_some() {
                panic!("PostgreSQL tests must run here (PAYRUN_REQUIRE_POSTGRES): {why}");
            }
            eprintln!("skipped {test}: no PostgreSQL server: {why}");
            return None;
        }
    };
    let name = format!("payrun_{}", uuid::Uuid::new_v4().simple());
    psql(admin_url, &format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|error| panic!("create a test database: {error}"));
    let url = match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("PAYRUN_TEST_POSTGRES_URL has no database part: {admin_url}"),
    };
    Some(PgDatabase {
        url,
        admin_url: admin_url.clone(),
        name,
    })
}

fn server() -> Result<&'static String, &'static String> {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| match std::env::var("PAYRUN_TEST_POSTGRES_URL") {
            Ok(url) => Ok(url),
            Err(_) => start_throwaway_cluster(),
        })
        .as_ref()
}

/// `psql` on `url`: unaligned, tuples only, fields split by the unit separator.
fn psql(url: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F"])
        .arg("\u{1f}")
        .arg("-d")
        .arg(url)
        .arg("-c")
        .arg(sql)
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// PostgreSQL's programs: on PATH, or Debian's versioned folder.
pub fn pg_bin(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| Some(entry.ok()?.path().join("bin").join(name)))
            .filter(|candidate| candidate.is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|status| {
            status
                .lines()
                .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// `program args...`, as the `postgres` user when we are root.
pub fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn start_throwaway_cluster() -> Result<String, String> {
    let cluster = Cluster::init("payrun-pg-")?;
    let port = cluster.start("-c listen_addresses=127.0.0.1 -c max_connections=200")?;
    Ok(format!("postgres://payrun@127.0.0.1:{port}/postgres"))
}

/// A throwaway cluster's folder: `data` (initdb'd, user `payrun`, trust) and the server's log.
pub struct Cluster {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub pg_ctl: PathBuf,
}

impl Cluster {
    /// `initdb` into a new temporary folder, as the `postgres` user when we are root.
    pub fn init(prefix: &str) -> Result<Cluster, String> {
        let initdb = pg_bin("initdb").ok_or("initdb is not installed (Debian: postgresql)")?;
        let pg_ctl = pg_bin("pg_ctl").ok_or("pg_ctl is not installed")?;
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        if is_root() {
            let chown = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status();
            if !chown.is_ok_and(|status| status.success()) {
                return Err(
                    "running as root, and there is no postgres user to run the server".into(),
                );
            }
        }
        let data = dir.join("data");
        run(
            as_server_user(&initdb)
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "payrun",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data),
            "initdb",
        )?;
        Ok(Cluster { dir, data, pg_ctl })
    }

    /// `pg_ctl start` on a free loopback port with the server `options` (`-c name=value`...),
    /// its socket in the folder and its log at `log`; a watchdog stops it and removes the
    /// folder once this process has exited. Returns the port.
    pub fn start(&self, options: &str) -> Result<u16, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let options = format!("-p {port} -k {} {options}", self.dir.display());
        run(
            as_server_user(&self.pg_ctl)
                .args(["-w", "-l"])
                .arg(self.dir.join("log"))
                .arg("-D")
                .arg(&self.data)
                .args(["-o", &options, "start"]),
            "pg_ctl start",
        )?;
        stop_when_we_exit(&self.pg_ctl, &self.dir, &self.data);
        Ok(port)
    }
}

/// Runs `command` to its end; its standard error in the message when it fails.
pub fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

/// A watchdog that outlives this process by a moment: it stops the server and removes its
/// folder once our pid is gone.
pub fn stop_when_we_exit(pg_ctl: &Path, dir: &Path, data: &Path) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        stop = if is_root() {
            format!("runuser -u postgres -- '{}'", pg_ctl.display())
        } else {
            format!("'{}'", pg_ctl.display())
        },
        data = data.display(),
        dir = dir.display(),
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}
