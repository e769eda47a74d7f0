//! The backend seam: everything that differs between databases.
//!
//! The crate never walks Diesel's typed AST itself (its operator nodes are
//! private). It lets the real backend do what it already does for every
//! query: render the SQL text and serialise each bind to its wire bytes.
//! What differs per database is collected in one crate-private trait,
//! [`BackendImpl`]: how to render and collect, which SQL types compare by
//! byte equality (only those can be keyed by value), how an array bind is
//! laid out, which SQL dialect to parse, and how to read the catalog (what
//! names mean, which columns compare by bytes, which writes cascade).
//! PostgreSQL is the first backend (`pg`); SQLite and MySQL are additions:
//! a module implementing [`BackendImpl`] and the public marker
//! [`CacheBackend`].

mod pg;

pub(crate) use sealed::BackendImpl;

pub(crate) use crate::scope::Catalog;

/// A Diesel backend the cache can read queries for: PostgreSQL
/// (`diesel::pg::Pg`) today.
///
/// Sealed: the machinery behind it is private to the crate, so that adding
/// a backend (or changing how one is read) is not a breaking change.
pub trait CacheBackend:
    diesel::backend::Backend + Default + Sized + 'static + sealed::BackendImpl
{
}

/// One bind parameter as the backend would send it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bind {
    /// The backend's identifier of the bind's SQL type (PostgreSQL: the OID;
    /// custom types get a stable synthetic id derived from their name).
    pub(crate) type_id: u32,
    /// The wire bytes, `None` for SQL `NULL`.
    pub(crate) bytes: Option<Vec<u8>>,
}

/// The SQL dialect a backend renders, which the crate's SQL analysis reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SqlDialect {
    /// PostgreSQL: `"quoted"` identifiers, `$n` placeholders.
    PostgreSql,
}

/// What the catalog says about writes that reach tables no statement
/// names. Names are schema-qualified.
#[derive(Debug, Default)]
pub struct CascadeFacts {
    pub(crate) foreign_keys: Vec<ForeignKeyFact>,
    /// Tables with a rule that is not a view's SELECT, and views.
    pub(crate) ruled: Vec<String>,
    /// (child, parent) of inheritance and partitioning.
    pub(crate) inherits: Vec<(String, String)>,
}

/// One foreign key: whether deleting or updating the parent writes the
/// child (CASCADE, SET NULL, SET DEFAULT).
#[derive(Debug)]
pub(crate) struct ForeignKeyFact {
    pub(crate) child: String,
    pub(crate) parent: String,
    pub(crate) on_delete: bool,
    pub(crate) on_update: bool,
    /// `ON DELETE CASCADE` (the action deletes child rows; `on_delete`
    /// also counts `SET NULL` and `SET DEFAULT`, which change them).
    pub(crate) delete_cascades: bool,
    /// (child column, parent column) of a single-column key.
    pub(crate) columns: Option<(String, String)>,
    /// Validated, and its triggers not disabled: every child row's value
    /// has its parent row (outside `session_replication_role = replica`).
    pub(crate) enforced: bool,
}

mod sealed {
    use diesel::query_builder::QueryFragment;
    use diesel::QueryResult;

    use super::{Bind, CascadeFacts, Catalog, SqlDialect};

    /// What the crate needs of a backend; see the module docs.
    pub trait BackendImpl: diesel::backend::Backend + Default + Sized + 'static {
        /// Render a query fragment to SQL text, exactly as Diesel sends it.
        fn render<Q: QueryFragment<Self> + ?Sized>(query: &Q) -> QueryResult<String>;

        /// Collect the bind parameters of a query fragment, in placeholder
        /// order.
        fn collect_binds<Q: QueryFragment<Self> + ?Sized>(query: &Q) -> QueryResult<Vec<Bind>>;

        /// Whether two values of this SQL type are equal in SQL exactly when
        /// their bind bytes are equal. Only such values are keyed by value;
        /// filters on other types depend on the whole table.
        fn is_keyable(type_id: u32) -> bool;

        /// The elements of an array bind (`col = ANY($n)`), or `None` when
        /// the bind is not a one-dimensional array this backend can decode.
        fn array_elements(bind: &Bind) -> Option<Vec<Bind>>;

        /// The SQL dialect of rendered queries.
        fn dialect() -> SqlDialect;

        /// Learn, in one or two round trips, what table names mean on
        /// `conn`: the database's identity, the tables its search path makes
        /// visible (plus the schema-qualified names in `qualified`, written
        /// as the SQL analysis writes them), and their columns' types and
        /// collations.
        fn catalog<Conn>(conn: &mut Conn, qualified: &[String]) -> QueryResult<Catalog>
        where
            Conn: diesel::connection::LoadConnection<Backend = Self>;

        /// The foreign keys, rules, views and partitions of the database.
        fn cascades<Conn>(conn: &mut Conn) -> QueryResult<CascadeFacts>
        where
            Conn: diesel::connection::LoadConnection<Backend = Self>;

        /// [`catalog`](Self::catalog) on an async connection.
        #[cfg(feature = "async")]
        fn catalog_async<'c, Conn>(
            conn: &'c mut Conn,
            qualified: &'c [String],
        ) -> impl std::future::Future<Output = QueryResult<Catalog>> + Send + 'c
        where
            Conn: diesel_async::AsyncConnection<Backend = Self>;

        /// [`cascades`](Self::cascades) on an async connection.
        #[cfg(feature = "async")]
        fn cascades_async<Conn>(
            conn: &mut Conn,
        ) -> impl std::future::Future<Output = QueryResult<CascadeFacts>> + Send + '_
        where
            Conn: diesel_async::AsyncConnection<Backend = Self>;
    }
}
