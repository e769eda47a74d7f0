//! Reading through the cache: `query.cache(&cache).load(conn)`.
//!
//! One read is: render the query and collect its binds (memoised per query
//! type), compute the entry key and the generation keys it depends on, then
//! ask the store for the entry and all those generations in one round trip
//! (in process, where a lookup costs no round trip, the generations first:
//! the local tier of decoded rows usually serves, and the entry is not
//! copied out; a miss there keeps its rows decoded in the local tier
//! instead of encoding them). The entry is served only if every generation
//! it was stored with is still current. Otherwise the generations are read
//! (or created) *before* the database query and stored with the result: a
//! write that commits in between bumps one of them, so a result read
//! before that write is never served after it.

pub(crate) mod batch;
pub(crate) mod behind;
pub(crate) mod entry;
pub(crate) mod io;
pub(crate) mod local;
pub(crate) mod plan;
pub(crate) mod plans;
pub(crate) mod returned;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::QueryResult;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::Codec;
use crate::invalidate::heartbeat::Heartbeat;
use crate::invalidate::Invalidator;
use crate::stats::Counters;
use crate::store::{Fetched, Generation, Key, Store};
use entry::Reject;
use io::StoreIo;
use local::Local;

pub use plan::Explain;

/// How a read loads its rows from the database: once, and for a result
/// depending on its returned rows, possibly a second time (see
/// `returned`) when the loader can run its query again.
pub(crate) trait Loader<U> {
    /// The future of one load.
    type Fut: Future<Output = QueryResult<Vec<U>>>;

    /// Run the query; `None` once a loader that loads once has.
    fn start(&mut self) -> Option<Self::Fut>;

    /// Whether the query may be run a second time.
    fn again(&self) -> bool;

    /// Run the query (an error if it cannot run again: never asked).
    async fn load(&mut self) -> QueryResult<Vec<U>> {
        match self.start() {
            Some(fut) => fut.await,
            None => Err(diesel::result::Error::QueryBuilderError(
                "cachebot: a one-shot load ran twice".into(),
            )),
        }
    }
}

/// A loader from a closure: loads once.
pub(crate) struct Once<F>(Option<F>);

impl<F> Once<F> {
    pub(crate) fn new(load: F) -> Self {
        Once(Some(load))
    }
}

impl<U, F, L> Loader<U> for Once<F>
where
    F: FnOnce() -> L,
    L: Future<Output = QueryResult<Vec<U>>>,
{
    type Fut = L;

    fn start(&mut self) -> Option<L> {
        self.0.take().map(|f| f())
    }

    fn again(&self) -> bool {
        false
    }
}

/// What a read does: go to the database, or through the cache with these keys.
pub(crate) enum Plan {
    Bypass(&'static str),
    Cache {
        entry: Key,
        generations: Vec<Key>,
        /// Set when the entry also depends on the rows it returned.
        returned: Option<Arc<returned::Returned>>,
    },
}

/// The read side of one cache: its store, settings, and the tiers of this
/// process; the invalidation layer it consults.
pub(crate) struct Reader {
    pub(crate) invalidator: Arc<Invalidator>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) ttl: Duration,
    pub(crate) fingerprint: String,
    never_cache: HashSet<String>,
    enabled: AtomicBool,
    pub(crate) cache_gets: bool,
    /// Set when entries are written in the background.
    pub(crate) write_behind: Option<behind::WriteBehind>,
    /// Decoded results of this process (see `local`).
    local: Option<Local>,
    /// The keys of recent reads, per query and binds (see `plans`).
    pub(crate) plans: plans::Plans,
    /// The entries' MAC key, when the cache has a secret.
    seal: Option<entry::Seal>,
    /// Composite keys of the models registered on the builder.
    pub(crate) composites: crate::key::Composites,
    /// The models registered on the builder (see `returned`).
    pub(crate) models: returned::Models,
    /// How the tiers work together, decided once from the store.
    tiering: Tiering,
    /// With a staleness bound: the change-stream follower's heartbeat.
    heartbeat: Option<Heartbeat>,
}

/// How a cache's tiers work together. With a store in this process's
/// memory (a call costs no round trip), a read checks the generations
/// first and serves the local tier's decoded rows without copying the
/// entry out, and a miss keeps its rows decoded rather than encoding them.
/// With a remote store, one round trip fetches the entry and the
/// generations together, and results enter the local tier on their first
/// hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tiering {
    InProcess,
    Remote,
}

/// The settings a [`Reader`] is built with.
pub(crate) struct ReadSettings {
    pub(crate) ttl: Duration,
    pub(crate) fingerprint: String,
    pub(crate) never_cache: HashSet<String>,
    pub(crate) enabled: bool,
    pub(crate) cache_gets: bool,
    pub(crate) local_bytes: u64,
    pub(crate) secret: Option<Vec<u8>>,
    pub(crate) composites: crate::key::Composites,
    pub(crate) models: returned::Models,
    pub(crate) staleness_bound: Option<Duration>,
}

impl Reader {
    pub(crate) fn new(
        invalidator: Arc<Invalidator>,
        store: Arc<dyn Store>,
        write_behind: Option<behind::WriteBehind>,
        s: ReadSettings,
    ) -> Reader {
        Reader {
            invalidator,
            ttl: s.ttl,
            fingerprint: s.fingerprint,
            never_cache: s.never_cache,
            enabled: AtomicBool::new(s.enabled),
            cache_gets: s.cache_gets,
            write_behind,
            local: (s.local_bytes > 0).then(|| Local::new(s.local_bytes, s.ttl)),
            plans: plans::Plans::new(plans::DEFAULT_BYTES),
            seal: s.secret.map(|secret| entry::Seal::new(&secret)),
            composites: s.composites,
            models: s.models,
            heartbeat: s.staleness_bound.map(Heartbeat::new),
            tiering: if store.is_in_process() {
                Tiering::InProcess
            } else {
                Tiering::Remote
            },
            store,
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        self.invalidator.counters()
    }

    /// With a staleness bound, whether the change-stream follower is
    /// behind it (or silent): reads then go to the database.
    pub(crate) fn follower_behind(&self) -> bool {
        let Some(heartbeat) = &self.heartbeat else {
            return false;
        };
        match self.invalidator.database() {
            Some(db) => !heartbeat.within_bound(self.store.as_ref(), db),
            None => true,
        }
    }

    /// The store's non-blocking side for async reads (feature `async`):
    /// `None` in process, where calls never wait (and for a remote store
    /// without one, whose calls then block the task).
    #[cfg(feature = "async")]
    pub(crate) fn async_store(&self) -> Option<&dyn crate::store::AsyncStore> {
        match self.tiering {
            Tiering::InProcess => None,
            Tiering::Remote => self.invalidator.remote(),
        }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    pub(crate) fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::SeqCst);
    }

    /// Whether a table (as written, and as resolved) is on the never-cache
    /// list, named either way or by its bare name.
    pub(crate) fn never_caches(&self, written: &str, qualified: &str) -> bool {
        if self.never_cache.is_empty() {
            return false;
        }
        let bare = written.rsplit('.').next().unwrap_or(written);
        [written, qualified, bare]
            .iter()
            .any(|n| self.never_cache.contains(*n))
    }

    /// Serve `plan` from the store, or `load` from the database and store
    /// the rows (with the generations read before the load). The store is
    /// reached through `io` (see `io`): the blocking API runs this with
    /// ready futures, the async one awaits the network.
    pub(crate) async fn read_through<C, U, Io, Ld>(
        &self,
        io: &Io,
        codec: &Arc<C>,
        plan: Plan,
        mut loader: Ld,
    ) -> QueryResult<Vec<U>>
    where
        C: Codec,
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        Io: StoreIo,
        Ld: Loader<U>,
    {
        let inner = self;
        let c = inner.counters();
        let (entry_key, gen_keys, returned) = match plan {
            Plan::Cache {
                entry,
                generations,
                returned,
            } => (entry, generations, returned),
            Plan::Bypass(why) => {
                Counters::bump(&c.bypasses);
                tracing::trace!(reason = why, "cache bypass");
                return loader.load().await;
            }
        };
        if inner.follower_behind() {
            Counters::bump(&c.behind_follower);
            tracing::debug!(
                "the change-stream follower is behind the staleness bound; reading the database"
            );
            return loader.load().await;
        }
        if inner.invalidator.depends_on_undelivered(&gen_keys) {
            Counters::bump(&c.fallbacks);
            tracing::debug!("depends on an undelivered invalidation; reading the database");
            return loader.load().await;
        }
        if let Some(returned) = returned {
            return self
                .read_returned(io, codec, entry_key, gen_keys, &returned, loader)
                .await;
        }
        let store = inner.store.as_ref();
        // In process, a lookup costs no round trip: read the generations
        // alone, and copy the entry out only if the local tier can't serve.
        let local_first = inner
            .local
            .as_ref()
            .filter(|_| inner.tiering == Tiering::InProcess);
        let entry_alone = std::slice::from_ref(&entry_key);
        let fetched = if let Some(local) = local_first {
            match self.serve_local::<U>(local, entry_key, &gen_keys) {
                Ok(rows) => {
                    Counters::bump(&c.hits);
                    return Ok(rows);
                }
                // The generations just read, and the entry alone.
                Err(Some(generations)) => {
                    io.fetch_many(entry_alone, &[])
                        .await
                        .map(|mut many| Fetched {
                            entry: many.entries.pop().flatten(),
                            generations,
                        })
                }
                Err(None) => io.fetch(entry_key, &gen_keys).await,
            }
        } else {
            io.fetch(entry_key, &gen_keys).await
        };
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) => {
                Counters::bump(&c.fallbacks);
                tracing::warn!(store = store.name(), error = %crate::error::Chain(&e), "cache read failed; reading the database");
                return loader.load().await;
            }
        };
        let current: Option<Vec<Generation>> = fetched.generations.iter().copied().collect();
        if let Some(current) = &current {
            let bytes = fetched.entry.as_deref();
            let try_local = local_first.is_none();
            if let Some(rows) = self.serve::<C, U>(codec, entry_key, bytes, current, try_local) {
                Counters::bump(&c.hits);
                return Ok(rows);
            }
        }
        Counters::bump(&c.misses);
        // The snapshot must be taken before the database is read.
        let snapshot = match current {
            Some(gens) => gens,
            None => match self
                .complete_generations(io, &gen_keys, &fetched.generations)
                .await
            {
                Ok(gens) => gens,
                Err(e) => {
                    Counters::bump(&c.fallbacks);
                    tracing::warn!(store = store.name(), error = %crate::error::Chain(&e), "could not read generations; not caching");
                    return loader.load().await;
                }
            },
        };
        crate::hook!(ReadSnapshotTaken);
        let rows = loader.load().await?;
        crate::hook!(ReadBeforeStore);
        if let Some(bytes) = self.put(codec, entry_key, snapshot, &rows) {
            let stored = io.put_entry(entry_key, &bytes, self.ttl).await;
            behind::stored(store.name(), c, stored);
        }
        Ok(rows)
    }

    /// [`read_through`](Self::read_through) for a plan whose entry also
    /// depends on the rows it returned (see `returned`): the hinted keys'
    /// generations and the table's rows key come in the same round trip. A
    /// miss whose rows were all hinted is stored with their generations;
    /// one that returned others reads theirs and loads again when the
    /// loader can, and is otherwise stored depending on the rows key.
    async fn read_returned<C, U, Io, Ld>(
        &self,
        io: &Io,
        codec: &Arc<C>,
        entry_key: Key,
        gen_keys: Vec<Key>,
        returned: &returned::Returned,
        mut loader: Ld,
    ) -> QueryResult<Vec<U>>
    where
        C: Codec,
        U: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        Io: StoreIo,
        Ld: Loader<U>,
    {
        let c = self.counters();
        let store = self.store.as_ref();
        let hint = returned.hint();
        let rows_key = returned.rows_key();
        if self.invalidator.depends_on_undelivered(&hint)
            || self
                .invalidator
                .depends_on_undelivered(std::slice::from_ref(&rows_key))
        {
            Counters::bump(&c.fallbacks);
            tracing::debug!("depends on an undelivered invalidation; reading the database");
            return loader.load().await;
        }
        // The plan's keys, the table's rows key (what a result whose rows
        // were not all snapshotted depends on instead), the hinted rows'.
        let fixed = gen_keys.len();
        let mut keys = gen_keys;
        keys.push(rows_key);
        keys.extend_from_slice(&hint);
        let fetched = match io.fetch(entry_key, &keys).await {
            Ok(f) => f,
            Err(e) => {
                Counters::bump(&c.fallbacks);
                tracing::warn!(store = store.name(), error = %crate::error::Chain(&e), "cache read failed; reading the database");
                return loader.load().await;
            }
        };
        if let Some(bytes) = fetched.entry.as_deref() {
            let current = self
                .returned_current(io, bytes, &fetched.generations, fixed, &hint, returned)
                .await;
            if let Some(current) = current {
                if let Some(rows) =
                    self.serve_entry::<C, U>(codec, entry_key, Some(bytes), &current, false, true)
                {
                    Counters::bump(&c.hits);
                    return Ok(rows);
                }
            }
        }
        Counters::bump(&c.misses);
        // The snapshot (the hinted rows' generations too) must be taken
        // before the database is read.
        let snapshot = match self
            .complete_generations(io, &keys, &fetched.generations)
            .await
        {
            Ok(gens) => gens,
            Err(e) => {
                Counters::bump(&c.fallbacks);
                tracing::warn!(store = store.name(), error = %crate::error::Chain(&e), "could not read generations; not caching");
                return loader.load().await;
            }
        };
        crate::hook!(ReadSnapshotTaken);
        let mut rows = loader.load().await?;
        crate::hook!(ReadBeforeStore);
        let mut got = returned.keys_of(&rows);
        returned.learn(&got);
        // Generations read before the (last) load, by key.
        let mut known: Vec<(Key, Generation)> = Vec::with_capacity(1 + hint.len());
        known.extend(snapshot.get(fixed).map(|g| (rows_key, *g)));
        known.extend(
            hint.iter().copied().zip(
                snapshot
                    .get(fixed + 1..)
                    .unwrap_or_default()
                    .iter()
                    .copied(),
            ),
        );
        let lookup = |known: &[(Key, Generation)], got: &[Key]| -> Option<Vec<Generation>> {
            got.iter()
                .map(|k| known.iter().find(|(kk, _)| kk == k).map(|(_, g)| *g))
                .collect()
        };
        let mut snapshotted = lookup(&known, &got);
        if snapshotted.is_none() && loader.again() {
            // Rows that joined the result: read their generations, then the
            // database again; its rows' generations are then all snapshotted
            // unless more joined meanwhile.
            let new: Vec<Key> = got
                .iter()
                .filter(|k| !known.iter().any(|(kk, _)| kk == *k))
                .copied()
                .collect();
            let gens = match io.fetch_many(&[], &new).await {
                Ok(f) if !self.invalidator.depends_on_undelivered(&new) => self
                    .complete_generations(io, &new, &f.generations)
                    .await
                    .ok(),
                _ => None,
            };
            if let Some(gens) = gens {
                known.extend(new.iter().copied().zip(gens));
                rows = loader.load().await?;
                got = returned.keys_of(&rows);
                returned.learn(&got);
                snapshotted = lookup(&known, &got);
                Counters::bump(&c.returned_reloads);
            }
        }
        let mut generations = snapshot.get(..fixed).unwrap_or_default().to_vec();
        match snapshotted {
            Some(gens) => generations.extend(gens),
            None => {
                // A row whose generation was not read before the query (it
                // joined the result since this process last read it): depend
                // on every write to the table this time; the next fill,
                // with the rows now hinted, is exact again.
                Counters::bump(&c.returned_widened);
                tracing::trace!("returned rows not snapshotted; the entry depends on the table");
                let Some(g) = snapshot.get(fixed) else {
                    return Ok(rows);
                };
                generations.push(*g);
                got = vec![rows_key];
            }
        }
        if self.invalidator.depends_on_undelivered(&got) {
            return Ok(rows);
        }
        if let Some(bytes) = self.put_entry(codec, entry_key, generations, Some(got), &rows) {
            let stored = io.put_entry(entry_key, &bytes, self.ttl).await;
            behind::stored(store.name(), c, stored);
        }
        Ok(rows)
    }

    /// The generations an entry depending on its returned rows must match:
    /// the plan's, then those of the rows the entry lists (from this
    /// fetch when they are the hinted ones, else from a second one).
    /// `None` when one is missing (a miss).
    async fn returned_current<Io: StoreIo>(
        &self,
        io: &Io,
        bytes: &[u8],
        fetched: &[Option<Generation>],
        fixed: usize,
        hint: &[Key],
        returned: &returned::Returned,
    ) -> Option<Vec<Generation>> {
        let (listed, _) = entry::payload_unchecked(bytes).and_then(returned::split_keys)?;
        let mut current: Vec<Generation> = fetched
            .get(..fixed)?
            .iter()
            .copied()
            .collect::<Option<_>>()?;
        if listed.as_slice() == hint {
            for g in fetched.get(fixed + 1..)? {
                current.push((*g)?);
            }
            return Some(current);
        }
        if listed == [returned.rows_key()] {
            current.push((*fetched.get(fixed)?)?);
            return Some(current);
        }
        if self.invalidator.depends_on_undelivered(&listed) {
            return None;
        }
        let more = io.fetch_many(&[], &listed).await.ok()?;
        for g in &more.generations {
            current.push((*g)?);
        }
        returned.learn(&listed);
        Some(current)
    }

    /// The rows the local tier holds for `key`, if they are current: the
    /// generations are read from the (in-process) store, nothing else.
    /// Otherwise the generations read, for the caller to check the entry
    /// against (`None` if the store failed: the caller's fetch reports it).
    fn serve_local<U: Clone + 'static>(
        &self,
        local: &Local,
        key: Key,
        gen_keys: &[Key],
    ) -> Result<Vec<U>, Option<Vec<Option<Generation>>>> {
        let Ok(fetched) = self.store.fetch_many(&[], gen_keys) else {
            return Err(None);
        };
        local
            .get::<U>(&key, fetched.generations.iter().copied())
            .ok_or(Some(fetched.generations))
    }

    /// The rows of a hit, if the entry is current under `current`: from the
    /// local tier when this process holds them decoded (unless the caller
    /// just looked), else decoded from the entry's bytes (and then kept
    /// locally). Corrupt or undecodable entries are counted and are misses.
    pub(crate) fn serve<C: Codec, U>(
        &self,
        codec: &C,
        key: Key,
        bytes: Option<&[u8]>,
        current: &[Generation],
        try_local: bool,
    ) -> Option<Vec<U>>
    where
        U: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.serve_entry(codec, key, bytes, current, try_local, false)
    }

    /// [`serve`](Self::serve); with `prefixed`, the payload starts with
    /// the returned rows' keys (see `returned`) and the rows stay out of
    /// the local tier (its entries hold no such keys).
    fn serve_entry<C: Codec, U>(
        &self,
        codec: &C,
        key: Key,
        bytes: Option<&[u8]>,
        current: &[Generation],
        try_local: bool,
        prefixed: bool,
    ) -> Option<Vec<U>>
    where
        U: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let inner = self;
        if try_local && !prefixed {
            if let Some(rows) = inner
                .local
                .as_ref()
                .and_then(|l| l.get::<U>(&key, current.iter().copied().map(Some)))
            {
                return Some(rows);
            }
        }
        let c = inner.counters();
        let opened = entry::open(bytes?, current, entry::Verify::new(inner.seal, key));
        let opened = match opened {
            Ok(payload) if prefixed => match returned::split_keys(payload) {
                Some((_, rest)) => Ok(rest),
                None => Err(Reject::Corrupt),
            },
            other => other,
        };
        match opened {
            Ok(payload) => match codec.decode::<Vec<U>>(payload) {
                Ok(rows) => {
                    if let (Some(local), false) = (&inner.local, prefixed) {
                        local.insert(key, current, rows.clone(), payload.len());
                    }
                    Some(rows)
                }
                Err(e) => {
                    Counters::bump(&c.decode_errors);
                    tracing::warn!(error = %crate::error::Chain(&e), "cached entry does not decode; treating as a miss");
                    None
                }
            },
            Err(Reject::Corrupt) => {
                Counters::bump(&c.decode_errors);
                tracing::warn!("cached entry is corrupt; treating as a miss");
                None
            }
            Err(Reject::Forged) => {
                Counters::bump(&c.forged);
                tracing::warn!("cached entry fails its MAC (forged, or written without the secret); treating as a miss");
                None
            }
            Err(Reject::Stale) => None,
        }
    }

    /// Fill the generations `fetch` did not find, creating the missing ones.
    async fn complete_generations<Io: StoreIo>(
        &self,
        io: &Io,
        keys: &[Key],
        found: &[Option<Generation>],
    ) -> Result<Vec<Generation>, crate::error::StoreError> {
        let missing: Vec<Key> = keys
            .iter()
            .zip(found)
            .filter(|(_, g)| g.is_none())
            .map(|(k, _)| *k)
            .collect();
        let mut created = io.ensure_generations(&missing).await?.into_iter();
        found
            .iter()
            .map(|g| match g {
                Some(g) => Ok(*g),
                None => created.next().ok_or_else(|| {
                    crate::error::StoreError::new(
                        self.store.name(),
                        crate::error::StoreErrorKind::Protocol,
                        "fewer generations returned than requested",
                    )
                }),
            })
            .collect()
    }

    /// Keep a miss's rows: in the local tier (in process), on the
    /// write-behind queue, or encoded; the bytes returned are for the caller
    /// to store (through its store I/O).
    pub(crate) fn put<C: Codec, U>(
        &self,
        codec: &Arc<C>,
        key: Key,
        snapshot: Vec<Generation>,
        rows: &[U],
    ) -> Option<Vec<u8>>
    where
        U: Serialize + Clone + Send + Sync + 'static,
    {
        self.put_entry(codec, key, snapshot, None, rows)
    }

    /// [`put`](Self::put); with `returned`, the returned rows' keys go
    /// first in the payload (and never to the local tier).
    fn put_entry<C: Codec, U>(
        &self,
        codec: &Arc<C>,
        key: Key,
        snapshot: Vec<Generation>,
        returned: Option<Vec<Key>>,
        rows: &[U],
    ) -> Option<Vec<u8>>
    where
        U: Serialize + Clone + Send + Sync + 'static,
    {
        let inner = self;
        // In process, the rows are kept decoded, once: encoding them would
        // cost more than the copy (and the first hit would decode them
        // again). They go to the local tier, weighed by an estimate of
        // their size in memory; only rows too large for it are encoded
        // into the store.
        if inner.tiering == Tiering::InProcess && inner.write_behind.is_none() && returned.is_none()
        {
            if let Some(local) = &inner.local {
                let weight = crate::weigh::weigh(rows);
                if weight <= inner.store.max_value_size()
                    && local.insert(key, &snapshot, rows.to_vec(), weight)
                {
                    Counters::bump(&inner.counters().stores);
                    return None;
                }
            }
        }
        // Elsewhere the local tier admits results on their first hit
        // (`serve`), not here: a result read once is not worth a clone and
        // an insert, and the local tier stays for the hot ones.
        if let Some(behind) = &inner.write_behind {
            // A copy of the rows goes to the thread, which encodes them:
            // the encode is most of a miss's own work.
            let codec = Arc::clone(codec);
            let rows = rows.to_vec();
            let protect = entry::Protect::new(inner.seal, key, inner.ttl);
            let encode = Box::new(move || {
                entry::encode_with(&snapshot, protect, |out| {
                    if let Some(keys) = &returned {
                        returned::write_keys(keys, out);
                    }
                    codec.encode_into(&rows, out)
                })
            });
            if !behind.put(key, inner.ttl, encode) {
                tracing::debug!("write-behind queue full; entry not stored");
            }
            return None;
        }
        let protect = entry::Protect::new(inner.seal, key, inner.ttl);
        let encoded = entry::encode_with(&snapshot, protect, |out| {
            if let Some(keys) = &returned {
                returned::write_keys(keys, out);
            }
            codec.encode_into(rows, out)
        });
        behind::storable(inner.store.max_value_size(), inner.counters(), encoded)
    }
}
