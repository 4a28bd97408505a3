//! The store: every SQL statement rosterd runs, for SQLite and PostgreSQL from one code path.
//!
//! Each statement is written once with `$N` placeholders (both drivers accept them) and run on
//! whichever backend is open through the [`on_tx!`] macro, which expands the same body once per
//! backend. Callers only see [`Store`] and [`Tx`]; no other module writes SQL. Every value is
//! bound; dynamic statement text is assembled only from constants in this module.
//!
//! SQLite runs with WAL, foreign keys and a busy timeout, and with a single writer connection
//! (a separate pool of readers), so write transactions never race for the lock.

pub mod attributes;
pub mod audit;
pub mod console;
pub mod detail;
pub mod entitlements;
pub mod erase;
pub mod events;
pub mod groups;
pub mod invitations;
pub mod invite_links;
pub mod jobs;
pub mod join;
pub mod ledger;
pub mod links;
pub mod members;
pub mod orgs;
pub mod outbox;
pub mod phones;
pub mod sync;
pub mod tokens;
pub mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

/// A store error. Constraint violations the domain cares about are told apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated: {0}")]
    Unique(String),
    /// The database refused a value (PostgreSQL SQLSTATE class 22: a NUL byte in text, a date
    /// out of range, …). Input validation should catch these first; this is the safety net.
    #[error("the database refused a value: {0}")]
    InvalidData(String),
    #[error("database error: {0}")]
    Db(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("bad database URL `{url}`: {reason}")]
    Url { url: String, reason: String },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return StoreError::Unique(db.message().to_owned());
        }
        if let sqlx::Error::Database(db) = &e
            && db.code().is_some_and(|c| c.starts_with("22"))
        {
            return StoreError::InvalidData(db.message().to_owned());
        }
        StoreError::Db(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database engine a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An open store.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite {
        /// Readers (many connections).
        read: SqlitePool,
        /// The one writer.
        write: SqlitePool,
    },
    Postgres(PgPool),
}

/// A transaction on either backend. Read transactions on SQLite run on a reader connection,
/// write transactions on the writer.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs `$body` with `$conn` bound to the transaction's connection, once per backend arm.
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $conn: &mut sqlx::SqliteConnection = &mut *t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $conn: &mut sqlx::PgConnection = &mut *t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The embedded migrations of both backends, for the test that they stay in step.
pub fn migrators() -> (
    &'static sqlx::migrate::Migrator,
    &'static sqlx::migrate::Migrator,
) {
    (&SQLITE_MIGRATIONS, &POSTGRES_MIGRATIONS)
}

impl Store {
    /// Opens a store from a `sqlite://` or `postgres://` URL. A SQLite file (and its folder) is
    /// created when missing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Url {
                    url: url.to_owned(),
                    reason: e.to_string(),
                })?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            if let Some(parent) = opts.get_filename().parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|e| StoreError::Url {
                    url: url.to_owned(),
                    reason: format!("cannot create folder {}: {e}", parent.display()),
                })?;
            }
            // The writer opens first so the file and WAL mode exist before readers come.
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts.clone())
                .await?;
            let read = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts.read_only(false))
                .await?;
            Ok(Store::Sqlite { read, write })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url).map_err(|e| StoreError::Url {
                url: redact_url(url),
                reason: e.to_string(),
            })?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(2))
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await?;
            Ok(Store::Postgres(pool))
        } else {
            Err(StoreError::Url {
                url: redact_url(url),
                reason: "expected a sqlite:// or postgres:// URL".into(),
            })
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite { .. } => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// Brings the schema up to date.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Store::Sqlite { write, .. } => SQLITE_MIGRATIONS.run(write).await?,
            Store::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Refreshes the planner statistics of the member tables when many rows changed since the
    /// last ANALYZE (PostgreSQL). Without it, right after a large sync PostgreSQL still believes
    /// an org has a handful of members and joins them by nested loops: the next run's member
    /// index took 29 s at 20k members instead of 0.1 s. Autovacuum gets there, but later.
    pub async fn refresh_member_stats(&self) -> Result<()> {
        let Store::Postgres(pool) = self else {
            return Ok(());
        };
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT relname::text FROM pg_stat_user_tables
             WHERE schemaname = current_schema() AND relname IN ('members', 'member_links')
               AND n_mod_since_analyze > GREATEST(1000, n_live_tup / 10)",
        )
        .fetch_all(pool)
        .await?;
        for table in stale {
            let sql = match table.as_str() {
                "members" => "ANALYZE members",
                _ => "ANALYZE member_links",
            };
            sqlx::query(sql).execute(pool).await?;
        }
        Ok(())
    }

    /// Refreshes the query planner's statistics. SQLite only gathers them when asked, so this
    /// runs at start and then every few hours; PostgreSQL's autovacuum does it by itself.
    pub async fn optimize(&self) -> Result<()> {
        if let Store::Sqlite { write, .. } = self {
            sqlx::query("PRAGMA optimize=0x10002")
                .execute(write)
                .await?;
        }
        Ok(())
    }

    /// Starts a transaction that may write.
    pub async fn write(&self) -> Result<Tx> {
        Ok(match self {
            // IMMEDIATE takes the write lock up front (waiting up to the busy timeout), so a
            // transaction that reads and then writes never fails with SQLITE_BUSY when another
            // process (the CLI beside the daemon) wrote in between.
            Store::Sqlite { write, .. } => Tx::Sqlite(write.begin_with("BEGIN IMMEDIATE").await?),
            Store::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Starts a transaction that only reads.
    pub async fn read(&self) -> Result<Tx> {
        Ok(match self {
            Store::Sqlite { read, .. } => Tx::Sqlite(read.begin().await?),
            Store::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Writes a consistent copy of a SQLite database to `dest` while it is in use (`VACUUM
    /// INTO`: one read transaction, so writers go on and the copy is a single moment). `dest`
    /// must not exist. `false` on PostgreSQL, which is backed up with its own tools
    /// (`pg_dump`), not here.
    pub async fn backup_to(&self, dest: &str) -> Result<bool> {
        let Store::Sqlite { read, .. } = self else {
            return Ok(false);
        };
        sqlx::query("VACUUM INTO $1")
            .bind(dest)
            .execute(read)
            .await?;
        Ok(true)
    }

    /// Each pool's connections: (pool name, open, idle), for the metrics.
    pub fn pool_use(&self) -> Vec<(&'static str, u32, usize)> {
        match self {
            Store::Sqlite { read, write } => vec![
                ("read", read.size(), read.num_idle()),
                ("write", write.size(), write.num_idle()),
            ],
            Store::Postgres(pool) => vec![("main", pool.size(), pool.num_idle())],
        }
    }

    /// Checks the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        let mut tx = self.read().await?;
        on_tx!(&mut tx, c => sqlx::query("SELECT 1").execute(&mut *c).await.map(|r| r.rows_affected()))?;
        tx.rollback().await
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Store::Postgres(pool) => pool.close().await,
        }
    }
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.rollback().await?,
            Tx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

/// A URL with any password replaced (in the user info or a `password=` parameter), safe to print.
/// Text the `url` crate cannot parse (a password with an unescaped `?`, `/` or `#`, say) is shown
/// as its scheme alone: any part of it may be the password.
pub fn redact_url(url: &str) -> String {
    // An `@` the parser did not take as the end of user info means the user info was cut
    // short by a delimiter in the password (`u:12?x@h` parses as host `u`, port 12).
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| !url.contains('@') || !u.username().is_empty() || u.password().is_some());
    let Some(mut u) = parsed else {
        let scheme = url
            .split_once(':')
            .map(|(s, _)| s)
            .filter(|s| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            })
            .unwrap_or("?");
        return format!("{scheme}:… (hidden: not a valid URL)");
    };
    if u.password().is_some() {
        // Fails only for URLs that cannot carry a password, which have none.
        let _ = u.set_password(Some("***"));
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// Escapes `%`, `_` and `\` so user text matches literally inside a `LIKE … ESCAPE '\'` pattern.
pub fn like_contains(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Splits rows into runs of at most `max` rows, fewer when `size` (a row's estimated bytes)
/// says the statement would pass ~8 KB (PostgreSQL). sqlx 0.9.0 leaves Nagle's algorithm on (sqlx issue
/// #4335, fixed upstream after 0.9.0), so a message larger than one TCP segment waits ~40 ms
/// for the server's delayed ACK; on loopback a segment is 64 KB. Full runs keep the same row
/// count, so their statement text repeats and stays prepared.
pub fn size_chunks<'a, T>(
    tx: &Tx,
    rows: &'a [T],
    max: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<&'a [T]> {
    // SQLite has no socket: bigger statements, fewer hops to its worker thread.
    let (max, limit) = match tx.backend() {
        Backend::Postgres => (max, 8 * 1024),
        Backend::Sqlite => (max * 10, usize::MAX),
    };
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0usize, 0usize);
    for (i, r) in rows.iter().enumerate() {
        let b = size(r);
        if i > start && (bytes.saturating_add(b) > limit || i - start == max) {
            out.push(&rows[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += b;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_migrations() {
        let (sqlite, pg) = migrators();
        let a: Vec<_> = sqlite
            .iter()
            .map(|m| (m.version, m.description.clone()))
            .collect();
        let b: Vec<_> = pg
            .iter()
            .map(|m| (m.version, m.description.clone()))
            .collect();
        assert_eq!(a, b);
        assert!(!a.is_empty());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://h/db?sslmode=require&password=hunter2"),
            "postgres://h/db?sslmode=require&password=***"
        );
        // Passwords holding URL delimiters: escaped, they parse and are replaced; unescaped,
        // the text is no URL and nothing after the scheme is shown.
        assert_eq!(
            redact_url("postgres://u:pa%3Fss%2F%40x@h/db"),
            "postgres://u:***@h/db"
        );
        for leaky in [
            "postgres://u:pa?ss@h/db",
            "postgres://u:pa/ss@h/db",
            "postgres://u:pa#ss@h/db",
            "postgres://u:pa?s/s@h/db?password=pa?ss",
            "postgres://u:12?pass@h/db",
            "postgres://u:12/pass@h/db",
        ] {
            let shown = redact_url(leaky);
            assert!(
                !shown.contains("pa") && !shown.contains("ss"),
                "{leaky} → {shown}"
            );
            assert!(shown.starts_with("postgres:"), "{shown}");
        }
        assert_eq!(
            redact_url("sqlite://data/rosterd.db"),
            "sqlite://data/rosterd.db"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_contains("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
