//! A bump the writer could not deliver reaches other processes once the
//! store is reachable again, without the writer reading or writing anything
//! more: two processes, a memcached, and a proxy between the writer and the
//! memcached that swallows traffic (a partition) and then heals.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use cachebot::prelude::*;
use cachebot::store::MemcachedStore;
use cachebot::write;
use cachebot_tests::models::Photo;
use cachebot_tests::schema::photos;
use cachebot_tests::{MemcachedProcess, Proxy, TestDb};
use common::{seed, since, unique_prefix};
use diesel::prelude::*;

const CHILD: &str = "CACHEBOT_DELIVERY_CHILD";

fn cache_on(server: &str, prefix: &str) -> Cache {
    let store = MemcachedStore::builder()
        .servers([server.to_owned()])
        .prefix(prefix.to_owned())
        .io_timeout(Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    Cache::builder()
        .store(store)
        .write_behind(false)
        .build()
        .unwrap()
}

/// The reader's side: one cached read of the photo per line on stdin, its
/// title and the reader's counters on stdout.
fn child(role: &str) {
    let mut parts = role.split('|');
    let (url, server, prefix, id) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap().parse::<i32>().unwrap(),
    );
    let cache = cache_on(server, prefix);
    let mut conn = PgConnection::establish(url).unwrap();
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
        let p: Photo = photos::table
            .find(id)
            .cache(&cache)
            .get_result(&mut conn)
            .unwrap();
        let s = cache.stats();
        println!("ROW hits={} misses={} title={}", s.hits, s.misses, p.title);
    }
}

/// Process B: reads through its own direct connection to the memcached.
struct Reader {
    process: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Reader {
    fn spawn(role: String) -> Reader {
        let mut process = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "an_undelivered_bump_reaches_another_process_when_the_path_heals",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = process.stdin.take().unwrap();
        let stdout = BufReader::new(process.stdout.take().unwrap());
        Reader {
            process,
            stdin,
            stdout,
        }
    }

    /// (hits, misses, title) after one read.
    fn read(&mut self) -> (u64, u64, String) {
        writeln!(self.stdin, "read").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "the reader process ended"
            );
            // The test harness may have printed on the same line first.
            if let Some((_, row)) = line.trim_end().split_once("ROW ") {
                let mut fields = row.splitn(3, ' ');
                let mut field = |name: &str| {
                    let f = fields.next().unwrap();
                    f.strip_prefix(name).unwrap().to_owned()
                };
                let hits = field("hits=").parse().unwrap();
                let misses = field("misses=").parse().unwrap();
                return (hits, misses, field("title="));
            }
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[test]
fn an_undelivered_bump_reaches_another_process_when_the_path_heals() {
    if let Ok(role) = std::env::var(CHILD) {
        child(&role);
        return;
    }
    let db = TestDb::new();
    let mut conn = db.conn();
    let seed = seed(&mut conn);
    let photo = seed.photos[0].id;
    let mc = MemcachedProcess::spawn();
    let proxy = Proxy::start(&mc.addr());
    let prefix = unique_prefix();
    // Process A, the writer, reaches the memcached through the proxy only.
    let writer = cache_on(&proxy.addr(), &prefix);
    let mut reader = Reader::spawn(format!("{}|{}|{}|{photo}", db.url(), mc.addr(), prefix));

    // B caches the photo.
    let (_, misses, title) = reader.read();
    assert_eq!((misses, title.as_str()), (1, "beach"));
    let (hits, _, _) = reader.read();
    assert_eq!(hits, 1, "B's second read is a hit");

    // The path from A to the memcached swallows everything; A's write
    // commits, its bump is lost, and the write still returns Ok.
    proxy.swallow();
    let before = writer.stats();
    let rows: Vec<Photo> = write::update(
        &writer,
        &mut conn,
        photos::table.find(photo),
        photos::title.eq("renamed"),
    )
    .unwrap();
    assert_eq!(rows[0].title, "renamed");
    let d = since(&writer, before);
    assert!(d.invalidation_errors >= 1, "{d:?}");
    assert_eq!(d.invalidations, 0, "{d:?}");
    assert!(writer.pending_invalidations() >= 1);
    // Nothing reached the store: B still serves its entry (the staleness
    // this bounds).
    let (hits, _, title) = reader.read();
    assert_eq!((hits, title.as_str()), (2, "beach"));

    // The path heals. A reads and writes nothing more; B sees the write
    // within a bounded wait.
    proxy.heal();
    let healed = Instant::now();
    let seen = loop {
        let (_, _, title) = reader.read();
        if title == "renamed" {
            break true;
        }
        if healed.elapsed() > Duration::from_secs(10) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let d = since(&writer, before);
    assert!(
        seen,
        "B still serves the old row 10 s after the path healed; A: {d:?}"
    );
    assert!(d.redelivered >= d.invalidation_errors, "{d:?}");
    assert_eq!(writer.pending_invalidations(), 0);
    assert_eq!(
        (d.hits, d.misses, d.fallbacks, d.bypasses),
        (0, 0, 0, 0),
        "A read nothing: {d:?}"
    );
    // And A's own reads are cached again: B stored the new row, A hits it.
    let p: Photo = photos::table
        .find(photo)
        .cache(&writer)
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(p.title, "renamed");
    assert_eq!(since(&writer, before).hits, 1);
}
