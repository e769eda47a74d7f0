//! Per-relation pins of a top-level SELECT.
//!
//! Each relation R of a FROM list gets a formula: the AND of the WHERE clause, the ON clauses
//! whose scope includes R (inner-join ONs outside any nullable side; the ON of an outer join
//! when R is on its nullable side) and the inner-join ONs that hold for every row of a subtree R
//! is joined with. Each condition carries whether R may be null-extended relative to it, which
//! only matters for `IS NULL` (true of a null-extended row, so it pins nothing there). The
//! formula is then evaluated to a DNF of equality conjunctions over R's columns, with column
//! equalities among its top-level conjuncts carrying values between relations.

use std::collections::{BTreeMap, HashMap};

use sqlparser::ast::{
    BinaryOperator, Expr, InTarget, JoinConstraint, JoinOperator, Query, Select, SetExpr,
    TableFactor, TableWithJoins, Value,
};

use super::collect::Collector;
use super::{
    finish, join_name, name_parts, norm_ident, Atom, Dnf, Extracted, Uncacheable, ValueRef,
    MAX_CONJUNCTIONS, MAX_RELATIONS,
};

/// Analyse a parsed query statement.
pub(super) fn analyze_query(query: &Query) -> Extracted {
    let mut cx = Collector::default();
    let mut pinned: BTreeMap<String, Option<Dnf>> = BTreeMap::new();
    top_query(&mut cx, query, &mut pinned);
    if cx.not_read {
        return Extracted::Uncacheable(Uncacheable::NotARead);
    }
    if let Some(name) = cx.volatile {
        return Extracted::Uncacheable(Uncacheable::Volatile(name));
    }
    let shape = match query.body.as_ref() {
        SetExpr::Select(select) if !cx.all_whole => super::shape::of(query, select),
        _ => super::Shape::default(),
    };
    finish(pinned, cx.whole, cx.all_whole, true, shape)
}

fn top_query(cx: &mut Collector, query: &Query, pinned: &mut BTreeMap<String, Option<Dnf>>) {
    if query.with.is_some() {
        // CTEs are not modelled: every table named anywhere is whole.
        cx.all_whole = true;
        cx.query(query);
        return;
    }
    let mut stack = vec![query.body.as_ref()];
    while let Some(body) = stack.pop() {
        match body {
            SetExpr::Select(select) => top_select(cx, select, pinned),
            SetExpr::Query(inner) => top_query(cx, inner, pinned),
            // UNION/INTERSECT/EXCEPT: each branch separately; the results merge per table.
            SetExpr::SetOperation { left, right, .. } => {
                stack.push(right);
                stack.push(left);
            }
            other => cx.set_expr(other),
        }
    }
    cx.query_tail(query);
}

/// Merge one relation's deps into the table's: whole wins, else union.
fn merge(pinned: &mut BTreeMap<String, Option<Dnf>>, table: &str, deps: Option<Dnf>) {
    match pinned.get_mut(table) {
        None => {
            pinned.insert(table.to_string(), deps);
        }
        Some(slot) => match (slot.as_mut(), deps) {
            (Some(have), Some(more)) => have.extend(more),
            _ => *slot = None,
        },
    }
}

/// A relation of a FROM list.
#[derive(Debug)]
struct Rel {
    /// The table, `None` for derived tables, functions and CTE references.
    table: Option<String>,
    /// How single-part qualifiers name it: the alias, else the table's last name part.
    ref_name: Option<String>,
    /// How multi-part qualifiers name it (unaliased tables only): the normalised full name.
    full: Option<String>,
    /// An alias with a column list renames the columns: pins cannot name them.
    renamed_columns: bool,
}

/// A FROM list as a join tree.
#[derive(Debug)]
enum Node<'a> {
    Leaf(usize),
    Join {
        left: Box<Node<'a>>,
        right: Box<Node<'a>>,
        on: Option<&'a Expr>,
        outer: bool,
    },
}

/// Relations in a FROM list, nested joins included.
fn count_relations(from: &[TableWithJoins]) -> usize {
    fn factor(f: &TableFactor) -> usize {
        match f {
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => count_relations(std::slice::from_ref(table_with_joins.as_ref())),
            _ => 1,
        }
    }
    from.iter()
        .map(|t| factor(&t.relation) + t.joins.iter().map(|j| factor(&j.relation)).sum::<usize>())
        .sum()
}

fn top_select(cx: &mut Collector, select: &Select, pinned: &mut BTreeMap<String, Option<Dnf>>) {
    if count_relations(&select.from) > MAX_RELATIONS {
        cx.all_whole = true;
        for table in &select.from {
            cx.table_with_joins(table);
        }
        cx.select_clauses(select);
        return;
    }
    let mut builder = Builder {
        cx,
        rels: Vec::new(),
    };
    let mut tree: Option<Node> = None;
    for table in &select.from {
        let node = builder.table_with_joins(table);
        tree = Some(match tree {
            None => node,
            // `FROM a, b` is an inner join without condition.
            Some(left) => Node::Join {
                left: Box::new(left),
                right: Box::new(node),
                on: None,
                outer: false,
            },
        });
    }
    let Builder { cx, rels } = builder;
    cx.select_clauses(select);

    let mut conds: Vec<Vec<(&Expr, bool)>> = vec![Vec::new(); rels.len()];
    if let Some(tree) = &tree {
        let root = select.selection.iter().map(|w| (w, false)).collect();
        assign(tree, root, &mut conds);
    }
    for (index, rel) in rels.iter().enumerate() {
        let Some(table) = &rel.table else { continue };
        let deps = if cx.all_whole || rel.renamed_columns {
            None
        } else {
            Eval::new(&rels, index, &conds[index]).formula(&conds[index])
        };
        merge(pinned, table, deps);
    }
}

struct Builder<'c> {
    cx: &'c mut Collector,
    rels: Vec<Rel>,
}

impl<'c> Builder<'c> {
    fn push(&mut self, rel: Rel) -> Node<'static> {
        self.rels.push(rel);
        Node::Leaf(self.rels.len() - 1)
    }

    fn table_with_joins<'a>(&mut self, table: &'a TableWithJoins) -> Node<'a> {
        let mut node = self.factor(&table.relation);
        for join in &table.joins {
            let right = self.factor(&join.relation);
            let (outer, constraint) = match &join.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) => (false, Some(c)),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (true, Some(c)),
                other => {
                    // RIGHT/FULL/CROSS/SEMI/ANTI/APPLY...: not modelled.
                    self.cx.all_whole = true;
                    self.cx.join_operator(other);
                    (false, None)
                }
            };
            let on = match constraint {
                Some(JoinConstraint::On(e)) => {
                    self.cx.expr(e);
                    Some(e)
                }
                Some(JoinConstraint::None) | None => None,
                Some(JoinConstraint::Using(_) | JoinConstraint::UsingAlias(..))
                | Some(JoinConstraint::Natural) => {
                    // Implicit column equalities we do not resolve.
                    self.cx.all_whole = true;
                    None
                }
            };
            node = Node::Join {
                left: Box::new(node),
                right: Box::new(right),
                on,
                outer,
            };
        }
        node
    }

    fn factor<'a>(&mut self, factor: &'a TableFactor) -> Node<'a> {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args: None,
                with_hints,
                version,
                sample,
                ..
            } => {
                if !with_hints.is_empty() || version.is_some() || sample.is_some() {
                    // Let the collector check these parts (TABLESAMPLE is volatile).
                    self.cx.table_factor(factor);
                }
                let parts = name_parts(name);
                let is_cte = self.cx.cte_in_scope(&parts);
                let alias_name = alias.as_ref().map(|a| norm_ident(&a.name));
                let full = join_name(parts.clone());
                self.push(Rel {
                    table: (!is_cte).then(|| full.clone()),
                    ref_name: alias_name.clone().or_else(|| parts.last().cloned()),
                    full: alias_name.is_none().then_some(full),
                    renamed_columns: alias.as_ref().is_some_and(|a| !a.columns.is_empty()),
                })
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.table_with_joins(table_with_joins),
            other => {
                // Derived table, function, UNNEST...: every table inside is whole.
                self.cx.table_factor(other);
                let alias = match other {
                    TableFactor::Derived { lateral, alias, .. }
                    | TableFactor::Function { lateral, alias, .. } => {
                        if *lateral {
                            self.cx.all_whole = true;
                        }
                        alias.as_ref()
                    }
                    TableFactor::Table { alias, .. }
                    | TableFactor::UNNEST { alias, .. }
                    | TableFactor::TableFunction { alias, .. } => alias.as_ref(),
                    _ => {
                        self.cx.all_whole = true;
                        None
                    }
                };
                self.push(Rel {
                    table: None,
                    ref_name: alias.map(|a| norm_ident(&a.name)),
                    full: None,
                    renamed_columns: false,
                })
            }
        }
    }
}

/// ON conditions that hold (are TRUE) for every row a subtree produces: its inner-join ONs
/// outside any nullable side.
fn certain<'a>(node: &Node<'a>, out: &mut Vec<(&'a Expr, bool)>) {
    match node {
        Node::Leaf(_) => {}
        Node::Join {
            left,
            right,
            on,
            outer: false,
        } => {
            certain(left, out);
            certain(right, out);
            // Attached elsewhere in the tree: treat the receiving relation as nullable.
            out.extend(on.map(|e| (e, true)));
        }
        Node::Join {
            left, outer: true, ..
        } => certain(left, out),
    }
}

/// Hand each leaf the conditions of its formula, with whether the leaf may be null-extended
/// relative to each.
fn assign<'a>(
    node: &Node<'a>,
    inherited: Vec<(&'a Expr, bool)>,
    out: &mut [Vec<(&'a Expr, bool)>],
) {
    match node {
        Node::Leaf(index) => {
            if let Some(slot) = out.get_mut(*index) {
                *slot = inherited;
            }
        }
        Node::Join {
            left,
            right,
            on,
            outer: false,
        } => {
            let mut for_left = inherited.clone();
            certain(right, &mut for_left);
            for_left.extend(on.map(|e| (e, false)));
            let mut for_right = inherited;
            certain(left, &mut for_right);
            for_right.extend(on.map(|e| (e, false)));
            assign(left, for_left, out);
            assign(right, for_right, out);
        }
        Node::Join {
            left,
            right,
            on,
            outer: true,
        } => {
            // The nullable side: everything above now sees it possibly null-extended; its own
            // ON applies to it alone.
            let mut for_right: Vec<_> = inherited.iter().map(|(e, _)| (*e, true)).collect();
            certain(left, &mut for_right);
            for_right.extend(on.map(|e| (e, false)));
            assign(left, inherited, out);
            assign(right, for_right, out);
        }
    }
}

/// Strip redundant parentheses.
pub(super) fn strip(mut e: &Expr) -> &Expr {
    while let Expr::Nested(inner) = e {
        e = inner;
    }
    e
}

/// The operands of a chain of one boolean operator (through parentheses), without recursion.
pub(super) fn flatten(e: &Expr, op: BinaryOperator) -> Vec<&Expr> {
    let mut out = Vec::new();
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match strip(e) {
            Expr::BinaryOp { left, op: o, right } if *o == op => {
                stack.push(right);
                stack.push(left);
            }
            other => out.push(other),
        }
    }
    out
}

/// `$n` as a 0-based bind index.
fn placeholder(e: &Expr) -> Option<usize> {
    match strip(e) {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => {
                let digits = p.strip_prefix('$')?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                digits.parse::<usize>().ok()?.checked_sub(1)
            }
            _ => None,
        },
        _ => None,
    }
}

/// A column of one relation.
type Col = (usize, String);

/// Which relation a qualifier (normalised name parts) names among relations named by `names`:
/// each one's single-part name (its alias, else its table's last name part) and, unaliased,
/// its full name. `None` when it names none or several.
pub(super) fn relation_of<'a>(
    names: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>,
    qualifier: &[String],
) -> Option<usize> {
    let full = join_name(qualifier.to_vec());
    let mut found = None;
    for (index, (single, whole)) in names.enumerate() {
        let hit = match qualifier {
            [one] => single == Some(one.as_str()),
            _ => whole == Some(full.as_str()),
        };
        if hit {
            if found.is_some() {
                return None;
            }
            found = Some(index);
        }
    }
    found
}

/// A plain column reference (`"t"."c"`, or `c` when the FROM list has a single relation, of
/// `count`), resolved to its relation by `relation` (see [`relation_of`]).
pub(super) fn column_of(
    e: &Expr,
    count: usize,
    relation: impl FnOnce(&[String]) -> Option<usize>,
) -> Option<Col> {
    match strip(e) {
        // Unqualified: only when there is no choice.
        Expr::Identifier(ident) if count == 1 => Some((0, norm_ident(ident))),
        Expr::CompoundIdentifier(parts) => {
            let (column, qualifier) = parts.split_last()?;
            if qualifier.is_empty() {
                return None;
            }
            let qualifier: Vec<String> = qualifier.iter().map(norm_ident).collect();
            Some((relation(&qualifier)?, norm_ident(column)))
        }
        _ => None,
    }
}

/// AND of two deps: cross product, capped (over the cap keep the narrower side).
fn and(a: Option<Dnf>, b: Option<Dnf>) -> Option<Dnf> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => {
            if a.len().saturating_mul(b.len()) > MAX_CONJUNCTIONS {
                return Some(if b.len() < a.len() { b } else { a });
            }
            let mut out = Dnf::new();
            for x in &a {
                for y in &b {
                    let mut atoms: Vec<Atom> = x.iter().chain(y).cloned().collect();
                    atoms.sort();
                    atoms.dedup();
                    out.insert(atoms);
                }
            }
            Some(out)
        }
    }
}

/// Evaluation of one relation's formula.
struct Eval<'r> {
    rels: &'r [Rel],
    target: usize,
    /// Union-find over the columns linked by `A.x = B.y` conjuncts.
    index: HashMap<Col, usize>,
    parent: Vec<usize>,
    cols: Vec<Col>,
}

impl<'r> Eval<'r> {
    fn new(rels: &'r [Rel], target: usize, conds: &[(&Expr, bool)]) -> Self {
        let mut eval = Eval {
            rels,
            target,
            index: HashMap::new(),
            parent: Vec::new(),
            cols: Vec::new(),
        };
        for (cond, _) in conds {
            for conjunct in flatten(cond, BinaryOperator::And) {
                if let Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                } = conjunct
                {
                    eval.link(left, right);
                }
            }
        }
        eval
    }

    /// Record `left = right` if it equates columns (pairwise for row constructors).
    fn link(&mut self, left: &Expr, right: &Expr) {
        match (strip(left), strip(right)) {
            (Expr::Tuple(l), Expr::Tuple(r)) if l.len() == r.len() => {
                for (a, b) in l.iter().zip(r) {
                    self.link(a, b);
                }
            }
            (l, r) => {
                if let (Some(a), Some(b)) = (self.column(l), self.column(r)) {
                    self.union(a, b);
                }
            }
        }
    }

    fn id(&mut self, col: Col) -> usize {
        if let Some(&id) = self.index.get(&col) {
            return id;
        }
        let id = self.parent.len();
        self.parent.push(id);
        self.cols.push(col.clone());
        self.index.insert(col, id);
        id
    }

    fn find(&self, mut id: usize) -> usize {
        while let Some(&parent) = self.parent.get(id) {
            if parent == id {
                break;
            }
            id = parent;
        }
        id
    }

    fn union(&mut self, a: Col, b: Col) {
        let (a, b) = (self.id(a), self.id(b));
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra] = rb;
        }
    }

    /// The target's columns equal to `col` (through links), `col` itself included.
    fn target_columns(&self, col: &Col) -> Vec<String> {
        match self.index.get(col) {
            None if col.0 == self.target => vec![col.1.clone()],
            None => Vec::new(),
            Some(&id) => {
                let root = self.find(id);
                (0..self.cols.len())
                    .filter(|&other| self.cols[other].0 == self.target && self.find(other) == root)
                    .map(|other| self.cols[other].1.clone())
                    .collect()
            }
        }
    }

    /// A plain column reference, resolved to its relation.
    fn column(&self, e: &Expr) -> Option<Col> {
        column_of(e, self.rels.len(), |q| {
            let names = self
                .rels
                .iter()
                .map(|r| (r.ref_name.as_deref(), r.full.as_deref()));
            relation_of(names, q)
        })
    }

    /// `col = value` for the target: one conjunction over every target column linked to `col`.
    fn atom(&self, col: &Col, value: ValueRef) -> Option<Dnf> {
        let mut atoms: Vec<Atom> = self
            .target_columns(col)
            .into_iter()
            .map(|column| Atom {
                column,
                value: value.clone(),
            })
            .collect();
        if atoms.is_empty() {
            return None;
        }
        atoms.sort();
        atoms.dedup();
        Some(Dnf::from([atoms]))
    }

    /// `left = right`: a column and a placeholder (either order), or row constructors of them
    /// (`(a, b) = ($1, $2)` is `a = $1 AND b = $2`).
    fn eq(&self, left: &Expr, right: &Expr) -> Option<Dnf> {
        match (strip(left), strip(right)) {
            (Expr::Tuple(l), Expr::Tuple(r)) => {
                if l.len() != r.len() || l.is_empty() {
                    return None;
                }
                l.iter()
                    .zip(r)
                    .fold(None, |acc, (a, b)| and(acc, self.eq(a, b)))
            }
            (l, r) => {
                let (col, bind) = match (self.column(l), placeholder(r)) {
                    (Some(col), Some(bind)) => (col, bind),
                    _ => (self.column(r)?, placeholder(l)?),
                };
                self.atom(&col, ValueRef::Bind(bind))
            }
        }
    }

    /// The AND of the formula's conditions.
    fn formula(&self, conds: &[(&Expr, bool)]) -> Option<Dnf> {
        conds.iter().fold(None, |acc, (cond, nullable)| {
            and(acc, self.eval(cond, *nullable))
        })
    }

    /// Deps of the target implied by `e` being TRUE; `None` = pins nothing.
    fn eval(&self, e: &Expr, nullable: bool) -> Option<Dnf> {
        let e = strip(e);
        match e {
            Expr::BinaryOp {
                op: BinaryOperator::And,
                ..
            } => flatten(e, BinaryOperator::And)
                .into_iter()
                .fold(None, |acc, term| and(acc, self.eval(term, nullable))),
            Expr::BinaryOp {
                op: BinaryOperator::Or,
                ..
            } => {
                let mut out = Dnf::new();
                for term in flatten(e, BinaryOperator::Or) {
                    out.extend(self.eval(term, nullable)?);
                }
                Some(out)
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => self.eq(left, right),
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                right,
                ..
            } => self.atom(&self.column(left)?, ValueRef::AnyOf(placeholder(right)?)),
            Expr::In {
                expr,
                target: InTarget::List(items),
                negated: false,
                ..
            } => {
                // `x IN (a, b)` is `x = a OR x = b`.
                if items.is_empty() {
                    return None;
                }
                let mut out = Dnf::new();
                for item in items {
                    out.extend(self.eq(expr, item)?);
                }
                Some(out)
            }
            Expr::IsNull(inner) => {
                // Only about the target itself (never through links), and only where the target
                // cannot be null-extended: there IS NULL is also true of a missing row.
                let col = self.column(inner)?;
                if col.0 != self.target || nullable {
                    return None;
                }
                Some(Dnf::from([vec![Atom {
                    column: col.1,
                    value: ValueRef::Null,
                }]]))
            }
            _ => None,
        }
    }
}
