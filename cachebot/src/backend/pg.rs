//! PostgreSQL: rendering, binds, keyable types, the catalog, cascades.
use std::cell::RefCell;

use super::{BackendImpl, Bind, CacheBackend, CascadeFacts, Catalog, ForeignKeyFact, SqlDialect};
use crate::scope::{qualify, ColumnFacts, TableFacts};
use diesel::pg::{Pg, PgMetadataLookup, PgQueryBuilder, PgTypeMetadata};
use diesel::query_builder::bind_collector::RawBytesBindCollector;
use diesel::query_builder::{QueryBuilder, QueryFragment};
use diesel::QueryResult;

/// Built-in type OIDs whose equality is byte equality.
///
/// Excluded on purpose: float4/float8 (`-0 = 0`, NaN), numeric (`1.0 = 1.00`),
/// bpchar (trailing blanks), interval (`1 day = 24 hours`), json/jsonb,
/// timetz, citext and every custom type (unknown semantics).
const KEYABLE_OIDS: &[u32] = &[
    16,   // bool
    17,   // bytea
    18,   // "char"
    19,   // name
    20,   // int8
    21,   // int2
    23,   // int4
    25,   // text
    26,   // oid
    1043, // varchar
    1082, // date
    1083, // time
    1114, // timestamp
    1184, // timestamptz
    2950, // uuid
];

/// Synthetic ids for custom types have this bit set; real OIDs of a
/// cluster stay far below it.
const SYNTHETIC_OID: u32 = 0x8000_0000;

/// A metadata lookup that never touches a connection.
///
/// Built-in types never consult it; custom types (enums, domains) get a
/// stable id derived from their name, which is all a cache key needs.
/// This lets keys be computed without borrowing the connection and
/// without the catalogue queries Diesel runs for custom types.
struct SyntheticLookup;

impl PgMetadataLookup for SyntheticLookup {
    fn lookup_type(&mut self, type_name: &str, schema: Option<&str>) -> PgTypeMetadata {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(schema.unwrap_or("").as_bytes());
        h.update(&[0]);
        h.update(type_name.as_bytes());
        let oid = (h.digest() as u32) | SYNTHETIC_OID;
        PgTypeMetadata::from_result(Ok((oid, oid ^ 1)))
    }
}

thread_local! {
    static COLLECTOR: RefCell<RawBytesBindCollector<Pg>> =
        RefCell::new(RawBytesBindCollector::new());
}

fn collect_into<Q: QueryFragment<Pg> + ?Sized>(
    query: &Q,
    collector: &mut RawBytesBindCollector<Pg>,
) -> QueryResult<Vec<Bind>> {
    query.collect_binds(collector, &mut SyntheticLookup, &Pg)?;
    Ok(collector
        .metadata
        .iter()
        .zip(collector.binds.drain(..))
        .map(|(meta, bytes)| Bind {
            // An OID that failed to resolve still needs an identity;
            // 0 is never a real type and is never keyable.
            type_id: meta.oid().unwrap_or(0),
            bytes,
        })
        .collect())
}

impl CacheBackend for Pg {}

impl BackendImpl for Pg {
    fn render<Q: QueryFragment<Pg> + ?Sized>(query: &Q) -> QueryResult<String> {
        let mut qb = PgQueryBuilder::default();
        query.to_sql(&mut qb, &Pg)?;
        Ok(qb.finish())
    }

    fn collect_binds<Q: QueryFragment<Pg> + ?Sized>(query: &Q) -> QueryResult<Vec<Bind>> {
        // Every cached read collects its binds: the collector's two
        // vectors are kept per thread rather than allocated each time.
        COLLECTOR.with(|cell| match cell.try_borrow_mut() {
            Ok(mut collector) => {
                collector.metadata.clear();
                collector.binds.clear();
                collect_into(query, &mut collector)
            }
            // Re-entered from inside a `ToSql`: a collector of its own.
            Err(_) => collect_into(query, &mut RawBytesBindCollector::new()),
        })
    }

    fn is_keyable(type_id: u32) -> bool {
        KEYABLE_OIDS.contains(&type_id)
    }

    fn array_elements(bind: &Bind) -> Option<Vec<Bind>> {
        decode_array(bind.bytes.as_deref()?)
    }

    fn dialect() -> SqlDialect {
        SqlDialect::PostgreSql
    }

    fn catalog<Conn>(conn: &mut Conn, qualified: &[String]) -> QueryResult<Catalog>
    where
        Conn: diesel::connection::LoadConnection<Backend = Pg>,
    {
        catalog(conn, qualified)
    }

    fn cascades<Conn>(conn: &mut Conn) -> QueryResult<CascadeFacts>
    where
        Conn: diesel::connection::LoadConnection<Backend = Pg>,
    {
        cascades(conn)
    }

    #[cfg(feature = "async")]
    async fn catalog_async<'c, Conn>(
        conn: &'c mut Conn,
        qualified: &'c [String],
    ) -> QueryResult<Catalog>
    where
        Conn: diesel_async::AsyncConnection<Backend = Pg>,
    {
        {
            use diesel_async::RunQueryDsl;
            let identity = match diesel::sql_query(IDENTITY)
                .get_result::<Identity>(conn)
                .await
            {
                Ok(i) => i,
                Err(_) => {
                    diesel::sql_query(IDENTITY_FALLBACK)
                        .get_result::<Identity>(conn)
                        .await?
                }
            };
            let rows: Vec<ColumnRow> = diesel::sql_query(COLUMNS)
                .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(qualified.to_vec())
                .load(conn)
                .await?;
            Ok(assemble_catalog(identity, rows))
        }
    }

    #[cfg(feature = "async")]
    async fn cascades_async<Conn>(conn: &mut Conn) -> QueryResult<CascadeFacts>
    where
        Conn: diesel_async::AsyncConnection<Backend = Pg>,
    {
        {
            use diesel_async::RunQueryDsl;
            let fks: Vec<ForeignKey> = diesel::sql_query(FOREIGN_KEYS).load(conn).await?;
            let ruled: Vec<Ruled> = diesel::sql_query(RULED).load(conn).await?;
            let inherits: Vec<Inherits> = diesel::sql_query(INHERITS).load(conn).await?;
            Ok(assemble_cascades(fks, ruled, inherits))
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Identity {
    #[diesel(sql_type = diesel::sql_types::Text)]
    database: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    search_path: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    system: String,
}

#[derive(diesel::QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    visible: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    temporary: bool,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    column: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    base_type: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    deterministic: bool,
}

/// The cluster's system identifier names the cluster (physical
/// replicas share it, other clusters never do); where the role may not
/// read it, the server's address stands in.
const IDENTITY: &str = "SELECT current_database()::text AS database, \
     current_schemas(true)::text AS search_path, \
     (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) AS system";
const IDENTITY_FALLBACK: &str = "SELECT current_database()::text AS database, \
     current_schemas(true)::text AS search_path, \
     COALESCE(host(inet_server_addr()), 'local') || ':' || COALESCE(inet_server_port()::text, '') \
     AS system";

/// Every visible relation (and the qualified ones asked for) with its
/// columns, each column's type with domains unwrapped, and whether its
/// collation is deterministic.
const COLUMNS: &str = "WITH RECURSIVE cols AS ( \
       SELECT n.nspname::text AS schema, c.relname::text AS name, \
              pg_catalog.pg_table_is_visible(c.oid) AS visible, \
              c.relpersistence = 't' AS temporary, \
              a.attname::text AS col, a.attnum, a.atttypid AS typ, \
              COALESCE(co.collisdeterministic, true) AS deterministic \
       FROM pg_catalog.pg_class c \
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
       LEFT JOIN pg_catalog.pg_attribute a \
              ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
       LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
       WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
         AND (pg_catalog.pg_table_is_visible(c.oid) \
              OR n.nspname::text || '.' || c.relname::text = ANY($1))), \
     base(typ, cur, depth) AS ( \
       SELECT DISTINCT typ, typ, 0 FROM cols WHERE typ IS NOT NULL \
       UNION ALL \
       SELECT b.typ, t.typbasetype, b.depth + 1 FROM base b \
       JOIN pg_catalog.pg_type t ON t.oid = b.cur \
       WHERE t.typtype = 'd' AND b.depth < 32) \
     SELECT cols.schema, cols.name, cols.visible, cols.temporary, cols.col AS column, \
            (SELECT b.cur FROM base b WHERE b.typ = cols.typ \
             ORDER BY b.depth DESC LIMIT 1)::int8 AS base_type, \
            cols.deterministic \
     FROM cols ORDER BY cols.schema, cols.name, cols.attnum";

fn catalog<Conn>(conn: &mut Conn, qualified: &[String]) -> QueryResult<Catalog>
where
    Conn: diesel::connection::LoadConnection<Backend = Pg>,
{
    use diesel::RunQueryDsl;
    let identity = match diesel::sql_query(IDENTITY).get_result::<Identity>(conn) {
        Ok(i) => i,
        Err(_) => diesel::sql_query(IDENTITY_FALLBACK).get_result::<Identity>(conn)?,
    };
    let rows: Vec<ColumnRow> = diesel::sql_query(COLUMNS)
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(qualified)
        .load(conn)?;
    Ok(assemble_catalog(identity, rows))
}

/// The catalog from the identity row and the column rows (in `COLUMNS`'s
/// order).
fn assemble_catalog(identity: Identity, rows: Vec<ColumnRow>) -> Catalog {
    let mut tables: Vec<TableFacts> = Vec::new();
    for row in rows {
        let same = tables
            .last()
            .is_some_and(|t| t.schema == row.schema && t.name == row.name);
        if !same {
            tables.push(TableFacts {
                schema: row.schema,
                name: row.name,
                visible: row.visible,
                temporary: row.temporary,
                columns: Vec::new(),
            });
        }
        if let (Some(name), Some(t)) = (row.column, tables.last_mut()) {
            t.columns.push(ColumnFacts {
                name,
                // An OID out of range can match no keyable type.
                base_type: row
                    .base_type
                    .and_then(|b| u32::try_from(b).ok())
                    .unwrap_or(0),
                deterministic: row.deterministic,
            });
        }
    }
    let mut database = xxhash_rust::xxh3::Xxh3::new();
    for part in [&identity.system, &identity.database] {
        database.update(&(part.len() as u64).to_le_bytes());
        database.update(part.as_bytes());
    }
    Catalog {
        database: database.digest128(),
        search_path: identity.search_path,
        tables,
    }
}

/// Foreign keys, rules (and views), inheritance and partitions, with
/// schema-qualified names.
fn cascades<Conn>(conn: &mut Conn) -> QueryResult<CascadeFacts>
where
    Conn: diesel::connection::LoadConnection<Backend = Pg>,
{
    use diesel::RunQueryDsl;
    let fks: Vec<ForeignKey> = diesel::sql_query(FOREIGN_KEYS).load(conn)?;
    let ruled: Vec<Ruled> = diesel::sql_query(RULED).load(conn)?;
    let inherits: Vec<Inherits> = diesel::sql_query(INHERITS).load(conn)?;
    Ok(assemble_cascades(fks, ruled, inherits))
}

const FOREIGN_KEYS: &str = "SELECT cn.nspname::text AS child_schema, c.relname::text AS child, \
     pn.nspname::text AS parent_schema, p.relname::text AS parent, \
     confdeltype IN ('c', 'n', 'd') AS on_delete, \
     confupdtype IN ('c', 'n', 'd') AS on_update, \
     confdeltype = 'c' AS delete_cascades, \
     CASE WHEN cardinality(k.conkey) = 1 THEN (SELECT a.attname::text FROM pg_catalog.pg_attribute a \
       WHERE a.attrelid = k.conrelid AND a.attnum = k.conkey[1]) END AS child_column, \
     CASE WHEN cardinality(k.confkey) = 1 THEN (SELECT a.attname::text FROM pg_catalog.pg_attribute a \
       WHERE a.attrelid = k.confrelid AND a.attnum = k.confkey[1]) END AS parent_column, \
     k.convalidated AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t \
       WHERE t.tgconstraint = k.oid AND t.tgenabled = 'D') AS enforced \
     FROM pg_catalog.pg_constraint k \
     JOIN pg_catalog.pg_class c ON c.oid = k.conrelid \
     JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace \
     JOIN pg_catalog.pg_class p ON p.oid = k.confrelid \
     JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace \
     WHERE contype = 'f'";

/// Rules other than a view's `_RETURN`, and views themselves.
const RULED: &str = "SELECT DISTINCT n.nspname::text AS schema, c.relname::text AS name \
     FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_catalog.pg_rewrite r ON r.ev_class = c.oid AND r.ev_type <> '1' \
     WHERE c.relkind = 'v' OR r.oid IS NOT NULL";

const INHERITS: &str = "SELECT cn.nspname::text AS child_schema, c.relname::text AS child, \
     pn.nspname::text AS parent_schema, p.relname::text AS parent \
     FROM pg_catalog.pg_inherits i \
     JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
     JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace \
     JOIN pg_catalog.pg_class p ON p.oid = i.inhparent \
     JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace";

fn assemble_cascades(
    fks: Vec<ForeignKey>,
    ruled: Vec<Ruled>,
    inherits: Vec<Inherits>,
) -> CascadeFacts {
    CascadeFacts {
        foreign_keys: fks
            .into_iter()
            .map(|fk| ForeignKeyFact {
                child: qualify(&fk.child_schema, &fk.child),
                parent: qualify(&fk.parent_schema, &fk.parent),
                on_delete: fk.on_delete,
                on_update: fk.on_update,
                columns: fk.child_column.zip(fk.parent_column),
                delete_cascades: fk.delete_cascades,
                enforced: fk.enforced,
            })
            .collect(),
        ruled: ruled.iter().map(|r| qualify(&r.schema, &r.name)).collect(),
        inherits: inherits
            .iter()
            .map(|i| {
                (
                    qualify(&i.child_schema, &i.child),
                    qualify(&i.parent_schema, &i.parent),
                )
            })
            .collect(),
    }
}

#[derive(diesel::QueryableByName)]
struct Inherits {
    #[diesel(sql_type = diesel::sql_types::Text)]
    child_schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    child: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    parent_schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    parent: String,
}

#[derive(diesel::QueryableByName)]
struct Ruled {
    #[diesel(sql_type = diesel::sql_types::Text)]
    schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

#[derive(diesel::QueryableByName)]
struct ForeignKey {
    #[diesel(sql_type = diesel::sql_types::Text)]
    child_schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    child: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    parent_schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    parent: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    on_delete: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    on_update: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    delete_cascades: bool,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    child_column: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    parent_column: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    enforced: bool,
}

/// Decode PostgreSQL's binary array format (one dimension only):
/// `ndim i32, has_null i32, elem_oid u32, [len i32, lbound i32], then
/// per element: len i32 (-1 for NULL) and the bytes`.
fn decode_array(bytes: &[u8]) -> Option<Vec<Bind>> {
    let mut rd = Reader(bytes);
    let ndim = rd.i32()?;
    let _has_null = rd.i32()?;
    let elem_oid = rd.i32()? as u32;
    match ndim {
        0 => return rd.0.is_empty().then(Vec::new),
        1 => {}
        _ => return None,
    }
    let len = usize::try_from(rd.i32()?).ok()?;
    let _lower_bound = rd.i32()?;
    // Never trust a length to size an allocation before the bytes are seen.
    let mut out = Vec::with_capacity(len.min(rd.0.len() / 4));
    for _ in 0..len {
        let n = rd.i32()?;
        let bytes = if n < 0 {
            None
        } else {
            Some(rd.take(n as usize)?.to_vec())
        };
        out.push(Bind {
            type_id: elem_oid,
            bytes,
        });
    }
    rd.0.is_empty().then_some(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn i32(&mut self) -> Option<i32> {
        let b = self.take(4)?;
        Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::prelude::*;

    diesel::table! {
        items (id) {
            id -> Int4,
            name -> Text,
            score -> Float8,
        }
    }

    #[test]
    fn renders_and_collects_binds() {
        let q = items::table
            .filter(items::id.eq(7))
            .filter(items::name.eq("x"));
        let sql = Pg::render(&q).unwrap();
        assert!(sql.contains("\"items\".\"id\" = $1"), "{sql}");
        let binds = Pg::collect_binds(&q).unwrap();
        assert_eq!(binds.len(), 2);
        assert_eq!(
            binds[0],
            Bind {
                type_id: 23,
                bytes: Some(7i32.to_be_bytes().to_vec())
            }
        );
        assert_eq!(
            binds[1],
            Bind {
                type_id: 25,
                bytes: Some(b"x".to_vec())
            }
        );
    }

    #[test]
    fn decodes_eq_any_arrays() {
        let q = items::table.filter(items::id.eq_any(vec![1, 2, 3]));
        let binds = Pg::collect_binds(&q).unwrap();
        assert_eq!(binds.len(), 1);
        let elems = Pg::array_elements(&binds[0]).unwrap();
        assert_eq!(elems.len(), 3);
        assert_eq!(
            elems[2],
            Bind {
                type_id: 23,
                bytes: Some(3i32.to_be_bytes().to_vec())
            }
        );
        let empty = items::table.filter(items::id.eq_any(Vec::<i32>::new()));
        let binds = Pg::collect_binds(&empty).unwrap();
        assert_eq!(Pg::array_elements(&binds[0]).unwrap(), vec![]);
    }

    #[test]
    fn rejects_malformed_arrays() {
        for bad in [
            &b""[..],
            &[0, 0, 0, 1][..],
            &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 23][..],
        ] {
            assert_eq!(decode_array(bad), None);
        }
        // Declares a million elements but carries none.
        let mut lying = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23];
        lying.extend_from_slice(&1_000_000i32.to_be_bytes());
        lying.extend_from_slice(&1i32.to_be_bytes());
        assert_eq!(decode_array(&lying), None);
    }

    #[test]
    fn floats_are_not_keyable() {
        let binds = Pg::collect_binds(&items::table.filter(items::score.eq(1.5))).unwrap();
        assert!(!Pg::is_keyable(binds[0].type_id));
        assert!(Pg::is_keyable(23) && Pg::is_keyable(25));
    }
}
