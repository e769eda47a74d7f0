//! Query -> SQL text, bind bytes and the parsed dependency template.
//!
//! Rendering a static query always produces the same SQL, so the text and
//! its analysis are memoised per query type (as Diesel's own statement
//! cache does); dynamic queries (boxed, SQL literals, `IN` lists on some
//! backends) are rendered every time and only their parse is memoised, per
//! SQL text. Binds are collected on every call: they are the values.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use diesel::query_builder::{QueryFragment, QueryId};
use diesel::QueryResult;

use crate::backend::{Bind, CacheBackend};
use crate::extract::{analyze, Extracted};
use crate::util::key_hash::KeyHashBuilder;
use crate::util::memo::Memo;

/// The parsed form of one SQL text, shared by every call that renders it.
#[derive(Debug)]
pub(crate) struct Template {
    pub sql: String,
    /// xxh3-128 of the SQL text, the part of every entry key that names the query.
    pub sql_hash: u128,
    pub extracted: Extracted,
}

/// A query ready to be keyed: its template and this call's binds.
pub(crate) struct Rendered {
    pub template: Arc<Template>,
    pub binds: Vec<Bind>,
}

/// Templates per static query type (and backend). A `TypeId` is already a
/// hash, so the cheap key hasher is enough (SipHash would cost more than
/// the lookup).
type ByType = RwLock<HashMap<(TypeId, TypeId), Arc<Template>, KeyHashBuilder>>;
static BY_TYPE: OnceLock<ByType> = OnceLock::new();

/// Templates per SQL text, for queries that have no static identity. Bounded:
/// a service that builds SQL dynamically must not grow this without end.
static BY_SQL: OnceLock<Memo<Arc<Template>>> = OnceLock::new();

const MAX_DYNAMIC_TEMPLATES: u64 = 10_000;

pub(crate) fn render<DB, Q>(query: &Q) -> QueryResult<Rendered>
where
    DB: CacheBackend,
    Q: QueryFragment<DB> + QueryId,
{
    let binds = DB::collect_binds(query)?;
    let static_id = match Q::query_id() {
        Some(id) if query.is_safe_to_cache_prepared(&DB::default())? => {
            Some((id, TypeId::of::<DB>()))
        }
        _ => None,
    };
    if let Some(id) = static_id {
        let by_type =
            BY_TYPE.get_or_init(|| RwLock::new(HashMap::with_hasher(KeyHashBuilder::new())));
        if let Some(t) = by_type.read().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(Rendered { template: t, binds });
        }
        let template = template_for::<DB>(DB::render(query)?);
        if let Ok(mut m) = by_type.write() {
            m.insert(id, template.clone());
        }
        return Ok(Rendered { template, binds });
    }
    Ok(Rendered {
        template: template_for::<DB>(DB::render(query)?),
        binds,
    })
}

fn template_for<DB: CacheBackend>(sql: String) -> Arc<Template> {
    let sql_hash = xxhash_rust::xxh3::xxh3_128(sql.as_bytes());
    let by_sql = BY_SQL.get_or_init(|| Memo::new(MAX_DYNAMIC_TEMPLATES));
    // The same text may parse differently in another dialect.
    let memo_key = sql_hash ^ u128::from(DB::dialect() as u8);
    by_sql.get_or_insert_with(memo_key, || {
        let extracted = analyze(&sql, DB::dialect());
        Arc::new(Template {
            sql,
            sql_hash,
            extracted,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::pg::Pg;
    use diesel::prelude::*;

    diesel::table! {
        things (id) {
            id -> Int4,
            owner -> Int4,
        }
    }

    #[test]
    fn static_queries_share_one_template() {
        let a = render::<Pg, _>(&things::table.filter(things::owner.eq(1))).unwrap();
        let b = render::<Pg, _>(&things::table.filter(things::owner.eq(2))).unwrap();
        assert!(Arc::ptr_eq(&a.template, &b.template));
        assert_ne!(a.binds, b.binds);
    }

    #[test]
    fn boxed_queries_share_the_parse_by_text() {
        let q = |n: i32| things::table.filter(things::owner.eq(n)).into_boxed::<Pg>();
        let a = render::<Pg, _>(&q(1)).unwrap();
        let b = render::<Pg, _>(&q(2)).unwrap();
        assert!(Arc::ptr_eq(&a.template, &b.template));
        assert_eq!(a.template.sql, b.template.sql);
    }
}
