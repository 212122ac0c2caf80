//! Several kernels on one database: what keeps them apart.
//!
//! SQLite serves one kernel: [`SqliteLock`] refuses a second `hookwired` on the same file at start (an exclusive
//! advisory lock on `PATH.lock`, held for the life of the process and released by the operating system when the
//! process ends, however it ends). PostgreSQL serves several: see `docs/cluster.md`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The exclusive lock a kernel holds on its SQLite database for as long as it runs.
#[derive(Debug)]
pub struct SqliteLock {
    /// The open lock file: the lock lives as long as it stays open.
    _file: File,
    /// Where the lock file is.
    pub path: PathBuf,
}

impl SqliteLock {
    /// Takes the lock of the SQLite database named by `database_url`; `Ok(None)` for a PostgreSQL URL or an
    /// in-memory SQLite database. Fails with a message that says what to do when another kernel holds it.
    pub fn acquire(database_url: &str) -> anyhow::Result<Option<SqliteLock>> {
        let Some(database) = sqlite_path(database_url) else {
            return Ok(None);
        };
        let path = PathBuf::from(format!("{}.lock", database.display()));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|error| anyhow::anyhow!("database: cannot open the lock file {}: {error}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                let holder = if holder.is_empty() { String::new() } else { format!(" (process {holder})") };
                anyhow::bail!(
                    "database: {} is already used by another hookwired{holder}, which holds {}. SQLite serves one \
                     kernel: to run several kernels on one database, use PostgreSQL (--database postgres://...; see \
                     docs/cluster.md)",
                    database.display(),
                    path.display()
                );
            }
            Err(TryLockError::Error(error)) => {
                anyhow::bail!("database: cannot lock {}: {error}", path.display());
            }
        }
        // Who holds it, for the message a second kernel shows; the lock, not this text, is what counts.
        let _ = file.set_len(0);
        let _ = write!(file, "{}", std::process::id());
        Ok(Some(SqliteLock { _file: file, path }))
    }
}

/// The file of a `sqlite://PATH` or `sqlite:PATH` URL (its query string cut off); `None` for other URLs and
/// in-memory databases.
fn sqlite_path(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|pair| pair == "mode=memory") {
        return None;
    }
    Some(Path::new(path).to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_sqlite_file_is_refused_until_the_first_is_released() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", directory.path().join("hookwire.db").display());
        let first = SqliteLock::acquire(&url).unwrap().expect("a lock for a SQLite file");
        let refused = SqliteLock::acquire(&url).unwrap_err().to_string();
        assert!(refused.contains("already used by another hookwired"), "{refused}");
        assert!(refused.contains("use PostgreSQL"), "{refused}");
        assert!(refused.contains(&format!("process {}", std::process::id())), "{refused}");
        drop(first);
        SqliteLock::acquire(&url).unwrap().expect("free again once released");
    }

    #[test]
    fn postgres_and_in_memory_databases_take_no_lock() {
        assert!(SqliteLock::acquire("postgres://u@h/db").unwrap().is_none());
        assert!(SqliteLock::acquire("sqlite::memory:").unwrap().is_none());
        assert!(sqlite_path("sqlite:///tmp/x.db?mode=rwc") == Some(PathBuf::from("/tmp/x.db")));
        assert!(sqlite_path("sqlite:x.db") == Some(PathBuf::from("x.db")));
    }
}
