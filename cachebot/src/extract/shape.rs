//! What a simple SELECT reads of each table, and how rows can enter its result.
//!
//! The pins (see `pins`) say which rows of a table can change a result. Two finer facts make
//! more reads exact, and both come from the statement alone:
//!
//! - **The columns read** of each table (select list, WHERE, ON, GROUP BY, HAVING, ORDER BY). A
//!   query that reads no column of a pinned table but the pinned ones (`COUNT(*) .. WHERE
//!   user_id = $1`) changes only when rows enter or leave the pinned value, not when a member
//!   row's other columns change.
//! - **How a table's rows enter the result**, for a table whose rows are returned and that no
//!   equality pins: a single-table query's rows enter by insert or by a change to a column its
//!   WHERE or ORDER BY reads ([`Entry::Alone`]); a table reached only through an inner join's
//!   column equality enters when the other side's rows change ([`Entry::Through`]; the plan
//!   checks the foreign key that makes this true). Either way the returned rows themselves are
//!   the rest of the dependency.
//!
//! The walk accepts a short list of expression forms (the ones Diesel renders, and the usual
//! operators); anything else, any sub-query, any column it cannot attribute to one relation
//! leaves the facts unknown, which keeps today's wider dependencies.

use std::collections::{BTreeMap, BTreeSet};

use sqlparser::ast::{
    Distinct, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, InTarget,
    JoinConstraint, JoinOperator, LimitClause, OrderByKind, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, TableFactor, TableWithJoins,
};

use super::pins::{column_of, flatten, relation_of, strip};
use super::{join_name, name_parts, norm_ident};

/// The facts of one analysed SELECT; empty when the statement is not simple enough.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Per table (as the analysis names it), every column the query reads of it, when that is
    /// known. A table not listed may be read in any column.
    pub(crate) reads: BTreeMap<String, BTreeSet<String>>,
    /// The select list as (table, column), when every item is a plain column of a table.
    pub(crate) projection: Option<Vec<(String, String)>>,
    /// How rows of a table can enter the result, for the tables where the statement says.
    pub(crate) entry: BTreeMap<String, Entry>,
}

/// How rows of one table can enter (or leave) a query's result, besides changes to the rows
/// it returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The query's only relation, without OFFSET, grouping or `DISTINCT ON`: a row enters by
    /// being inserted or by a change to one of these columns (the ones WHERE and ORDER BY read).
    Alone {
        /// Columns read by WHERE and ORDER BY.
        columns: BTreeSet<String>,
    },
    /// Joined (inner join, once) only by `table.column = via_table.via_column`, its columns read
    /// nowhere else but the select list (and ORDER BY, without LIMIT or OFFSET): which of its
    /// rows are in the result is decided by `via_table`'s rows, when a valid foreign key from
    /// `via_table.via_column` to `table.column` guarantees every such row has its match.
    Through {
        /// The joined table's column.
        column: String,
        /// The other side of the equality.
        via_table: String,
        /// Its column.
        via_column: String,
    },
}

/// One relation of the FROM list.
struct Rel {
    /// The table as the analysis names it.
    table: String,
    /// How single-part qualifiers name it.
    ref_name: String,
    /// How multi-part qualifiers name it (unaliased tables only).
    full: Option<String>,
    /// Joined by a plain inner join (or the first relation).
    inner: bool,
}

/// Column references found in some part of the statement, per relation.
#[derive(Default)]
struct Refs {
    /// (relation, column).
    cols: BTreeSet<(usize, String)>,
    /// Relations all of whose columns are read (`t.*`).
    all: BTreeSet<usize>,
    /// Something could not be attributed or is outside the accepted forms.
    unknown: bool,
}

/// The facts of `query`, whose body is `select` (no CTE, no set operation).
pub(super) fn of(query: &Query, select: &Select) -> Shape {
    of_select(query, select).unwrap_or_default()
}

fn of_select(query: &Query, select: &Select) -> Option<Shape> {
    if query.with.is_some()
        || !query.locks.is_empty()
        || query.for_clause.is_some()
        || query.settings.is_some()
        || query.format_clause.is_some()
        || !query.pipe_operators.is_empty()
        || !matches!(query.body.as_ref(), SetExpr::Select(_))
        || select.into.is_some()
        || select.top.is_some()
        || select.exclude.is_some()
        || !select.lateral_views.is_empty()
        || select.prewhere.is_some()
        || !select.connect_by.is_empty()
        || !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
        || !select.named_window.is_empty()
        || select.qualify.is_some()
        || select.value_table_mode.is_some()
    {
        return None;
    }
    let (rels, ons) = relations(&select.from)?;
    let cx = Cx { rels: &rels };

    let mut projection = Refs::default();
    let mut items: Option<Vec<(String, String)>> = Some(Vec::new());
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                let plain = cx.column(e);
                match (&mut items, plain) {
                    (Some(list), Some((rel, col))) => list.push((rels[rel].table.clone(), col)),
                    _ => items = None,
                }
                cx.walk(e, &mut projection);
            }
            SelectItem::Wildcard(_) => {
                projection.all.extend(0..rels.len());
                items = None;
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(n), _) => {
                match cx.relation(&name_parts(n)) {
                    Some(rel) => {
                        projection.all.insert(rel);
                    }
                    None => projection.unknown = true,
                }
                items = None;
            }
            _ => return None,
        }
    }

    let mut filter = Refs::default();
    if let Some(w) = &select.selection {
        cx.walk(w, &mut filter);
    }
    let mut grouping = Refs::default();
    let grouped = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return None;
            }
            for e in exprs {
                cx.walk(e, &mut grouping);
            }
            !exprs.is_empty()
        }
        GroupByExpr::All(_) => return None,
    } || select.having.is_some();
    if let Some(h) = &select.having {
        cx.walk(h, &mut grouping);
    }
    let distinct_on = match &select.distinct {
        Some(Distinct::On(exprs)) => {
            for e in exprs {
                cx.walk(e, &mut grouping);
            }
            true
        }
        Some(Distinct::Distinct) | None => false,
        Some(_) => return None,
    };
    let mut order = Refs::default();
    if let Some(order_by) = &query.order_by {
        if order_by.interpolate.is_some() {
            return None;
        }
        match &order_by.kind {
            OrderByKind::Expressions(list) => {
                for item in list {
                    if item.with_fill.is_some() {
                        return None;
                    }
                    cx.walk(&item.expr, &mut order);
                }
            }
            OrderByKind::All(_) => return None,
        }
    }
    let mut limits = Refs::default();
    let (limited, offset) = match &query.limit_clause {
        None => (false, false),
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return None;
            }
            for e in limit.iter().chain(offset.iter().map(|o| &o.value)) {
                cx.walk(e, &mut limits);
            }
            (limit.is_some(), offset.is_some())
        }
        Some(LimitClause::OffsetCommaLimit { .. }) => (true, true),
    };
    let limited = limited || query.fetch.is_some();
    let mut joins: Vec<Refs> = Vec::new();
    for on in ons.iter().flatten() {
        let mut refs = Refs::default();
        cx.walk(on, &mut refs);
        joins.push(refs);
    }
    if limits.unknown || !limits.cols.is_empty() {
        return None;
    }

    // Columns read, per table.
    let parts: Vec<&Refs> = [&projection, &filter, &grouping, &order]
        .into_iter()
        .chain(joins.iter())
        .collect();
    let mut reads: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if !parts.iter().any(|r| r.unknown) {
        let mut whole: BTreeSet<&str> = BTreeSet::new();
        for r in &parts {
            for &rel in &r.all {
                whole.insert(&rels[rel].table);
            }
        }
        for rel in &rels {
            if !whole.contains(rel.table.as_str()) {
                reads.entry(rel.table.clone()).or_default();
            }
        }
        for r in &parts {
            for (rel, col) in &r.cols {
                if let Some(set) = reads.get_mut(&rels[*rel].table) {
                    set.insert(col.clone());
                }
            }
        }
    }

    let mut entry = BTreeMap::new();
    let plain = !grouped && !distinct_on && !offset && !parts.iter().any(|r| r.unknown);
    if plain && rels.len() == 1 {
        let mut columns = BTreeSet::new();
        for r in [&filter, &order] {
            columns.extend(r.cols.iter().map(|(_, c)| c.clone()));
        }
        if filter.all.is_empty() && order.all.is_empty() {
            entry.insert(rels[0].table.clone(), Entry::Alone { columns });
        }
    } else if plain {
        for (index, rel) in rels.iter().enumerate() {
            if let Some(through) = through(&cx, index, &ons, &filter, &order, limited) {
                if rels.iter().filter(|r| r.table == rel.table).count() == 1 && rel.inner {
                    entry.insert(rel.table.clone(), through);
                }
            }
        }
    }
    Some(Shape {
        reads,
        projection: items,
        entry,
    })
}

/// Whether relation `target` is reached only by one column equality of an inner join's ON.
fn through(
    cx: &Cx<'_>,
    target: usize,
    ons: &[Option<&Expr>],
    filter: &Refs,
    order: &Refs,
    limited: bool,
) -> Option<Entry> {
    let mentions =
        |r: &Refs| r.all.contains(&target) || r.cols.iter().any(|(rel, _)| *rel == target);
    if mentions(filter) || (limited && mentions(order)) || order.all.contains(&target) {
        return None;
    }
    let mut found = None;
    for on in ons.iter().flatten() {
        for conjunct in flatten(on, sqlparser::ast::BinaryOperator::And) {
            let mut refs = Refs::default();
            cx.walk(conjunct, &mut refs);
            if !mentions(&refs) {
                continue;
            }
            // The only conjunct mentioning the target: `target.c = other.f`.
            if found.is_some() {
                return None;
            }
            let Expr::BinaryOp {
                left,
                op: sqlparser::ast::BinaryOperator::Eq,
                right,
            } = strip(conjunct)
            else {
                return None;
            };
            let (a, b) = (cx.column(left)?, cx.column(right)?);
            let ((_, column), (other, via_column)) = if a.0 == target && b.0 != target {
                (a, b)
            } else if b.0 == target && a.0 != target {
                (b, a)
            } else {
                return None;
            };
            if !cx.rels[other].inner {
                return None;
            }
            found = Some(Entry::Through {
                column,
                via_table: cx.rels[other].table.clone(),
                via_column,
            });
        }
    }
    found
}

/// The FROM list's relations (plain tables only) and the ON condition of each join.
fn relations(from: &[TableWithJoins]) -> Option<(Vec<Rel>, Vec<Option<&Expr>>)> {
    let mut rels = Vec::new();
    let mut ons = Vec::new();
    // `FROM a, b` joins without a condition: not an inner join by one equality.
    let single_item = from.len() == 1;
    for twj in from {
        joined(twj, single_item, &mut rels, &mut ons)?;
    }
    if rels.is_empty() {
        return None;
    }
    // With an outer join anywhere, which side a row may be null-extended on is not modelled
    // here: no relation counts as inner-joined.
    if rels.iter().skip(1).any(|r| !r.inner) {
        for rel in &mut rels {
            rel.inner = false;
        }
    }
    Some((rels, ons))
}

/// The relations of one FROM item, joins and parenthesised joins (Diesel's
/// `FROM (a INNER JOIN b ON ..)`) flattened, with each join's ON.
fn joined<'a>(
    twj: &'a TableWithJoins,
    inner: bool,
    rels: &mut Vec<Rel>,
    ons: &mut Vec<Option<&'a Expr>>,
) -> Option<()> {
    factor(&twj.relation, inner, rels, ons)?;
    for join in &twj.joins {
        let (inner_join, constraint) = match &join.join_operator {
            JoinOperator::Join(c) | JoinOperator::Inner(c) => (inner, c),
            JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (false, c),
            _ => return None,
        };
        let JoinConstraint::On(on) = constraint else {
            return None;
        };
        factor(&join.relation, inner_join, rels, ons)?;
        ons.push(Some(on));
    }
    Some(())
}

fn factor<'a>(
    factor: &'a TableFactor,
    inner: bool,
    rels: &mut Vec<Rel>,
    ons: &mut Vec<Option<&'a Expr>>,
) -> Option<()> {
    match factor {
        TableFactor::NestedJoin {
            table_with_joins,
            alias: None,
        } => joined(table_with_joins, inner, rels, ons),
        other => {
            rels.push(table_rel(other, inner)?);
            Some(())
        }
    }
}

fn table_rel(factor: &TableFactor, inner: bool) -> Option<Rel> {
    let TableFactor::Table {
        name,
        alias,
        args: None,
        with_hints,
        version: None,
        sample: None,
        ..
    } = factor
    else {
        return None;
    };
    if !with_hints.is_empty() || alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
        return None;
    }
    let parts = name_parts(name);
    let table = join_name(parts.clone());
    let alias = alias.as_ref().map(|a| norm_ident(&a.name));
    Some(Rel {
        ref_name: alias.clone().or_else(|| parts.last().cloned())?,
        full: alias.is_none().then(|| table.clone()),
        table,
        inner,
    })
}

struct Cx<'r> {
    rels: &'r [Rel],
}

impl Cx<'_> {
    /// Which relation a qualifier names (none if unknown or ambiguous).
    fn relation(&self, qualifier: &[String]) -> Option<usize> {
        let names = self
            .rels
            .iter()
            .map(|r| (Some(r.ref_name.as_str()), r.full.as_deref()));
        relation_of(names, qualifier)
    }

    /// A plain column reference, resolved to its relation.
    fn column(&self, e: &Expr) -> Option<(usize, String)> {
        column_of(e, self.rels.len(), |q| self.relation(q))
    }

    /// Record every column `root` reads; anything outside the accepted forms is unknown.
    fn walk(&self, root: &Expr, refs: &mut Refs) {
        let mut stack = vec![root];
        while let Some(e) = stack.pop() {
            if refs.unknown {
                return;
            }
            match e {
                Expr::Identifier(_) | Expr::CompoundIdentifier(_) => match self.column(e) {
                    Some(col) => {
                        refs.cols.insert(col);
                    }
                    None => refs.unknown = true,
                },
                Expr::Value(_) | Expr::TypedString(_) => {}
                Expr::Nested(inner)
                | Expr::UnaryOp { expr: inner, .. }
                | Expr::IsNull(inner)
                | Expr::IsNotNull(inner)
                | Expr::IsTrue(inner)
                | Expr::IsNotTrue(inner)
                | Expr::IsFalse(inner)
                | Expr::IsNotFalse(inner)
                | Expr::IsUnknown(inner)
                | Expr::IsNotUnknown(inner)
                | Expr::Cast { expr: inner, .. } => stack.push(inner),
                Expr::BinaryOp { left, right, .. }
                | Expr::IsDistinctFrom(left, right)
                | Expr::IsNotDistinctFrom(left, right)
                | Expr::AnyOp { left, right, .. }
                | Expr::AllOp { left, right, .. } => {
                    stack.push(left);
                    stack.push(right);
                }
                Expr::In {
                    expr,
                    target: InTarget::List(list),
                    ..
                } => {
                    stack.push(expr);
                    stack.extend(list);
                }
                Expr::Between {
                    expr, low, high, ..
                } => {
                    stack.push(expr);
                    stack.push(low);
                    stack.push(high);
                }
                Expr::Like {
                    expr,
                    pattern,
                    escape_char: None,
                    ..
                }
                | Expr::ILike {
                    expr,
                    pattern,
                    escape_char: None,
                    ..
                } => {
                    stack.push(expr);
                    stack.push(pattern);
                }
                Expr::Tuple(items) => stack.extend(items),
                Expr::Case {
                    operand,
                    conditions,
                    else_result,
                    ..
                } => {
                    stack.extend(operand.as_deref());
                    for when in conditions {
                        stack.push(&when.condition);
                        stack.push(&when.result);
                    }
                    stack.extend(else_result.as_deref());
                }
                Expr::Function(f) => {
                    if f.filter.is_some()
                        || f.over.is_some()
                        || !f.within_group.is_empty()
                        || !matches!(f.parameters, FunctionArguments::None)
                    {
                        refs.unknown = true;
                        return;
                    }
                    match &f.args {
                        FunctionArguments::None => {}
                        FunctionArguments::List(list) if list.clauses.is_empty() => {
                            for arg in &list.args {
                                match arg {
                                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => stack.push(e),
                                    // `COUNT(*)` reads no column.
                                    FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => {}
                                    _ => {
                                        refs.unknown = true;
                                        return;
                                    }
                                }
                            }
                        }
                        _ => {
                            refs.unknown = true;
                            return;
                        }
                    }
                }
                _ => {
                    refs.unknown = true;
                    return;
                }
            }
        }
    }
}
