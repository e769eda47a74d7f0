//! What a read depends on: render the query, analyse it, resolve its
//! tables on the connection, and compute its entry and generation keys.
//!
//! Keys are remembered per query shape, binds and connection scope (see
//! `plans`), so a repeated read renders and hashes, but neither parses nor
//! resolves again.

use std::any::{type_name, TypeId};

use diesel::pg::Pg;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::QueryResult;

use super::{Plan, Reader};
use crate::backend::{BackendImpl, CacheBackend};
use crate::conn::DbConn;
use crate::error::{Error, UsageError};
use crate::extract::{Analysis, Extracted, Uncacheable};
use crate::invalidate::instrument::{count_no_scope, scope_of, trusted_scope};
use crate::key::{self, Dependency, EntryContext, Keying};
use crate::render::{render, Rendered};
use crate::scope::{self, Scope};
use crate::store::Key;

/// The columns a read was narrowed to with `keyed_on`, as (table, column).
pub(crate) type Narrowing<'a> = Option<&'a [(String, String)]>;

/// What [`Cached::explain`](crate::Cached::explain) tells about a query.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Explain {
    /// The SQL text, as Diesel renders it.
    pub sql: String,
    /// Why the query is not cached, if it is not.
    pub uncacheable: Option<String>,
    /// The entry's key (for cacheable queries).
    pub entry: Option<Key>,
    /// What the entry depends on, sorted.
    pub dependencies: Vec<Dependency>,
    /// The generation keys a read fetches and an entry snapshots, as the
    /// store names them (with [`explain_on`](crate::Cached::explain_on),
    /// scoped to the connection's database), sorted.
    pub generations: Vec<Key>,
}

/// One query as the read path sees it: the cache, the codec's name, the
/// narrowing.
pub(crate) struct Query<'a, Q> {
    pub(crate) reader: &'a Reader,
    pub(crate) codec: &'static str,
    pub(crate) query: &'a Q,
    pub(crate) narrowing: Narrowing<'a>,
}

impl<Q> Query<'_, Q> {
    fn keying<'s>(&'s self, scope: Option<&'s Scope>) -> Keying<'s> {
        Keying {
            narrowing: self.narrowing,
            scope,
            composites: Some(&self.reader.composites),
        }
    }

    fn entry_context(&self, result_type: &'static str) -> EntryContext<'_> {
        EntryContext {
            fingerprint: &self.reader.fingerprint,
            codec: self.codec,
            result_type,
            narrowing: self.narrowing,
        }
    }

    /// The keys of a read on `conn`: its tables resolved as the connection
    /// resolves them, every key scoped to the connection's database.
    pub(crate) async fn plan<Conn, U>(&self, conn: &mut Conn) -> QueryResult<Plan>
    where
        Conn: DbConn,
        Q: QueryFragment<Conn::Backend> + QueryId,
        U: 'static,
    {
        let reader = self.reader;
        if !reader.is_enabled() {
            return Ok(Plan::Bypass("caching is disabled"));
        }
        // A query Diesel cannot render fails the same way when it runs: let
        // the database path report it.
        let Ok(rendered) = render::<Conn::Backend, Q>(self.query) else {
            return Ok(Plan::Bypass("the query could not be rendered"));
        };
        let analysis = match &rendered.template.extracted {
            Extracted::Cacheable(a) => a,
            Extracted::Uncacheable(why) => return Ok(Plan::Bypass(uncacheable_reason(why))),
        };
        let remembered = |scope: &Scope| {
            key::plan_key(
                TypeId::of::<U>(),
                TypeId::of::<Conn::Backend>(),
                rendered.template.sql_hash,
                &rendered.binds,
                self.narrowing,
                scope.id,
            )
        };
        // A plan remembered for this scope was checked when it was made.
        if let Some(scope) = trusted_scope(&reader.invalidator, conn) {
            if let Some((entry, generations)) = reader.plans.get(&remembered(&scope)) {
                return Ok(Plan::Cache { entry, generations });
            }
        }
        let scope = match scope_of(&reader.invalidator, conn, &analysis.tables).await {
            Ok(scope) => scope,
            Err(why) => {
                count_no_scope(&reader.invalidator, &why);
                return Ok(Plan::Bypass(why.reason()));
            }
        };
        if let Some(why) = self.refused(analysis, &scope) {
            return Ok(Plan::Bypass(why));
        }
        let remembered = remembered(&scope);
        if let Some((entry, generations)) = reader.plans.get(&remembered) {
            return Ok(Plan::Cache { entry, generations });
        }
        let (entry, generations) = self.keys::<Conn::Backend, U>(analysis, &rendered, &scope);
        reader.plans.insert(&remembered, entry, &generations);
        Ok(Plan::Cache { entry, generations })
    }

    /// Why a read of these tables on this scope is not cached, if it is not.
    fn refused(&self, analysis: &Analysis, scope: &Scope) -> Option<&'static str> {
        for t in &analysis.tables {
            let Some(resolved) = scope.resolve(&t.table) else {
                return Some("reads a table the catalog does not know");
            };
            if resolved.temporary {
                return Some("reads a temporary table");
            }
            if self.reader.never_caches(&t.table, &resolved.name) {
                return Some("reads a table on the never-cache list");
            }
        }
        None
    }

    /// The entry key and the generation keys of a read resolved in `scope`,
    /// scoped to its database.
    fn keys<DB: CacheBackend, U: 'static>(
        &self,
        analysis: &Analysis,
        rendered: &Rendered,
        scope: &Scope,
    ) -> (Key, Vec<Key>) {
        let in_database = |k: Key| scope::in_database(scope.database, k);
        let mut generations =
            key::dependency_keys::<DB>(analysis, &rendered.binds, self.keying(Some(scope)));
        for g in &mut generations {
            *g = in_database(*g);
        }
        generations.sort_unstable();
        let entry = in_database(key::entry_key(
            &self.entry_context(type_name::<U>()),
            rendered.template.sql_hash,
            &rendered.binds,
            &generations,
        ));
        (entry, generations)
    }

    /// What the cache would do with this query for results of type `U`,
    /// without a connection: tables as written.
    pub(crate) fn explain<DB, U>(&self) -> QueryResult<Explain>
    where
        DB: CacheBackend,
        Q: QueryFragment<DB> + QueryId,
        U: 'static,
    {
        let rendered = render::<DB, Q>(self.query)?;
        let sql = rendered.template.sql.clone();
        let analysis = match &rendered.template.extracted {
            Extracted::Uncacheable(why) => {
                return Ok(Explain {
                    sql,
                    uncacheable: Some(uncacheable_reason(why).into()),
                    entry: None,
                    dependencies: Vec::new(),
                    generations: Vec::new(),
                })
            }
            Extracted::Cacheable(a) => a,
        };
        let binds = &rendered.binds;
        let dependencies = key::dependencies::<DB>(analysis, binds, self.keying(None));
        let generations = key::dependency_keys::<DB>(analysis, binds, self.keying(None));
        let never = analysis
            .tables
            .iter()
            .any(|t| self.reader.never_caches(&t.table, &t.table));
        let entry = key::entry_key(
            &self.entry_context(type_name::<U>()),
            rendered.template.sql_hash,
            binds,
            &generations,
        );
        Ok(Explain {
            sql,
            uncacheable: never.then(|| "reads a table on the never-cache list".into()),
            entry: (!never).then_some(entry),
            dependencies,
            generations,
        })
    }

    /// [`explain`](Self::explain) with the tables resolved on `conn`.
    pub(crate) async fn explain_on<Conn, U>(&self, conn: &mut Conn) -> QueryResult<Explain>
    where
        Conn: DbConn,
        Q: QueryFragment<Conn::Backend> + QueryId,
        U: 'static,
    {
        type DB<C> = <C as DbConn>::Backend;
        let mut explain = self.explain::<DB<Conn>, U>()?;
        let rendered = render::<DB<Conn>, Q>(self.query)?;
        let Extracted::Cacheable(analysis) = &rendered.template.extracted else {
            return Ok(explain);
        };
        let scope = match scope_of(&self.reader.invalidator, conn, &analysis.tables).await {
            Ok(scope) => scope,
            Err(why) => {
                explain.uncacheable = Some(why.reason().into());
                explain.entry = None;
                return Ok(explain);
            }
        };
        explain.dependencies =
            key::dependencies::<DB<Conn>>(analysis, &rendered.binds, self.keying(Some(&scope)));
        let (entry, generations) = self.keys::<DB<Conn>, U>(analysis, &rendered, &scope);
        explain.generations = generations;
        explain.entry = explain.entry.map(|_| entry);
        if let Some(why) = self.refused(analysis, &scope) {
            explain.uncacheable = Some(why.into());
        }
        if explain.uncacheable.is_some() {
            explain.entry = None;
        }
        Ok(explain)
    }
}

/// The narrowing of a `keyed_on` argument: its (table, column) list, or the
/// error for something that is not a column list. Rendered with
/// PostgreSQL's syntax only to read the names (a column renders the same
/// names on every backend).
pub(crate) fn narrowing_of<K: QueryFragment<Pg>>(
    columns: &K,
) -> Result<Option<Vec<(String, String)>>, String> {
    match Pg::render(columns) {
        Ok(sql) => crate::extract::column_list(&sql).map(Some).ok_or(sql),
        Err(e) => Err(e.to_string()),
    }
}

/// The error `keyed_on` reports at load time for a narrowing that is not
/// a column list.
pub(crate) fn bad_narrowing(sql: &str) -> diesel::result::Error {
    Error::Usage(UsageError::NotAColumn {
        call: "keyed_on",
        got: sql.to_owned(),
    })
    .into_diesel()
}

fn uncacheable_reason(why: &Uncacheable) -> &'static str {
    match why {
        Uncacheable::NoTable => "the query reads no table",
        Uncacheable::Volatile(_) => "the query calls a volatile function",
        Uncacheable::NotARead => "the statement is not a plain read",
    }
}
