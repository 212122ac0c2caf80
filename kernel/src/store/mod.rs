//! The SQL store: every query hookwire runs, one module per aggregate, over one `sqlx::AnyPool` so the same code
//! runs on SQLite (the default, embedded) and PostgreSQL. The schema is portable (text ids, BIGINT epoch
//! milliseconds and statuses, JSON as TEXT) and every query uses `$N` placeholders, which both accept, except the
//! journal's multi-row statements, which use `?` on SQLite (see [`values_rows`]).
//! Migrations live in `migrations/sqlite` and `migrations/postgres` and are applied at start. On PostgreSQL the
//! store also holds a typed `PgPool` of its own for the journal, which binds arrays (see [`journal`]); `Any` cannot.

pub mod attempts;
pub mod console;
pub mod daily;
pub mod devices;
pub mod groups;
pub mod journal;
pub mod secrets;
pub mod tokens;
pub mod webhook_state;
pub mod webhooks;

use hookwire_proto::ErrorCode;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::Duration;

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, embedded.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is full; retrying later may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint refused the write.
    #[error("already exists: {0}")]
    Conflict(String),
    /// Anything else (a bug, or data that does not decode).
    #[error("storage error: {0}")]
    Internal(String),
    /// The database URL or migrations are wrong.
    #[error("{0}")]
    Setup(String),
}

impl StoreError {
    /// The error's code.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Unavailable(_) => ErrorCode::Unavailable,
            StoreError::Conflict(_) => ErrorCode::AlreadyExists,
            StoreError::Internal(_) | StoreError::Setup(_) => ErrorCode::Internal,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(database) if database.is_unique_violation() => {
                StoreError::Conflict(database.message().to_owned())
            }
            sqlx::Error::Database(database) => {
                let code = database.code().map(|code| code.into_owned()).unwrap_or_default();
                let transient = is_transient_code(&code);
                if transient {
                    StoreError::Unavailable(error.to_string())
                } else {
                    StoreError::Internal(error.to_string())
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
            _ => StoreError::Internal(error.to_string()),
        }
    }
}

/// True for database error codes that mean the database cannot work now (down, full, busy), as opposed to
/// refusing the data. SQLite's codes are numbers whose low byte is the primary code (an extended code such as 778,
/// `SQLITE_IOERR_WRITE`, is a kind of `SQLITE_IOERR`): BUSY (5), LOCKED (6), READONLY (8), IOERR (10), FULL (13),
/// CANTOPEN (14). PostgreSQL's are SQLSTATEs: classes 08 (connection), 53 (insufficient resources), 57 (operator
/// intervention) and 58 (system error), and 55000, which is how a database that refuses connections answers.
fn is_transient_code(code: &str) -> bool {
    // SQLSTATEs always have five characters (some are all digits); SQLite's codes have at most four digits.
    if code.len() == 5 {
        return ["08", "53", "57", "58"].iter().any(|class| code.starts_with(class)) || code == "55000";
    }
    code.parse::<u32>().is_ok_and(|sqlite| matches!(sqlite & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
}

/// The store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// On PostgreSQL, the journal's typed pool.
    journal_pool: Option<PgPool>,
}

/// Connections of the journal's PostgreSQL pool: the journal writes one batch at a time.
pub(crate) const JOURNAL_POOL_CONNECTIONS: u32 = 2;

impl Store {
    /// Connects to `url` (`sqlite://PATH`, created if missing, or `postgres://...`) and applies the migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(StoreError::Setup("database: sqlite URL has no path (sqlite://PATH)".into()));
            }
            let separator = if path.contains('?') { '&' } else { '?' };
            let url = if path.contains("mode=") { url.to_owned() } else { format!("{url}{separator}mode=rwc") };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::Setup(format!(
                "database: `{url}` is neither sqlite://PATH nor postgres://... (use sqlite://hookwire.db for the embedded default)"
            )));
        };
        let options =
            AnyConnectOptions::from_str(&url).map_err(|error| StoreError::Setup(format!("database: {error}")))?;
        let pool_options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(5));
        let pool = match backend {
            Backend::Sqlite => {
                pool_options
                    .max_connections(4)
                    .after_connect(|connection, _| {
                        Box::pin(async move {
                            // WAL with synchronous=NORMAL survives a process crash (kill -9) without losing a
                            // committed transaction; foreign keys make group and device deletion cascade.
                            connection
                                .execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON;")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await
            }
            Backend::Postgres => pool_options.max_connections(16).connect_with(options).await,
        }
        .map_err(|error| StoreError::Setup(format!("database: cannot open {}: {error}", redact(&url))))?;
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("../migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("../migrations/postgres"),
        };
        migrator
            .run(&pool)
            .await
            .map_err(|error| StoreError::Setup(format!("database: migrations failed: {error}")))?;
        let journal_pool = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                // A custom plan for every execution: the journal binds arrays whose length PostgreSQL's generic plan
                // cannot see (it guesses 10 elements), and after five executions of a prepared statement it may
                // switch to the generic plan. For the fenced status update that plan was a nested loop comparing
                // every row of the batch with every other: 91 ms mean per batch of 583 rows where the custom plan
                // (a hash join) takes 10 ms, and the throughput of a run depended on when the switch happened
                // (8,161 to 19,660 deliveries/s in runs of the same build). Planning costs about 0.5 ms a statement.
                let options = PgConnectOptions::from_str(&url)
                    .map_err(|error| StoreError::Setup(format!("database: {error}")))?
                    .options([("plan_cache_mode", "force_custom_plan")]);
                let pool = PgPoolOptions::new()
                    .max_connections(JOURNAL_POOL_CONNECTIONS)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await
                    .map_err(|error| StoreError::Setup(format!("database: cannot open {}: {error}", redact(&url))))?;
                Some(pool)
            }
        };
        Ok(Store { pool, backend, journal_pool })
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// On PostgreSQL, the typed pool the journal writes through; `None` on SQLite.
    pub fn journal_pool(&self) -> Option<&PgPool> {
        self.journal_pool.as_ref()
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(pool) = &self.journal_pool {
            pool.close().await;
        }
    }
}

/// Hides the password of a database URL for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Builds `INSERT INTO table (columns) VALUES (..), (..)` for `num_rows` rows of `num_columns` parameters, bound
/// row by row in column order (see [`values_rows`]).
pub(crate) fn insert_values_sql(
    backend: Backend,
    table_and_columns: &str,
    num_columns: usize,
    num_rows: usize,
) -> String {
    let mut sql = String::with_capacity(table_and_columns.len() + 20 + num_rows * num_columns * 6);
    sql.push_str("INSERT INTO ");
    sql.push_str(table_and_columns);
    sql.push_str(" VALUES ");
    values_rows(&mut sql, backend, num_columns, num_rows, 0);
    sql
}

/// Appends `(p, p, ..), (p, ..)`: `num_rows` rows of `num_columns` placeholders, the first one numbered
/// `first + 1`. PostgreSQL gets `$N`. SQLite gets anonymous `?`, numbered by their position in the text: SQLite
/// keeps `$N` as *named* parameters, and sqlx looks the name of every parameter up in that list, a linear scan,
/// which made a 256-row insert cost millions of string comparisons (the first profile's 43%).
pub(crate) fn values_rows(sql: &mut String, backend: Backend, num_columns: usize, num_rows: usize, first: usize) {
    use std::fmt::Write as _;
    for row in 0..num_rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..num_columns {
            if column > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${}", first + row * num_columns + column + 1);
                }
            }
        }
        sql.push(')');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_values_numbers_placeholders_row_by_row() {
        let postgres = insert_values_sql(Backend::Postgres, "t (a, b)", 2, 2);
        assert_eq!(postgres, "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)");
        assert_eq!(insert_values_sql(Backend::Sqlite, "t (a, b)", 2, 2), "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)");
    }

    #[test]
    fn outages_and_full_disks_are_transient_and_refused_data_is_not() {
        for code in ["13", "10", "778", "266", "5", "517", "08006", "53100", "57P01", "55000"] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in ["19", "2067", "1", "23505", "22P02", "42601"] {
            assert!(!is_transient_code(code), "{code}");
        }
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(redact("postgres://u:secret@h:5/db"), "postgres://u:***@h:5/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
