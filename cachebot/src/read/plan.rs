//! What a read depends on: render the query, analyse it, resolve its
//! tables on the connection, and compute its entry and generation keys.
//!
//! Keys are remembered per query shape, binds and connection scope (see
//! `plans`), so a repeated read renders and hashes, but neither parses nor
//! resolves again.

use std::any::{type_name, TypeId};
use std::sync::Arc;

use diesel::pg::Pg;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::QueryResult;

use super::returned::Returned;
use super::{Plan, Reader};
use crate::backend::{BackendImpl, CacheBackend};
use crate::conn::DbConn;
use crate::error::{Error, UsageError};
use crate::extract::{Analysis, Entry, Extracted, Pins, Uncacheable};
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
    /// The table (as the query names it) whose returned rows the entry
    /// also depends on, by primary key, instead of every write to the
    /// table; known only on a connection
    /// ([`explain_on`](crate::Cached::explain_on)). See the README's
    /// "Precision".
    pub returned_rows: Option<String>,
}

/// One query as the read path sees it: the cache, the codec's name, the
/// narrowing.
pub(crate) struct Query<'a, Q> {
    pub(crate) reader: &'a Reader,
    pub(crate) codec: &'static str,
    pub(crate) query: &'a Q,
    pub(crate) narrowing: Narrowing<'a>,
}

/// A read's dependency on its returned rows, as planned.
struct Candidate<'a> {
    /// The table as the query writes it.
    written: &'a str,
    entry: &'a Entry,
    returned: Returned,
    /// The table joined through (as written) whose "cascaded" key the read
    /// need not depend on: the only foreign key whose actions write it is
    /// the one the read goes through, and those writes change the result
    /// only by deleting or changing returned rows.
    uncascaded: Option<&'a str>,
}

impl<Q> Query<'_, Q> {
    fn keying<'s>(
        &'s self,
        scope: Option<&'s Scope>,
        returned: Option<&'s Candidate<'s>>,
    ) -> Keying<'s> {
        Keying {
            narrowing: self.narrowing,
            scope,
            composites: Some(&self.reader.composites),
            returned: returned.map(|c| (c.written, c.entry)),
            uncascaded: returned.and_then(|c| c.uncascaded),
        }
    }

    fn entry_context<'s>(
        &'s self,
        result_type: &'static str,
        returned: Option<&'s str>,
    ) -> EntryContext<'s> {
        EntryContext {
            fingerprint: &self.reader.fingerprint,
            codec: self.codec,
            result_type,
            narrowing: self.narrowing,
            returned,
        }
    }

    /// Whether a read of `U` may depend on its returned rows (see
    /// `returned`): `U` is a registered model, the select list is exactly
    /// its columns, no equality pins its table, the statement says how its
    /// rows enter the result (and, through a join, an enforced foreign key
    /// makes that true), and its primary key compares by bytes.
    fn returned<'a, U: 'static>(
        &self,
        analysis: &'a Analysis,
        scope: &Scope,
    ) -> Option<Candidate<'a>> {
        if self.narrowing.is_some() {
            return None;
        }
        let model = self.reader.models.of(TypeId::of::<U>())?;
        let projection = analysis.shape.projection.as_ref()?;
        if *projection != model.columns {
            return None;
        }
        let written = projection.first().map(|(t, _)| t.as_str())?;
        if projection.iter().any(|(t, _)| t != written) {
            return None;
        }
        let deps = analysis.tables.iter().find(|t| t.table == written)?;
        if deps.pins != Pins::Whole {
            return None;
        }
        let resolved = scope.resolve(written)?;
        if !model.primary_key.iter().all(|c| resolved.keyable(c)) {
            return None;
        }
        let entry = analysis.shape.entry.get(written)?;
        let mut uncascaded = None;
        if let Entry::Through {
            column,
            via_table,
            via_column,
        } = entry
        {
            let via = scope.resolve(via_table)?;
            let invalidator = &self.reader.invalidator;
            if !invalidator.enforces(&via.name, via_column, &resolved.name, column) {
                return None;
            }
            if invalidator.only_writer(&via.name, via_column, &resolved.name, column) {
                uncascaded = Some(via_table.as_str());
            }
        }
        Some(Candidate {
            written: deps.table.as_str(),
            entry,
            returned: Returned::new(resolved.name.clone(), scope.database, Arc::clone(model)),
            uncascaded,
        })
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
                // What a plan depends on follows the cascade graph too.
                scope.id ^ u128::from(reader.invalidator.cascades_version()),
            )
        };
        // A plan remembered for this scope was checked when it was made.
        if let Some(scope) = trusted_scope(&reader.invalidator, conn) {
            if let Some(plan) = reader.plans.get(&remembered(&scope)) {
                return Ok(plan);
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
        if let Some(plan) = reader.plans.get(&remembered) {
            return Ok(plan);
        }
        let (entry, generations, returned) =
            self.keys::<Conn::Backend, U>(analysis, &rendered, &scope);
        let returned = returned.map(Arc::new);
        reader
            .plans
            .insert(&remembered, entry, &generations, returned.clone());
        Ok(Plan::Cache {
            entry,
            generations,
            returned,
        })
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
    ) -> (Key, Vec<Key>, Option<Returned>) {
        let in_database = |k: Key| scope::in_database(scope.database, k);
        let candidate = self.returned::<U>(analysis, scope);
        let keying = self.keying(Some(scope), candidate.as_ref());
        let mut generations = key::dependency_keys::<DB>(analysis, &rendered.binds, keying);
        for g in &mut generations {
            *g = in_database(*g);
        }
        generations.sort_unstable();
        let written = candidate.as_ref().map(|c| c.written);
        let entry = in_database(key::entry_key(
            &self.entry_context(type_name::<U>(), written),
            rendered.template.sql_hash,
            &rendered.binds,
            &generations,
        ));
        (entry, generations, candidate.map(|c| c.returned))
    }

    /// The dependencies of a read resolved in `scope`, for display.
    fn dependencies<DB: CacheBackend, U: 'static>(
        &self,
        analysis: &Analysis,
        rendered: &Rendered,
        scope: &Scope,
    ) -> (Vec<Dependency>, Option<String>) {
        let candidate = self.returned::<U>(analysis, scope);
        let keying = self.keying(Some(scope), candidate.as_ref());
        let deps = key::dependencies::<DB>(analysis, &rendered.binds, keying);
        (deps, candidate.map(|c| c.written.to_owned()))
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
                    returned_rows: None,
                })
            }
            Extracted::Cacheable(a) => a,
        };
        let binds = &rendered.binds;
        let dependencies = key::dependencies::<DB>(analysis, binds, self.keying(None, None));
        let generations = key::dependency_keys::<DB>(analysis, binds, self.keying(None, None));
        let never = analysis
            .tables
            .iter()
            .any(|t| self.reader.never_caches(&t.table, &t.table));
        let entry = key::entry_key(
            &self.entry_context(type_name::<U>(), None),
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
            returned_rows: None,
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
        let (dependencies, returned_rows) =
            self.dependencies::<DB<Conn>, U>(analysis, &rendered, &scope);
        explain.dependencies = dependencies;
        explain.returned_rows = returned_rows;
        let (entry, generations, _) = self.keys::<DB<Conn>, U>(analysis, &rendered, &scope);
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
