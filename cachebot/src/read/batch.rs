//! Many small reads in one round trip: `get_many`.
//!
//! One query per id (typically `table.find(id)`) is planned as a single
//! read would be, so each id's entry is the one its single get reads; the
//! entries and the union of their generations are fetched together, and
//! the ids the cache does not hold are loaded with one database query.

use std::collections::HashSet;
use std::sync::Arc;

use diesel::query_builder::{QueryFragment, QueryId};
use diesel::QueryResult;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::io::StoreIo;
use super::plan::Query;
use super::{behind, Plan, Reader};
use crate::codec::Codec;
use crate::conn::DbConn;
use crate::invalidate::instrument::in_transaction;
use crate::stats::Counters;
use crate::store::{Generation, Key};

/// The planned entries of a batch and the union of their generations.
pub(crate) struct Batch {
    plans: Vec<(Key, Vec<Key>)>,
    /// Sorted, deduplicated.
    union: Vec<Key>,
}

impl Batch {
    /// The current values of `gens` among `values` (aligned with `union`).
    fn current(&self, gens: &[Key], values: &[Option<Generation>]) -> Option<Vec<Generation>> {
        gens.iter()
            .map(|k| {
                let i = self.union.binary_search(k).ok()?;
                values.get(i).copied().flatten()
            })
            .collect()
    }
}

/// `rows` in the order of `ids` (rows of ids not asked for are dropped).
fn in_order<M, Id: PartialEq>(ids: &[Id], rows: Vec<M>, id_of: impl Fn(&M) -> Id) -> Vec<M> {
    let mut rows: Vec<Option<M>> = rows.into_iter().map(Some).collect();
    ids.iter()
        .filter_map(|id| {
            rows.iter_mut()
                .find(|r| r.as_ref().is_some_and(|r| id_of(r) == *id))?
                .take()
        })
        .collect()
}

/// What the store said of a batch: every row found, or the ids to load
/// from the database (and, unless the batch bypasses the cache, what
/// [`Reader::many_fill`] needs to store them).
pub(crate) enum Lookup<M, Id> {
    Found(Vec<M>),
    Load {
        missing: Vec<Id>,
        pending: Option<Pending<M>>,
    },
}

/// The hits of a batch and the generation snapshot its misses are stored
/// under.
pub(crate) struct Pending<M> {
    batch: Batch,
    found: Vec<Option<Vec<M>>>,
    values: Vec<Option<Generation>>,
}

impl Reader {
    /// Plan one small query per id; `None` if any cannot be cached (the
    /// batch then goes to the database). The first step of `get_many`:
    /// plan, [`many_lookup`](Self::many_lookup), load what is missing,
    /// [`many_fill`](Self::many_fill).
    pub(crate) async fn many_plan<C, Conn, M, Id, Q, F>(
        &self,
        conn: &mut Conn,
        ids: &[Id],
        find: &F,
    ) -> QueryResult<Option<Batch>>
    where
        C: Codec,
        Conn: DbConn,
        M: 'static,
        F: Fn(&Id) -> Q,
        Q: QueryFragment<Conn::Backend> + QueryId,
    {
        if ids.is_empty() || in_transaction(conn) {
            return Ok(None);
        }
        let mut plans = Vec::with_capacity(ids.len());
        for id in ids {
            let query = find(id);
            let q = Query {
                reader: self,
                codec: C::NAME,
                query: &query,
                narrowing: None,
            };
            match q.plan::<Conn, M>(conn).await? {
                Plan::Cache {
                    entry,
                    generations,
                    returned: None,
                } => plans.push((entry, generations)),
                // Gets by key are pinned; anything else loads from the database.
                Plan::Cache { .. } | Plan::Bypass(_) => return Ok(None),
            }
        }
        let mut union: Vec<Key> = plans.iter().flat_map(|(_, g)| g.iter().copied()).collect();
        union.sort();
        union.dedup();
        Ok(Some(Batch { plans, union }))
    }

    /// Every entry of a planned batch and the union of their generations
    /// in one round trip: the hits, and the ids to load (with the
    /// generations of the misses snapshotted before the database read).
    pub(crate) async fn many_lookup<C, M, Id, Io>(
        &self,
        io: &Io,
        codec: &Arc<C>,
        batch: Option<Batch>,
        ids: &[Id],
    ) -> Lookup<M, Id>
    where
        C: Codec,
        M: DeserializeOwned + Clone + Send + Sync + 'static,
        Id: Clone,
        Io: StoreIo,
    {
        let c = self.counters();
        let everything = |counter: &std::sync::atomic::AtomicU64| {
            Counters::add(counter, ids.len() as u64);
            Lookup::Load {
                missing: ids.to_vec(),
                pending: None,
            }
        };
        let Some(batch) = batch else {
            return if ids.is_empty() {
                Lookup::Found(Vec::new())
            } else {
                everything(&c.bypasses)
            };
        };
        if self.follower_behind() {
            return everything(&c.behind_follower);
        }
        if batch
            .plans
            .iter()
            .any(|(_, gens)| self.invalidator.depends_on_undelivered(gens))
        {
            return everything(&c.fallbacks);
        }
        // One round trip: every entry and the union of their generations.
        let entries: Vec<Key> = batch.plans.iter().map(|(e, _)| *e).collect();
        let fetched = match io.fetch_many(&entries, &batch.union).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(store = self.store.name(), error = %crate::error::Chain(&e), "cache read failed; reading the database");
                return everything(&c.fallbacks);
            }
        };
        let mut found: Vec<Option<Vec<M>>> = Vec::with_capacity(ids.len());
        for ((entry_key, gens), bytes) in batch.plans.iter().zip(&fetched.entries) {
            let hit = batch.current(gens, &fetched.generations).and_then(|now| {
                self.serve::<C, M>(codec, *entry_key, bytes.as_deref(), &now, true)
            });
            Counters::bump(if hit.is_some() { &c.hits } else { &c.misses });
            found.push(hit);
        }
        let missing: Vec<Id> = ids
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        if missing.is_empty() {
            // A repeated id yields its rows once, as on the other paths.
            let mut seen: HashSet<Key> = HashSet::with_capacity(ids.len());
            let rows = batch
                .plans
                .iter()
                .zip(found)
                .filter(|((entry, _), _)| seen.insert(*entry))
                .flat_map(|(_, rows)| rows.into_iter().flatten())
                .collect();
            return Lookup::Found(rows);
        }
        // Snapshot the generations of the misses before the database read.
        let values = self
            .snapshot(io, &batch, fetched.generations, missing.len())
            .await;
        Lookup::Load {
            missing,
            pending: Some(Pending {
                batch,
                found,
                values,
            }),
        }
    }

    /// The generations of the batch with the absent ones created; empty
    /// (nothing will be stored) when the store fails.
    async fn snapshot<Io: StoreIo>(
        &self,
        io: &Io,
        batch: &Batch,
        mut values: Vec<Option<Generation>>,
        misses: usize,
    ) -> Vec<Option<Generation>> {
        let absent: Vec<Key> = batch
            .union
            .iter()
            .zip(&values)
            .filter(|(_, g)| g.is_none())
            .map(|(k, _)| *k)
            .collect();
        match io.ensure_generations(&absent).await {
            Ok(created) if created.len() == absent.len() => {
                for (k, g) in absent.iter().zip(created) {
                    if let Ok(i) = batch.union.binary_search(k) {
                        values[i] = Some(g);
                    }
                }
                values
            }
            Ok(_) | Err(_) => {
                Counters::add(&self.counters().fallbacks, misses as u64);
                tracing::warn!(
                    store = self.store.name(),
                    "could not read generations; not caching"
                );
                Vec::new()
            }
        }
    }

    /// The rows in the order of `ids`: hits as found, misses from `loaded`
    /// (and stored under the snapshot). Without `pending` (the batch
    /// bypassed the cache), `loaded` in the order of `ids`.
    pub(crate) async fn many_fill<C, M, Id, I, Io>(
        &self,
        io: &Io,
        codec: &Arc<C>,
        ids: &[Id],
        pending: Option<Pending<M>>,
        loaded: Vec<M>,
        id_of: I,
    ) -> Vec<M>
    where
        C: Codec,
        M: Serialize + Clone + Send + Sync + 'static,
        Id: PartialEq,
        I: Fn(&M) -> Id,
        Io: StoreIo,
    {
        let Some(Pending {
            batch,
            found,
            values,
        }) = pending
        else {
            return in_order(ids, loaded, id_of);
        };
        let mut loaded: Vec<Option<M>> = loaded.into_iter().map(Some).collect();
        let mut out = Vec::with_capacity(ids.len());
        // A repeated id yields its rows once (as without the cache); its
        // later occurrences would find them taken, and must not store that
        // emptiness under its entry.
        let mut seen: HashSet<Key> = HashSet::with_capacity(ids.len());
        for ((id, (entry_key, gens)), hit) in ids.iter().zip(&batch.plans).zip(found) {
            if !seen.insert(*entry_key) {
                continue;
            }
            let rows = match hit {
                Some(rows) => rows,
                None => {
                    let rows: Vec<M> = loaded
                        .iter_mut()
                        .filter(|r| r.as_ref().is_some_and(|r| id_of(r) == *id))
                        .filter_map(Option::take)
                        .collect();
                    if let Some(snapshot) = batch.current(gens, &values) {
                        if let Some(bytes) = self.put(codec, *entry_key, snapshot, &rows) {
                            let stored = io.put_entry(*entry_key, &bytes, self.ttl).await;
                            behind::stored(self.store.name(), self.counters(), stored);
                        }
                    }
                    rows
                }
            };
            out.extend(rows);
        }
        out
    }
}
