//! Property tests of [`super::analyze`] and [`super::write_targets`] (issue 4).
//!
//! Queries are generated in the shape Diesel renders them (quoted identifiers, `$n` binds,
//! parenthesised joins and predicates, `= ANY($n)`, sub-selects, unions, LIMIT/OFFSET) over three
//! tables with the same three integer columns, together with a tiny database of rows. A small
//! evaluator runs the generated query with SQL's three-valued logic; the soundness properties
//! then remove each row in turn and, whenever that changes the result (the full joined rows,
//! before projection and LIMIT, which can only find more rows), require the row to match one
//! conjunction of its table's pins (or the table to be whole). Single-table queries, two-table
//! inner joins and the general mix (left joins, three relations, self-joins through aliases,
//! comma joins, correlated sub-selects, UNION) are separate properties.
//!
//! The other properties: no panic and determinism on generated, mutated (byte edits, token
//! insertions, truncations) and arbitrary input; every table a query names is in its analysis;
//! write targets of generated writes and batches are exact, and a batch with an unparseable
//! statement still reports every write of the others (or `Unknown`).
//!
//! Default case counts (1 000 to 3 000 per property) keep the module around 12 s in a debug
//! build on two idle cores; set `CACHEBOT_PROPTEST_CASES=n` to run at least n cases per property.
//!
//! Long run: `CACHEBOT_PROPTEST_CASES=200000 cargo test --release -p cachebot --lib
//! extract::proptests`, i.e. 200 000 cases for each of the seven properties (161 s): no
//! failure. The soundness properties checked about 160 000 result-changing rows against pins
//! (and 520 000 against whole tables). The evaluator itself was cross-checked against
//! PostgreSQL 15 on 10 000 generated queries and databases (`SELECT *` variants, identical
//! results). The only bugs found are stack overflows in the parser, see
//! [`known_stack_overflows`].

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fmt::Write as _;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sqlparser::dialect::PostgreSqlDialect;

use crate::backend::SqlDialect;

use super::tests::show;
use super::*;

// ---------------------------------------------------------------------------------------------
// Schema and values

const TABLES: [&str; 3] = ["users", "posts", "tags"];
const COLUMNS: [&str; 3] = ["id", "user_id", "status"];
/// Aliases of FROM relations (a table's second appearance, or when the generator asks).
const ALIASES: [&str; 4] = ["r1", "r2", "r3", "r4"];
/// Aliases of sub-select relations, by nesting depth.
const SUB_ALIASES: [&str; 8] = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"];

/// A column value: a small integer or NULL.
type Val = Option<i64>;
/// A row of any table.
type Row = [Val; 3];
/// The rows of each table of [`TABLES`].
type Db = [Vec<Row>; 3];

/// A bind's value.
#[derive(Clone, Debug, PartialEq)]
enum BindVal {
    Scalar(Val),
    Array(Vec<Val>),
}

// ---------------------------------------------------------------------------------------------
// What the strategies generate (scope-free: column references are resolved when rendering)

/// A column reference: the `rel`-th innermost relation in scope (modulo), column `col`.
#[derive(Clone, Copy, Debug)]
struct Sel {
    rel: u8,
    col: u8,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Ge => ">=",
        }
    }

    fn apply(self, a: i64, b: i64) -> bool {
        match self {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Lt => a < b,
            Op::Gt => a > b,
            Op::Le => a <= b,
            Op::Ge => a >= b,
        }
    }
}

#[derive(Clone, Debug)]
enum GRhs {
    Bind(Val),
    Lit(Val),
    Col(Sel),
}

#[derive(Clone, Debug)]
enum GPred {
    /// `col op rhs`, or `rhs op col` when flipped.
    Cmp {
        col: Sel,
        op: Op,
        rhs: GRhs,
        flip: bool,
    },
    /// `col = ANY($n)`.
    AnyEq {
        col: Sel,
        arr: Vec<Val>,
    },
    /// `col != ALL($n)`.
    NeAll {
        col: Sel,
        arr: Vec<Val>,
    },
    /// `col [NOT] IN ($i, $j, ...)`.
    In {
        col: Sel,
        items: Vec<Val>,
        negated: bool,
    },
    /// `col IS [NOT] NULL`.
    IsNull {
        col: Sel,
        negated: bool,
    },
    /// `(c1, c2) = ($i, $j)`, or the other way round.
    RowEq {
        pairs: Vec<(Sel, Val)>,
        flip: bool,
    },
    /// `(c1, c2) IN (($i, $j), ...)`.
    RowIn {
        cols: (Sel, Sel),
        rows: Vec<(Val, Val)>,
    },
    /// `EXISTS (SELECT ...)`.
    Exists(Box<GSub>),
    /// `col IN (SELECT ...)`.
    InSub {
        col: Sel,
        sub: Box<GSub>,
    },
    Not(Box<GPred>),
    And(Box<GPred>, Box<GPred>),
    Or(Box<GPred>, Box<GPred>),
    /// Redundant parentheses.
    Paren(Box<GPred>),
}

/// `SELECT "s"."col" FROM "table" [AS "s"] [WHERE filter]`, possibly correlated.
#[derive(Clone, Debug)]
struct GSub {
    table: u8,
    alias: bool,
    col: u8,
    filter: Option<GPred>,
}

#[derive(Clone, Debug)]
enum GFrom {
    Leaf {
        table: u8,
        alias: bool,
        /// Written `"public"."table"`.
        schema: bool,
    },
    Join {
        left: Box<GFrom>,
        right: Box<GFrom>,
        outer: bool,
        /// `right_col = left_col`, resolved in the right and the left subtree.
        on: (Sel, Sel),
        /// AND-ed to the equality.
        extra: Option<GPred>,
        parens: bool,
    },
}

#[derive(Clone, Debug)]
struct GSelect {
    /// Comma-separated FROM items.
    from: Vec<GFrom>,
    filter: Option<GPred>,
}

#[derive(Clone, Debug)]
struct GQuery {
    /// One SELECT, or two combined with UNION [ALL].
    branches: Vec<GSelect>,
    union_all: bool,
    order: Option<bool>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Clone, Debug)]
enum GWrite {
    Update {
        table: u8,
        set_col: u8,
        value: Val,
        filter: Option<GPred>,
        returning: bool,
    },
    Delete {
        table: u8,
        filter: Option<GPred>,
        returning: bool,
    },
    Insert {
        table: u8,
        rows: Vec<Row>,
        conflict: u8,
        returning: bool,
    },
    InsertSelect {
        table: u8,
        source: GQuery,
    },
}

#[derive(Clone, Debug)]
enum GStmt {
    Read(GQuery),
    Write(GWrite),
    /// A statement that writes nothing (transaction control, SET, SHOW).
    Quiet(&'static str),
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// Values: 0, 1 or NULL, so that equalities between rows and binds hold often.
fn val() -> BoxedStrategy<Val> {
    prop_oneof![1 => Just(None), 6 => (0i64..2).prop_map(Some)].boxed()
}

fn row() -> impl Strategy<Value = Row> {
    (val(), val(), val()).prop_map(|(a, b, c)| [a, b, c])
}

fn db() -> impl Strategy<Value = Db> {
    (vec(row(), 0..7), vec(row(), 0..7), vec(row(), 0..7)).prop_map(|(a, b, c)| [a, b, c])
}

fn sel() -> impl Strategy<Value = Sel> {
    (0u8..4, 0u8..3).prop_map(|(rel, col)| Sel { rel, col })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Eq),
        2 => Just(Op::Ne),
        1 => Just(Op::Lt),
        1 => Just(Op::Gt),
        1 => Just(Op::Le),
        1 => Just(Op::Ge),
    ]
}

fn rhs() -> impl Strategy<Value = GRhs> {
    prop_oneof![
        8 => val().prop_map(GRhs::Bind),
        1 => val().prop_map(GRhs::Lit),
        2 => sel().prop_map(GRhs::Col),
    ]
}

fn atom() -> BoxedStrategy<GPred> {
    prop_oneof![
        8 => (sel(), op(), rhs(), any::<bool>())
            .prop_map(|(col, op, rhs, flip)| GPred::Cmp { col, op, rhs, flip }),
        3 => (sel(), vec(val(), 0..4)).prop_map(|(col, arr)| GPred::AnyEq { col, arr }),
        1 => (sel(), vec(val(), 0..3)).prop_map(|(col, arr)| GPred::NeAll { col, arr }),
        3 => (sel(), vec(val(), 1..4), prop::bool::weighted(0.2))
            .prop_map(|(col, items, negated)| GPred::In { col, items, negated }),
        3 => (sel(), prop::bool::weighted(0.3))
            .prop_map(|(col, negated)| GPred::IsNull { col, negated }),
        1 => (vec((sel(), val()), 2..4), any::<bool>())
            .prop_map(|(pairs, flip)| GPred::RowEq { pairs, flip }),
        1 => ((sel(), sel()), vec((val(), val()), 1..4))
            .prop_map(|(cols, rows)| GPred::RowIn { cols, rows }),
    ]
    .boxed()
}

/// Boolean trees of atoms; `subs` allows EXISTS / IN sub-selects.
fn pred(subs: bool) -> BoxedStrategy<GPred> {
    atom()
        .prop_recursive(5, 32, 2, move |inner| {
            let sub = (
                0u8..3,
                any::<bool>(),
                0u8..3,
                prop::option::of(inner.clone()),
            )
                .prop_map(|(table, alias, col, filter)| {
                    Box::new(GSub {
                        table,
                        alias,
                        col,
                        filter,
                    })
                });
            let compound = prop_oneof![
                4 => (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| GPred::And(Box::new(a), Box::new(b))),
                4 => (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| GPred::Or(Box::new(a), Box::new(b))),
                2 => inner.clone().prop_map(|a| GPred::Not(Box::new(a))),
                1 => inner.clone().prop_map(|a| GPred::Paren(Box::new(a))),
            ];
            if subs {
                prop_oneof![
                    10 => compound,
                    1 => sub.clone().prop_map(GPred::Exists),
                    1 => (sel(), sub).prop_map(|(col, sub)| GPred::InSub { col, sub }),
                ]
                .boxed()
            } else {
                compound.boxed()
            }
        })
        .boxed()
}

/// Atoms that pin a column (when TRUE, the column equals a bind, an array element, or NULL).
fn pinning_atom() -> BoxedStrategy<GPred> {
    prop_oneof![
        4 => (sel(), val(), any::<bool>()).prop_map(|(col, v, flip)| GPred::Cmp {
            col,
            op: Op::Eq,
            rhs: GRhs::Bind(v),
            flip,
        }),
        2 => (sel(), vec(val(), 0..4)).prop_map(|(col, arr)| GPred::AnyEq { col, arr }),
        2 => (sel(), vec(val(), 1..4)).prop_map(|(col, items)| GPred::In {
            col,
            items,
            negated: false,
        }),
        1 => sel().prop_map(|col| GPred::IsNull {
            col,
            negated: false,
        }),
        1 => (vec((sel(), val()), 2..4), any::<bool>())
            .prop_map(|(pairs, flip)| GPred::RowEq { pairs, flip }),
        1 => ((sel(), sel()), vec((val(), val()), 1..4))
            .prop_map(|(cols, rows)| GPred::RowIn { cols, rows }),
    ]
    .boxed()
}

/// AND/OR trees of pinning atoms.
fn pinning() -> BoxedStrategy<GPred> {
    pinning_atom()
        .prop_recursive(3, 8, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| GPred::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| GPred::Or(Box::new(a), Box::new(b))),
                inner.prop_map(|a| GPred::Paren(Box::new(a))),
            ]
        })
        .boxed()
}

/// WHERE clauses: arbitrary trees, often AND-ed with (or replaced by) a pinning tree so that the
/// pins are not all whole.
fn filter(subs: bool) -> BoxedStrategy<GPred> {
    let and = |a: GPred, b: GPred| GPred::And(Box::new(a), Box::new(b));
    prop_oneof![
        3 => pred(subs),
        2 => pinning(),
        3 => (pinning(), pred(subs)).prop_map(move |(a, b)| and(a, b)),
        2 => (pred(subs), pinning()).prop_map(move |(a, b)| and(a, b)),
        2 => (pinning(), pinning(), pred(subs)).prop_map(move |(a, b, c)| and(and(a, c), b)),
    ]
    .boxed()
}

fn leaf() -> impl Strategy<Value = GFrom> {
    (
        0u8..3,
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(table, alias, schema)| GFrom::Leaf {
            table,
            alias,
            schema,
        })
}

fn join(
    left: impl Strategy<Value = GFrom>,
    right: impl Strategy<Value = GFrom>,
    outer: impl Strategy<Value = bool>,
    extra: impl Strategy<Value = Option<GPred>>,
) -> impl Strategy<Value = GFrom> {
    (left, right, outer, sel(), sel(), extra, any::<bool>()).prop_map(
        |(left, right, outer, r, l, extra, parens)| GFrom::Join {
            left: Box::new(left),
            right: Box::new(right),
            outer,
            on: (r, l),
            extra,
            parens,
        },
    )
}

/// FROM lists of one to three relations: inner and left joins, nested either side, and comma
/// joins.
fn from_any() -> BoxedStrategy<Vec<GFrom>> {
    let extra = || prop::option::weighted(0.3, filter(false));
    let outer = || prop::bool::weighted(0.4);
    prop_oneof![
        3 => leaf().prop_map(|l| vec![l]),
        4 => join(leaf(), leaf(), outer(), extra()).prop_map(|j| vec![j]),
        2 => join(join(leaf(), leaf(), outer(), extra()), leaf(), outer(), extra())
            .prop_map(|j| vec![j]),
        2 => join(leaf(), join(leaf(), leaf(), outer(), extra()), outer(), extra())
            .prop_map(|j| vec![j]),
        1 => (leaf(), leaf()).prop_map(|(a, b)| vec![a, b]),
        1 => (join(leaf(), leaf(), outer(), extra()), leaf()).prop_map(|(a, b)| vec![a, b]),
    ]
    .boxed()
}

fn tail() -> impl Strategy<Value = (Option<bool>, Option<i64>, Option<i64>)> {
    (
        prop::option::weighted(0.3, any::<bool>()),
        prop::option::weighted(0.3, 0i64..10),
        prop::option::weighted(0.15, 0i64..10),
    )
}

fn query_of(
    from: BoxedStrategy<Vec<GFrom>>,
    filter: BoxedStrategy<GPred>,
    unions: bool,
) -> BoxedStrategy<GQuery> {
    let select = (from, prop::option::weighted(0.9, filter))
        .prop_map(|(from, filter)| GSelect { from, filter });
    let branches = if unions {
        vec(select, 1..=2).boxed()
    } else {
        select.prop_map(|s| vec![s]).boxed()
    };
    (
        prop::option::weighted(0.15, branches.clone()),
        branches,
        any::<bool>(),
        tail(),
    )
        .prop_map(
            |(maybe_union, branches, union_all, (order, limit, offset))| {
                // Unions are rarer than single SELECTs.
                let branches = match maybe_union {
                    Some(b) if b.len() == 2 => b,
                    _ => branches.into_iter().take(1).collect(),
                };
                GQuery {
                    branches,
                    union_all,
                    order,
                    limit,
                    offset,
                }
            },
        )
        .boxed()
}

/// Single-table queries with arbitrary WHERE trees (sub-selects included).
fn query_single() -> BoxedStrategy<GQuery> {
    query_of(leaf().prop_map(|l| vec![l]).boxed(), filter(true), false)
}

/// `t1 INNER JOIN t2 ON (t2.x = t1.y)` with arbitrary WHERE trees.
fn query_inner_join() -> BoxedStrategy<GQuery> {
    let from = join(leaf(), leaf(), Just(false), Just(None))
        .prop_map(|j| vec![j])
        .boxed();
    query_of(from, filter(true), false)
}

/// Everything the generator knows.
fn query_any() -> BoxedStrategy<GQuery> {
    query_of(from_any(), filter(true), true)
}

fn write() -> BoxedStrategy<GWrite> {
    prop_oneof![
        3 => (0u8..3, 0u8..3, val(), prop::option::of(pred(true)), any::<bool>()).prop_map(
            |(table, set_col, value, filter, returning)| GWrite::Update {
                table,
                set_col,
                value,
                filter,
                returning,
            }
        ),
        2 => (0u8..3, prop::option::of(pred(true)), any::<bool>()).prop_map(
            |(table, filter, returning)| GWrite::Delete {
                table,
                filter,
                returning,
            }
        ),
        2 => (0u8..3, vec(row(), 1..3), 0u8..3, any::<bool>()).prop_map(
            |(table, rows, conflict, returning)| GWrite::Insert {
                table,
                rows,
                conflict,
                returning,
            }
        ),
        1 => (0u8..3, query_single())
            .prop_map(|(table, source)| GWrite::InsertSelect { table, source }),
    ]
    .boxed()
}

fn statement() -> BoxedStrategy<GStmt> {
    prop_oneof![
        3 => query_any().prop_map(GStmt::Read),
        4 => write().prop_map(GStmt::Write),
        1 => prop::sample::select(vec![
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
            "SAVEPOINT \"diesel_savepoint_1\"",
            "RELEASE SAVEPOINT \"diesel_savepoint_1\"",
            "SET TIME ZONE 'UTC'",
            "SET CLIENT_ENCODING TO 'UTF8'",
            "SHOW search_path",
        ])
        .prop_map(GStmt::Quiet),
    ]
    .boxed()
}

/// Tokens for garbage: SQL-ish words and punctuation, and some troublemakers.
const TOKENS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "IS",
    "NULL",
    "ANY",
    "ALL",
    "EXISTS",
    "JOIN",
    "INNER",
    "LEFT",
    "OUTER",
    "ON",
    "UNION",
    "WITH",
    "AS",
    "ORDER",
    "BY",
    "LIMIT",
    "OFFSET",
    "INSERT",
    "INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "RETURNING",
    "LATERAL",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "ARRAY",
    "ROW",
    "FOR",
    "SHARE",
    "DISTINCT",
    "GROUP",
    "HAVING",
    "count",
    "now",
    "lower",
    "\"users\"",
    "\"posts\"",
    "\"tags\"",
    "\"id\"",
    "\"user_id\"",
    "users",
    "posts",
    "t",
    ".",
    ",",
    "(",
    ")",
    "((",
    "))",
    "[",
    "]",
    "$1",
    "$2",
    "$0",
    "$99999999999999999999",
    "=",
    "!=",
    "<>",
    "<",
    ">=",
    "::",
    "::int[]",
    "||",
    "+",
    "-",
    "*",
    "/",
    ";",
    "'",
    "''",
    "'now'",
    "\"",
    "$$",
    "$a$",
    "E'\\'",
    "--",
    "/*",
    "*/",
    "\\",
    "1",
    "1.5e10",
    "-1",
    "0x",
    "é",
    "\u{0}",
    "\u{feff}",
    "\n",
    "\t",
    "COLLATE",
    "AT",
    "TIME",
    "ZONE",
];

fn garbage_token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(TOKENS)
}

fn token_soup() -> impl Strategy<Value = String> {
    (vec(garbage_token(), 0..60), any::<bool>())
        .prop_map(|(toks, spaced)| toks.join(if spaced { " " } else { "" }))
}

/// One edit of a text: delete, insert a character or token, replace, truncate, duplicate.
#[derive(Clone, Debug)]
enum Edit {
    Delete(Index),
    InsertChar(Index, char),
    InsertToken(Index, &'static str),
    Replace(Index, char),
    Truncate(Index),
    Duplicate(Index, Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let ch = prop_oneof![
        4 => prop::sample::select(
            "()\"'$;,.-*/ =<>!|:[]{}\\\n0123456789aAzZ_".chars().collect::<Vec<_>>()
        ),
        1 => any::<char>(),
    ];
    prop_oneof![
        3 => any::<Index>().prop_map(Edit::Delete),
        3 => (any::<Index>(), ch.clone()).prop_map(|(i, c)| Edit::InsertChar(i, c)),
        3 => (any::<Index>(), garbage_token()).prop_map(|(i, t)| Edit::InsertToken(i, t)),
        2 => (any::<Index>(), ch).prop_map(|(i, c)| Edit::Replace(i, c)),
        1 => any::<Index>().prop_map(Edit::Truncate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Duplicate(a, b)),
    ]
}

fn apply_edits(text: &str, edits: &[Edit]) -> String {
    let mut cs: Vec<char> = text.chars().collect();
    for edit in edits {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
        match edit {
            Edit::Delete(i) if !cs.is_empty() => {
                let k = i.index(cs.len());
                cs.remove(k);
            }
            Edit::Delete(_) => {}
            Edit::InsertChar(i, c) => {
                let k = at(i, cs.len());
                cs.insert(k, *c);
            }
            Edit::InsertToken(i, t) => {
                let k = at(i, cs.len());
                cs.splice(k..k, t.chars());
            }
            Edit::Replace(i, c) if !cs.is_empty() => {
                let k = i.index(cs.len());
                cs[k] = *c;
            }
            Edit::Replace(..) => {}
            Edit::Truncate(i) => {
                let k = at(i, cs.len());
                cs.truncate(k);
            }
            Edit::Duplicate(a, b) if !cs.is_empty() => {
                let (x, y) = (a.index(cs.len()), b.index(cs.len()));
                let (lo, hi) = (x.min(y), x.max(y).min(x.min(y) + 40));
                let piece: Vec<char> = cs[lo..hi].to_vec();
                cs.splice(hi..hi, piece);
            }
            Edit::Duplicate(..) => {}
        }
    }
    cs.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// Rendering: SQL text, binds, and the resolved tree the evaluator runs

/// An operand with its relation resolved to a name in scope.
#[derive(Clone, Debug)]
enum Opnd {
    Col(&'static str, usize),
    Bind(usize),
    Lit(Val),
}

#[derive(Clone, Debug)]
enum Pred {
    /// Operands in text order.
    Cmp(Opnd, Op, Opnd),
    /// `col = ANY($n)` (any) or `col != ALL($n)`.
    Quant {
        col: Opnd,
        any: bool,
        bind: usize,
    },
    In {
        lhs: Opnd,
        items: Vec<Opnd>,
        negated: bool,
    },
    IsNull(Opnd, bool),
    RowEq(Vec<Opnd>, Vec<Opnd>),
    RowIn(Vec<Opnd>, Vec<Vec<Opnd>>),
    Exists(Box<Sub>),
    InSub(Opnd, Box<Sub>),
    Not(Box<Pred>),
    And(Box<Pred>, Box<Pred>),
    Or(Box<Pred>, Box<Pred>),
}

#[derive(Clone, Debug)]
struct Sub {
    table: usize,
    name: &'static str,
    col: usize,
    filter: Option<Pred>,
}

#[derive(Clone, Debug)]
enum FromItem {
    Leaf {
        table: usize,
        name: &'static str,
    },
    Join {
        left: Box<FromItem>,
        right: Box<FromItem>,
        outer: bool,
        on: Pred,
    },
}

#[derive(Clone, Debug)]
struct Select {
    from: Vec<FromItem>,
    filter: Option<Pred>,
}

/// A rendered query.
#[derive(Clone, Debug)]
struct Rendered {
    sql: String,
    binds: Vec<BindVal>,
    branches: Vec<Select>,
    /// Every table named anywhere (FROM lists and sub-selects).
    named: BTreeSet<usize>,
}

#[derive(Default)]
struct Cx {
    sql: String,
    binds: Vec<BindVal>,
    named: BTreeSet<usize>,
}

impl Cx {
    fn bind(&mut self, value: BindVal) -> usize {
        self.binds.push(value);
        let _ = write!(self.sql, "${}", self.binds.len());
        self.binds.len() - 1
    }

    fn col(&mut self, sel: Sel, scope: &[&'static str]) -> Opnd {
        let name = scope[scope.len() - 1 - sel.rel as usize % scope.len()];
        let col = sel.col as usize % COLUMNS.len();
        let _ = write!(self.sql, "\"{name}\".\"{}\"", COLUMNS[col]);
        Opnd::Col(name, col)
    }

    fn rhs(&mut self, rhs: &GRhs, scope: &[&'static str]) -> Opnd {
        match rhs {
            GRhs::Bind(v) => Opnd::Bind(self.bind(BindVal::Scalar(*v))),
            GRhs::Lit(v) => {
                match v {
                    Some(v) => {
                        let _ = write!(self.sql, "{v}");
                    }
                    None => self.sql.push_str("NULL"),
                }
                Opnd::Lit(*v)
            }
            GRhs::Col(sel) => self.col(*sel, scope),
        }
    }

    /// A predicate where a comparison may stand bare: compound ones get parentheses.
    fn operand_pred(&mut self, p: &GPred, scope: &[&'static str], depth: usize) -> Pred {
        if matches!(p, GPred::And(..) | GPred::Or(..)) {
            self.sql.push('(');
            let out = self.pred(p, scope, depth);
            self.sql.push(')');
            out
        } else {
            self.pred(p, scope, depth)
        }
    }

    fn pred(&mut self, p: &GPred, scope: &[&'static str], depth: usize) -> Pred {
        match p {
            GPred::Cmp { col, op, rhs, flip } => {
                if *flip {
                    let a = self.rhs(rhs, scope);
                    let _ = write!(self.sql, " {} ", op.text());
                    let b = self.col(*col, scope);
                    Pred::Cmp(a, *op, b)
                } else {
                    let a = self.col(*col, scope);
                    let _ = write!(self.sql, " {} ", op.text());
                    let b = self.rhs(rhs, scope);
                    Pred::Cmp(a, *op, b)
                }
            }
            GPred::AnyEq { col, arr } | GPred::NeAll { col, arr } => {
                let any = matches!(p, GPred::AnyEq { .. });
                let col = self.col(*col, scope);
                self.sql.push_str(if any { " = ANY(" } else { " != ALL(" });
                let bind = self.bind(BindVal::Array(arr.clone()));
                self.sql.push(')');
                Pred::Quant { col, any, bind }
            }
            GPred::In {
                col,
                items,
                negated,
            } => {
                let lhs = self.col(*col, scope);
                self.sql
                    .push_str(if *negated { " NOT IN (" } else { " IN (" });
                let mut out = Vec::new();
                for (k, item) in items.iter().enumerate() {
                    if k > 0 {
                        self.sql.push_str(", ");
                    }
                    out.push(Opnd::Bind(self.bind(BindVal::Scalar(*item))));
                }
                self.sql.push(')');
                Pred::In {
                    lhs,
                    items: out,
                    negated: *negated,
                }
            }
            GPred::IsNull { col, negated } => {
                let col = self.col(*col, scope);
                self.sql
                    .push_str(if *negated { " IS NOT NULL" } else { " IS NULL" });
                Pred::IsNull(col, *negated)
            }
            GPred::RowEq { pairs, flip } => {
                let mut cols = Vec::new();
                let mut binds = Vec::new();
                let mut side = |cx: &mut Cx, columns: bool| {
                    cx.sql.push('(');
                    for (k, (sel, v)) in pairs.iter().enumerate() {
                        if k > 0 {
                            cx.sql.push_str(", ");
                        }
                        if columns {
                            cols.push(cx.col(*sel, scope));
                        } else {
                            binds.push(Opnd::Bind(cx.bind(BindVal::Scalar(*v))));
                        }
                    }
                    cx.sql.push(')');
                };
                side(self, !*flip);
                self.sql.push_str(" = ");
                side(self, *flip);
                if *flip {
                    Pred::RowEq(binds, cols)
                } else {
                    Pred::RowEq(cols, binds)
                }
            }
            GPred::RowIn { cols, rows } => {
                self.sql.push('(');
                let a = self.col(cols.0, scope);
                self.sql.push_str(", ");
                let b = self.col(cols.1, scope);
                self.sql.push_str(") IN (");
                let mut out = Vec::new();
                for (k, (x, y)) in rows.iter().enumerate() {
                    self.sql.push_str(if k > 0 { ", (" } else { "(" });
                    let x = Opnd::Bind(self.bind(BindVal::Scalar(*x)));
                    self.sql.push_str(", ");
                    let y = Opnd::Bind(self.bind(BindVal::Scalar(*y)));
                    self.sql.push(')');
                    out.push(vec![x, y]);
                }
                self.sql.push(')');
                Pred::RowIn(vec![a, b], out)
            }
            GPred::Exists(sub) => {
                self.sql.push_str("EXISTS ");
                Pred::Exists(Box::new(self.sub(sub, scope, depth)))
            }
            GPred::InSub { col, sub } => {
                let col = self.col(*col, scope);
                self.sql.push_str(" IN ");
                Pred::InSub(col, Box::new(self.sub(sub, scope, depth)))
            }
            GPred::Not(inner) => {
                self.sql.push_str("NOT (");
                let inner = self.pred(inner, scope, depth);
                self.sql.push(')');
                Pred::Not(Box::new(inner))
            }
            GPred::And(a, b) | GPred::Or(a, b) => {
                let a = self.operand_pred(a, scope, depth);
                let and = matches!(p, GPred::And(..));
                self.sql.push_str(if and { " AND " } else { " OR " });
                let b = self.operand_pred(b, scope, depth);
                if and {
                    Pred::And(Box::new(a), Box::new(b))
                } else {
                    Pred::Or(Box::new(a), Box::new(b))
                }
            }
            GPred::Paren(inner) => {
                self.sql.push('(');
                let inner = self.pred(inner, scope, depth);
                self.sql.push(')');
                inner
            }
        }
    }

    fn sub(&mut self, sub: &GSub, scope: &[&'static str], depth: usize) -> Sub {
        let table = sub.table as usize % TABLES.len();
        self.named.insert(table);
        let name = if sub.alias {
            SUB_ALIASES[depth % SUB_ALIASES.len()]
        } else {
            TABLES[table]
        };
        let col = sub.col as usize % COLUMNS.len();
        let _ = write!(
            self.sql,
            "(SELECT \"{name}\".\"{}\" FROM \"{}\"",
            COLUMNS[col], TABLES[table]
        );
        if sub.alias {
            let _ = write!(self.sql, " AS \"{name}\"");
        }
        let mut inner_scope = scope.to_vec();
        inner_scope.push(name);
        let filter = sub.filter.as_ref().map(|f| {
            self.sql.push_str(" WHERE ");
            self.pred(f, &inner_scope, depth + 1)
        });
        self.sql.push(')');
        Sub {
            table,
            name,
            col,
            filter,
        }
    }

    /// A FROM item; `used` collects the relation names of the SELECT, the result's second part
    /// the names in this subtree.
    fn from(
        &mut self,
        f: &GFrom,
        used: &mut Vec<&'static str>,
        force_parens: bool,
    ) -> (FromItem, Vec<&'static str>) {
        match f {
            GFrom::Leaf {
                table,
                alias,
                schema,
            } => {
                let table = *table as usize % TABLES.len();
                self.named.insert(table);
                if *schema {
                    self.sql.push_str("\"public\".");
                }
                let name = if !alias && !used.contains(&TABLES[table]) {
                    let _ = write!(self.sql, "\"{}\"", TABLES[table]);
                    TABLES[table]
                } else {
                    let name = ALIASES
                        .iter()
                        .copied()
                        .find(|a| !used.contains(a))
                        .expect("at most four relations");
                    let _ = write!(self.sql, "\"{}\" AS \"{name}\"", TABLES[table]);
                    name
                };
                used.push(name);
                (FromItem::Leaf { table, name }, vec![name])
            }
            GFrom::Join {
                left,
                right,
                outer,
                on,
                extra,
                parens,
            } => {
                let parens = *parens || force_parens;
                if parens {
                    self.sql.push('(');
                }
                let (left, mut names) = self.from(left, used, false);
                self.sql.push_str(if *outer {
                    " LEFT OUTER JOIN "
                } else {
                    " INNER JOIN "
                });
                let right_is_join = matches!(**right, GFrom::Join { .. });
                let (right, right_names) = self.from(right, used, right_is_join);
                self.sql.push_str(" ON (");
                if extra.is_some() {
                    self.sql.push('(');
                }
                let r = self.col(on.0, &right_names);
                self.sql.push_str(" = ");
                let l = self.col(on.1, &names);
                let mut cond = Pred::Cmp(r, Op::Eq, l);
                names.extend(right_names);
                if let Some(extra) = extra {
                    self.sql.push_str(") AND (");
                    let extra = self.pred(extra, &names, 0);
                    self.sql.push(')');
                    cond = Pred::And(Box::new(cond), Box::new(extra));
                }
                self.sql.push(')');
                if parens {
                    self.sql.push(')');
                }
                let join = FromItem::Join {
                    left: Box::new(left),
                    right: Box::new(right),
                    outer: *outer,
                    on: cond,
                };
                (join, names)
            }
        }
    }

    fn select(&mut self, s: &GSelect) -> Select {
        self.sql.push_str("SELECT ");
        let projection_at = self.sql.len();
        self.sql.push_str(" FROM ");
        let mut used = Vec::new();
        let mut from = Vec::new();
        for (k, item) in s.from.iter().enumerate() {
            if k > 0 {
                self.sql.push_str(", ");
            }
            from.push(self.from(item, &mut used, false).0);
        }
        let filter = s.filter.as_ref().map(|f| {
            self.sql.push_str(" WHERE ");
            self.pred(f, &used, 0)
        });
        // The projection: every column of the first relation (no binds, so inserted last).
        let first = used[0];
        let projection: Vec<String> = COLUMNS
            .iter()
            .map(|c| format!("\"{first}\".\"{c}\""))
            .collect();
        self.sql.insert_str(projection_at, &projection.join(", "));
        Select { from, filter }
    }
}

fn render_query(q: &GQuery) -> Rendered {
    let mut cx = Cx::default();
    let mut branches = Vec::new();
    if q.branches.len() == 1 {
        branches.push(cx.select(&q.branches[0]));
        if let Some(asc) = q.order {
            let first = first_name(&branches[0].from[0]);
            let dir = if asc { "ASC" } else { "DESC" };
            let _ = write!(cx.sql, " ORDER BY \"{first}\".\"id\" {dir}");
        }
    } else {
        for (k, branch) in q.branches.iter().enumerate() {
            if k > 0 {
                cx.sql.push_str(if q.union_all {
                    " UNION ALL "
                } else {
                    " UNION "
                });
            }
            cx.sql.push('(');
            branches.push(cx.select(branch));
            cx.sql.push(')');
        }
    }
    if let Some(limit) = q.limit {
        cx.sql.push_str(" LIMIT ");
        cx.bind(BindVal::Scalar(Some(limit)));
    }
    if let Some(offset) = q.offset {
        cx.sql.push_str(" OFFSET ");
        cx.bind(BindVal::Scalar(Some(offset)));
    }
    Rendered {
        sql: cx.sql,
        binds: cx.binds,
        branches,
        named: cx.named,
    }
}

fn first_name(f: &FromItem) -> &'static str {
    match f {
        FromItem::Leaf { name, .. } => name,
        FromItem::Join { left, .. } => first_name(left),
    }
}

/// A write statement's SQL and the table it writes.
fn render_write(w: &GWrite) -> (String, &'static str) {
    let mut cx = Cx::default();
    let table = match w {
        GWrite::Update {
            table,
            set_col,
            value,
            filter,
            returning,
        } => {
            let t = TABLES[*table as usize % 3];
            let _ = write!(
                cx.sql,
                "UPDATE \"{t}\" SET \"{}\" = ",
                COLUMNS[*set_col as usize % 3]
            );
            cx.bind(BindVal::Scalar(*value));
            if let Some(f) = filter {
                cx.sql.push_str(" WHERE ");
                cx.pred(f, &[t], 0);
            }
            if *returning {
                let _ = write!(cx.sql, " RETURNING \"{t}\".\"id\", \"{t}\".\"status\"");
            }
            t
        }
        GWrite::Delete {
            table,
            filter,
            returning,
        } => {
            let t = TABLES[*table as usize % 3];
            let _ = write!(cx.sql, "DELETE FROM \"{t}\"");
            if let Some(f) = filter {
                cx.sql.push_str(" WHERE ");
                cx.pred(f, &[t], 0);
            }
            if *returning {
                let _ = write!(cx.sql, " RETURNING \"{t}\".\"id\"");
            }
            t
        }
        GWrite::Insert {
            table,
            rows,
            conflict,
            returning,
        } => {
            let t = TABLES[*table as usize % 3];
            let _ = write!(
                cx.sql,
                "INSERT INTO \"{t}\" (\"id\", \"user_id\", \"status\") VALUES "
            );
            for (k, row) in rows.iter().enumerate() {
                if k > 0 {
                    cx.sql.push_str(", ");
                }
                for (c, v) in row.iter().enumerate() {
                    cx.sql.push_str(if c == 0 { "(" } else { ", " });
                    cx.bind(BindVal::Scalar(*v));
                }
                cx.sql.push(')');
            }
            match conflict {
                1 => cx.sql.push_str(" ON CONFLICT DO NOTHING"),
                2 => cx.sql.push_str(
                    " ON CONFLICT (\"id\") DO UPDATE SET \"status\" = excluded.\"status\"",
                ),
                _ => {}
            }
            if *returning {
                let _ = write!(cx.sql, " RETURNING \"{t}\".\"id\"");
            }
            t
        }
        GWrite::InsertSelect { table, source } => {
            let t = TABLES[*table as usize % 3];
            let source = render_query(source);
            let _ = write!(
                cx.sql,
                "INSERT INTO \"{t}\" (\"id\", \"user_id\", \"status\") {}",
                source.sql
            );
            t
        }
    };
    (cx.sql, table)
}

/// A batch's SQL and the tables it writes.
fn render_batch(statements: &[GStmt]) -> (String, BTreeSet<&'static str>) {
    let mut texts = Vec::new();
    let mut writes = BTreeSet::new();
    for s in statements {
        match s {
            GStmt::Read(q) => texts.push(render_query(q).sql),
            GStmt::Write(w) => {
                let (sql, table) = render_write(w);
                texts.push(sql);
                writes.insert(table);
            }
            GStmt::Quiet(sql) => texts.push(sql.to_string()),
        }
    }
    (texts.join(";\n"), writes)
}

// ---------------------------------------------------------------------------------------------
// The evaluator (three-valued logic)

/// The relations of a joined row, innermost last; `None` = null-extended.
type Env = Vec<(&'static str, Option<Row>)>;

fn not3(a: Option<bool>) -> Option<bool> {
    a.map(|a| !a)
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// OR of any number of truth values (FALSE for none), as `= ANY` and `IN` combine them.
fn any3(values: impl Iterator<Item = Option<bool>>) -> Option<bool> {
    let mut out = Some(false);
    for v in values {
        out = or3(out, v);
    }
    out
}

/// AND of any number of truth values (TRUE for none), as `!= ALL` and row `=` combine them.
fn all3(values: impl Iterator<Item = Option<bool>>) -> Option<bool> {
    let mut out = Some(true);
    for v in values {
        out = and3(out, v);
    }
    out
}

fn cmp3(a: Val, op: Op, b: Val) -> Option<bool> {
    Some(op.apply(a?, b?))
}

struct Eval<'a> {
    db: &'a Db,
    binds: &'a [BindVal],
}

impl Eval<'_> {
    fn value(&self, o: &Opnd, env: &Env) -> Val {
        match o {
            Opnd::Col(name, col) => {
                let (_, row) = env
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .expect("column of a relation in scope");
                row.and_then(|r| r[*col])
            }
            Opnd::Bind(i) => match &self.binds[*i] {
                BindVal::Scalar(v) => *v,
                BindVal::Array(_) => panic!("array bind used as a scalar"),
            },
            Opnd::Lit(v) => *v,
        }
    }

    fn pred(&self, p: &Pred, env: &mut Env) -> Option<bool> {
        match p {
            Pred::Cmp(a, op, b) => cmp3(self.value(a, env), *op, self.value(b, env)),
            Pred::Quant { col, any, bind } => {
                let v = self.value(col, env);
                let BindVal::Array(items) = &self.binds[*bind] else {
                    panic!("scalar bind used as an array")
                };
                if *any {
                    any3(items.iter().map(|e| cmp3(v, Op::Eq, *e)))
                } else {
                    all3(items.iter().map(|e| cmp3(v, Op::Ne, *e)))
                }
            }
            Pred::In {
                lhs,
                items,
                negated,
            } => {
                let v = self.value(lhs, env);
                let found = any3(items.iter().map(|e| cmp3(v, Op::Eq, self.value(e, env))));
                if *negated {
                    not3(found)
                } else {
                    found
                }
            }
            Pred::IsNull(o, negated) => Some(self.value(o, env).is_none() != *negated),
            Pred::RowEq(a, b) => all3(
                a.iter()
                    .zip(b)
                    .map(|(x, y)| cmp3(self.value(x, env), Op::Eq, self.value(y, env))),
            ),
            Pred::RowIn(cols, rows) => any3(rows.iter().map(|row| {
                all3(
                    cols.iter()
                        .zip(row)
                        .map(|(c, v)| cmp3(self.value(c, env), Op::Eq, self.value(v, env))),
                )
            })),
            Pred::Exists(sub) => Some(!self.sub(sub, env).is_empty()),
            Pred::InSub(o, sub) => {
                let v = self.value(o, env);
                any3(self.sub(sub, env).into_iter().map(|e| cmp3(v, Op::Eq, e)))
            }
            Pred::Not(a) => not3(self.pred(a, env)),
            Pred::And(a, b) => {
                let a = self.pred(a, env);
                and3(a, self.pred(b, env))
            }
            Pred::Or(a, b) => {
                let a = self.pred(a, env);
                or3(a, self.pred(b, env))
            }
        }
    }

    /// The values a sub-select returns in this environment.
    fn sub(&self, sub: &Sub, env: &mut Env) -> Vec<Val> {
        let mut out = Vec::new();
        for row in &self.db[sub.table] {
            env.push((sub.name, Some(*row)));
            let keep = match &sub.filter {
                None => true,
                Some(f) => self.pred(f, env) == Some(true),
            };
            env.pop();
            if keep {
                out.push(row[sub.col]);
            }
        }
        out
    }

    fn from(&self, f: &FromItem) -> Vec<Env> {
        match f {
            FromItem::Leaf { table, name } => self.db[*table]
                .iter()
                .map(|r| vec![(*name, Some(*r))])
                .collect(),
            FromItem::Join {
                left,
                right,
                outer,
                on,
            } => {
                let rights = self.from(right);
                let mut out = Vec::new();
                for l in self.from(left) {
                    let mut matched = false;
                    for r in &rights {
                        let mut env: Env = l.iter().chain(r).copied().collect();
                        if self.pred(on, &mut env) == Some(true) {
                            out.push(env);
                            matched = true;
                        }
                    }
                    if *outer && !matched {
                        let mut env = l.clone();
                        let mut names = Vec::new();
                        leaf_names(right, &mut names);
                        env.extend(names.into_iter().map(|n| (n, None)));
                        out.push(env);
                    }
                }
                out
            }
        }
    }

    /// The result as a sorted list of (branch, full joined row).
    fn query(&self, branches: &[Select]) -> Vec<(usize, Vec<Option<Row>>)> {
        let mut out = Vec::new();
        for (k, select) in branches.iter().enumerate() {
            let mut envs: Vec<Env> = vec![Vec::new()];
            for item in &select.from {
                let rows = self.from(item);
                envs = envs
                    .iter()
                    .flat_map(|e| {
                        rows.iter()
                            .map(move |r| e.iter().chain(r).copied().collect())
                    })
                    .collect();
            }
            for mut env in envs {
                let keep = match &select.filter {
                    None => true,
                    Some(f) => self.pred(f, &mut env) == Some(true),
                };
                if keep {
                    out.push((k, env.into_iter().map(|(_, r)| r).collect()));
                }
            }
        }
        out.sort();
        out
    }
}

fn leaf_names(f: &FromItem, out: &mut Vec<&'static str>) {
    match f {
        FromItem::Leaf { name, .. } => out.push(name),
        FromItem::Join { left, right, .. } => {
            leaf_names(left, out);
            leaf_names(right, out);
        }
    }
}

/// Whether a row matches one conjunction of the pins (bind values compared as SQL `=`).
fn row_matches(pins: &Pins, row: &Row, binds: &[BindVal]) -> bool {
    let atom = |a: &Atom| {
        let Some(col) = COLUMNS.iter().position(|c| *c == a.column) else {
            return false;
        };
        match (
            &a.value,
            binds.get(match a.value {
                ValueRef::Bind(i) | ValueRef::AnyOf(i) => i,
                ValueRef::Null => usize::MAX,
            }),
        ) {
            (ValueRef::Null, _) => row[col].is_none(),
            (ValueRef::Bind(_), Some(BindVal::Scalar(Some(v)))) => row[col] == Some(*v),
            (ValueRef::AnyOf(_), Some(BindVal::Array(items))) => {
                row[col].is_some() && items.contains(&row[col])
            }
            _ => false,
        }
    };
    match pins {
        Pins::Whole => true,
        Pins::AnyOf(conjunctions) => conjunctions.iter().any(|c| c.atoms.iter().all(atom)),
    }
}

// ---------------------------------------------------------------------------------------------
// Running

fn an(sql: &str) -> Extracted {
    analyze(sql, SqlDialect::PostgreSql)
}

fn wt(sql: &str) -> WriteTargets {
    write_targets(sql, SqlDialect::PostgreSql)
}

/// Cases for a property: its default, or more with `CACHEBOT_PROPTEST_CASES`.
fn cases(default: u32) -> u32 {
    std::env::var("CACHEBOT_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map_or(default, |n| n.max(default))
}

fn run<S: Strategy>(
    name: &str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let config = Config {
        cases: cases(default_cases),
        // Never write regression files into the source tree.
        failure_persistence: None,
        max_shrink_iters: 20_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{name}: {e}");
    }
}

/// Whether the analysis's `name` is the generator's `table`, bare or in `public`.
fn names_table(name: &str, table: &str) -> bool {
    name == table || name.strip_prefix("public.") == Some(table)
}

fn show_binds(binds: &[BindVal]) -> String {
    binds
        .iter()
        .enumerate()
        .map(|(i, b)| match b {
            BindVal::Scalar(Some(v)) => format!("${}={v}", i + 1),
            BindVal::Scalar(None) => format!("${}=NULL", i + 1),
            BindVal::Array(items) => format!("${}={items:?}", i + 1),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counters of one soundness property, to make sure it checks something.
#[derive(Default)]
struct Stats {
    cases: Cell<u64>,
    /// Removals that changed the result where the table was pinned (the real checks).
    pinned_checks: Cell<u64>,
    /// Removals that changed the result where the table was whole.
    whole_checks: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// The soundness check of one query against one database.
fn check_sound(q: &GQuery, db: &Db, stats: &Stats) -> Result<(), TestCaseError> {
    let r = render_query(q);
    let analysis = an(&r.sql);
    prop_assert_eq!(&an(&r.sql), &analysis, "not deterministic: {}", r.sql);
    prop_assert_eq!(wt(&r.sql), WriteTargets::None, "a read writes: {}", r.sql);
    let Extracted::Cacheable(a) = &analysis else {
        return Err(TestCaseError::fail(format!(
            "not cacheable: {}\n{}",
            show(&analysis),
            r.sql
        )));
    };
    prop_assert!(a.parsed, "not parsed: {}", r.sql);
    for t in &r.named {
        prop_assert!(
            a.tables.iter().any(|d| names_table(&d.table, TABLES[*t])),
            "table {} missing: {}\n{}",
            TABLES[*t],
            show(&analysis),
            r.sql
        );
    }
    bump(&stats.cases);
    let eval = Eval {
        db,
        binds: &r.binds,
    };
    let base = eval.query(&r.branches);
    for (t, rows) in db.iter().enumerate() {
        for (i, row) in rows.iter().enumerate() {
            let mut smaller = db.clone();
            smaller[t].remove(i);
            let eval = Eval {
                db: &smaller,
                binds: &r.binds,
            };
            if eval.query(&r.branches) == base {
                continue;
            }
            // The generator writes a table bare or as `public.t`: both resolve to
            // the one table here, and a write bumps the keys of both names.
            let mut all = a.tables.iter().filter(|d| names_table(&d.table, TABLES[t]));
            let Some(deps) = all.next() else {
                return Err(TestCaseError::fail(format!(
                    "a row of {} changes the result but the table is not a dependency\n\
                     SQL: {}\nbinds: {}\nanalysis: {}",
                    TABLES[t],
                    r.sql,
                    show_binds(&r.binds),
                    show(&analysis)
                )));
            };
            match deps.pins {
                Pins::Whole => bump(&stats.whole_checks),
                Pins::AnyOf(_) => bump(&stats.pinned_checks),
            }
            let matches = row_matches(&deps.pins, row, &r.binds)
                || all.any(|d| row_matches(&d.pins, row, &r.binds));
            if !matches {
                return Err(TestCaseError::fail(format!(
                    "UNDER-APPROXIMATION: removing {} row {row:?} changes the result but it \
                     matches no pin\nSQL: {}\nbinds: {}\nanalysis: {}\ndb: {db:?}",
                    TABLES[t],
                    r.sql,
                    show_binds(&r.binds),
                    show(&analysis)
                )));
            }
        }
    }
    Ok(())
}

fn soundness(name: &str, default_cases: u32, queries: BoxedStrategy<GQuery>) {
    let stats = Stats::default();
    run(name, default_cases, (queries, db()), |(q, db)| {
        check_sound(&q, &db, &stats)
    });
    let (cases, pinned, whole) = (
        stats.cases.get(),
        stats.pinned_checks.get(),
        stats.whole_checks.get(),
    );
    eprintln!("{name}: {cases} cases, {pinned} pinned checks, {whole} whole-table checks");
    // Guard against a vacuous property: many result-changing rows were checked against pins.
    assert!(
        pinned >= cases / 10,
        "{name}: only {pinned} pinned checks in {cases} cases"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties

/// One table, arbitrary WHERE trees: a row changes the result iff the WHERE is TRUE for it.
#[test]
fn soundness_single_table() {
    soundness("soundness_single_table", 2_000, query_single());
}

/// `t1 INNER JOIN t2 ON (t2.x = t1.y)` and arbitrary WHERE trees: for every pair satisfying
/// ON and WHERE, each side matches its table's pins.
#[test]
fn soundness_inner_join() {
    soundness("soundness_inner_join", 1_500, query_inner_join());
}

/// Left and inner joins of up to three relations (nested either side, self-joins through
/// aliases, comma joins, extra ON conditions), correlated sub-selects, UNION [ALL].
#[test]
fn soundness_joins_subselects_unions() {
    soundness("soundness_joins_subselects_unions", 1_500, query_any());
}

fn no_panic_deterministic(sql: &str) -> Result<(), TestCaseError> {
    let a = an(sql);
    prop_assert_eq!(&an(sql), &a, "analyze not deterministic: {:?}", sql);
    let w = wt(sql);
    prop_assert_eq!(&wt(sql), &w, "write_targets not deterministic: {:?}", sql);
    if let Extracted::Cacheable(a) = &a {
        prop_assert!(!a.tables.is_empty());
        for t in &a.tables {
            if let Pins::AnyOf(cs) = &t.pins {
                prop_assert!(!cs.is_empty(), "empty AnyOf: {:?}", sql);
                prop_assert!(cs.iter().all(|c| !c.atoms.is_empty()), "empty conjunction");
            }
        }
    }
    Ok(())
}

/// Generated reads, writes and batches, then mutated: no panic, deterministic.
#[test]
fn mutated_sql_never_panics() {
    let text = prop_oneof![
        3 => query_any().prop_map(|q| render_query(&q).sql),
        1 => write().prop_map(|w| render_write(&w).0),
        1 => vec(statement(), 1..4).prop_map(|s| render_batch(&s).0),
    ];
    run(
        "mutated_sql_never_panics",
        1_000,
        (text, vec(edit(), 0..6)),
        |(sql, edits)| no_panic_deterministic(&apply_edits(&sql, &edits)),
    );
}

/// Token soup, arbitrary strings and lossy bytes: no panic, deterministic.
#[test]
fn arbitrary_text_never_panics() {
    let text = prop_oneof![
        3 => token_soup(),
        1 => any::<String>(),
        1 => vec(any::<u8>(), 0..300).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    run("arbitrary_text_never_panics", 3_000, text, |sql| {
        no_panic_deterministic(&sql)
    });
}

/// Writes report exactly their target and are never cacheable reads; batches report the union.
#[test]
fn write_targets_of_generated_batches() {
    run(
        "write_targets_of_generated_batches",
        1_000,
        vec(statement(), 1..5),
        |statements| {
            let (sql, writes) = render_batch(&statements);
            let expected = if writes.is_empty() {
                WriteTargets::None
            } else {
                WriteTargets::Tables(writes.iter().map(|t| t.to_string()).collect())
            };
            prop_assert_eq!(wt(&sql), expected, "SQL: {}", sql);
            if let [GStmt::Write(w)] = statements.as_slice() {
                let (sql, _) = render_write(w);
                prop_assert_eq!(
                    an(&sql),
                    Extracted::Uncacheable(Uncacheable::NotARead),
                    "SQL: {}",
                    sql
                );
            }
            Ok(())
        },
    );
}

/// A batch with one statement sqlparser cannot parse still reports every other write (or
/// `Unknown`): the write path must never miss a table.
#[test]
fn write_targets_survive_an_unparseable_statement() {
    // Garbage without quotes, comments, `$` or `;`, so it cannot swallow its neighbours.
    let garbage = vec(
        prop::sample::select(vec![
            "FROBNICATE",
            "\"users\"",
            "(",
            ")",
            "WITH",
            "ORDER",
            "=",
            "1",
            ",",
            "SELECT",
            "*",
            "JOIN",
            "::",
            "[",
            "]",
            "AND",
            "x",
        ]),
        1..12,
    )
    .prop_map(|t| t.join(" "));
    run(
        "write_targets_survive_an_unparseable_statement",
        1_000,
        (vec(statement(), 1..4), garbage, any::<Index>()),
        |(statements, garbage, at)| {
            if Parser::parse_sql(&PostgreSqlDialect {}, &garbage).is_ok() {
                return Ok(());
            }
            let (_, writes) = render_batch(&statements);
            let mut texts: Vec<String> = statements
                .iter()
                .map(|s| render_batch(std::slice::from_ref(s)).0)
                .collect();
            texts.insert(at.index(texts.len() + 1), garbage);
            let sql = texts.join(";\n");
            match wt(&sql) {
                WriteTargets::Unknown => {}
                WriteTargets::None => prop_assert!(writes.is_empty(), "missed writes: {}", sql),
                WriteTargets::Tables(found) => {
                    for t in &writes {
                        prop_assert!(found.iter().any(|f| f == t), "missed {}: {}", t, sql);
                    }
                }
            }
            Ok(())
        },
    );
}

/// Environment variable: the index of the first input a child process of [`no_overflow`] runs.
const CHILD_FROM: &str = "CACHEBOT_PROPTESTS_CHILD_FROM";

/// Runs every input through `analyze` and `write_targets` on a 2 MiB thread (the default stack
/// of spawned threads, test threads and tokio workers) in a child process of the test binary,
/// since a stack overflow aborts the process rather than panicking; after a crash, a new child
/// continues with the next input. `test` is the calling test's path; `inputs` must be the same
/// in parent and child. Asserts that no input crashed, naming those that did.
fn no_overflow(test: &str, inputs: &[(&str, String)]) {
    if let Ok(from) = std::env::var(CHILD_FROM) {
        let from = from.parse::<usize>().expect("input index");
        let rest: Vec<String> = inputs[from..].iter().map(|(_, sql)| sql.clone()).collect();
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                for (k, sql) in rest.iter().enumerate() {
                    println!("[[start {}]]", from + k);
                    let _ = an(sql);
                    let _ = wt(sql);
                    println!("[[done {}]]", from + k);
                }
            })
            .expect("spawn")
            .join()
            .expect("no panic");
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let mut failed = Vec::new();
    let mut from = 0;
    while from < inputs.len() {
        let out = std::process::Command::new(&exe)
            .args([test, "--exact", "--include-ignored", "--nocapture"])
            .arg("--test-threads=1")
            .env(CHILD_FROM, from.to_string())
            .stderr(std::process::Stdio::null())
            .output()
            .expect("run the test binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some(crashed) =
            (from..inputs.len()).find(|i| !stdout.contains(&format!("[[done {i}]]")))
        else {
            break;
        };
        assert!(
            stdout.contains(&format!("[[start {crashed}]]")),
            "the child did not run input {crashed}"
        );
        failed.push(inputs[crashed].0);
        from = crashed + 1;
    }
    assert!(
        failed.is_empty(),
        "crashed (stack overflow?) on: {failed:?}"
    );
}

fn nested(open: &str, middle: &str, close: &str, depth: usize) -> String {
    format!("{}{middle}{}", open.repeat(depth), close.repeat(depth))
}

/// Deep nesting and long chains of every kind the parser recurses on stay within a 2 MiB
/// stack (sqlparser's recursion limit, extract's operator cap and relation cap).
#[test]
fn deep_inputs_do_not_overflow() {
    let select = r#"SELECT "t"."id" FROM "t" WHERE "#;
    let mut inputs: Vec<(&str, String)> = Vec::new();
    for depth in [45, 5_000] {
        let p = |x: String| format!("{select}{x}");
        inputs.push(("parentheses", p(nested("(", r#""t"."a" = $1"#, ")", depth))));
        inputs.push(("NOT", p(format!(r#"{}"t"."a" = $1"#, "NOT ".repeat(depth)))));
        inputs.push((
            "unary minus",
            p(format!(r#""t"."a" = {}1"#, "- ".repeat(depth))),
        ));
        inputs.push(("scalar sub-selects", p(nested("(SELECT ", "1", ")", depth))));
        inputs.push((
            "IN sub-select",
            p(nested(r#""t"."a" IN (SELECT "#, "1", ")", depth)),
        ));
        inputs.push(("function calls", p(nested("lower(", "1", ")", depth))));
        inputs.push(("ARRAY[", p(nested("ARRAY[", "1", "]", depth))));
        inputs.push(("ROW(", p(nested("ROW(", "1", ")", depth))));
        inputs.push((
            "CASE",
            p(nested("CASE WHEN TRUE THEN ", "1", " END", depth)),
        ));
        inputs.push(("CAST(", p(nested("CAST(", "1", " AS int)", depth))));
        inputs.push((
            "FROM (",
            format!(r#"SELECT 1 FROM {}"#, nested("(", r#""t""#, ")", depth)),
        ));
        inputs.push((
            "LATERAL",
            nested("SELECT 1 FROM LATERAL (", "SELECT 1", ")", depth),
        ));
        inputs.push(("set operations", nested("(", "SELECT 1", ")", depth)));
    }
    for n in [1_990, 2_010, 5_000] {
        let p = |x: String| format!("{select}{x}");
        inputs.push(("AND chain", p(vec![r#"("t"."a" = $1)"#; n].join(" AND "))));
        inputs.push(("OR chain", p(vec![r#""t"."a" = $1"#; n].join(" OR "))));
        inputs.push(("+ chain", p(vec![r#""t"."a""#; n].join(" + "))));
        inputs.push((
            "IS TRUE chain",
            p(format!(r#""t"."a"{}"#, " IS TRUE".repeat(n))),
        ));
        inputs.push((
            "COLLATE chain",
            p(format!(r#""t"."a"{}"#, r#" COLLATE "C""#.repeat(n))),
        ));
        inputs.push((
            "IN list",
            p(format!(r#""t"."a" IN ({})"#, vec!["$1"; n].join(", "))),
        ));
        inputs.push((
            "UNION chain",
            vec![r#"SELECT 1 FROM "t""#; n].join(" UNION "),
        ));
        let joins = (0..n)
            .map(|k| format!(r#" INNER JOIN "t{k}" ON ("t{k}"."a" = "t"."a")"#))
            .collect::<String>();
        inputs.push(("join chain", format!(r#"SELECT "t"."id" FROM "t"{joins}"#)));
        inputs.push((
            "comma FROM",
            format!(r#"SELECT 1 FROM "t"{}"#, r#", "t""#.repeat(n)),
        ));
        inputs.push(("batch", vec![r#"UPDATE "t" SET "a" = $1"#; n].join(";")));
    }
    no_overflow("extract::proptests::deep_inputs_do_not_overflow", &inputs);
}

/// Regression test (found by issue 4's fuzzing and probes, fixed since): inputs that overflowed
/// a 2 MiB stack inside `Parser::parse_sql`, before extract saw an AST. The analysis now runs on
/// a thread with a 64 MiB stack and `[` counts toward the complexity cap.
///
/// - Array type suffixes and subscripts are not operators for `too_complex`, and sqlparser
///   nests one `DataType::Array(Box<..>)` per `[]` and drops it recursively: overflows at
///   60-70k `[]` in a release build, 16-18k in a debug build (also through the speculative
///   typed-string parse of `"t"."a"[1][1]...`).
/// - In debug builds sqlparser's frames are so large that its recursion limit (50) comes too
///   late for 2 MiB: 14 nested `EXISTS (SELECT 1 FROM "t" WHERE ...)`, 28 repeated
///   `EXPLAIN ANALYZE`, 50 repeated `PREPARE p AS` overflow (release builds are fine).
#[test]
fn known_stack_overflows() {
    let inputs = [
        (
            "CAST AS int[]x100000",
            format!(
                r#"SELECT CAST("t"."a" AS int{}) FROM "t""#,
                "[]".repeat(100_000)
            ),
        ),
        (
            "::int[]x100000",
            format!(r#"SELECT "t"."a"::int{} FROM "t""#, "[]".repeat(100_000)),
        ),
        (
            "subscripts x100000",
            format!(r#"SELECT "t"."a"{} FROM "t""#, "[1]".repeat(100_000)),
        ),
        (
            "EXISTS x14",
            format!(
                r#"SELECT 1 FROM "t" WHERE {}"#,
                nested(r#"EXISTS (SELECT 1 FROM "t" WHERE "#, "TRUE", ")", 14)
            ),
        ),
        (
            "EXPLAIN ANALYZE x28",
            format!("{}SELECT 1", "EXPLAIN ANALYZE ".repeat(28)),
        ),
        (
            "PREPARE x50",
            format!("{}SELECT 1", "PREPARE p AS ".repeat(50)),
        ),
    ];
    no_overflow("extract::proptests::known_stack_overflows", &inputs);
    // Fixed: the analysis runs on a 64 MiB stack and `[` counts toward the
    // complexity cap, so these now run to completion on the 2 MiB test thread.
}
