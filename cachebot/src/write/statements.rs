//! The statements the write API runs besides Diesel's own: the locking
//! read of an update's old images, and the one-statement update that
//! returns old and new images. Crate-private: the write API's traits name
//! them only in the bounds of their blanket impls.

use diesel::expression::Expression;
use diesel::pg::Pg;

use crate::backend::BackendImpl;
use diesel::query_builder::{AstPass, InsertStatement, QueryFragment, QueryId};
use diesel::query_source::QuerySource;
use diesel::{QueryResult, RunQueryDsl, Selectable};

/// `SELECT <model columns> FROM <table> <where> FOR UPDATE`: the old images
/// of an update's rows, locked until the update commits.
pub(crate) struct LockRows<M: Selectable<Pg>, T: QuerySource, W> {
    pub(crate) selection: diesel::dsl::AsSelect<M, Pg>,
    pub(crate) from: T::FromClause,
    pub(crate) where_clause: W,
}

impl<M, T, W> QueryFragment<Pg> for LockRows<M, T, W>
where
    M: Selectable<Pg>,
    diesel::dsl::AsSelect<M, Pg>: QueryFragment<Pg>,
    T: QuerySource,
    T::FromClause: QueryFragment<Pg>,
    W: QueryFragment<Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT ");
        self.selection.walk_ast(out.reborrow())?;
        out.push_sql(" FROM ");
        self.from.walk_ast(out.reborrow())?;
        self.where_clause.walk_ast(out.reborrow())?;
        out.push_sql(" FOR UPDATE");
        Ok(())
    }
}

impl<M: Selectable<Pg>, T: QuerySource, W> QueryId for LockRows<M, T, W> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<M, T, W> diesel::query_builder::Query for LockRows<M, T, W>
where
    M: Selectable<Pg>,
    T: QuerySource,
    diesel::dsl::AsSelect<M, Pg>: Expression,
{
    type SqlType = <diesel::dsl::AsSelect<M, Pg> as Expression>::SqlType;
}

impl<M: Selectable<Pg>, T: QuerySource, W, Conn> RunQueryDsl<Conn> for LockRows<M, T, W> {}

/// Names Diesel's private `Insert` operator through `InsertStatement`'s
/// default type parameter.
pub(crate) trait OperatorOf {
    type Op;
}

impl<T: QuerySource, U, Op, Ret> OperatorOf for InsertStatement<T, U, Op, Ret> {
    type Op = Op;
}

pub(crate) type PlainInsert<T, U> = <InsertStatement<T, U> as OperatorOf>::Op;

/// The names a single-statement update needs: the model's columns as the
/// CTE's output, and the primary key to join the CTE back to its table.
pub(crate) struct CteShape {
    /// `"cachebot_old"."c1", "cachebot_old"."c2", ...`
    pub(crate) old_columns: String,
    /// `"t"."pk" = "cachebot_old"."pk" AND ...`
    pub(crate) join: String,
}

impl CteShape {
    /// `None` when the selection is not plain columns of one unqualified
    /// table that include the primary key (then the two-statement path runs).
    pub(crate) fn of<S: QueryFragment<Pg>, K: QueryFragment<Pg>>(
        selection: &S,
        pk: &K,
    ) -> Option<CteShape> {
        let cols = crate::extract::column_list(&Pg::render(selection).ok()?)?;
        let pk = crate::extract::column_list(&Pg::render(pk).ok()?)?;
        let table = &cols.first()?.0;
        let plain = |c: &[(String, String)]| c.iter().all(|(t, _)| t == table && !t.contains('.'));
        if !plain(&cols) || !plain(&pk) || !pk.iter().all(|p| cols.contains(p)) {
            return None;
        }
        let q = |ident: &str| format!("\"{}\"", ident.replace('"', "\"\""));
        let old_columns = cols
            .iter()
            .map(|(_, c)| format!("\"cachebot_old\".{}", q(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let join = pk
            .iter()
            .map(|(t, c)| format!("{}.{} = \"cachebot_old\".{}", q(t), q(c), q(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        Some(CteShape { old_columns, join })
    }
}

/// `WITH "cachebot_old" AS (SELECT <model> FROM <table> <where> FOR UPDATE)
/// UPDATE <table> SET <changes> FROM "cachebot_old" WHERE <pk = old pk>
/// RETURNING <old model>, <new model>`: old and new images of exactly the
/// rows locked, in one statement.
pub(crate) struct CteUpdate<M: Selectable<Pg>, T: QuerySource, W, V> {
    pub(crate) selection: diesel::dsl::AsSelect<M, Pg>,
    pub(crate) from: T::FromClause,
    pub(crate) where_clause: W,
    pub(crate) changeset: V,
    pub(crate) shape: CteShape,
}

impl<M, T, W, V> QueryFragment<Pg> for CteUpdate<M, T, W, V>
where
    M: Selectable<Pg>,
    diesel::dsl::AsSelect<M, Pg>: QueryFragment<Pg>,
    T: QuerySource,
    T::FromClause: QueryFragment<Pg>,
    W: QueryFragment<Pg>,
    V: QueryFragment<Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // The text depends only on the model, the table and the target's
        // shape (fragments whose text varies, like IN lists, mark themselves
        // unsafe): PostgreSQL may keep it prepared.
        out.push_sql("WITH \"cachebot_old\" AS (SELECT ");
        self.selection.walk_ast(out.reborrow())?;
        out.push_sql(" FROM ");
        self.from.walk_ast(out.reborrow())?;
        self.where_clause.walk_ast(out.reborrow())?;
        out.push_sql(" FOR UPDATE) UPDATE ");
        self.from.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        self.changeset.walk_ast(out.reborrow())?;
        out.push_sql(" FROM \"cachebot_old\" WHERE ");
        out.push_sql(&self.shape.join);
        out.push_sql(" RETURNING ");
        out.push_sql(&self.shape.old_columns);
        out.push_sql(", ");
        self.selection.walk_ast(out.reborrow())?;
        Ok(())
    }
}

impl<M: Selectable<Pg>, T: QuerySource, W, V> QueryId for CteUpdate<M, T, W, V> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<M, T, W, V> diesel::query_builder::Query for CteUpdate<M, T, W, V>
where
    M: Selectable<Pg>,
    T: QuerySource,
    diesel::dsl::AsSelect<M, Pg>: Expression,
{
    type SqlType = (
        <diesel::dsl::AsSelect<M, Pg> as Expression>::SqlType,
        <diesel::dsl::AsSelect<M, Pg> as Expression>::SqlType,
    );
}

impl<M: Selectable<Pg>, T: QuerySource, W, V, Conn> RunQueryDsl<Conn> for CteUpdate<M, T, W, V> {}
