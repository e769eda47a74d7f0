//! `cachebot-follow`: apply one database's change stream to a memcached
//! cache shared with cachebot readers. One per database (per slot).
//!
//! Arguments are parsed by hand: nine flags do not justify clap's
//! dependencies and its faster-moving MSRV.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cachebot::store::MemcachedStore;
use cachebot::Cache;
use cachebot_follow::{Config, Follower, Status};

const USAGE: &str = "usage: cachebot-follow --database-url URL --slot NAME --publication NAME \
--memcached HOST:PORT[,HOST:PORT...] [--prefix P] [--bound-ms MS] [--composite TABLE:COL,COL ...] [--create-slot]

  --database-url   postgres://user:password@host:port/database (a role with REPLICATION)
  --slot           the logical replication slot (pgoutput)
  --publication    the publication of the cached tables
  --memcached      the memcached servers the readers use
  --prefix         the readers' key prefix (MemcachedStoreBuilder::prefix), if any
  --bound-ms       the readers' staleness bound; heartbeats every half of it (default 5000)
  --composite      a composite key the readers register (#[cachebot(key(a, b))], .model::<M>()
                   or .composite_key(..)), as TABLE:COL,COL; TABLE as the readers' queries
                   write it (photos), or schema-qualified (public.photos). Repeatable. Without
                   it, reads keyed on that composite are not kept fresh.
  --create-slot    create the slot if it is missing (and invalidate everything once)

The database URL may also come from CACHEBOT_FOLLOW_DATABASE_URL (keeps the password out of ps).";

struct Args {
    database_url: String,
    slot: String,
    publication: String,
    memcached: Vec<String>,
    prefix: Option<String>,
    bound: Duration,
    composites: Vec<(String, Vec<String>)>,
    create_slot: bool,
}

/// `TABLE:COL,COL` (the table may be schema-qualified; it is split at the
/// last `:`).
fn composite(v: &str) -> Result<(String, Vec<String>), String> {
    let bad = || format!("--composite: expected TABLE:COLUMN,COLUMN, got {v:?}");
    let (table, columns) = v.rsplit_once(':').ok_or_else(bad)?;
    let table = table.trim();
    let columns: Vec<String> = columns.split(',').map(|c| c.trim().to_owned()).collect();
    if table.is_empty() || columns.iter().any(String::is_empty) {
        return Err(bad());
    }
    Ok((table.to_owned(), columns))
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut database_url = std::env::var("CACHEBOT_FOLLOW_DATABASE_URL").ok();
    let (mut slot, mut publication, mut memcached, mut prefix) = (None, None, None, None);
    let mut bound = Duration::from_secs(5);
    let mut create_slot = false;
    let mut composites = Vec::new();
    while let Some(arg) = argv.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| argv.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--database-url" => database_url = Some(value()?),
            "--slot" => slot = Some(value()?),
            "--publication" => publication = Some(value()?),
            "--memcached" => memcached = Some(value()?),
            "--prefix" => prefix = Some(value()?),
            "--bound-ms" => {
                let v = value()?;
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("--bound-ms: not a number: {v}"))?;
                bound = Duration::from_millis(ms);
            }
            "--composite" => composites.push(composite(&value()?)?),
            "--create-slot" => create_slot = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let need = |v: Option<String>, name: &str| v.ok_or_else(|| format!("{name} is required"));
    Ok(Args {
        database_url: need(database_url, "--database-url")?,
        slot: need(slot, "--slot")?,
        publication: need(publication, "--publication")?,
        memcached: need(memcached, "--memcached")?
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        prefix,
        bound,
        composites,
        create_slot,
    })
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cachebot-follow: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut store = MemcachedStore::builder().servers(args.memcached.iter().map(String::as_str));
    if let Some(p) = &args.prefix {
        store = store.prefix(p);
    }
    let cache = match store.build().map_err(cachebot::Error::from).and_then(|s| {
        let mut builder = Cache::builder().store(s);
        for (table, columns) in &args.composites {
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            builder = builder.composite_key(table, &columns);
        }
        builder.build()
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cachebot-follow: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = Config::new(args.database_url, args.slot, args.publication)
        .bound(args.bound)
        .create_slot(args.create_slot);
    let stop = AtomicBool::new(false);
    let status = Arc::new(Mutex::new(Status::default()));
    eprintln!("cachebot-follow: following slot {:?}", config.slot);
    Follower::new(cache, config).run(&stop, &status);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_flags() {
        assert_eq!(
            composite("public.photos:user_id, status"),
            Ok((
                "public.photos".to_owned(),
                vec!["user_id".to_owned(), "status".to_owned()]
            ))
        );
        for bad in ["photos", "photos:", ":a", "photos:a,,b", "photos:a,"] {
            assert!(composite(bad).is_err(), "{bad:?}");
        }
        let args = parse(
            [
                "--database-url=postgres://u@h/d",
                "--slot=s",
                "--publication=p",
                "--memcached=m:1",
                "--composite",
                "a:x,y",
                "--composite=s.b:z",
            ]
            .map(String::from)
            .into_iter(),
        );
        assert_eq!(
            args.map(|a| a.composites),
            Ok(vec![
                ("a".to_owned(), vec!["x".to_owned(), "y".to_owned()]),
                ("s.b".to_owned(), vec!["z".to_owned()]),
            ])
        );
    }
}
