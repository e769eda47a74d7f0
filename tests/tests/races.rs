//! The classic cache races, scripted deterministically with the crate's
//! test hooks: one side is stopped at an exact step while the other runs.
//! Every scenario ends with a read that must equal the database.
//!
//! Hooks are per process, so these tests run one at a time (`SERIAL`).

mod common;

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use cachebot::hooks::{self, Point};
use cachebot::prelude::*;
use cachebot_tests::models::Photo;
use cachebot_tests::schema::photos;
use cachebot_tests::{MemcachedProcess, TestDb};
use common::{expect, seed, unique_prefix};
use diesel::prelude::*;

static SERIAL: Mutex<()> = Mutex::new(());

/// Stops the thread named `who` at `at` until the test says go.
struct Pause {
    arrived: Receiver<()>,
    go: Sender<()>,
    _guard: hooks::HookGuard,
}

impl Pause {
    fn at(who: &'static str, at: Point) -> Pause {
        let (arrived_tx, arrived) = channel();
        let (go, go_rx) = channel::<()>();
        let go_rx = Arc::new(Mutex::new(go_rx));
        let arrived_tx = Mutex::new(arrived_tx);
        let guard = hooks::install(move |point| {
            if point == at && thread::current().name() == Some(who) {
                let _ = arrived_tx.lock().unwrap().send(());
                let _ = go_rx.lock().unwrap().recv_timeout(Duration::from_secs(20));
            }
        });
        Pause {
            arrived,
            go,
            _guard: guard,
        }
    }

    fn wait(&self) {
        self.arrived
            .recv_timeout(Duration::from_secs(20))
            .expect("the paused side never arrived");
    }

    fn release(&self) {
        self.go.send(()).unwrap();
    }
}

fn spawn_named<T: Send + 'static>(
    name: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    thread::Builder::new().name(name.into()).spawn(f).unwrap()
}

fn by_ann(
    ann: i32,
) -> impl Fn() -> diesel::dsl::Order<
    diesel::dsl::Filter<photos::table, diesel::dsl::Eq<photos::user_id, i32>>,
    photos::id,
> {
    move || {
        photos::table
            .filter(photos::user_id.eq(ann))
            .order(photos::id)
    }
}

#[test]
fn a_reader_that_read_old_rows_stores_them_after_the_write_and_they_are_never_served() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let cache = Cache::in_process();
    let q = by_ann(seed.ann.id);
    let pause = Pause::at("reader", Point::ReadBeforeStore);
    let (c, url, q2) = (cache.clone(), db.url(), by_ann(seed.ann.id));
    let reader = spawn_named("reader", move || {
        let mut conn = PgConnection::establish(&url).unwrap();
        q2().cache(&c).load::<Photo>(&mut conn).unwrap()
    });
    pause.wait(); // the reader holds the old rows
    let mut writer = db.conn();
    cache.instrument(&mut writer).unwrap();
    diesel::update(photos::table.find(seed.photos[0].id))
        .set(photos::title.eq("written"))
        .execute(&mut writer)
        .unwrap(); // committed and invalidated: the write has returned
    pause.release();
    let old = reader.join().unwrap();
    assert_eq!(
        old[0].title, "beach",
        "the reader did read before the write"
    );
    let mut conn = db.conn();
    let b = cache.stats();
    let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    expect(&cache, b, 0, 1, "the entry stored late must not be served");
    assert_eq!(rows, q().load::<Photo>(&mut conn).unwrap());
}

#[test]
fn a_read_between_commit_and_invalidation_is_never_stale_after_the_write_returns() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let cache = Cache::in_process();
    let q = by_ann(seed.ann.id);
    let mut conn = db.conn();
    let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    let pause = Pause::at("writer", Point::CommitBeforeInvalidate);
    let (c, url, id) = (cache.clone(), db.url(), seed.photos[0].id);
    let writer = spawn_named("writer", move || {
        let mut w = PgConnection::establish(&url).unwrap();
        c.instrument(&mut w).unwrap();
        w.transaction::<_, diesel::result::Error, _>(|w| {
            diesel::update(photos::table.find(id))
                .set(photos::title.eq("committed"))
                .execute(w)
        })
        .unwrap();
    });
    pause.wait(); // COMMIT has finished; the bump has not happened; the write has not returned
                  // A miss that starts now reads the committed rows and stores them under
                  // the pre-bump generations: harmless, the bump retires them.
    let during: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    let _ = during; // the old or the new state: both are allowed while the write is in flight
    pause.release();
    writer.join().unwrap();
    let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    assert_eq!(
        rows,
        q().load::<Photo>(&mut conn).unwrap(),
        "stale after the write returned"
    );
    assert_eq!(rows[0].title, "committed");
}

#[test]
fn two_writers_bumping_the_same_generation_leave_no_stale_entry() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let cache = Cache::in_process();
    let q = by_ann(seed.ann.id);
    let pause = Pause::at("reader", Point::ReadSnapshotTaken);
    let (c, url, q2) = (cache.clone(), db.url(), by_ann(seed.ann.id));
    let reader = spawn_named("reader", move || {
        let mut conn = PgConnection::establish(&url).unwrap();
        q2().cache(&c).load::<Photo>(&mut conn).unwrap()
    });
    pause.wait(); // the reader has its snapshot, not yet its rows
    let writers: Vec<_> = [(seed.photos[0].id, "first"), (seed.photos[1].id, "second")]
        .into_iter()
        .map(|(id, title)| {
            let (c, url) = (cache.clone(), db.url());
            thread::spawn(move || {
                let mut w = PgConnection::establish(&url).unwrap();
                c.instrument(&mut w).unwrap();
                diesel::update(photos::table.find(id))
                    .set(photos::title.eq(title))
                    .execute(&mut w)
                    .unwrap();
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    pause.release();
    let _ = reader.join().unwrap();
    let mut conn = db.conn();
    let b = cache.stats();
    let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    expect(&cache, b, 0, 1, "the reader's entry predates both bumps");
    assert_eq!(rows, q().load::<Photo>(&mut conn).unwrap());
    assert_eq!(
        (rows[0].title.as_str(), rows[1].title.as_str()),
        ("first", "second")
    );
}

#[test]
fn a_generation_evicted_between_snapshot_and_store_gives_a_miss() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let mc = MemcachedProcess::spawn();
    let store = cachebot::store::MemcachedStore::builder()
        .servers([mc.addr()])
        .prefix(unique_prefix())
        .build()
        .unwrap();
    let cache = Cache::builder()
        .store(store)
        .write_behind(false)
        .build()
        .unwrap();
    let q = by_ann(seed.ann.id);
    let pause = Pause::at("reader", Point::ReadBeforeStore);
    let (c, url, q2) = (cache.clone(), db.url(), by_ann(seed.ann.id));
    let reader = spawn_named("reader", move || {
        let mut conn = PgConnection::establish(&url).unwrap();
        q2().cache(&c).load::<Photo>(&mut conn).unwrap()
    });
    pause.wait(); // old rows in hand
    let mut writer = db.conn();
    cache.instrument(&mut writer).unwrap();
    diesel::update(photos::table.find(seed.photos[0].id))
        .set(photos::title.eq("after"))
        .execute(&mut writer)
        .unwrap();
    mc.flush_all(); // every generation gone, the bumped one included
    pause.release();
    let _ = reader.join().unwrap();
    let mut conn = db.conn();
    let b = cache.stats();
    let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    expect(
        &cache,
        b,
        0,
        1,
        "re-created generations never match the old snapshot",
    );
    assert_eq!(rows, q().load::<Photo>(&mut conn).unwrap());
}

#[test]
fn a_read_inside_the_writers_transaction_neither_reads_nor_stores() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let db = TestDb::new();
    let seed = seed(&mut db.conn());
    let cache = Cache::in_process();
    let q = by_ann(seed.ann.id);
    let mut conn = db.conn();
    cache.instrument(&mut conn).unwrap();
    let _: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    let b = cache.stats();
    conn.transaction::<_, diesel::result::Error, _>(|c| {
        diesel::update(photos::table.find(seed.photos[0].id))
            .set(photos::title.eq("mine"))
            .execute(c)?;
        let inside: Vec<Photo> = q().cache(&cache).load(c)?;
        assert_eq!(
            inside[0].title, "mine",
            "the transaction sees its own write, not the cache"
        );
        Err::<(), _>(diesel::result::Error::RollbackTransaction)
    })
    .unwrap_err();
    let d = cache.stats() - b;
    assert_eq!((d.bypasses, d.stores, d.hits), (1, 0, 0), "{d:?}");
    let rows: Vec<Photo> = q().cache(&cache).load(&mut conn).unwrap();
    assert_eq!(rows, q().load::<Photo>(&mut conn).unwrap());
    assert_eq!(rows[0].title, "beach");
}
