//! [`Failure`], an error that carries its documented exit status, and the status of any other
//! error that ends a command.

use crate::exit;
use crate::ledger::LedgerError;

/// An error that ends a command with a particular documented status. Return it (through
/// anyhow) from a command to choose the exit status; any other error exits 1.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub status: u8,
    pub message: String,
}

impl Failure {
    pub fn config(message: String) -> Failure {
        Failure {
            status: exit::CONFIG,
            message,
        }
    }

    pub fn unavailable(message: String) -> Failure {
        Failure {
            status: exit::UNAVAILABLE,
            message,
        }
    }
}

/// The documented status for an error that ended a command.
/// Whether PostgreSQL could not be reached or the connection broke (an I/O error below, or a
/// closed connection), rather than a statement it refused.
fn is_unreachable(error: &tokio_postgres::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(inner) = cause {
        if inner.is::<std::io::Error>() {
            return true;
        }
        cause = inner.source();
    }
    error.is_closed()
}

/// Advice to print after an error that ended a command, where there is some.
pub(super) fn hint_of(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(|cause| match cause.downcast_ref() {
        Some(LedgerError::Postgres { source, .. }) => {
            crate::ledger::postgres::certificate_hint(source)
        }
        _ => None,
    })
}

pub(super) fn exit_status_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(LedgerError::Locked(crate::ledger::LockError::HeldByOther { .. })) =
            cause.downcast_ref()
        {
            return exit::LOCKED;
        }
        if let Some(LedgerError::Postgres { source, .. }) = cause.downcast_ref()
            && crate::ledger::postgres::is_tls_refusal(source)
        {
            // The server's certificate did not verify, or it has no TLS for `sslmode=require`:
            // no retry cures that, only the CA file, the host name or the URL.
            return exit::CONFIG;
        }
        if let Some(LedgerError::Postgres { source, .. }) = cause.downcast_ref()
            && is_unreachable(source)
        {
            // The database could not be reached or went away: nothing was half-done, and the
            // next run carries on, as after a held writer lock.
            return exit::TEMPORARY;
        }
    }
    if crate::dwolla::dwolla_cause(err).is_some() {
        return exit::UNAVAILABLE;
    }
    exit::INTERNAL
}
