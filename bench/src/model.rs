//! The benchmark's data: a private PostgreSQL schema holding `users` (10k rows) and `photos`
//! (100k rows, 10 per user), the Diesel schema and model, and the queries measured.

use cachebot::prelude::*;
use cachebot::CacheBot;
use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

pub const USERS: i32 = 10_000;
pub const PHOTOS: i32 = 100_000;

diesel::table! {
    users (id) {
        id -> Int4,
        name -> Text,
    }
}

diesel::table! {
    photos (id) {
        id -> Int4,
        user_id -> Int4,
        status -> Int4,
        title -> Text,
        score -> Float8,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(photos -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(photos, users);

/// A row of `photos`: the 10-row filter returns ten of them. `CacheBot` derives the
/// `CacheModel` impl the exact write API needs (one value key per keyable column, the rows key).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize, CacheBot)]
#[diesel(table_name = photos, check_for_backend(diesel::pg::Pg))]
pub struct Photo {
    pub id: i32,
    pub user_id: i32,
    pub status: i32,
    pub title: String,
    pub score: f64,
    pub created_at: DateTime<Utc>,
}

// The four queries of perf-baseline.md, uncached (plain Diesel) and cached.

pub fn filter_db(conn: &mut PgConnection, user: i32) -> Vec<Photo> {
    photos::table
        .filter(photos::user_id.eq(user))
        .filter(photos::status.eq(2))
        .select(Photo::as_select())
        .load(conn)
        .expect("filter query")
}

pub fn filter_cached(cache: &Cache, conn: &mut PgConnection, user: i32) -> Vec<Photo> {
    photos::table
        .filter(photos::user_id.eq(user))
        .filter(photos::status.eq(2))
        .select(Photo::as_select())
        .cache(cache)
        .load::<Photo>(conn)
        .expect("cached filter query")
}

/// `explain` of the cached 10-row filter: the entry key and dependencies a read fetches.
pub fn filter_explain(cache: &Cache, conn: &mut PgConnection, user: i32) -> cachebot::Explain {
    photos::table
        .filter(photos::user_id.eq(user))
        .filter(photos::status.eq(2))
        .select(Photo::as_select())
        .cache(cache)
        .explain_on::<_, Photo>(conn)
        .expect("explain")
}

/// `explain` of the cached find by primary key (`first` adds `LIMIT 1`).
pub fn find_explain(cache: &Cache, conn: &mut PgConnection, id: i32) -> cachebot::Explain {
    photos::table
        .find(id)
        .select(Photo::as_select())
        .limit(1)
        .cache(cache)
        .explain_on::<_, Photo>(conn)
        .expect("explain")
}

pub fn find_db(conn: &mut PgConnection, id: i32) -> Photo {
    photos::table
        .find(id)
        .select(Photo::as_select())
        .first(conn)
        .expect("find query")
}

pub fn find_cached(cache: &Cache, conn: &mut PgConnection, id: i32) -> Photo {
    photos::table
        .find(id)
        .select(Photo::as_select())
        .cache(cache)
        .first::<Photo>(conn)
        .expect("cached find query")
}

pub fn join_db(conn: &mut PgConnection, user: i32) -> Vec<(Photo, String)> {
    photos::table
        .inner_join(users::table)
        .filter(users::id.eq(user))
        .select((Photo::as_select(), users::name))
        .load(conn)
        .expect("join query")
}

pub fn join_cached(cache: &Cache, conn: &mut PgConnection, user: i32) -> Vec<(Photo, String)> {
    photos::table
        .inner_join(users::table)
        .filter(users::id.eq(user))
        .select((Photo::as_select(), users::name))
        .cache(cache)
        .load::<(Photo, String)>(conn)
        .expect("cached join query")
}

pub fn count_db(conn: &mut PgConnection) -> i64 {
    photos::table.count().get_result(conn).expect("count query")
}

pub fn count_cached(cache: &Cache, conn: &mut PgConnection) -> i64 {
    photos::table
        .count()
        .cache(cache)
        .get_result::<i64>(conn)
        .expect("cached count query")
}

/// Exact update through the crate's write API (old images locked, new ones returned, bumps).
pub fn update_cached(cache: &Cache, conn: &mut PgConnection, id: i32, score: f64) -> usize {
    let rows: Vec<Photo> =
        cachebot::write::update(cache, conn, photos::table.find(id), photos::score.eq(score))
            .expect("cachebot update");
    rows.len()
}

/// One photo, uncached.
pub fn photo(conn: &mut PgConnection, id: i32) -> Photo {
    photos::table
        .find(id)
        .select(Photo::as_select())
        .first(conn)
        .expect("photo")
}

/// The same update in plain Diesel (autocommit, one statement).
pub fn update_db(conn: &mut PgConnection, id: i32, score: f64) -> usize {
    diesel::update(photos::table.find(id))
        .set(photos::score.eq(score))
        .execute(conn)
        .expect("diesel update")
}

/// Fill `cache` with one `find(id)` entry per id through `get_many` (one database query
/// per batch, one entry per id, exactly what single gets read).
pub fn cache_finds(cache: &Cache, conn: &mut PgConnection, ids: &[i32]) {
    for chunk in ids.chunks(1000) {
        let rows: Vec<Photo> = cache
            .get_many(
                conn,
                chunk,
                |id: &i32| photos::table.find(*id).select(Photo::as_select()),
                |conn: &mut PgConnection, missing: &[i32]| {
                    photos::table
                        .filter(photos::id.eq_any(missing.to_vec()))
                        .select(Photo::as_select())
                        .load(conn)
                },
                |p: &Photo| p.id,
            )
            .expect("get_many");
        assert_eq!(rows.len(), chunk.len());
    }
}

/// A private schema `bench_<pid>` with the data; dropped (CASCADE) on drop.
pub struct BenchDb {
    admin_url: String,
    pub schema: String,
    url: String,
}

impl BenchDb {
    pub fn create(admin_url: &str) -> BenchDb {
        let schema = format!("bench_{}", std::process::id());
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-csearch_path%3D{schema}");
        let mut admin = PgConnection::establish(admin_url)
            .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL: {e}"));
        admin
            .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
            .expect("create schema");
        let db = BenchDb {
            admin_url: admin_url.to_owned(),
            schema,
            url,
        };
        let mut conn = db.conn();
        conn.batch_execute(&format!(
            "CREATE TABLE users (id int4 PRIMARY KEY, name text NOT NULL);
             INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, {USERS}) g;
             CREATE TABLE photos (
                 id int4 PRIMARY KEY,
                 user_id int4 NOT NULL,
                 status int4 NOT NULL,
                 title text NOT NULL,
                 score float8 NOT NULL,
                 created_at timestamptz NOT NULL
             );
             INSERT INTO photos
                 SELECT g, 1 + (g - 1) % {USERS}, 2, 'photo number ' || g, (g % 1000) / 10.0,
                        timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
                 FROM generate_series(1, {PHOTOS}) g;
             CREATE INDEX photos_user_status ON photos (user_id, status);"
        ))
        .expect("create and fill tables");
        conn.batch_execute("VACUUM ANALYZE users")
            .expect("vacuum users");
        conn.batch_execute("VACUUM ANALYZE photos")
            .expect("vacuum photos");
        db
    }

    /// The URL of the private schema (`search_path` set).
    #[allow(dead_code)] // used by the async bench only
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connection whose `search_path` is the private schema.
    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap_or_else(|e| panic!("cannot connect: {e}"))
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        match PgConnection::establish(&self.admin_url) {
            Ok(mut admin) => {
                if let Err(e) =
                    admin.batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))
                {
                    eprintln!("[bench] could not drop schema {}: {e}", self.schema);
                }
            }
            Err(e) => eprintln!("[bench] could not drop schema {}: {e}", self.schema),
        }
    }
}

/// A server setting, as text.
pub fn setting(conn: &mut PgConnection, name: &str) -> String {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    diesel::sql_query(format!("SELECT current_setting('{name}') AS value"))
        .get_result::<Setting>(conn)
        .map(|s| s.value)
        .unwrap_or_else(|e| format!("? ({e})"))
}
