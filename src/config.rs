//! The configuration file (`payrun.toml`) and how it layers under environment variables and
//! flags: file < environment < flags. Unknown keys are errors, because a misspelt key silently
//! ignored is a setting silently lost.
//!
//! Owns reading and merging settings; opens no socket and no ledger.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secret::Secret;

/// The file's contents. Every key is optional; see `samples/payrun.toml` for each one.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub ledger: Option<PathBuf>,
    /// New batches wait for `payrun approve` before they are sent.
    pub require_approval: Option<bool>,
    /// The largest amount one payout may have, in dollars (`"10000.00"`).
    pub max_amount: Option<String>,
    pub allow_partial: Option<bool>,
    #[serde(default)]
    pub inbox: InboxSection,
    #[serde(default)]
    pub dwolla: DwollaSection,
    #[serde(default)]
    pub send: SendSection,
    #[serde(default)]
    pub webhooks: WebhooksSection,
    #[serde(default)]
    pub tracking: TrackingSection,
    #[serde(default)]
    pub payday: PaydaySection,
    #[serde(default)]
    pub repeat_guard: RepeatGuardSection,
    #[serde(default)]
    pub postgres: PostgresSection,
}

/// Several workers on a PostgreSQL ledger.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    /// How long a worker's claims hold without a heartbeat (default 30).
    pub lease_seconds: Option<u64>,
    /// How often a worker renews its lease (default 5; at most a third of the lease).
    pub heartbeat_seconds: Option<u64>,
    /// A CA certificate file (PEM) trusted beside the system's roots for the server's
    /// certificate, for a private CA; `PAYRUN_POSTGRES_CA_FILE` overrides it.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxSection {
    /// The drop folder.
    pub dir: Option<PathBuf>,
    /// Where a file goes while it is ingested; default `<dir>/processing`.
    pub processing: Option<PathBuf>,
    /// Where an ingested file goes with its report; default `<dir>/archive`.
    pub archive: Option<PathBuf>,
    /// Where an invalid file goes with its errors; default `<dir>/rejected`.
    pub rejected: Option<PathBuf>,
    /// Where reports are written; default `<dir>/reports`.
    pub reports: Option<PathBuf>,
    /// A file is taken once it has not changed for this many seconds (default 2).
    pub stable_seconds: Option<u64>,
    /// `watch` rescans the folder this often, besides reacting to events (default 30).
    pub rescan_seconds: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DwollaSection {
    /// Any base URL (such as the simulator's); wins over `environment`.
    pub api_url: Option<String>,
    /// `sandbox` or `production`.
    pub environment: Option<String>,
    pub key: Option<String>,
    /// Prefer the DWOLLA_SECRET environment variable; a secret in a file must be protected.
    pub secret: Option<String>,
    pub source_funding_source: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendSection {
    pub rate: Option<u32>,
    pub concurrency: Option<usize>,
    pub max_attempts: Option<u32>,
    pub attempts_per_run: Option<u32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksSection {
    /// Where `watch` (and `serve`) listen for Dwolla's webhooks, e.g. `127.0.0.1:8080`.
    pub listen: Option<String>,
    pub secret: Option<String>,
    /// Seconds a client may take to send a request's headers (default 5).
    pub header_timeout_seconds: Option<u64>,
    /// Seconds a client may take to send a request's body once its headers are in (default 10).
    pub body_timeout_seconds: Option<u64>,
    /// Connections served at once (default 256); more wait until one closes.
    pub max_connections: Option<usize>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingSection {
    /// How long processed transfers stay watched for late returns (default 5 banking days).
    pub returns_window_days: Option<u32>,
}

/// Pay dates and send windows (README, "Payday").
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaydaySection {
    /// Banking days between the send day and the pay date (default 2, standard ACH).
    pub lead_banking_days: Option<u32>,
    /// The send day's cut-off time of day, `HH:MM` (default: the end of the day).
    pub cutoff: Option<String>,
    /// The fixed UTC offset the send day and cut-off are read in, e.g. `-05:00` (default UTC).
    pub utc_offset: Option<String>,
    /// Extra days the bank is closed, `YYYY-MM-DD`, beyond weekends and the Fed's holidays.
    #[serde(default)]
    pub closures: Vec<String>,
    /// The pay date of files that name none: `"next friday"` or `"3 banking days"`.
    pub default_pay_date: Option<String>,
}

/// The repeat guard: a file that largely repeats a recent batch waits for approval.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepeatGuardSection {
    /// How far back batches are compared, in days (default 31).
    pub window_days: Option<u32>,
    /// The share of repeated payouts that holds a batch, in percent (default 80; 101 turns
    /// the guard off).
    pub min_overlap_percent: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read the configuration file {}: {source}", crate::names::shown(.path))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {}: {message}", crate::names::shown(.path))]
    Invalid { path: PathBuf, message: String },
}

/// The default file, read when it exists and no `--config` is given.
pub const DEFAULT_FILE: &str = "payrun.toml";

impl FileConfig {
    /// Reads `explicit`, or `payrun.toml` in the working directory when it exists, or nothing.
    pub fn load(explicit: Option<&Path>) -> Result<(FileConfig, Option<PathBuf>), ConfigFileError> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None if Path::new(DEFAULT_FILE).exists() => PathBuf::from(DEFAULT_FILE),
            None => return Ok((FileConfig::default(), None)),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigFileError::Read {
            path: path.clone(),
            source,
        })?;
        let config = FileConfig::parse(&text).map_err(|message| ConfigFileError::Invalid {
            path: path.clone(),
            message,
        })?;
        Ok((config, Some(path)))
    }

    pub fn parse(text: &str) -> Result<FileConfig, String> {
        // toml's message names the line, the column and, for an unknown key, the expected ones.
        toml::from_str(text).map_err(|err| err.to_string().trim_end().to_string())
    }

    /// The value of a Dwolla environment variable as this file sets it, for the layering
    /// "environment wins over file".
    pub fn dwolla_variable(&self, name: &str) -> Option<String> {
        let d = &self.dwolla;
        match name {
            "DWOLLA_API_URL" => d.api_url.clone(),
            "DWOLLA_ENV" => d.environment.clone(),
            "DWOLLA_KEY" => d.key.clone(),
            "DWOLLA_SECRET" => d.secret.clone(),
            "PAYRUN_SOURCE_FUNDING_SOURCE" => d.source_funding_source.clone(),
            _ => None,
        }
    }
}

/// An environment variable, else the file's value for it.
pub fn env_or_file(file: &FileConfig, name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| file.dwolla_variable(name))
}

/// The folders of a drop-folder set-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxDirs {
    pub inbox: PathBuf,
    pub processing: PathBuf,
    pub archive: PathBuf,
    pub rejected: PathBuf,
    pub reports: PathBuf,
}

impl InboxDirs {
    /// `inbox` with each folder from the file, or inside the inbox by default.
    pub fn new(inbox: &Path, file: &InboxSection) -> InboxDirs {
        let inside = |name: &str, configured: &Option<PathBuf>| {
            configured.clone().unwrap_or_else(|| inbox.join(name))
        };
        InboxDirs {
            inbox: inbox.to_path_buf(),
            processing: inside("processing", &file.processing),
            archive: inside("archive", &file.archive),
            rejected: inside("rejected", &file.rejected),
            reports: inside("reports", &file.reports),
        }
    }
}

/// Shows a secret's presence without its value: `set (16 characters)`.
pub fn mask(secret: Option<&Secret>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => {
            format!("set ({} characters)", secret.expose().chars().count())
        }
        _ => "not set".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_annotated_sample_parses() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/payrun.toml"))
                .unwrap();
        let config = FileConfig::parse(&text).unwrap();
        assert_eq!(config.require_approval, Some(false));
        assert_eq!(config.inbox.dir.as_deref(), Some(Path::new("inbox")));
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let error = FileConfig::parse("require_aproval = true\n").unwrap_err();
        assert!(error.contains("require_aproval"), "{error}");
        let error = FileConfig::parse("[dwolla]\nkey = \"k\"\nsecrett = \"s\"\n").unwrap_err();
        assert!(error.contains("secrett"), "{error}");
    }

    #[test]
    fn folders_default_to_inside_the_inbox_and_can_be_moved() {
        let section = InboxSection {
            archive: Some(PathBuf::from("/srv/archive")),
            ..InboxSection::default()
        };
        let dirs = InboxDirs::new(Path::new("drop"), &section);
        assert_eq!(dirs.processing, Path::new("drop/processing"));
        assert_eq!(dirs.archive, Path::new("/srv/archive"));
    }

    #[test]
    fn masking_shows_presence_only() {
        let secret = Secret::new("super-secret-value");
        assert_eq!(mask(Some(&secret)), "set (18 characters)");
        assert_eq!(mask(None), "not set");
    }
}
