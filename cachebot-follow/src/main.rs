//! `cachebot-follow`: apply one database's change stream to a memcached
//! cache shared with cachebot readers. One per database (per slot).
//!
//! Arguments are parsed by hand: eight flags do not justify clap's
//! dependencies and its faster-moving MSRV.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cachebot::store::MemcachedStore;
use cachebot::Cache;
use cachebot_follow::{Config, Follower, Status};

const USAGE: &str = "usage: cachebot-follow --database-url URL --slot NAME --publication NAME \
--memcached HOST:PORT[,HOST:PORT...] [--prefix P] [--bound-ms MS] [--create-slot]

  --database-url   postgres://user:password@host:port/database (a role with REPLICATION)
  --slot           the logical replication slot (pgoutput)
  --publication    the publication of the cached tables
  --memcached      the memcached servers the readers use
  --prefix         the readers' key prefix (MemcachedStoreBuilder::prefix), if any
  --bound-ms       the readers' staleness bound; heartbeats every half of it (default 5000)
  --create-slot    create the slot if it is missing (and invalidate everything once)

The database URL may also come from CACHEBOT_FOLLOW_DATABASE_URL (keeps the password out of ps).";

struct Args {
    database_url: String,
    slot: String,
    publication: String,
    memcached: Vec<String>,
    prefix: Option<String>,
    bound: Duration,
    create_slot: bool,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut database_url = std::env::var("CACHEBOT_FOLLOW_DATABASE_URL").ok();
    let (mut slot, mut publication, mut memcached, mut prefix) = (None, None, None, None);
    let mut bound = Duration::from_secs(5);
    let mut create_slot = false;
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
    let cache = match store
        .build()
        .map_err(cachebot::Error::from)
        .and_then(|s| Cache::builder().store(s).build())
    {
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
