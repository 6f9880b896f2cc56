//! A throwaway schema in a PostgreSQL database, for `payrun demo --ledger postgres://...`: the
//! demo's sample payroll gets a ledger of its own beside the real one, so that it neither
//! finds the sample already paid by an earlier demo nor leaves fake payouts where real workers
//! would claim them.

use super::{PgLedger, shown_url};
use crate::ledger::Result;

/// A schema made for one run, reached through [`url`](Self::url), and dropped by
/// [`drop_schema`](Self::drop_schema).
pub struct ScratchSchema {
    admin: PgLedger,
    name: String,
    url: String,
}

impl std::fmt::Debug for ScratchSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchSchema")
            .field("name", &self.name)
            .field("url", &shown_url(&self.url))
            .finish()
    }
}

impl ScratchSchema {
    /// Creates `{prefix}_{random}` in the database at `url`. The URL may not set the
    /// connection's `options` itself: they carry the schema's search path.
    pub fn create(url: &str, prefix: &str) -> Result<ScratchSchema> {
        let admin = PgLedger::connect(url)?;
        if url.contains("options=") {
            return Err(admin.invalid(
                "the URL sets the connection's options; a scratch schema needs them for its search path"
                    .into(),
            ));
        }
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        admin.block(admin.client.batch_execute(&format!("CREATE SCHEMA {name}")))?;
        Ok(ScratchSchema {
            url: with_search_path(url, &name),
            name,
            admin,
        })
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A ledger URL whose connections see only this schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the schema and everything in it.
    pub fn drop_schema(self) -> Result<()> {
        let sql = format!("DROP SCHEMA {} CASCADE", self.name);
        self.admin.block(self.admin.client.batch_execute(&sql))
    }
}

/// `url` with `options=-c search_path=SCHEMA`, percent-encoded as a URL's query wants it.
fn with_search_path(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_path_joins_the_urls_query() {
        assert_eq!(
            with_search_path("postgres://u@h/db", "s_1"),
            "postgres://u@h/db?options=-c%20search_path%3Ds_1"
        );
        assert_eq!(
            with_search_path("postgres://u@h/db?sslmode=disable", "s_1"),
            "postgres://u@h/db?sslmode=disable&options=-c%20search_path%3Ds_1"
        );
        let config: tokio_postgres::Config = with_search_path("postgres://u@h/db", "s_1")
            .parse()
            .unwrap();
        assert_eq!(config.get_options(), Some("-c search_path=s_1"));
    }
}
