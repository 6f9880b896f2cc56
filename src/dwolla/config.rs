//! Where the client's settings come from: the environment for the host and credentials, the
//! caller (flags) for rate, concurrency and timeouts.

use std::time::Duration;

use crate::secret::Secret;

/// Dwolla's production host.
pub const PRODUCTION_URL: &str = "https://api.dwolla.com";
/// Dwolla's sandbox host.
pub const SANDBOX_URL: &str = "https://api-sandbox.dwolla.com";

/// Default request starts per second. Dwolla publishes no threshold; this is a cautious guess.
pub const DEFAULT_RATE_PER_SECOND: u32 = 100;
/// Default requests in flight: enough for 100/s at 250 ms of latency (Little's law, + 25 %).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Dwolla's own SDK uses 60 s; a payout worker would rather learn sooner that the outcome is
/// unknown, and the Idempotency-Key makes the resend safe.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything [`super::Client::new`] needs. `Debug` never shows the secret.
#[derive(Clone, Debug)]
pub struct DwollaConfig {
    /// `https://api.dwolla.com`, `https://api-sandbox.dwolla.com`, or any other base URL such as
    /// the simulator's `http://127.0.0.1:PORT`. A trailing slash is ignored.
    pub base_url: String,
    /// The application key (OAuth client id).
    pub key: String,
    /// The application secret (OAuth client secret).
    pub secret: Secret,
    /// Request starts per second, token requests included (`--rate`).
    pub rate_per_second: u32,
    /// Requests in flight at once (`--concurrency`).
    pub max_in_flight: usize,
    pub connect_timeout: Duration,
    /// For the whole request, from sending it to reading the last byte of the response.
    pub request_timeout: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("set DWOLLA_API_URL (any base URL) or DWOLLA_ENV (sandbox or production)")]
    MissingHost,
    #[error("environment variable {name} is not set")]
    Missing { name: &'static str },
    #[error("environment variable {name} is empty")]
    Empty { name: &'static str },
    #[error("DWOLLA_ENV must be sandbox or production, not {value:?}")]
    UnknownEnvironment { value: String },
    #[error("{name} is not a usable http(s) base URL: {value:?}")]
    InvalidUrl { name: &'static str, value: String },
}

impl DwollaConfig {
    /// Reads `DWOLLA_API_URL` (any base URL; it wins over `DWOLLA_ENV`) or
    /// `DWOLLA_ENV=sandbox|production`, then `DWOLLA_KEY` and `DWOLLA_SECRET`. Rate, concurrency
    /// and timeouts get the `DEFAULT_*` values; the caller overrides them from its flags.
    pub fn from_env() -> Result<DwollaConfig, ConfigError> {
        DwollaConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`DwollaConfig::from_env`] with the variables read through `lookup`, so tests need not
    /// touch the process environment.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<DwollaConfig, ConfigError> {
        let base_url = match lookup("DWOLLA_API_URL").filter(|v| !v.trim().is_empty()) {
            Some(url) => normalize_base_url(&url).ok_or(ConfigError::InvalidUrl {
                name: "DWOLLA_API_URL",
                value: url,
            })?,
            None => match lookup("DWOLLA_ENV").as_deref().map(str::trim) {
                None | Some("") => return Err(ConfigError::MissingHost),
                Some(env) if env.eq_ignore_ascii_case("sandbox") => SANDBOX_URL.to_owned(),
                Some(env) if env.eq_ignore_ascii_case("production") => PRODUCTION_URL.to_owned(),
                Some(other) => {
                    return Err(ConfigError::UnknownEnvironment {
                        value: other.to_owned(),
                    });
                }
            },
        };
        let key = required(&lookup, "DWOLLA_KEY")?;
        let secret = Secret::new(required(&lookup, "DWOLLA_SECRET")?);
        Ok(DwollaConfig {
            base_url,
            key,
            secret,
            rate_per_second: DEFAULT_RATE_PER_SECOND,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        })
    }
}

fn required(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, ConfigError> {
    match lookup(name) {
        None => Err(ConfigError::Missing { name }),
        Some(value) if value.trim().is_empty() => Err(ConfigError::Empty { name }),
        Some(value) => Ok(value.trim().to_owned()),
    }
}

/// `Some("scheme://host[:port][/path]")` without a trailing slash, if `raw` is an http(s) URL
/// with a host and neither query nor fragment.
pub(crate) fn normalize_base_url(raw: &str) -> Option<String> {
    let url = reqwest::Url::parse(raw.trim()).ok()?;
    let usable = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    usable.then(|| url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn an_api_url_wins_over_the_environment_name() {
        let config = DwollaConfig::from_lookup(lookup(&[
            ("DWOLLA_API_URL", "http://127.0.0.1:8080/"),
            ("DWOLLA_ENV", "production"),
            ("DWOLLA_KEY", "key"),
            ("DWOLLA_SECRET", "shh"),
        ]))
        .unwrap();
        assert_eq!(config.base_url, "http://127.0.0.1:8080");
        assert_eq!(config.key, "key");
        assert_eq!(config.secret.expose(), "shh");
    }

    #[test]
    fn the_environment_name_selects_dwollas_hosts() {
        for (env, url) in [("sandbox", SANDBOX_URL), ("Production", PRODUCTION_URL)] {
            let config = DwollaConfig::from_lookup(lookup(&[
                ("DWOLLA_ENV", env),
                ("DWOLLA_KEY", "key"),
                ("DWOLLA_SECRET", "shh"),
            ]))
            .unwrap();
            assert_eq!(config.base_url, url);
        }
    }

    #[test]
    fn each_missing_variable_is_named() {
        let err = DwollaConfig::from_lookup(lookup(&[])).unwrap_err();
        assert_eq!(err, ConfigError::MissingHost);
        let err = DwollaConfig::from_lookup(lookup(&[("DWOLLA_ENV", "staging")])).unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownEnvironment {
                value: "staging".into()
            }
        );
        let err = DwollaConfig::from_lookup(lookup(&[("DWOLLA_ENV", "sandbox")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "DWOLLA_KEY" });
        assert!(err.to_string().contains("DWOLLA_KEY"));
        let err = DwollaConfig::from_lookup(lookup(&[
            ("DWOLLA_ENV", "sandbox"),
            ("DWOLLA_KEY", "key"),
            ("DWOLLA_SECRET", " "),
        ]))
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Empty {
                name: "DWOLLA_SECRET"
            }
        );
    }

    #[test]
    fn a_base_url_must_be_plain_http_or_https() {
        assert_eq!(
            normalize_base_url("https://api.dwolla.com/").as_deref(),
            Some("https://api.dwolla.com")
        );
        assert_eq!(
            normalize_base_url("http://127.0.0.1:9/prefix/").as_deref(),
            Some("http://127.0.0.1:9/prefix")
        );
        for bad in ["ftp://x", "not a url", "https://u:p@host", "https://h/?q=1"] {
            assert_eq!(normalize_base_url(bad), None, "{bad}");
        }
    }
}
