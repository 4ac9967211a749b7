use super::*;

fn point(key: &str, tps: f64) -> Point {
    let mut figures = BTreeMap::new();
    figures.insert(
        "tps_per_gpu_working".to_owned(),
        sweep_aggregate::compare::Sample { mean: tps, std: Some(1.0), n: 5 },
    );
    Point {
        key: key.to_owned(),
        job: format!("job-{key}"),
        model: Some("m".to_owned()),
        engine: Some("mock".to_owned()),
        isl: Some(128),
        osl: Some(16),
        figures,
    }
}

fn sweep(name: &str, created_at: f64, tags: &[&str], points: Vec<Point>) -> NewSweep {
    NewSweep {
        keys: Keys {
            name: name.to_owned(),
            path: format!("/runs/{name}"),
            created_at: Some(created_at),
            engine: Some("mock".to_owned()),
            version: Some("1.0".to_owned()),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..Keys::default()
        },
        points,
    }
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).expect("count")
}

#[test]
fn sweeps_go_in_and_come_back_by_id_latest_and_tag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deep/er/history.sqlite");
    let mut h = History::create(&path).expect("create");
    let a = h.add(&sweep("a", 100.0, &["nightly"], vec![point("p1", 10.0), point("p2", 20.0)])).expect("add");
    let b = h.add(&sweep("b", 300.0, &["nightly", "v2"], vec![point("p1", 11.0)])).expect("add");
    let c = h.add(&sweep("c", 200.0, &[], vec![point("p3", 1.0)])).expect("add");
    let listed: Vec<i64> = h.list(None, None).expect("list").iter().map(|e| e.id).collect();
    assert_eq!(listed, [b, c, a], "newest first by render time");
    assert_eq!(h.list(Some("nightly"), Some(1)).expect("list")[0].id, b);
    assert_eq!(h.resolve("latest").expect("latest").id, b);
    assert_eq!(h.resolve(&a.to_string()).expect("id").keys.name, "a");
    assert_eq!(h.resolve("v2").expect("tag").keys.tags, ["nightly", "v2"]);
    assert!(matches!(h.resolve("nope"), Err(HistoryError::NoMatch { .. })));
    let results = h.results(a).expect("results");
    assert_eq!(results.points, [point("p1", 10.0), point("p2", 20.0)]);
    let keys: BTreeSet<String> = ["p1".to_owned()].into();
    let trend = h.trend(&keys).expect("trend");
    let names: Vec<&str> = trend.iter().map(|(e, _)| e.keys.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "oldest first, only sweeps with the key");
    assert_eq!(trend[1].1, [point("p1", 11.0)]);
    // Reopened, it is the same database.
    drop(h);
    assert_eq!(History::open(&path).expect("open").list(None, None).expect("list").len(), 3);
}

#[test]
fn a_missing_history_is_not_created_by_reading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.sqlite");
    assert!(matches!(History::open(&path), Err(HistoryError::Missing { .. })));
    assert!(!path.exists());
}

#[test]
fn an_add_that_fails_midway_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.sqlite");
    let mut h = History::create(&path).expect("create");
    h.add(&sweep("before", 1.0, &["t"], vec![point("p0", 1.0)])).expect("add");
    // The third point of the next sweep fails to insert, as a full disk or a kill would stop it.
    h.conn
        .execute_batch(
            "CREATE TRIGGER fail_third BEFORE INSERT ON points WHEN NEW.key = 'p3'
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .expect("trigger");
    let points = (1..=5).map(|k| point(&format!("p{k}"), 1.0)).collect();
    let failed = h.add(&sweep("interrupted", 2.0, &["x"], points));
    assert!(matches!(failed, Err(HistoryError::Sqlite { .. })), "{failed:?}");
    assert_eq!(count(&h.conn, "sweeps"), 1);
    assert_eq!(count(&h.conn, "points"), 1);
    assert_eq!(count(&h.conn, "tags"), 1);
}

#[test]
fn an_older_schema_is_migrated_and_keeps_its_sweeps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.sqlite");
    {
        // A database as schema 1 wrote it.
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(MIGRATIONS[0]).expect("schema 1");
        conn.execute_batch(
            "INSERT INTO sweeps (id, added_at, created_at, name, path, points) VALUES (7, 5.0, 4.0, 'old', '/old', 1);
             INSERT INTO tags VALUES (7, 'base');
             PRAGMA user_version = 1;",
        )
        .expect("a sweep");
        let p = serde_json::to_string(&point("p1", 3.0)).expect("json");
        conn.execute("INSERT INTO points VALUES (7, 'p1', ?1)", [p]).expect("a point");
    }
    let h = History::open(&path).expect("migrated");
    let version: i64 = h.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
    assert_eq!(version, SCHEMA);
    let old = h.resolve("base").expect("the old sweep");
    assert_eq!((old.id, old.keys.name.as_str(), old.points), (7, "old", 1));
    assert_eq!(h.results(7).expect("points").points, [point("p1", 3.0)]);
}

#[test]
fn a_newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.sqlite");
    Connection::open(&path).expect("open").execute_batch("PRAGMA user_version = 99;").expect("version");
    let before = std::fs::read(&path).expect("read");
    let err = History::create(&path).expect_err("newer");
    assert!(err.to_string().contains("schema 99; this build knows up to 2"), "{err}");
    assert_eq!(std::fs::read(&path).expect("read"), before);
}

#[test]
fn a_locked_history_says_so_after_waiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.sqlite");
    History::create(&path).expect("create");
    // Another process in the middle of a write.
    let other = Connection::open(&path).expect("open");
    other
        .execute_batch(
            "BEGIN IMMEDIATE; INSERT INTO sweeps (added_at, name, path, points) VALUES (1, 'x', '/x', 0);",
        )
        .expect("hold the lock");
    let mut h = History::open(&path)
        .expect("reading is allowed")
        .with_busy_wait(Duration::from_millis(200))
        .expect("wait");
    let err = h.add(&sweep("blocked", 1.0, &[], vec![point("p", 1.0)])).expect_err("locked");
    assert!(matches!(err, HistoryError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("locked by another process"), "{err}");
    other.execute_batch("ROLLBACK").expect("release");
    h.add(&sweep("after", 1.0, &[], vec![point("p", 1.0)])).expect("free again");
}
