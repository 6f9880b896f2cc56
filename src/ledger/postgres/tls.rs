//! TLS for the connections to a PostgreSQL ledger. The URL's `sslmode` decides whether TLS is
//! used, as tokio-postgres reads it: `disable` never, `prefer` (the default) when the server
//! offers it, `require` always or the connection fails. Whenever TLS is used, the server's
//! certificate and host name are verified (libpq's `verify-full`, not its unverified
//! `require`): against the system's roots, as payrun's calls to Dwolla are
//! (rustls-platform-verifier), plus the certificates of a CA file the operator names for a
//! private CA: `PAYRUN_POSTGRES_CA_FILE`, or `[postgres] ca_file` through [`use_ca_file`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The environment variable that names a CA file (PEM) whose certificates are trusted, beside
/// the system's roots, for the PostgreSQL server's certificate.
pub const CA_FILE_ENV: &str = "PAYRUN_POSTGRES_CA_FILE";

/// The CA file the configuration names; [`CA_FILE_ENV`] overrides it.
static CA_FILE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Names the configuration's CA file for the ledger URLs this process opens from now on (a
/// URL already open keeps its pool's). The command line calls it once, before any ledger
/// opens.
pub fn use_ca_file(path: Option<PathBuf>) {
    *CA_FILE.lock().expect("not poisoned") = path;
}

/// The CA file in force: [`CA_FILE_ENV`]'s, else the one given to [`use_ca_file`].
pub fn ca_file() -> Option<PathBuf> {
    std::env::var_os(CA_FILE_ENV)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| CA_FILE.lock().expect("not poisoned").clone())
}

/// The certificates of the PEM file at `path`, each usable as a root; or why not, in words
/// that name the file.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read the PostgreSQL CA file {shown}: {e}"))?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the PostgreSQL CA file {shown} is not valid PEM: {e}"))?;
    if certificates.is_empty() {
        return Err(format!(
            "the PostgreSQL CA file {shown} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
        ));
    }
    let mut roots = rustls::RootCertStore::empty();
    for certificate in &certificates {
        roots.add(certificate.clone()).map_err(|e| {
            format!("the PostgreSQL CA file {shown} holds a certificate that cannot be a root: {e}")
        })?;
    }
    Ok(certificates)
}

/// A connector that verifies the server's certificate and host name against the system's
/// roots and the CA file's certificates, if one is named. Made once per CA file and process:
/// reading the system's roots takes tens of milliseconds, and every ledger URL has a pool.
pub(super) fn connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, String> {
    static CONNECTORS: LazyLock<Mutex<HashMap<Option<PathBuf>, MakeRustlsConnect>>> =
        LazyLock::new(Default::default);
    let mut connectors = CONNECTORS.lock().expect("not poisoned");
    let key = ca_file.map(Path::to_path_buf);
    if let Some(connector) = connectors.get(&key) {
        return Ok(connector.clone());
    }
    let connector = new_connector(ca_file)?;
    connectors.insert(key, connector.clone());
    Ok(connector)
}

fn new_connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, String> {
    let extra_roots = match ca_file {
        Some(path) => read_ca_file(path)?,
        None => Vec::new(),
    };
    // The crypto provider reqwest's rustls already uses, so that no second one is built in.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
            .map_err(|e| {
                format!(
                    "no certificates to verify the server's with ({e}): install the system's CA \
                     certificates (Debian: ca-certificates), name a CA file ({CA_FILE_ENV} or \
                     [postgres] ca_file), or add sslmode=disable to the URL for a plain connection"
                )
            })?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // PostgreSQL 17's protocol name, which its direct TLS negotiation (sslnegotiation=direct)
    // requires; older servers ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(MakeRustlsConnect::new(config))
}

/// Whether `error` is a TLS refusal that trying again will not cure: the server's certificate
/// did not verify (an unknown issuer, a wrong host name, an expired certificate), or
/// `sslmode=require` met a server without TLS.
pub fn is_tls_refusal(error: &tokio_postgres::Error) -> bool {
    rustls_error(error).is_some()
        || causes(error).any(|cause| cause.to_string() == "server does not support TLS")
}

/// What to do about a server certificate that did not verify, said after the error.
pub fn certificate_hint(error: &tokio_postgres::Error) -> Option<String> {
    match rustls_error(error)? {
        rustls::Error::InvalidCertificate(_) => Some(format!(
            "payrun verifies the server's certificate and host name whenever it uses TLS: for a \
             private CA, name its certificate (PEM) in {CA_FILE_ENV} or [postgres] ca_file, and \
             give the URL a host name the certificate names"
        )),
        _ => None,
    }
}

/// The rustls error under `error`, if the handshake failed on one.
fn rustls_error(error: &tokio_postgres::Error) -> Option<&rustls::Error> {
    causes(error).find_map(|cause| {
        cause.downcast_ref::<rustls::Error>().or_else(|| {
            // tokio-rustls hands rustls's error over inside an io::Error, whose `source`
            // skips it.
            cause
                .downcast_ref::<std::io::Error>()?
                .get_ref()?
                .downcast_ref::<rustls::Error>()
        })
    })
}

fn causes<'e>(
    error: &'e tokio_postgres::Error,
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error as &(dyn std::error::Error + 'static)), |cause| {
        cause.source()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = read_ca_file(&missing).unwrap_err();
        assert!(
            error.contains("cannot read") && error.contains("missing.pem"),
            "{error}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = read_ca_file(&empty).unwrap_err();
        assert!(
            error.contains("holds no certificate") && error.contains("empty.pem"),
            "{error}"
        );

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let error = read_ca_file(&garbage).unwrap_err();
        assert!(error.contains("garbage.pem"), "{error}");
    }
}
