//! The results history (`sweep history`, `sweep compare --baseline`): each sweep added keeps its
//! comparable points ([`sweep_aggregate::compare::Results`]) and its provenance in an embedded
//! SQLite database, so a build can be held against its baseline and a configuration followed
//! over time.
//!
//! - One file, by default `$XDG_DATA_HOME/sweep/history.sqlite` ([`default_path`]).
//! - Its schema is versioned by SQLite's `user_version` ([`SCHEMA`]); an older file is migrated
//!   in place, step by step, in one transaction; a newer one is refused before anything is
//!   written (`docs/compare.md`, "History").
//! - Adding a sweep is one transaction: the database holds all of it or none of it.
//! - Another process writing holds SQLite's lock; we wait [`BUSY_WAIT`] for it, then say so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;
use sweep_aggregate::compare::{Point, Results, RESULTS_FORMAT};

/// The schema this build writes. [`MIGRATIONS`]`[k]` takes a database from version k to k + 1.
pub const SCHEMA: i64 = 2;

/// Each schema version's step from the one before. Never edit a step once released: add one.
const MIGRATIONS: [&str; SCHEMA as usize] = [
    // 1: a sweep, its tags, and its points as `compare::Point` JSON.
    "CREATE TABLE sweeps (
        id INTEGER PRIMARY KEY,
        added_at REAL NOT NULL,
        created_at REAL,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        engine TEXT,
        version TEXT,
        image TEXT,
        commit_sha TEXT,
        spec_sha256 TEXT,
        model TEXT,
        points INTEGER NOT NULL
    );
    CREATE TABLE tags (
        sweep_id INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        PRIMARY KEY (sweep_id, tag)
    );
    CREATE TABLE points (
        sweep_id INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        point TEXT NOT NULL
    );",
    // 2: the written form of each sweep's points, so a later `Results` format can be read
    // beside this one; indexes for `latest`, a tag, and a configuration's trend.
    "ALTER TABLE sweeps ADD COLUMN results_format INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX sweeps_by_time ON sweeps(created_at, id);
    CREATE INDEX tags_by_tag ON tags(tag);
    CREATE INDEX points_by_sweep ON points(sweep_id);
    CREATE INDEX points_by_key ON points(key);",
];

/// How long a command waits for another process's write before saying the database is locked.
pub const BUSY_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{}: {source}", path.display())]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("{}: the history is locked by another process (waited {}s); try again when it is done", path.display(), BUSY_WAIT.as_secs())]
    Locked { path: PathBuf },
    #[error("{}: written by a newer sweep (schema {found}; this build knows up to {SCHEMA}); upgrade sweep to read it", path.display())]
    Newer { path: PathBuf, found: i64 },
    #[error("{}: no history here yet; `sweep history add DIR` creates it", path.display())]
    Missing { path: PathBuf },
    #[error("{}: cannot create its folder: {source}", path.display())]
    Create { path: PathBuf, source: std::io::Error },
    #[error("{}: no sweep in the history matches `{selector}` (an id, `latest`, or a tag)", path.display())]
    NoMatch { path: PathBuf, selector: String },
    #[error("{}: sweep {id}'s points are unreadable ({source}); they were written as format {format}", path.display())]
    Points { path: PathBuf, id: i64, format: i64, source: serde_json::Error },
}

/// Where the history lives unless `--db` or `SWEEP_HISTORY` says: `$XDG_DATA_HOME/sweep/`,
/// else `~/.local/share/sweep/`, else the working directory.
pub fn default_path() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()).map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| Path::new(&h).join(".local/share"))
    });
    data.unwrap_or_default().join("sweep").join("history.sqlite")
}

/// What the history keeps of a sweep besides its points: the keys it is found and labelled by.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Keys {
    pub name: String,
    /// Its folder, absolute.
    pub path: String,
    /// Unix time the sweep was rendered (its provenance), else `None`.
    pub created_at: Option<f64>,
    pub engine: Option<String>,
    pub version: Option<String>,
    pub image: Option<String>,
    pub commit: Option<String>,
    pub spec_sha256: Option<String>,
    pub model: Option<String>,
    pub tags: Vec<String>,
}

/// A sweep to add: its keys and its points.
#[derive(Debug, Clone, Default)]
pub struct NewSweep {
    pub keys: Keys,
    pub points: Vec<Point>,
}

impl NewSweep {
    /// What the history keeps of the sweep at `dir`, aggregated as `agg`: its provenance's
    /// keys and its comparable points. `commit` beats the commit its provenance recorded.
    pub fn of(
        dir: &Path,
        agg: &sweep_aggregate::Aggregate,
        tags: &[String],
        commit: Option<String>,
    ) -> NewSweep {
        let info = agg.sweeps.first();
        let provenance = info.and_then(|i| i.provenance.as_ref());
        let jobs = info.map(|i| i.job_provenance.as_slice()).unwrap_or_default();
        let path = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        let folder = || {
            dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned())
        };
        let keys = Keys {
            name: info.map_or_else(folder, |i| i.name.clone()),
            path: path.display().to_string(),
            created_at: provenance.map(|p| p.created_at),
            engine: info.and_then(|i| i.engine.clone()),
            version: jobs.iter().find_map(|(_, j)| j.engine_version.clone()),
            image: provenance
                .and_then(|p| p.container_image.clone())
                .or_else(|| jobs.iter().find_map(|(_, j)| j.image.clone())),
            commit: commit.or_else(|| provenance.and_then(|p| p.sweep.commit.clone())),
            spec_sha256: provenance.map(|p| p.spec_sha256.clone()),
            model: info.and_then(|i| i.model.clone()),
            tags: tags.to_vec(),
        };
        NewSweep { keys, points: Results::of(agg).points }
    }
}

/// A sweep in the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub id: i64,
    pub added_at: f64,
    #[serde(flatten)]
    pub keys: Keys,
    /// How many points it has.
    pub points: i64,
}

impl Entry {
    /// When it ran: its render time, else when it was added.
    pub fn time(&self) -> f64 {
        self.keys.created_at.unwrap_or(self.added_at)
    }
}

#[derive(Debug)]
pub struct History {
    conn: Connection,
    path: PathBuf,
}

const ENTRY_COLUMNS: &str = "s.id, s.added_at, s.created_at, s.name, s.path, s.engine, s.version, s.image, \
     s.commit_sha, s.spec_sha256, s.model, s.points, \
     (SELECT group_concat(tag, char(31)) FROM (SELECT tag FROM tags WHERE sweep_id = s.id ORDER BY tag))";

impl History {
    /// Opens the history at `path` to write, creating it (and its folder) if missing and
    /// migrating an older schema.
    pub fn create(path: &Path) -> Result<History, HistoryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| HistoryError::Create { path: dir.to_owned(), source })?;
        }
        Self::open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)
    }

    /// Opens an existing history; a missing one is [`HistoryError::Missing`], not created.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        if !path.exists() {
            return Err(HistoryError::Missing { path: path.to_owned() });
        }
        Self::open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<History, HistoryError> {
        let err = sqlite_error(path);
        let conn =
            Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(&err)?;
        conn.busy_timeout(BUSY_WAIT).map_err(&err)?;
        conn.execute_batch("PRAGMA foreign_keys = ON;").map_err(&err)?;
        let mut history = History { conn, path: path.to_owned() };
        history.migrate()?;
        Ok(history)
    }

    /// Brings the schema to [`SCHEMA`], each step and the version in one transaction; a newer
    /// schema is refused untouched.
    fn migrate(&mut self) -> Result<(), HistoryError> {
        let err = sqlite_error(&self.path);
        let found: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(&err)?;
        if found > SCHEMA {
            return Err(HistoryError::Newer { path: self.path.clone(), found });
        }
        if found == SCHEMA {
            return Ok(());
        }
        // IMMEDIATE takes the write lock first, so two processes cannot both migrate.
        let tx =
            self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&err)?;
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(&err)?;
        for step in MIGRATIONS.iter().skip(now.max(0) as usize) {
            tx.execute_batch(step).map_err(&err)?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA};")).map_err(&err)?;
        tx.commit().map_err(&err)
    }

    /// Waits `wait` instead of [`BUSY_WAIT`] for another process's lock.
    pub fn with_busy_wait(self, wait: Duration) -> Result<History, HistoryError> {
        self.conn.busy_timeout(wait).map_err(sqlite_error(&self.path))?;
        Ok(self)
    }

    /// Adds a sweep and its points in one transaction; returns its id.
    pub fn add(&mut self, sweep: &NewSweep) -> Result<i64, HistoryError> {
        let err = sqlite_error(&self.path);
        let keys = &sweep.keys;
        let tx =
            self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&err)?;
        tx.execute(
            "INSERT INTO sweeps (added_at, created_at, name, path, engine, version, image, commit_sha, \
             spec_sha256, model, points, results_format) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                unix_now(),
                keys.created_at,
                keys.name,
                keys.path,
                keys.engine,
                keys.version,
                keys.image,
                keys.commit,
                keys.spec_sha256,
                keys.model,
                sweep.points.len() as i64,
                RESULTS_FORMAT,
            ],
        )
        .map_err(&err)?;
        let id = tx.last_insert_rowid();
        {
            let mut tag =
                tx.prepare("INSERT OR IGNORE INTO tags (sweep_id, tag) VALUES (?1, ?2)").map_err(&err)?;
            for t in &keys.tags {
                tag.execute(params![id, t]).map_err(&err)?;
            }
            let mut point =
                tx.prepare("INSERT INTO points (sweep_id, key, point) VALUES (?1, ?2, ?3)").map_err(&err)?;
            for p in &sweep.points {
                let json = serde_json::to_string(p).expect("plain values serialize");
                point.execute(params![id, p.key, json]).map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)?;
        Ok(id)
    }

    /// The sweeps, newest first; only those with `tag` when given; at most `limit`.
    pub fn list(&self, tag: Option<&str>, limit: Option<usize>) -> Result<Vec<Entry>, HistoryError> {
        let err = sqlite_error(&self.path);
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM sweeps s WHERE (?1 IS NULL OR EXISTS (SELECT 1 FROM tags t WHERE t.sweep_id = s.id AND t.tag = ?1)) \
             ORDER BY coalesce(s.created_at, s.added_at) DESC, s.id DESC LIMIT ?2"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(&err)?;
        let limit = limit.map_or(-1, |l| l as i64);
        let rows = stmt.query_map(params![tag, limit], entry).map_err(&err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(&err)
    }

    /// The sweep `selector` names: its id, `latest`, or the newest with that tag.
    pub fn resolve(&self, selector: &str) -> Result<Entry, HistoryError> {
        let err = sqlite_error(&self.path);
        let one = |filter: &str, value: &dyn rusqlite::ToSql| -> Result<Option<Entry>, HistoryError> {
            let sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM sweeps s WHERE {filter} ORDER BY coalesce(s.created_at, s.added_at) DESC, s.id DESC LIMIT 1"
            );
            self.conn.query_row(&sql, [value], entry).optional().map_err(&err)
        };
        let found = if selector == "latest" {
            one("?1 = ?1", &0)?
        } else if let Some(by_id) =
            selector.parse::<i64>().ok().map(|id| one("s.id = ?1", &id)).transpose()?.flatten()
        {
            Some(by_id)
        } else {
            one("EXISTS (SELECT 1 FROM tags t WHERE t.sweep_id = s.id AND t.tag = ?1)", &selector)?
        };
        found.ok_or_else(|| HistoryError::NoMatch { path: self.path.clone(), selector: selector.to_owned() })
    }

    /// A sweep's points, as `sweep compare` reads them.
    pub fn results(&self, id: i64) -> Result<Results, HistoryError> {
        let err = sqlite_error(&self.path);
        let format: i64 = self
            .conn
            .query_row("SELECT results_format FROM sweeps WHERE id = ?1", [id], |r| r.get(0))
            .map_err(&err)?;
        let mut stmt =
            self.conn.prepare("SELECT point FROM points WHERE sweep_id = ?1 ORDER BY rowid").map_err(&err)?;
        let texts = stmt.query_map([id], |r| r.get::<_, String>(0)).map_err(&err)?;
        let mut points = Vec::new();
        for text in texts {
            let text = text.map_err(&err)?;
            let point = serde_json::from_str(&text).map_err(|source| HistoryError::Points {
                path: self.path.clone(),
                id,
                format,
                source,
            })?;
            points.push(point);
        }
        Ok(Results { format: RESULTS_FORMAT, points })
    }

    /// Every sweep with a point of one of `keys`, oldest first, with those points: what a
    /// configuration's trend is drawn from.
    pub fn trend(&self, keys: &BTreeSet<String>) -> Result<Vec<(Entry, Vec<Point>)>, HistoryError> {
        let err = sqlite_error(&self.path);
        let mut by_sweep: BTreeMap<i64, Vec<Point>> = BTreeMap::new();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.sweep_id, p.point, s.results_format FROM points p JOIN sweeps s ON s.id = p.sweep_id \
                 WHERE p.key = ?1",
            )
            .map_err(&err)?;
        for key in keys {
            let rows = stmt
                .query_map([key], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))
                .map_err(&err)?;
            for row in rows {
                let (id, text, format) = row.map_err(&err)?;
                let point = serde_json::from_str(&text).map_err(|source| HistoryError::Points {
                    path: self.path.clone(),
                    id,
                    format,
                    source,
                })?;
                by_sweep.entry(id).or_default().push(point);
            }
        }
        let mut out = Vec::new();
        for (id, points) in by_sweep {
            out.push((self.resolve(&id.to_string())?, points));
        }
        out.sort_by(|a, b| a.0.time().total_cmp(&b.0.time()).then(a.0.id.cmp(&b.0.id)));
        Ok(out)
    }
}

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let tags: Option<String> = r.get(12)?;
    Ok(Entry {
        id: r.get(0)?,
        added_at: r.get(1)?,
        keys: Keys {
            created_at: r.get(2)?,
            name: r.get(3)?,
            path: r.get(4)?,
            engine: r.get(5)?,
            version: r.get(6)?,
            image: r.get(7)?,
            commit: r.get(8)?,
            spec_sha256: r.get(9)?,
            model: r.get(10)?,
            tags: tags.map(|t| t.split('\u{1f}').map(str::to_owned).collect()).unwrap_or_default(),
        },
        points: r.get(11)?,
    })
}

/// SQLite's own errors, with the database's path; its lock after [`BUSY_WAIT`] said as such.
fn sqlite_error(path: &Path) -> impl Fn(rusqlite::Error) -> HistoryError + '_ {
    move |source| match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            HistoryError::Locked { path: path.to_owned() }
        }
        _ => HistoryError::Sqlite { path: path.to_owned(), source },
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
