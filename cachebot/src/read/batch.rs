//! Many small reads in one round trip: `get_many`.
//!
//! One query per id (typically `table.find(id)`) is planned as a single
//! read would be, so each id's entry is the one its single get reads; the
//! entries and the union of their generations are fetched together, and
//! the ids the cache does not hold are loaded with one database query.

use std::sync::Arc;

use diesel::connection::LoadConnection;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::QueryResult;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::plan::Query;
use super::{Plan, Reader};
use crate::backend::CacheBackend;
use crate::codec::Codec;
use crate::invalidate::instrument::in_transaction;
use crate::stats::Counters;
use crate::store::{Generation, Key};

/// The planned entries of a batch and the union of their generations.
struct Batch {
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

impl Reader {
    /// Load one small query per id with one store round trip for all of
    /// them and one database query for the ids the cache does not hold;
    /// the rows of the ids found, in the order of `ids`.
    pub(crate) fn get_many<C, Conn, M, Id, Q, F, L, I>(
        &self,
        codec: &Arc<C>,
        conn: &mut Conn,
        ids: &[Id],
        find: F,
        load_missing: L,
        id_of: I,
    ) -> QueryResult<Vec<M>>
    where
        C: Codec,
        Conn: LoadConnection + 'static,
        Conn::Backend: CacheBackend,
        M: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        Id: PartialEq + Clone,
        F: Fn(&Id) -> Q,
        Q: QueryFragment<Conn::Backend> + QueryId,
        L: FnOnce(&mut Conn, &[Id]) -> QueryResult<Vec<M>>,
        I: Fn(&M) -> Id,
    {
        let c = self.counters();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let Some(batch) = self.plan_all::<C, Conn, M, Id, Q, F>(conn, ids, &find)? else {
            Counters::add(&c.bypasses, ids.len() as u64);
            return load_missing(conn, ids).map(|rows| in_order(ids, rows, id_of));
        };
        if self.follower_behind() {
            Counters::add(&c.behind_follower, ids.len() as u64);
            return load_missing(conn, ids).map(|rows| in_order(ids, rows, id_of));
        }
        if batch
            .plans
            .iter()
            .any(|(_, gens)| self.invalidator.depends_on_undelivered(gens))
        {
            Counters::add(&c.fallbacks, ids.len() as u64);
            return load_missing(conn, ids).map(|rows| in_order(ids, rows, id_of));
        }
        // One round trip: every entry and the union of their generations.
        let entries: Vec<Key> = batch.plans.iter().map(|(e, _)| *e).collect();
        let store = self.store.as_ref();
        let fetched = match store.fetch_many(&entries, &batch.union) {
            Ok(f) => f,
            Err(e) => {
                Counters::add(&c.fallbacks, ids.len() as u64);
                tracing::warn!(store = store.name(), error = %crate::error::Chain(&e), "cache read failed; reading the database");
                return load_missing(conn, ids).map(|rows| in_order(ids, rows, id_of));
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
            return Ok(found.into_iter().flatten().flatten().collect());
        }
        // Snapshot the generations of the misses before the database read.
        let values = self.snapshot(&batch, fetched.generations, missing.len());
        let loaded = load_missing(conn, &missing)?;
        Ok(self.fill(codec, ids, &batch, found, loaded, &values, id_of))
    }

    /// Plan every id; `None` if any cannot be cached (the batch then goes
    /// to the database).
    fn plan_all<C, Conn, M, Id, Q, F>(
        &self,
        conn: &mut Conn,
        ids: &[Id],
        find: &F,
    ) -> QueryResult<Option<Batch>>
    where
        C: Codec,
        Conn: LoadConnection + 'static,
        Conn::Backend: CacheBackend,
        M: 'static,
        F: Fn(&Id) -> Q,
        Q: QueryFragment<Conn::Backend> + QueryId,
    {
        if in_transaction(conn) {
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
            match q.plan::<Conn::Backend, Conn, M>(conn)? {
                Plan::Cache { entry, generations } => plans.push((entry, generations)),
                Plan::Bypass(_) => return Ok(None),
            }
        }
        let mut union: Vec<Key> = plans.iter().flat_map(|(_, g)| g.iter().copied()).collect();
        union.sort();
        union.dedup();
        Ok(Some(Batch { plans, union }))
    }

    /// The generations of the batch with the absent ones created; empty
    /// (nothing will be stored) when the store fails.
    fn snapshot(
        &self,
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
        let store = self.store.as_ref();
        match store.ensure_generations(&absent) {
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
                    store = store.name(),
                    "could not read generations; not caching"
                );
                Vec::new()
            }
        }
    }

    /// The rows in the order of `ids`: hits as found, misses from `loaded`
    /// (and stored under the snapshot `values`).
    #[allow(clippy::too_many_arguments)]
    fn fill<C, M, Id, I>(
        &self,
        codec: &Arc<C>,
        ids: &[Id],
        batch: &Batch,
        found: Vec<Option<Vec<M>>>,
        loaded: Vec<M>,
        values: &[Option<Generation>],
        id_of: I,
    ) -> Vec<M>
    where
        C: Codec,
        M: Serialize + Clone + Send + Sync + 'static,
        Id: PartialEq,
        I: Fn(&M) -> Id,
    {
        let mut loaded: Vec<Option<M>> = loaded.into_iter().map(Some).collect();
        let mut out = Vec::with_capacity(ids.len());
        for ((id, (entry_key, gens)), hit) in ids.iter().zip(&batch.plans).zip(found) {
            let rows = match hit {
                Some(rows) => rows,
                None => {
                    let rows: Vec<M> = loaded
                        .iter_mut()
                        .filter(|r| r.as_ref().is_some_and(|r| id_of(r) == *id))
                        .filter_map(Option::take)
                        .collect();
                    if let Some(snapshot) = batch.current(gens, values) {
                        self.put(codec, *entry_key, snapshot, &rows);
                    }
                    rows
                }
            };
            out.extend(rows);
        }
        out
    }
}
