//! An axum service on a diesel-async deadpool pool, reading through the cache.
//!
//! `GET /users/{id}/photos` lists a user's photos through the cache; `POST
//! /photos/{id}/title/{title}` renames one with a plain diesel-async update, which the
//! pooled connection's instrumentation turns into an invalidation before the response is
//! sent. The pool instruments every connection it creates (`Cache::deadpool_hook`), so
//! handlers only ever see a pooled connection and the `Cache` in the state.
//!
//! Run it with `DATABASE_URL=postgres://... cargo run -p cachebot --example axum
//! --features deadpool`: it serves on 127.0.0.1 (an ephemeral port), makes a few requests
//! to itself, checks what it got back and the cache's statistics, and exits.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cachebot::aio::prelude::*;
use diesel::{ExpressionMethods, QueryDsl, SelectableHelper};
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

diesel::table! {
    axum_photos (id) {
        id -> Int4,
        user_id -> Int4,
        title -> Text,
    }
}

#[derive(
    Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable, Serialize, Deserialize,
)]
#[diesel(table_name = axum_photos)]
struct Photo {
    id: i32,
    user_id: i32,
    title: String,
}

#[derive(Clone)]
struct App {
    cache: Cache,
    pool: Pool<AsyncPgConnection>,
}

type Failure = (StatusCode, String);

fn internal(e: impl std::fmt::Display) -> Failure {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn user_photos(
    State(app): State<Arc<App>>,
    Path(user): Path<i32>,
) -> Result<Json<Vec<Photo>>, Failure> {
    let mut conn = app.pool.get().await.map_err(internal)?;
    let photos = axum_photos::table
        .filter(axum_photos::user_id.eq(user))
        .order(axum_photos::id)
        .select(Photo::as_select())
        .cache(&app.cache)
        .load(&mut *conn)
        .await
        .map_err(internal)?;
    Ok(Json(photos))
}

async fn rename(
    State(app): State<Arc<App>>,
    Path((id, title)): Path<(i32, String)>,
) -> Result<StatusCode, Failure> {
    let mut conn = app.pool.get().await.map_err(internal)?;
    // A plain diesel-async write: the connection's instrumentation invalidates every cached
    // read of `axum_photos` it can change before `execute` returns.
    diesel::update(axum_photos::table.find(id))
        .set(axum_photos::title.eq(title))
        .execute(&mut *conn)
        .await
        .map_err(internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// One HTTP/1.1 request to the example's own server; the response body.
async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!("{method} {path} HTTP/1.1\r\nHost: example\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| "DATABASE_URL is not set (postgres://user@host:port/db)")?;
    let cache = Cache::in_process();
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
    let pool = Pool::builder(manager)
        .max_size(8)
        .post_create(cache.deadpool_hook())
        .build()?;
    {
        let mut conn = pool.get().await?;
        conn.batch_execute(
            "DROP TABLE IF EXISTS axum_photos;
             CREATE TABLE axum_photos (id int4 PRIMARY KEY, user_id int4 NOT NULL, title text NOT NULL);
             INSERT INTO axum_photos VALUES (1, 7, 'harbour'), (2, 7, 'hills'), (3, 8, 'sea');",
        )
        .await?;
    }
    let app = Arc::new(App {
        cache: cache.clone(),
        pool,
    });
    let router = Router::new()
        .route("/users/{id}/photos", get(user_photos))
        .route("/photos/{id}/title/{title}", post(rename))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });

    let first = request(addr, "GET", "/users/7/photos").await?;
    let second = request(addr, "GET", "/users/7/photos").await?;
    println!("GET /users/7/photos -> {first}");
    assert_eq!(first, second);
    request(addr, "POST", "/photos/2/title/meadow").await?;
    let after = request(addr, "GET", "/users/7/photos").await?;
    println!("after the rename    -> {after}");
    assert!(after.contains("meadow"), "the rename is visible at once");
    let stats = cache.stats();
    println!("{stats:?}");
    assert_eq!(
        (stats.hits, stats.misses),
        (1, 2),
        "miss, hit, then a miss after the write"
    );
    Ok(())
}
