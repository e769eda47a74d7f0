//! cachebot's precision benchmark (issue 15): how often the crate hits compared with an ideal
//! cache, on a seeded replay of a mixed read/write workload. A cache that is never stale but
//! invalidates too much gets turned off, so this measures the cost of over-invalidation.
//!
//! Every operation of the replay is either a read of one of eight query shapes (Zipf-distributed
//! parameters) or a write through the crate's exact write API. Each read runs twice: through
//! the cache on the instrumented connection, and uncached on a second, plain connection. The
//! uncached result is the truth:
//!
//! - a cached result that differs from it is a **stale read** (the run exits non-zero);
//! - the **ideal cache** misses only when the result really changed since it last read that
//!   (shape, parameters), or on the first read;
//! - the **table-level cache** misses when any table the shape reads was written since it
//!   filled the entry (what a cache without row-level keys can do);
//! - **precision** = crate hits / ideal hits (per shape and overall).
//!
//! Run through `scripts/bench.sh precision` (which provides PostgreSQL). Environment:
//! `DATABASE_URL` (required); `BENCH_QUICK=1` (~20 s instead of ~2 min); `BENCH_SEED`;
//! `BENCH_OPS` (operations per write ratio); `BENCH_WRITES` (comma-separated write ratios,
//! default `0.05,0.10,0.20`); `BENCH_STORE=memcached` (with `MEMCACHED_SERVERS`) instead of the
//! in-process store; `BENCH_REQUIRE_TARGET=1` makes a missed target fail the run too.
//!
//! To add a query shape: a variant of [`Read`], its row in [`Shape::ALL`] (name, weight,
//! tables), its parameters in [`Workload::read_of`] and its query in [`Replay::read`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::error::Error;
use std::fmt::{Debug, Write as _};
use std::hash::Hash;
use std::time::Instant;

use cachebot::prelude::*;
use cachebot::store::MemcachedStore;
use cachebot::{CacheBot, Dependency, Explain};
use chrono::{DateTime, TimeZone, Utc};
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use schema::{albums, photo_tags, photos};

/// Errors of the setup and the replay: any database or cache error ends the run.
type Res<T> = Result<T, Box<dyn Error>>;

/// The private schema's tables (unqualified: connections set `search_path`).
mod schema {
    diesel::table! {
        users (id) {
            id -> Int4,
            name -> Text,
        }
    }

    diesel::table! {
        albums (id) {
            id -> Int4,
            user_id -> Int4,
            title -> Text,
        }
    }

    diesel::table! {
        photos (id) {
            id -> Int4,
            user_id -> Int4,
            album_id -> Int4,
            status -> Int4,
            title -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        tags (id) {
            id -> Int4,
            name -> Text,
        }
    }

    diesel::table! {
        photo_tags (photo_id, tag_id) {
            photo_id -> Int4,
            tag_id -> Int4,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(users, albums, photos, tags, photo_tags);
}

/// A row of `photos`. The composite key makes `user_id = $1 AND status = $2` depend on that
/// pair alone once the model is registered on the cache.
#[derive(
    Debug, Clone, PartialEq, Hash, Queryable, Selectable, Serialize, Deserialize, CacheBot,
)]
#[diesel(table_name = photos, check_for_backend(diesel::pg::Pg))]
#[cachebot(key(user_id, status))]
struct Photo {
    id: i32,
    user_id: i32,
    album_id: i32,
    status: i32,
    title: String,
    created_at: DateTime<Utc>,
}

/// A row of the join table `photo_tags`: tag adds and removes go through the write API as it.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize, CacheBot)]
#[diesel(table_name = photo_tags, primary_key(photo_id, tag_id), check_for_backend(diesel::pg::Pg))]
struct PhotoTag {
    photo_id: i32,
    tag_id: i32,
}

// -------------------------------------------------------------------------------------------
// Configuration
// -------------------------------------------------------------------------------------------

/// Photo statuses and how often a new photo (or a status change) takes each.
const STATUSES: [(i32, u32); 4] = [(1, 85), (0, 8), (2, 5), (3, 2)];
/// The status a by-user-and-status read asks for (mostly published).
const READ_STATUSES: [(i32, u32); 3] = [(1, 70), (0, 20), (2, 10)];
/// The lists of status-in reads (the rare statuses, so results stay ~1k rows).
const STATUS_LISTS: [((i32, i32), u32); 3] = [((0, 3), 60), ((2, 3), 30), ((0, 2), 10)];

/// Sizes, mix and seed of a run.
struct Config {
    seed: u64,
    quick: bool,
    users: i32,
    albums_per_user: i32,
    photos: i32,
    tags: i32,
    /// Tags per photo in the initial data (before duplicates are dropped).
    tags_per_photo: i32,
    /// Zipf exponent of every parameter distribution.
    zipf_s: f64,
    /// Operations per write ratio, warm-up included.
    ops: usize,
    /// Leading operations not counted (checked for staleness all the same).
    warmup: usize,
    /// Fractions of operations that are writes; one replay each.
    write_ratios: Vec<f64>,
    /// `MEMCACHED_SERVERS` when `BENCH_STORE=memcached`, else the in-process store.
    memcached: Option<Vec<String>>,
    /// `BENCH_REQUIRE_TARGET=1`: a missed target fails the run (exit 3).
    require_target: bool,
}

impl Config {
    /// Sizes and mix are fixed (comparable runs); the environment picks seed, length, ratios, store.
    fn from_env() -> Res<Config> {
        let flag = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0");
        let quick = flag("BENCH_QUICK");
        let seed = match std::env::var("BENCH_SEED") {
            Ok(s) if !s.trim().is_empty() => {
                s.trim().parse().map_err(|e| format!("BENCH_SEED: {e}"))?
            }
            _ => 15,
        };
        let ops = match std::env::var("BENCH_OPS") {
            Ok(s) if !s.trim().is_empty() => {
                s.trim().parse().map_err(|e| format!("BENCH_OPS: {e}"))?
            }
            _ if quick => 10_000,
            _ => 50_000,
        };
        let write_ratios = match std::env::var("BENCH_WRITES") {
            Ok(s) if !s.trim().is_empty() => s
                .split(',')
                .map(|r| {
                    r.trim()
                        .parse::<f64>()
                        .map_err(|e| format!("BENCH_WRITES: {r:?}: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => vec![0.05, 0.10, 0.20],
        };
        let memcached = match std::env::var("BENCH_STORE").as_deref() {
            Ok("memcached") => Some(
                std::env::var("MEMCACHED_SERVERS")
                    .map_err(|_| "BENCH_STORE=memcached needs MEMCACHED_SERVERS")?
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
            Ok("") | Ok("memory") | Err(_) => None,
            Ok(other) => return Err(format!("BENCH_STORE: unknown store {other:?}").into()),
        };
        Ok(Config {
            seed,
            quick,
            users: 1_000,
            albums_per_user: 2,
            photos: 10_000,
            tags: 200,
            tags_per_photo: 3,
            zipf_s: 0.9,
            ops,
            warmup: ops / 5,
            write_ratios,
            memcached,
            require_target: flag("BENCH_REQUIRE_TARGET"),
        })
    }

    /// Albums in all (`albums_per_user` per user).
    fn albums(&self) -> i32 {
        self.users * self.albums_per_user
    }

    /// The albums of `user` are `(user - 1) * albums_per_user + 1 ..= user * albums_per_user`.
    fn album_of(&self, user: i32, nth: i32) -> i32 {
        (user - 1) * self.albums_per_user + 1 + nth % self.albums_per_user
    }
}

// -------------------------------------------------------------------------------------------
// The database
// -------------------------------------------------------------------------------------------

/// A private schema holding the data of one replay; dropped (CASCADE) on drop.
struct Db {
    admin_url: String,
    schema: String,
    url: String,
}

impl Db {
    /// Create the schema, its tables (primary and foreign keys) and the seeded data.
    fn create(admin_url: &str, cfg: &Config) -> Res<Db> {
        let schema = format!("precision_bench_{}", std::process::id());
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-csearch_path%3D{schema}");
        let mut admin = PgConnection::establish(admin_url)
            .map_err(|e| format!("cannot connect to DATABASE_URL: {e}"))?;
        admin.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE; CREATE SCHEMA \"{schema}\""
        ))?;
        let db = Db {
            admin_url: admin_url.to_owned(),
            schema,
            url,
        };
        let Config {
            users,
            albums_per_user: apu,
            photos,
            tags,
            tags_per_photo,
            ..
        } = *cfg;
        let albums = cfg.albums();
        // Photo g belongs to user 1 + (g - 1) % users and one of that user's albums; its
        // status follows STATUSES (85% published) through a multiplicative hash of g.
        let multipliers: Vec<String> = [7, 13, 31, 37, 41, 43, 47, 53]
            .iter()
            .take(tags_per_photo as usize)
            .map(|m| format!("({m})"))
            .collect();
        let multipliers = multipliers.join(", ");
        let mut conn = db.conn()?;
        conn.batch_execute(&format!(
            "CREATE TABLE users (id int4 PRIMARY KEY, name text NOT NULL);
             INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, {users}) g;
             CREATE TABLE albums (
                 id int4 PRIMARY KEY,
                 user_id int4 NOT NULL REFERENCES users (id),
                 title text NOT NULL
             );
             INSERT INTO albums SELECT g, 1 + (g - 1) / {apu}, 'album ' || g
                 FROM generate_series(1, {albums}) g;
             CREATE TABLE photos (
                 id int4 PRIMARY KEY,
                 user_id int4 NOT NULL REFERENCES users (id),
                 album_id int4 NOT NULL REFERENCES albums (id),
                 status int4 NOT NULL,
                 title text NOT NULL,
                 created_at timestamptz NOT NULL
             );
             INSERT INTO photos
                 SELECT g, u, (u - 1) * {apu} + 1 + (g / {users}) % {apu},
                        CASE WHEN (g * 7919) % 100 < 85 THEN 1
                             WHEN (g * 7919) % 100 < 93 THEN 0
                             WHEN (g * 7919) % 100 < 98 THEN 2
                             ELSE 3 END,
                        'photo ' || g,
                        timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute'
                 FROM (SELECT g, 1 + (g - 1) % {users} AS u FROM generate_series(1, {photos}) g) s;
             CREATE INDEX photos_user_status ON photos (user_id, status);
             CREATE INDEX photos_album ON photos (album_id);
             CREATE INDEX photos_status ON photos (status);
             CREATE TABLE tags (id int4 PRIMARY KEY, name text NOT NULL);
             INSERT INTO tags SELECT g, 'tag ' || g FROM generate_series(1, {tags}) g;
             CREATE TABLE photo_tags (
                 photo_id int4 NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
                 tag_id int4 NOT NULL REFERENCES tags (id),
                 PRIMARY KEY (photo_id, tag_id)
             );
             INSERT INTO photo_tags
                 SELECT DISTINCT g, 1 + (g * m + m) % {tags}
                 FROM generate_series(1, {photos}) g, (VALUES {multipliers}) k(m);
             CREATE INDEX photo_tags_tag ON photo_tags (tag_id);"
        ))?;
        // Alone: VACUUM cannot run inside the implicit transaction of a batch.
        conn.batch_execute("VACUUM ANALYZE users, albums, photos, tags, photo_tags")?;
        Ok(db)
    }

    /// A connection whose `search_path` is the private schema.
    fn conn(&self) -> Res<PgConnection> {
        PgConnection::establish(&self.url).map_err(|e| format!("cannot connect: {e}").into())
    }

    /// Rows of `table` (for the report).
    fn count(conn: &mut PgConnection, table: &str) -> Res<i64> {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let n: N =
            diesel::sql_query(format!("SELECT count(*) AS n FROM {table}")).get_result(conn)?;
        Ok(n.n)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let dropped = PgConnection::establish(&self.admin_url)
            .map_err(|e| e.to_string())
            .and_then(|mut admin| {
                admin
                    .batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = dropped {
            eprintln!("[precision] could not drop schema {}: {e}", self.schema);
        }
    }
}

// -------------------------------------------------------------------------------------------
// The workload
// -------------------------------------------------------------------------------------------

/// A Zipf distribution over ranks `0..n`: rank k has weight 1 / (k + 1)^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// The cumulative weights of ranks `0..n`.
    fn new(n: usize, s: f64) -> Zipf {
        let mut total = 0.0;
        let cdf = (1..=n)
            .map(|k| {
                total += 1.0 / (k as f64).powf(s);
                total
            })
            .collect();
        Zipf { cdf }
    }

    /// A rank, hot ranks most often.
    fn sample(&self, rng: &mut fastrand::Rng) -> usize {
        let total = self.cdf.last().copied().unwrap_or(0.0);
        let x = rng.f64() * total;
        self.cdf
            .partition_point(|&c| c <= x)
            .min(self.cdf.len() - 1)
    }
}

/// Ids drawn by popularity: a Zipf rank mapped through a seeded permutation, so that hot ids
/// are spread over the id space rather than being the lowest ones.
struct Picker {
    zipf: Zipf,
    ids: Vec<i32>,
}

impl Picker {
    /// Popularity over `ids`, shuffled with `rng`.
    fn new(rng: &mut fastrand::Rng, ids: impl Iterator<Item = i32>, s: f64) -> Picker {
        let mut ids: Vec<i32> = ids.collect();
        rng.shuffle(&mut ids);
        Picker {
            zipf: Zipf::new(ids.len(), s),
            ids,
        }
    }

    /// An id, by popularity.
    fn pick(&self, rng: &mut fastrand::Rng) -> i32 {
        self.ids[self.zipf.sample(rng)]
    }
}

/// One of `items` with probability proportional to its weight.
fn weighted<T: Copy>(rng: &mut fastrand::Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|&(_, w)| w).sum();
    let mut x = rng.u32(0..total.max(1));
    for &(item, w) in items {
        if x < w {
            return item;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

/// The photos that exist now (deletes and inserts change it), for writes to pick from.
#[derive(Default)]
struct Live {
    ids: Vec<i32>,
    pos: HashMap<i32, usize>,
}

impl Live {
    /// A photo that now exists (inserted).
    fn insert(&mut self, id: i32) {
        if !self.pos.contains_key(&id) {
            self.pos.insert(id, self.ids.len());
            self.ids.push(id);
        }
    }

    /// A photo that no longer exists (deleted).
    fn remove(&mut self, id: i32) {
        if let Some(i) = self.pos.remove(&id) {
            self.ids.swap_remove(i);
            if let Some(&moved) = self.ids.get(i) {
                self.pos.insert(moved, i);
            }
        }
    }

    /// Whether the photo exists.
    fn contains(&self, id: i32) -> bool {
        self.pos.contains_key(&id)
    }

    /// Any existing photo, uniformly; `None` when none is left.
    fn random(&self, rng: &mut fastrand::Rng) -> Option<i32> {
        (!self.ids.is_empty()).then(|| self.ids[rng.usize(0..self.ids.len())])
    }
}

/// One read of the replay: its shape and parameters (the ideal and table-level caches key on
/// it, like the crate keys on the query and its binds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Read {
    /// Photos of a user, by id.
    ByUser(i32),
    /// Photos of a user with a status (the composite key `(user_id, status)`).
    ByUserStatus(i32, i32),
    /// One photo by primary key (`Photo::get`).
    ById(i32),
    /// How many photos a user has.
    CountByUser(i32),
    /// Photos of an album with the album's title (photos JOIN albums).
    AlbumJoin(i32),
    /// Photos with a tag (photos JOIN photo_tags).
    ByTag(i32),
    /// The 10 newest photos.
    Latest10,
    /// Photos whose status is one of two.
    StatusIn(i32, i32),
}

/// A query shape: what the report groups reads by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Shape {
    name: &'static str,
    /// Share of reads, in percent.
    weight: u32,
    /// What a table-level cache would make the shape depend on.
    tables: &'static [&'static str],
}

impl Shape {
    /// Every shape, in report order, with the read mix.
    const ALL: [Shape; 8] = [
        Shape {
            name: "by_user",
            weight: 25,
            tables: &["photos"],
        },
        Shape {
            name: "by_user_status",
            weight: 15,
            tables: &["photos"],
        },
        Shape {
            name: "by_id",
            weight: 25,
            tables: &["photos"],
        },
        Shape {
            name: "count_by_user",
            weight: 10,
            tables: &["photos"],
        },
        Shape {
            name: "album_join",
            weight: 8,
            tables: &["photos", "albums"],
        },
        Shape {
            name: "by_tag",
            weight: 8,
            tables: &["photos", "photo_tags"],
        },
        Shape {
            name: "latest_10",
            weight: 5,
            tables: &["photos"],
        },
        Shape {
            name: "status_in",
            weight: 4,
            tables: &["photos"],
        },
    ];
}

impl Read {
    /// The index of this read's shape in [`Shape::ALL`].
    fn shape(self) -> usize {
        match self {
            Read::ByUser(_) => 0,
            Read::ByUserStatus(..) => 1,
            Read::ById(_) => 2,
            Read::CountByUser(_) => 3,
            Read::AlbumJoin(_) => 4,
            Read::ByTag(_) => 5,
            Read::Latest10 => 6,
            Read::StatusIn(..) => 7,
        }
    }
}

/// The writes of the replay, with the write mix (percent of writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum WriteKind {
    /// `UPDATE photos SET title` of one photo.
    TitleEdit,
    /// `UPDATE photos SET user_id, album_id`: the photo moves to another user's album.
    Move,
    /// `UPDATE photos SET status` to another status.
    StatusChange,
    /// `INSERT INTO photos` of a new photo (no tags).
    Insert,
    /// `DELETE FROM photos` of one photo; its tags go by `ON DELETE CASCADE`.
    Delete,
    /// `INSERT INTO photo_tags` of a tag the photo does not have.
    TagAdd,
    /// `DELETE FROM photo_tags` of one of the photo's tags.
    TagRemove,
}

impl WriteKind {
    /// Every write with its share of writes, in percent.
    const ALL: [(WriteKind, u32); 7] = [
        (WriteKind::TitleEdit, 30),
        (WriteKind::Move, 10),
        (WriteKind::StatusChange, 20),
        (WriteKind::Insert, 10),
        (WriteKind::Delete, 10),
        (WriteKind::TagAdd, 10),
        (WriteKind::TagRemove, 10),
    ];

    /// The write's name in the report.
    fn name(self) -> &'static str {
        match self {
            WriteKind::TitleEdit => "title edit",
            WriteKind::Move => "move to another user",
            WriteKind::StatusChange => "status change",
            WriteKind::Insert => "photo insert",
            WriteKind::Delete => "photo delete",
            WriteKind::TagAdd => "tag add",
            WriteKind::TagRemove => "tag remove",
        }
    }

    /// The tables a table-level cache sees written (a photo delete cascades to photo_tags).
    fn tables(self) -> &'static [&'static str] {
        match self {
            WriteKind::TitleEdit
            | WriteKind::Move
            | WriteKind::StatusChange
            | WriteKind::Insert => &["photos"],
            WriteKind::Delete => &["photos", "photo_tags"],
            WriteKind::TagAdd | WriteKind::TagRemove => &["photo_tags"],
        }
    }
}

/// The seeded source of operations: which operation comes next and its parameters.
struct Workload {
    rng: fastrand::Rng,
    users: Picker,
    photos: Picker,
    albums: Picker,
    tags: Picker,
    live: Live,
    /// The id the next inserted photo gets.
    next_id: i32,
    user_count: i32,
}

impl Workload {
    /// The seeded pickers and the initial photos of `cfg`'s data.
    fn new(cfg: &Config) -> Workload {
        let mut rng = fastrand::Rng::with_seed(cfg.seed);
        let s = cfg.zipf_s;
        let users = Picker::new(&mut rng, 1..=cfg.users, s);
        let photos = Picker::new(&mut rng, 1..=cfg.photos, s);
        let albums = Picker::new(&mut rng, 1..=cfg.albums(), s);
        let tags = Picker::new(&mut rng, 1..=cfg.tags, s);
        let mut live = Live::default();
        (1..=cfg.photos).for_each(|id| live.insert(id));
        Workload {
            rng,
            users,
            photos,
            albums,
            tags,
            live,
            next_id: cfg.photos + 1,
            user_count: cfg.users,
        }
    }

    /// The next read: a shape drawn by the read mix, then its parameters.
    fn next_read(&mut self) -> Read {
        let mix: Vec<(usize, u32)> = Shape::ALL.iter().map(|s| s.weight).enumerate().collect();
        let shape = weighted(&mut self.rng, &mix);
        let read = self.read_of(shape);
        debug_assert_eq!(
            read.shape(),
            shape,
            "Workload::read_of and Read::shape disagree"
        );
        read
    }

    /// Parameters for a read of shape `shape` (an index of [`Shape::ALL`]).
    fn read_of(&mut self, shape: usize) -> Read {
        let rng = &mut self.rng;
        match shape {
            0 => Read::ByUser(self.users.pick(rng)),
            1 => Read::ByUserStatus(self.users.pick(rng), weighted(rng, &READ_STATUSES)),
            2 => {
                // Mostly popular photos; now and then any photo ever created (new ones too).
                if rng.f64() < 0.9 {
                    Read::ById(self.photos.pick(rng))
                } else {
                    Read::ById(rng.i32(1..self.next_id))
                }
            }
            3 => Read::CountByUser(self.users.pick(rng)),
            4 => Read::AlbumJoin(self.albums.pick(rng)),
            5 => Read::ByTag(self.tags.pick(rng)),
            6 => Read::Latest10,
            _ => {
                let (a, b) = weighted(rng, &STATUS_LISTS);
                Read::StatusIn(a, b)
            }
        }
    }

    /// A photo to write: mostly a popular one (if it still exists), else any live one.
    fn photo(&mut self) -> Option<i32> {
        if self.rng.f64() < 0.7 {
            let id = self.photos.pick(&mut self.rng);
            if self.live.contains(id) {
                return Some(id);
            }
        }
        self.live.random(&mut self.rng)
    }

    /// A user other than `not`, uniformly.
    fn other_user(&mut self, not: i32) -> i32 {
        let u = self.rng.i32(1..self.user_count);
        if u >= not {
            u + 1
        } else {
            u
        }
    }
}

// -------------------------------------------------------------------------------------------
// The replay and its accounting
// -------------------------------------------------------------------------------------------

/// Counts of one shape (or of all of them).
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    reads: u64,
    crate_hits: u64,
    ideal_hits: u64,
    table_hits: u64,
    /// Cached reads the crate neither hit nor missed (bypassed: counted as misses).
    bypasses: u64,
}

impl Tally {
    /// Sum `o` into `self` (the overall row).
    fn add(&mut self, o: &Tally) {
        self.reads += o.reads;
        self.crate_hits += o.crate_hits;
        self.ideal_hits += o.ideal_hits;
        self.table_hits += o.table_hits;
        self.bypasses += o.bypasses;
    }
}

/// A cached read that returned something else than the database.
struct StaleRead {
    op: u64,
    read: Read,
    cached: String,
    truth: String,
    /// The writes just before it, newest last.
    recent_writes: Vec<String>,
}

/// One write ratio's replay: the cache, the two connections, and the three caches' books.
struct Replay<'a> {
    cfg: &'a Config,
    /// The private schema (left out of the dependencies reported).
    schema: String,
    cache: &'a Cache,
    /// Instrumented: cached reads and the crate's writes.
    conn: &'a mut PgConnection,
    /// Plain, never read through the cache: the truth, and the state writes pick from.
    oracle: &'a mut PgConnection,
    work: Workload,
    /// The current operation's index (1-based).
    op: u64,
    /// The ideal cache: the fingerprint of the result it holds per read.
    ideal: HashMap<Read, u128>,
    /// The table-level cache: the operation that filled each entry.
    filled: HashMap<Read, u64>,
    /// The last operation that wrote each table.
    last_write: HashMap<&'static str, u64>,
    tallies: [Tally; Shape::ALL.len()],
    writes: HashMap<WriteKind, u64>,
    stale: Vec<StaleRead>,
    stale_count: u64,
    recent_writes: VecDeque<String>,
    /// The SQL and dependencies of each shape's first read (`explain_on`).
    explained: HashMap<usize, (String, String)>,
}

/// Run one query shape both ways: `cached` through the cache, `fresh` uncached, `explain` for
/// the report (the query built by one expression, so the three cannot drift apart).
macro_rules! observe_query {
    ($replay:expr, $read:expr, $row:ty, $query:expr) => {{
        let query = || $query;
        $replay.observe::<Vec<$row>>(
            $read,
            |cache, conn| query().cache(cache).load::<$row>(conn),
            |conn| query().load::<$row>(conn),
            |cache, conn| query().cache(cache).explain_on::<_, $row>(conn),
        )
    }};
}

impl Replay<'_> {
    /// Run the whole trace: `cfg.ops` operations, a fraction `ratio` of them writes.
    fn run(&mut self, ratio: f64) -> Res<()> {
        for _ in 0..self.cfg.ops {
            self.op += 1;
            if self.work.rng.f64() < ratio {
                let kind = weighted(&mut self.work.rng, &WriteKind::ALL);
                self.write(kind)?;
            } else {
                let read = self.work.next_read();
                self.read(read)?;
            }
        }
        Ok(())
    }

    /// Whether the current operation is past the warm-up (counted in the report).
    fn counting(&self) -> bool {
        self.op > self.cfg.warmup as u64
    }

    /// One read: the query of its shape, through [`observe`](Self::observe).
    fn read(&mut self, read: Read) -> Res<()> {
        match read {
            Read::ByUser(u) => observe_query!(
                self,
                read,
                Photo,
                photos::table
                    .filter(photos::user_id.eq(u))
                    .order(photos::id)
                    .select(Photo::as_select())
            ),
            Read::ByUserStatus(u, s) => observe_query!(
                self,
                read,
                Photo,
                photos::table
                    .filter(photos::user_id.eq(u))
                    .filter(photos::status.eq(s))
                    .order(photos::id)
                    .select(Photo::as_select())
            ),
            Read::ById(id) => self.observe::<Option<Photo>>(
                read,
                |cache, conn| Photo::get(cache, conn, id),
                |conn| {
                    Ok(RunQueryDsl::load::<Photo>(Photo::find(id), conn)?
                        .into_iter()
                        .next())
                },
                |cache, conn| Photo::find(id).cache(cache).explain_on::<_, Photo>(conn),
            ),
            Read::CountByUser(u) => observe_query!(
                self,
                read,
                i64,
                photos::table.filter(photos::user_id.eq(u)).count()
            ),
            Read::AlbumJoin(a) => observe_query!(
                self,
                read,
                (Photo, String),
                photos::table
                    .inner_join(albums::table.on(photos::album_id.eq(albums::id)))
                    .filter(photos::album_id.eq(a))
                    .order(photos::id)
                    .select((Photo::as_select(), albums::title))
            ),
            Read::ByTag(t) => observe_query!(
                self,
                read,
                Photo,
                photos::table
                    .inner_join(photo_tags::table.on(photos::id.eq(photo_tags::photo_id)))
                    .filter(photo_tags::tag_id.eq(t))
                    .order(photos::id)
                    .select(Photo::as_select())
            ),
            Read::Latest10 => observe_query!(
                self,
                read,
                Photo,
                photos::table
                    .order(photos::id.desc())
                    .limit(10)
                    .select(Photo::as_select())
            ),
            Read::StatusIn(a, b) => observe_query!(
                self,
                read,
                Photo,
                photos::table
                    .filter(photos::status.eq_any(vec![a, b]))
                    .order(photos::id)
                    .select(Photo::as_select())
            ),
        }
    }

    /// Run a read through the cache and uncached, and book it: stale or not, crate hit (from
    /// the cache's counters), ideal hit, table-level hit.
    fn observe<T: PartialEq + Hash + Debug>(
        &mut self,
        read: Read,
        cached: impl FnOnce(&Cache, &mut PgConnection) -> QueryResult<T>,
        fresh: impl FnOnce(&mut PgConnection) -> QueryResult<T>,
        explain: impl FnOnce(&Cache, &mut PgConnection) -> QueryResult<Explain>,
    ) -> Res<()> {
        let shape = read.shape();
        if !self.explained.contains_key(&shape) {
            let e = explain(self.cache, self.conn)?;
            self.explained.insert(shape, describe(&e, &self.schema));
        }

        let before = self.cache.stats();
        let got = cached(self.cache, self.conn)
            .map_err(|e| format!("cached read {read:?} (operation {}): {e}", self.op))?;
        let delta = self.cache.stats() - before;
        let truth = fresh(self.oracle)?;

        let crate_hit = delta.hits == 1 && delta.misses == 0;
        let bypassed = delta.hits + delta.misses != 1;
        if got != truth {
            self.stale_count += 1;
            if self.stale.len() < 20 {
                let (cached, truth_text) = clip_pair(&format!("{got:?}"), &format!("{truth:?}"));
                self.stale.push(StaleRead {
                    op: self.op,
                    read,
                    cached,
                    truth: truth_text,
                    recent_writes: self.recent_writes.iter().cloned().collect(),
                });
            }
        }

        // The ideal cache holds the last true result; it hits iff that is still the result.
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        truth.hash(&mut hasher);
        let fingerprint = hasher.digest128();
        let ideal_hit = self.ideal.insert(read, fingerprint) == Some(fingerprint);

        // The table-level cache hits iff no table the shape reads was written since the fill.
        let op = self.op;
        let table_hit = self.filled.get(&read).is_some_and(|&fill| {
            Shape::ALL[shape]
                .tables
                .iter()
                .all(|t| self.last_write.get(t).is_none_or(|&w| w < fill))
        });
        if !table_hit {
            self.filled.insert(read, op);
        }

        if self.counting() {
            let t = &mut self.tallies[shape];
            t.reads += 1;
            t.crate_hits += u64::from(crate_hit);
            t.ideal_hits += u64::from(ideal_hit);
            t.table_hits += u64::from(table_hit);
            t.bypasses += u64::from(bypassed);
        }
        Ok(())
    }

    /// One write through the crate's write API; a kind with nothing to act on (no tag to
    /// remove, say) becomes the nearest kind that has.
    fn write(&mut self, kind: WriteKind) -> Res<()> {
        let (cache, op) = (self.cache, self.op);
        let Some(photo) = self.work.photo() else {
            return Err("no photo left to write".into());
        };
        let (kind, what) = match kind {
            WriteKind::TitleEdit => {
                let rows: Vec<Photo> = cachebot::write::update(
                    cache,
                    self.conn,
                    photos::table.find(photo),
                    photos::title.eq(format!("edited at {op}")),
                )?;
                (kind, format!("photo {photo}: {} row(s)", rows.len()))
            }
            WriteKind::Move => {
                let user: i32 = photos::table
                    .find(photo)
                    .select(photos::user_id)
                    .first(self.oracle)?;
                let to = self.work.other_user(user);
                let album = self
                    .cfg
                    .album_of(to, self.work.rng.i32(0..self.cfg.albums_per_user));
                let rows: Vec<Photo> = cachebot::write::update(
                    cache,
                    self.conn,
                    photos::table.find(photo),
                    (photos::user_id.eq(to), photos::album_id.eq(album)),
                )?;
                let n = rows.len();
                (
                    kind,
                    format!("photo {photo}: user {user} -> {to}, album {album}: {n} row(s)"),
                )
            }
            WriteKind::StatusChange => {
                let status: i32 = photos::table
                    .find(photo)
                    .select(photos::status)
                    .first(self.oracle)?;
                let mut to = weighted(&mut self.work.rng, &STATUSES);
                while to == status {
                    to = weighted(&mut self.work.rng, &STATUSES);
                }
                let rows: Vec<Photo> = cachebot::write::update(
                    cache,
                    self.conn,
                    photos::table.find(photo),
                    photos::status.eq(to),
                )?;
                let n = rows.len();
                (
                    kind,
                    format!("photo {photo}: status {status} -> {to}: {n} row(s)"),
                )
            }
            WriteKind::Insert => {
                let id = self.work.next_id;
                self.work.next_id += 1;
                let user = self.work.users.pick(&mut self.work.rng);
                let album = self
                    .cfg
                    .album_of(user, self.work.rng.i32(0..self.cfg.albums_per_user));
                let status = weighted(&mut self.work.rng, &STATUSES);
                let created = Utc
                    .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                    .single()
                    .unwrap_or_default()
                    + chrono::Duration::minutes(i64::from(id));
                let rows: Vec<Photo> = cachebot::write::insert(
                    cache,
                    self.conn,
                    diesel::insert_into(photos::table).values((
                        photos::id.eq(id),
                        photos::user_id.eq(user),
                        photos::album_id.eq(album),
                        photos::status.eq(status),
                        photos::title.eq(format!("new photo {id}")),
                        photos::created_at.eq(created),
                    )),
                )?;
                self.work.live.insert(id);
                let n = rows.len();
                (
                    kind,
                    format!("photo {id} (user {user}, album {album}, status {status}): {n} row(s)"),
                )
            }
            WriteKind::Delete => {
                let rows: Vec<Photo> =
                    cachebot::write::delete(cache, self.conn, photos::table.find(photo))?;
                self.work.live.remove(photo);
                (
                    kind,
                    format!("photo {photo} (and its tags): {} row(s)", rows.len()),
                )
            }
            WriteKind::TagAdd | WriteKind::TagRemove => {
                let has: HashSet<i32> = photo_tags::table
                    .filter(photo_tags::photo_id.eq(photo))
                    .select(photo_tags::tag_id)
                    .load::<i32>(self.oracle)?
                    .into_iter()
                    .collect();
                if kind == WriteKind::TagRemove && !has.is_empty() {
                    let mut tags: Vec<i32> = has.into_iter().collect();
                    tags.sort_unstable();
                    let tag = tags[self.work.rng.usize(0..tags.len())];
                    let rows: Vec<PhotoTag> = cachebot::write::delete(
                        cache,
                        self.conn,
                        photo_tags::table.find((photo, tag)),
                    )?;
                    (
                        kind,
                        format!("photo {photo} tag {tag}: {} row(s)", rows.len()),
                    )
                } else {
                    let mut tag = self.work.tags.pick(&mut self.work.rng);
                    while has.contains(&tag) {
                        tag = self.work.tags.pick(&mut self.work.rng);
                    }
                    let rows: Vec<PhotoTag> = cachebot::write::insert(
                        cache,
                        self.conn,
                        diesel::insert_into(photo_tags::table)
                            .values((photo_tags::photo_id.eq(photo), photo_tags::tag_id.eq(tag))),
                    )?;
                    (
                        WriteKind::TagAdd,
                        format!("photo {photo} tag {tag}: {} row(s)", rows.len()),
                    )
                }
            }
        };
        for t in kind.tables() {
            self.last_write.insert(t, op);
        }
        if self.counting() {
            *self.writes.entry(kind).or_default() += 1;
        }
        self.recent_writes
            .push_back(format!("op {op}: {}: {what}", kind.name()));
        if self.recent_writes.len() > 6 {
            self.recent_writes.pop_front();
        }
        Ok(())
    }
}

/// The two results of a stale read, cut for the report around where they first differ.
fn clip_pair(cached: &str, truth: &str) -> (String, String) {
    let first_diff = cached
        .char_indices()
        .zip(truth.chars())
        .find(|((_, a), b)| a != b)
        .map_or(cached.len().min(truth.len()), |((i, _), _)| i);
    let start = first_diff.saturating_sub(150);
    (clip(cached, start), clip(truth, start))
}

/// At most 400 bytes of `s` from about byte `start`, marked where cut.
fn clip(s: &str, start: usize) -> String {
    let floor = |mut i: usize| {
        i = i.min(s.len());
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let (from, to) = (floor(start), floor(start + 400));
    let mut out = String::new();
    if from > 0 {
        out.push_str("... ");
    }
    out.push_str(&s[from..to]);
    if to < s.len() {
        out.push_str(" ...");
    }
    out
}

/// The SQL of an explained read and its dependencies, readable (binds as integers, tables
/// without the private schema's name).
fn describe(e: &Explain, schema: &str) -> (String, String) {
    /// A bind value: an `int4` as its number, anything else as hex.
    fn bind(v: &Option<Vec<u8>>) -> String {
        match v.as_deref() {
            None => "NULL".into(),
            Some(b) => match <[u8; 4]>::try_from(b) {
                Ok(b) => i32::from_be_bytes(b).to_string(),
                Err(_) => b.iter().fold(String::from("0x"), |mut s, x| {
                    let _ = write!(s, "{x:02x}");
                    s
                }),
            },
        }
    }
    let deps: Vec<String> = e
        .dependencies
        .iter()
        .map(|d| match d {
            Dependency::Global => "everything".into(),
            Dependency::Table(t) => format!("table {t}"),
            Dependency::Rows(t) => format!("rows of {t}"),
            Dependency::Value {
                table,
                column,
                value,
            } => {
                format!("{table}.{column} = {}", bind(value))
            }
            Dependency::Composite { table, values } => {
                let vs: Vec<String> = values
                    .iter()
                    .map(|(c, v)| format!("{c} = {}", bind(v)))
                    .collect();
                format!("{table} ({})", vs.join(", "))
            }
            #[allow(unreachable_patterns)] // kinds the crate may add
            other => format!("{other:?}"),
        })
        .collect();
    let deps = match &e.uncacheable {
        Some(why) => format!("not cached: {why}"),
        None => deps.join("; ").replace(&format!("{schema}."), ""),
    };
    (e.sql.clone(), deps)
}

// -------------------------------------------------------------------------------------------
// The report
// -------------------------------------------------------------------------------------------

/// `num / den`, or "-" when nothing was counted.
fn ratio(num: u64, den: u64) -> String {
    if den == 0 {
        "-".into()
    } else {
        format!("{:.3}", num as f64 / den as f64)
    }
}

/// Precision as a number (1 when the ideal cache had no hit either).
fn precision(t: &Tally) -> f64 {
    if t.ideal_hits == 0 {
        1.0
    } else {
        t.crate_hits as f64 / t.ideal_hits as f64
    }
}

/// The outcome of one write ratio, for the summary.
struct Outcome {
    write_ratio: f64,
    overall: Tally,
    worst: (&'static str, f64),
    stale: u64,
}

/// One write ratio's table.
fn report(replay: &Replay<'_>, write_ratio: f64, secs: f64) -> Outcome {
    println!("## {:.0}% writes\n", write_ratio * 100.0);
    println!(
        "| shape | reads | crate hit rate | ideal hit rate | table-level hit rate | precision (crate/ideal) | table-level precision |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut overall = Tally::default();
    let mut worst = ("-", f64::INFINITY);
    for (shape, t) in Shape::ALL.iter().zip(&replay.tallies) {
        overall.add(t);
        if t.reads > 0 && precision(t) < worst.1 {
            worst = (shape.name, precision(t));
        }
        row(shape.name, t);
    }
    row("**overall**", &overall);
    println!();
    let mut writes: Vec<String> = WriteKind::ALL
        .iter()
        .map(|(k, _)| {
            format!(
                "{} {}",
                k.name(),
                replay.writes.get(k).copied().unwrap_or(0)
            )
        })
        .collect();
    let total: u64 = replay.writes.values().sum();
    writes.insert(0, format!("{total} counted writes"));
    println!("- {}", writes.join(", "));
    println!(
        "- stale reads: **{}**; bypassed cached reads: {}; {:.1} s",
        replay.stale_count, overall.bypasses, secs
    );
    println!();
    Outcome {
        write_ratio,
        overall,
        worst,
        stale: replay.stale_count,
    }
}

/// One row of a write ratio's table.
fn row(name: &str, t: &Tally) {
    println!(
        "| {name} | {} | {} | {} | {} | {} | {} |",
        t.reads,
        ratio(t.crate_hits, t.reads),
        ratio(t.ideal_hits, t.reads),
        ratio(t.table_hits, t.reads),
        ratio(t.crate_hits, t.ideal_hits),
        ratio(t.table_hits, t.ideal_hits),
    );
}

/// The stale reads found, with the writes just before each.
fn report_stale(all: &[(f64, Vec<StaleRead>)]) {
    println!("## Stale reads\n");
    for (write_ratio, stale) in all {
        for s in stale {
            println!(
                "- {:.0}% writes, operation {}: {:?}\n  - cached: `{}`\n  - database: `{}`",
                write_ratio * 100.0,
                s.op,
                s.read,
                s.cached,
                s.truth
            );
            for w in &s.recent_writes {
                println!("  - before it: {w}");
            }
        }
    }
    println!();
}

/// A fresh cache for one replay, with the models registered (their composite keys).
fn build_cache(cfg: &Config, round: usize) -> Res<Cache> {
    let builder = Cache::builder().model::<Photo>().model::<PhotoTag>();
    let builder = match &cfg.memcached {
        Some(servers) => builder.store(
            MemcachedStore::builder()
                .servers(servers.iter().cloned())
                .prefix(format!("prec{}r{round}:", std::process::id()))
                .build()?,
        ),
        // Results live in the local tier with the in-process store: make it large enough
        // that no entry is evicted, so that every miss is an invalidation.
        None => builder.local_tier(512 << 20),
    };
    // Store every miss's entry before the read returns: the next read of it can hit.
    Ok(builder.write_behind(false).build()?)
}

/// Exit status: 0 fine, 1 stale reads, 2 error, 3 target missed with `BENCH_REQUIRE_TARGET=1`.
fn main() {
    if let Err(e) = run() {
        eprintln!("[precision] error: {e}");
        std::process::exit(2);
    }
}

/// Every write ratio's replay, then the summary and the dependencies of each shape.
fn run() -> Res<()> {
    let cfg = Config::from_env()?;
    let url = match std::env::var("DATABASE_URL") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => return Err("DATABASE_URL is not set: run through scripts/bench.sh precision".into()),
    };

    println!("# cachebot precision benchmark (issue 15)\n");
    println!("## Setup\n");
    if let Ok(info) = std::env::var("BENCH_RUN_INFO") {
        println!("- run: {info}");
    }
    println!(
        "- seed {} (BENCH_SEED); {} mode; {} operations per write ratio, the first {} a warm-up (checked, not counted)",
        cfg.seed,
        if cfg.quick { "quick" } else { "full" },
        cfg.ops,
        cfg.warmup
    );
    println!(
        "- data: {} users, {} albums ({} per user), {} photos (statuses {}), {} tags, up to {} tags per photo; Zipf s = {} over users, photos, albums and tags",
        cfg.users,
        cfg.albums(),
        cfg.albums_per_user,
        cfg.photos,
        STATUSES.iter().map(|(s, w)| format!("{s}: {w}%")).collect::<Vec<_>>().join(", "),
        cfg.tags,
        cfg.tags_per_photo,
        cfg.zipf_s
    );
    println!(
        "- reads: {}",
        Shape::ALL
            .iter()
            .map(|s| format!("{} {}%", s.name, s.weight))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "- writes (through `cachebot::write`): {}",
        WriteKind::ALL
            .iter()
            .map(|(k, w)| format!("{} {w}%", k.name()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "- store: {}; write-behind off; models registered: Photo (key(user_id, status)), PhotoTag",
        match &cfg.memcached {
            Some(s) => format!("memcached ({})", s.join(",")),
            None => "in-process (local tier 512 MiB: nothing evicted)".into(),
        }
    );
    println!("- every cached read is compared with the same query run uncached on a second connection; ideal cache: misses only when the result changed since its last read of the same (shape, parameters); table-level cache: any write to a table the shape reads drops the entry");
    println!("- a result that changed and changed back between two reads (a status set and reset, say) is an ideal hit that no invalidating cache can have: shapes the crate keys exactly stay just under 1");
    println!();

    let mut outcomes = Vec::new();
    let mut stale_all = Vec::new();
    let mut explained = None;
    for (round, &write_ratio) in cfg.write_ratios.iter().enumerate() {
        let started = Instant::now();
        eprintln!(
            "[precision] {:.0}% writes: creating the data",
            write_ratio * 100.0
        );
        let db = Db::create(&url, &cfg)?;
        let cache = build_cache(&cfg, round)?;
        let mut conn = db.conn()?;
        cache.instrument(&mut conn)?;
        let mut oracle = db.conn()?;
        if round == 0 {
            println!(
                "- rows: {} photos, {} photo_tags; PostgreSQL {}",
                Db::count(&mut oracle, "photos")?,
                Db::count(&mut oracle, "photo_tags")?,
                server_setting(&mut oracle, "server_version")
            );
            println!();
        }
        eprintln!(
            "[precision] {:.0}% writes: replaying {} operations",
            write_ratio * 100.0,
            cfg.ops
        );
        let mut replay = Replay {
            cfg: &cfg,
            schema: db.schema.clone(),
            cache: &cache,
            conn: &mut conn,
            oracle: &mut oracle,
            work: Workload::new(&cfg),
            op: 0,
            ideal: HashMap::new(),
            filled: HashMap::new(),
            last_write: HashMap::new(),
            tallies: [Tally::default(); Shape::ALL.len()],
            writes: HashMap::new(),
            stale: Vec::new(),
            stale_count: 0,
            recent_writes: VecDeque::new(),
            explained: HashMap::new(),
        };
        replay.run(write_ratio)?;
        outcomes.push(report(
            &replay,
            write_ratio,
            started.elapsed().as_secs_f64(),
        ));
        stale_all.push((write_ratio, std::mem::take(&mut replay.stale)));
        if explained.is_none() {
            explained = Some(std::mem::take(&mut replay.explained));
        }
    }

    println!("## Summary\n");
    println!(
        "| writes | reads | crate hit rate | ideal hit rate | table-level hit rate | precision | table-level precision | lowest shape precision | stale reads |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    for o in &outcomes {
        let t = &o.overall;
        println!(
            "| {:.0}% | {} | {} | {} | {} | {} | {} | {} {:.3} | {} |",
            o.write_ratio * 100.0,
            t.reads,
            ratio(t.crate_hits, t.reads),
            ratio(t.ideal_hits, t.reads),
            ratio(t.table_hits, t.reads),
            ratio(t.crate_hits, t.ideal_hits),
            ratio(t.table_hits, t.ideal_hits),
            o.worst.0,
            o.worst.1,
            o.stale
        );
    }
    println!();

    let stale: u64 = outcomes.iter().map(|o| o.stale).sum();
    let target = outcomes
        .iter()
        .find(|o| (o.write_ratio - 0.10).abs() < 1e-9);
    let met = match target {
        Some(o) => {
            let met = stale == 0 && precision(&o.overall) >= 0.97 && o.worst.1 >= 0.9;
            println!(
                "Target (issue 15): at 10% writes precision >= 0.97 overall and >= 0.9 on every shape, 0 stale reads: **{}** (overall {:.3}, lowest {} {:.3}, {} stale reads in the run)",
                if met { "met" } else { "not met" },
                precision(&o.overall),
                o.worst.0,
                o.worst.1,
                stale
            );
            met
        }
        None => {
            println!("Target (issue 15): not evaluated (no 10% write ratio in BENCH_WRITES)");
            true
        }
    };
    println!();

    if let Some(explained) = explained {
        println!("## What each shape depends on (`explain_on` of its first read)\n");
        println!("| shape | SQL | dependencies |");
        println!("|---|---|---|");
        for (i, shape) in Shape::ALL.iter().enumerate() {
            if let Some((sql, deps)) = explained.get(&i) {
                println!(
                    "| {} | `{}` | {} |",
                    shape.name,
                    sql.replace('|', "\\|"),
                    deps
                );
            }
        }
        println!();
    }

    if stale > 0 {
        report_stale(&stale_all);
        eprintln!("[precision] FAILED: {stale} stale read(s)");
        std::process::exit(1);
    }
    if cfg.require_target && !met {
        eprintln!("[precision] FAILED: target not met (BENCH_REQUIRE_TARGET=1)");
        std::process::exit(3);
    }
    Ok(())
}

/// A server setting, as text (for the report).
fn server_setting(conn: &mut PgConnection, name: &str) -> String {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    diesel::sql_query("SELECT current_setting($1) AS value")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Setting>(conn)
        .map(|s| s.value)
        .unwrap_or_else(|e| format!("? ({e})"))
}
