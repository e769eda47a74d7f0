//! A conservative walk over any part of a parsed statement: every table it names is a whole-table
//! read, every function it calls is checked against the allow-list, and anything that writes or
//! locks is recorded.
//!
//! Expressions are walked with an explicit work list (left-deep operator chains can be long);
//! recursion only happens at sub-queries and FROM items, whose nesting sqlparser bounds with its
//! recursion limit. Constructs this walk does not model are rendered back to SQL and token
//! scanned (see [`super::scan::scan_fragment`]), which over-includes rather than misses.

use std::collections::BTreeSet;

use sqlparser::ast::{
    AccessExpr, CascadeOption, CopySource, Distinct, Expr, FromTable, Function, FunctionArg,
    FunctionArgExpr, FunctionArgumentClause, FunctionArguments, GroupByExpr, InTarget,
    JoinConstraint, JoinOperator, JsonPathElem, LimitClause, NamedWindowExpr, ObjectName,
    ObjectType, OrderByExpr, OrderByKind, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, Subscript, TableFactor, TableObject,
    TableWithJoins, Value, WindowFrameBound, WindowSpec, WindowType,
};

use super::write_acc::{is_writer_function, WriteAcc};
use super::{is_deterministic, is_time_special, name_parts, table_name, PARENLESS_VOLATILE};

/// What a walk found.
#[derive(Debug, Default)]
pub(super) struct Collector {
    /// Tables read (each a whole-table dependency).
    pub(super) whole: BTreeSet<String>,
    /// The first non-deterministic function seen (name as written, lowercased).
    pub(super) volatile: Option<String>,
    /// Every function called (normalised name parts joined by `.`).
    pub(super) functions: BTreeSet<String>,
    /// Something writes or locks (data-modifying CTE or body, SELECT INTO, FOR UPDATE/SHARE, a
    /// construct we cannot reason about).
    pub(super) not_read: bool,
    /// The top-level query uses a construct whose pins we do not model: every table is whole.
    pub(super) all_whole: bool,
    /// What the writing parts write.
    pub(super) writes: WriteAcc,
    /// CTE names visible at the current point of the walk (innermost last).
    ctes: Vec<String>,
}

impl Collector {
    /// Whether a single-part relation name refers to a CTE in scope rather than a table.
    pub(super) fn cte_in_scope(&self, parts: &[String]) -> bool {
        matches!(parts, [name] if self.ctes.iter().any(|cte| cte == name))
    }

    fn mark_volatile(&mut self, name: String) {
        if self.volatile.is_none() {
            self.volatile = Some(name);
        }
    }

    /// Record a table read, unless it names a CTE in scope.
    fn read_table(&mut self, name: &ObjectName) {
        if !self.cte_in_scope(&name_parts(name)) {
            self.whole.insert(table_name(name));
        }
    }

    /// Check a called function's name against the allow-list.
    fn call(&mut self, name: &ObjectName) {
        let parts = name_parts(name);
        let joined = parts.join(".");
        if !is_deterministic(&parts) {
            self.mark_volatile(joined.to_lowercase());
        }
        self.functions.insert(joined);
    }

    /// Token-scan the SQL rendering of a construct this walk does not model.
    fn scan_text(&mut self, text: &str) {
        let found = super::scan::scan_fragment(text);
        self.whole.extend(found.tables);
        self.functions.extend(found.functions);
        if let Some(name) = found.volatile {
            self.mark_volatile(name);
        }
    }

    /// Walk a whole query: its CTEs, body and tail. Every table is a whole-table read.
    pub(super) fn query(&mut self, query: &Query) {
        let mark = self.ctes.len();
        if let Some(with) = &query.with {
            let names: Vec<String> = with
                .cte_tables
                .iter()
                .map(|cte| super::norm_ident(&cte.alias.name))
                .collect();
            for (i, cte) in with.cte_tables.iter().enumerate() {
                self.ctes.truncate(mark);
                // Without RECURSIVE a CTE sees only the ones before it; a same-named table
                // anywhere else is the real table.
                let visible = if with.recursive {
                    &names[..]
                } else {
                    &names[..i]
                };
                self.ctes.extend(visible.iter().cloned());
                self.query(&cte.query);
            }
            self.ctes.truncate(mark);
            self.ctes.extend(names);
        }
        self.set_expr(&query.body);
        self.query_tail(query);
        self.ctes.truncate(mark);
    }

    /// ORDER BY, LIMIT/OFFSET, FETCH and locking clauses of a query.
    pub(super) fn query_tail(&mut self, query: &Query) {
        if let Some(order_by) = &query.order_by {
            if let OrderByKind::Expressions(items) = &order_by.kind {
                self.order_by_exprs(items);
            }
            if let Some(interpolate) = &order_by.interpolate {
                for item in interpolate.exprs.iter().flatten() {
                    if let Some(e) = &item.expr {
                        self.expr(e);
                    }
                }
            }
        }
        match &query.limit_clause {
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if let Some(limit) = limit {
                    self.expr(limit);
                }
                if let Some(offset) = offset {
                    self.expr(&offset.value);
                }
                for e in limit_by {
                    self.expr(e);
                }
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                self.expr(offset);
                self.expr(limit);
            }
            None => {}
        }
        if let Some(fetch) = &query.fetch {
            if let Some(quantity) = &fetch.quantity {
                self.expr(quantity);
            }
        }
        if !query.locks.is_empty() {
            self.not_read = true;
        }
        if !query.pipe_operators.is_empty() {
            // Pipe syntax (not PostgreSQL): nothing we can attribute.
            self.not_read = true;
            self.all_whole = true;
            self.scan_text(&query.to_string());
        }
    }

    /// Walk a query body; set-operation chains are walked without recursion.
    pub(super) fn set_expr(&mut self, body: &SetExpr) {
        let mut stack = vec![body];
        while let Some(body) = stack.pop() {
            match body {
                SetExpr::Select(select) => self.select(select),
                SetExpr::Query(query) => self.query(query),
                SetExpr::SetOperation { left, right, .. } => {
                    stack.push(right);
                    stack.push(left);
                }
                SetExpr::Values(values) => {
                    for row in &values.rows {
                        for e in row.iter() {
                            self.expr(e);
                        }
                    }
                }
                SetExpr::Insert(statement)
                | SetExpr::Update(statement)
                | SetExpr::Delete(statement)
                | SetExpr::Merge(statement) => {
                    self.not_read = true;
                    statement_into(statement, &mut self.writes);
                }
                SetExpr::Table(table) => {
                    if let Some(name) = &table.table_name {
                        let mut parts = Vec::new();
                        if let Some(schema) = &table.schema_name {
                            parts.push(super::norm_ident(schema));
                        }
                        parts.push(super::norm_ident(name));
                        if !self.cte_in_scope(&parts) {
                            self.whole.insert(super::join_name(parts));
                        }
                    }
                }
            }
        }
    }

    /// Walk a SELECT (FROM included).
    fn select(&mut self, select: &Select) {
        for table in &select.from {
            self.table_with_joins(table);
        }
        self.select_clauses(select);
    }

    /// Everything of a SELECT except its FROM list.
    pub(super) fn select_clauses(&mut self, select: &Select) {
        if let Some(into) = &select.into {
            // SELECT INTO creates and fills a table.
            self.not_read = true;
            for target in &into.targets {
                match target {
                    Expr::Identifier(ident) => {
                        self.writes.tables.insert(super::norm_ident(ident));
                    }
                    Expr::CompoundIdentifier(parts) => {
                        let parts = parts.iter().map(super::norm_ident).collect();
                        self.writes.tables.insert(super::join_name(parts));
                    }
                    _ => self.writes.unknown = true,
                }
            }
        }
        if let Some(Distinct::On(exprs)) = &select.distinct {
            for e in exprs {
                self.expr(e);
            }
        }
        if let Some(top) = &select.top {
            self.scan_text(&top.to_string());
        }
        for item in &select.projection {
            match item {
                SelectItem::UnnamedExpr(e)
                | SelectItem::ExprWithAlias { expr: e, .. }
                | SelectItem::ExprWithAliases { expr: e, .. } => self.expr(e),
                SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::Expr(e), _) => {
                    self.expr(e)
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(_),
                    _,
                )
                | SelectItem::Wildcard(_) => {}
            }
        }
        for view in &select.lateral_views {
            self.all_whole = true;
            self.expr(&view.lateral_view);
        }
        for e in select.prewhere.iter().chain(&select.selection) {
            self.expr(e);
        }
        for connect_by in &select.connect_by {
            self.all_whole = true;
            self.scan_text(&connect_by.to_string());
        }
        match &select.group_by {
            GroupByExpr::All(_) => {}
            GroupByExpr::Expressions(exprs, _) => {
                for e in exprs {
                    self.expr(e);
                }
            }
        }
        for e in select.cluster_by.iter().chain(&select.distribute_by) {
            self.expr(e);
        }
        self.order_by_exprs(&select.sort_by);
        for e in select.having.iter().chain(&select.qualify) {
            self.expr(e);
        }
        for window in &select.named_window {
            if let NamedWindowExpr::WindowSpec(spec) = &window.1 {
                self.window_spec(spec);
            }
        }
    }

    /// Walk a FROM item and its joins (whole mode).
    pub(super) fn table_with_joins(&mut self, table: &TableWithJoins) {
        self.table_factor(&table.relation);
        for join in &table.joins {
            self.table_factor(&join.relation);
            self.join_operator(&join.join_operator);
        }
    }

    /// Walk the expressions of a join operator (its ON clause, ASOF condition).
    pub(super) fn join_operator(&mut self, operator: &JoinOperator) {
        let constraint = match operator {
            JoinOperator::Join(c)
            | JoinOperator::Inner(c)
            | JoinOperator::Left(c)
            | JoinOperator::LeftOuter(c)
            | JoinOperator::Right(c)
            | JoinOperator::RightOuter(c)
            | JoinOperator::FullOuter(c)
            | JoinOperator::CrossJoin(c)
            | JoinOperator::Semi(c)
            | JoinOperator::LeftSemi(c)
            | JoinOperator::RightSemi(c)
            | JoinOperator::Anti(c)
            | JoinOperator::LeftAnti(c)
            | JoinOperator::RightAnti(c)
            | JoinOperator::StraightJoin(c) => Some(c),
            JoinOperator::AsOf {
                match_condition,
                constraint,
            } => {
                self.expr(match_condition);
                Some(constraint)
            }
            JoinOperator::CrossApply
            | JoinOperator::OuterApply
            | JoinOperator::ArrayJoin
            | JoinOperator::LeftArrayJoin
            | JoinOperator::InnerArrayJoin => None,
        };
        if let Some(JoinConstraint::On(e)) = constraint {
            self.expr(e);
        }
    }

    /// Walk one FROM item (whole mode): a table is a whole-table read, anything else is walked
    /// for the tables and functions inside it.
    pub(super) fn table_factor(&mut self, factor: &TableFactor) {
        match factor {
            TableFactor::Table {
                name,
                args,
                with_hints,
                version,
                sample,
                ..
            } => {
                match args {
                    // `FROM f(...)`: a set-returning function, not a table.
                    Some(args) => {
                        self.call(name);
                        self.function_args(&args.args);
                    }
                    None => self.read_table(name),
                }
                for e in with_hints {
                    self.expr(e);
                }
                if let Some(version) = version {
                    self.scan_text(&version.to_string());
                }
                if sample.is_some() {
                    // TABLESAMPLE returns a random subset.
                    self.mark_volatile("tablesample".to_string());
                }
            }
            TableFactor::Derived {
                subquery, sample, ..
            } => {
                self.query(subquery);
                if sample.is_some() {
                    self.mark_volatile("tablesample".to_string());
                }
            }
            TableFactor::TableFunction { expr, .. } => self.expr(expr),
            TableFactor::Function { name, args, .. } => {
                self.call(name);
                self.function_args(args);
            }
            TableFactor::UNNEST { array_exprs, .. } => {
                for e in array_exprs {
                    self.expr(e);
                }
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.table_with_joins(table_with_joins),
            other => {
                // JSON_TABLE, PIVOT, MATCH_RECOGNIZE, XMLTABLE, ...: not PostgreSQL as Diesel
                // writes it; scan the rendering.
                self.all_whole = true;
                self.scan_text(&other.to_string());
            }
        }
    }

    fn function_args(&mut self, args: &[FunctionArg]) {
        for arg in args {
            match arg {
                FunctionArg::Named { arg, .. } | FunctionArg::Unnamed(arg) => {
                    self.function_arg_expr(arg)
                }
                FunctionArg::ExprNamed { name, arg, .. } => {
                    self.expr(name);
                    self.function_arg_expr(arg);
                }
            }
        }
    }

    fn function_arg_expr(&mut self, arg: &FunctionArgExpr) {
        match arg {
            FunctionArgExpr::Expr(e) => self.expr(e),
            FunctionArgExpr::QualifiedWildcard(_)
            | FunctionArgExpr::Wildcard
            | FunctionArgExpr::WildcardWithOptions(_) => {}
        }
    }

    fn order_by_exprs(&mut self, items: &[OrderByExpr]) {
        for item in items {
            self.expr(&item.expr);
            if let Some(fill) = &item.with_fill {
                self.scan_text(&fill.to_string());
            }
        }
    }

    fn window_spec(&mut self, spec: &WindowSpec) {
        for e in &spec.partition_by {
            self.expr(e);
        }
        self.order_by_exprs(&spec.order_by);
        if let Some(frame) = &spec.window_frame {
            for bound in std::iter::once(&frame.start_bound).chain(&frame.end_bound) {
                if let WindowFrameBound::Preceding(Some(e)) | WindowFrameBound::Following(Some(e)) =
                    bound
                {
                    self.expr(e);
                }
            }
        }
    }

    /// Walk a function call: check its name, then its arguments and clauses (argument
    /// expressions are pushed on the caller's work list).
    fn function<'a>(&mut self, function: &'a Function, stack: &mut Vec<&'a Expr>) {
        self.call(&function.name);
        for arguments in [&function.parameters, &function.args] {
            match arguments {
                FunctionArguments::None => {}
                FunctionArguments::Subquery(query) => self.query(query),
                FunctionArguments::List(list) => {
                    for arg in &list.args {
                        match arg {
                            FunctionArg::Named { arg, .. } | FunctionArg::Unnamed(arg) => {
                                if let FunctionArgExpr::Expr(e) = arg {
                                    stack.push(e);
                                }
                            }
                            FunctionArg::ExprNamed { name, arg, .. } => {
                                stack.push(name);
                                if let FunctionArgExpr::Expr(e) = arg {
                                    stack.push(e);
                                }
                            }
                        }
                    }
                    for clause in &list.clauses {
                        match clause {
                            FunctionArgumentClause::Where(e) | FunctionArgumentClause::Limit(e) => {
                                stack.push(e)
                            }
                            FunctionArgumentClause::OrderBy(items) => self.order_by_exprs(items),
                            FunctionArgumentClause::IgnoreOrRespectNulls(_) => {}
                            other => self.scan_text(&other.to_string()),
                        }
                    }
                }
            }
        }
        if let Some(filter) = &function.filter {
            stack.push(filter);
        }
        match &function.over {
            Some(WindowType::WindowSpec(spec)) => self.window_spec(spec),
            Some(WindowType::NamedWindow(_)) | None => {}
        }
        self.order_by_exprs(&function.within_group);
    }

    /// Walk an expression tree (iteratively).
    pub(super) fn expr(&mut self, root: &Expr) {
        let mut stack: Vec<&Expr> = vec![root];
        while let Some(e) = stack.pop() {
            self.expr_node(e, &mut stack);
        }
    }

    /// One node of [`Self::expr`]'s walk: the cases that check a name or a literal, or walk a
    /// sub-query or a table, are handled here; every other node only pushes its operands (see
    /// [`push_operands`]).
    fn expr_node<'a>(&mut self, e: &'a Expr, stack: &mut Vec<&'a Expr>) {
        match e {
            Expr::Identifier(ident) => {
                // CURRENT_ROLE, CURRENT_SCHEMA... come out as bare identifiers.
                if ident.quote_style.is_none() {
                    let name = ident.value.to_lowercase();
                    if PARENLESS_VOLATILE.contains(&name.as_str()) {
                        self.mark_volatile(name);
                    }
                }
            }
            Expr::In { expr, target, .. } => {
                stack.push(expr);
                match target {
                    InTarget::List(items) => stack.extend(items),
                    InTarget::Subquery(query) => self.query(query),
                    InTarget::Unnest(e) => stack.push(e),
                    InTarget::Table { name, args } => match args {
                        Some(args) => {
                            self.call(name);
                            self.function_args(args);
                        }
                        None => self.read_table(name),
                    },
                }
            }
            Expr::Cast { expr, .. } => {
                // 'now'::timestamp is the current time.
                if let Expr::Value(v) = expr.as_ref() {
                    if string_literal(&v.value).is_some_and(is_time_special) {
                        self.mark_volatile("now".to_string());
                    }
                }
                stack.push(expr);
            }
            Expr::TypedString(typed) => {
                // TIMESTAMP 'now' is the current time.
                if string_literal(&typed.value.value).is_some_and(is_time_special) {
                    self.mark_volatile("now".to_string());
                }
            }
            Expr::Function(function) => self.function(function, stack),
            Expr::Exists { subquery, .. } => self.query(subquery),
            Expr::Subquery(query) => self.query(query),
            other => push_operands(other, stack),
        }
    }
}

/// Push the operands of an expression node that [`Collector::expr_node`] does not handle
/// itself: here the variants with several named parts, then [`push_plain_operands`].
fn push_operands<'a>(e: &'a Expr, stack: &mut Vec<&'a Expr>) {
    match e {
        Expr::CompoundFieldAccess { root, access_chain } => {
            stack.push(root);
            push_access_chain(access_chain, stack);
        }
        Expr::JsonAccess { value, path } => {
            stack.push(value);
            for element in &path.path {
                match element {
                    JsonPathElem::Bracket { key } | JsonPathElem::ColonBracket { key } => {
                        stack.push(key)
                    }
                    JsonPathElem::Dot { .. } => {}
                }
            }
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
            escape_char,
            ..
        }
        | Expr::ILike {
            expr,
            pattern,
            escape_char,
            ..
        }
        | Expr::SimilarTo {
            expr,
            pattern,
            escape_char,
            ..
        } => {
            stack.push(expr);
            stack.push(pattern);
            stack.extend(escape_char.as_deref());
        }
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            stack.push(expr);
            stack.extend(substring_from.as_deref());
            stack.extend(substring_for.as_deref());
        }
        Expr::Trim {
            expr,
            trim_what,
            trim_characters,
            ..
        } => {
            stack.push(expr);
            stack.extend(trim_what.as_deref());
            stack.extend(trim_characters.iter().flatten());
        }
        Expr::Overlay {
            expr,
            overlay_what,
            overlay_from,
            overlay_for,
        } => {
            stack.push(expr);
            stack.push(overlay_what);
            stack.push(overlay_from);
            stack.extend(overlay_for.as_deref());
        }
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
        other => push_plain_operands(other, stack),
    }
}

/// `a.b[1][2:3]`: the parts after the root.
fn push_access_chain<'a>(access_chain: &'a [AccessExpr], stack: &mut Vec<&'a Expr>) {
    for access in access_chain {
        match access {
            AccessExpr::Dot(e) => stack.push(e),
            AccessExpr::Subscript(Subscript::Index { index }) => stack.push(index),
            AccessExpr::Subscript(Subscript::Slice {
                lower_bound,
                upper_bound,
                stride,
            }) => {
                stack.extend(lower_bound);
                stack.extend(upper_bound);
                stack.extend(stride);
            }
        }
    }
}

/// The last step of [`Collector::expr_node`]: push the operands of every remaining variant.
///
/// This match is exhaustive on purpose (no catch-all): when a sqlparser upgrade adds an
/// expression, the build fails here until the walk handles it.
fn push_plain_operands<'a>(e: &'a Expr, stack: &mut Vec<&'a Expr>) {
    match e {
        // Handled by `Collector::expr_node` and `push_operands` before reaching here.
        Expr::Identifier(_)
        | Expr::In { .. }
        | Expr::Cast { .. }
        | Expr::TypedString(_)
        | Expr::Function(_)
        | Expr::Exists { .. }
        | Expr::Subquery(_)
        | Expr::CompoundFieldAccess { .. }
        | Expr::JsonAccess { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::SimilarTo { .. }
        | Expr::Substring { .. }
        | Expr::Trim { .. }
        | Expr::Overlay { .. }
        | Expr::Case { .. } => {}
        Expr::CompoundIdentifier(_) => {}
        Expr::IsFalse(e)
        | Expr::IsNotFalse(e)
        | Expr::IsTrue(e)
        | Expr::IsNotTrue(e)
        | Expr::IsNull(e)
        | Expr::IsNotNull(e)
        | Expr::IsUnknown(e)
        | Expr::IsNotUnknown(e)
        | Expr::Nested(e)
        | Expr::OuterJoin(e)
        | Expr::Prior(e) => stack.push(e),
        Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
            stack.push(a);
            stack.push(b);
        }
        Expr::IsJson { expr, .. }
        | Expr::IsNormalized { expr, .. }
        | Expr::UnaryOp { expr, .. }
        | Expr::Extract { expr, .. }
        | Expr::Ceil { expr, .. }
        | Expr::Floor { expr, .. }
        | Expr::Collate { expr, .. }
        | Expr::Named { expr, .. } => stack.push(expr),
        Expr::BinaryOp { left, right, .. }
        | Expr::AnyOp { left, right, .. }
        | Expr::AllOp { left, right, .. } => {
            stack.push(left);
            stack.push(right);
        }
        Expr::RLike { expr, pattern, .. } => {
            stack.push(expr);
            stack.push(pattern);
        }
        Expr::Convert { expr, styles, .. } => {
            stack.push(expr);
            stack.extend(styles);
        }
        Expr::AtTimeZone {
            timestamp,
            time_zone,
        } => {
            stack.push(timestamp);
            stack.push(time_zone);
        }
        Expr::Position { expr, r#in } => {
            stack.push(expr);
            stack.push(r#in);
        }
        Expr::Value(_) | Expr::MatchAgainst { .. } => {}
        Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => {}
        Expr::Prefixed { value, .. } => stack.push(value),
        Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
            stack.extend(sets.iter().flatten());
        }
        Expr::Tuple(items) => stack.extend(items),
        Expr::Struct { values, .. } => stack.extend(values),
        Expr::Dictionary(fields) => stack.extend(fields.iter().map(|f| f.value.as_ref())),
        Expr::Map(map) => {
            for entry in &map.entries {
                stack.push(&entry.key);
                stack.push(&entry.value);
            }
        }
        Expr::Array(array) => stack.extend(&array.elem),
        Expr::Interval(interval) => stack.push(&interval.value),
        Expr::Lambda(lambda) => stack.push(&lambda.body),
        Expr::MemberOf(member) => {
            stack.push(&member.value);
            stack.push(&member.array);
        }
    }
}

/// The text of a string literal.
pub(super) fn string_literal(value: &Value) -> Option<&str> {
    match value {
        Value::SingleQuotedString(s)
        | Value::EscapedStringLiteral(s)
        | Value::UnicodeStringLiteral(s)
        | Value::NationalStringLiteral(s)
        | Value::DoubleQuotedString(s)
        | Value::TripleSingleQuotedString(s)
        | Value::TripleDoubleQuotedString(s) => Some(s),
        Value::DollarQuotedString(s) => Some(&s.value),
        _ => None,
    }
}

// ----- what a statement writes ------------------------------------------------
// Here rather than in `writes` because the two walks recurse into each other: a writable CTE
// inside a query is a statement, and a statement's query is walked by the `Collector`.

/// The writes of a query: writable CTEs, data-modifying bodies, SELECT INTO, known writing
/// functions.
fn query_into(query: &Query, acc: &mut WriteAcc) {
    let mut cx = Collector::default();
    cx.query(query);
    acc.tables.extend(cx.writes.tables);
    acc.unknown |= cx.writes.unknown;
    if cx.functions.iter().any(|f| is_writer_function(f)) {
        acc.unknown = true;
    }
}

/// The target of an UPDATE/MERGE/DELETE: a plain table, else unknown.
fn factor_into(factor: &TableFactor, acc: &mut WriteAcc) {
    match factor {
        TableFactor::Table {
            name, args: None, ..
        } => acc.table(name),
        _ => acc.unknown = true,
    }
}

/// Add what one statement writes.
pub(super) fn statement_into(statement: &Statement, acc: &mut WriteAcc) {
    match statement {
        Statement::Query(query) => query_into(query, acc),
        Statement::Insert(insert) => {
            match &insert.table {
                TableObject::TableName(name) => acc.table(name),
                TableObject::TableFunction(_) | TableObject::TableQuery(_) => acc.unknown = true,
            }
            if let Some(source) = &insert.source {
                query_into(source, acc);
            }
        }
        // With FROM, only the updated table is written.
        Statement::Update(update) => factor_into(&update.table.relation, acc),
        Statement::Delete(delete) => {
            if !delete.tables.is_empty() {
                // MySQL multi-table DELETE t1, t2 FROM ...
                for name in &delete.tables {
                    acc.table(name);
                }
            } else {
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) =
                    &delete.from;
                if from.is_empty() {
                    acc.unknown = true;
                }
                for table in from {
                    factor_into(&table.relation, acc);
                }
            }
        }
        Statement::Truncate(truncate) => {
            if truncate.table_names.is_empty() {
                acc.unknown = true;
            }
            for target in &truncate.table_names {
                acc.table(&target.name);
            }
            if truncate.cascade == Some(CascadeOption::Cascade) {
                acc.truncate_cascade = true;
            }
        }
        Statement::Merge(merge) => factor_into(&merge.table, acc),
        Statement::Copy { source, to, .. } => match source {
            CopySource::Table { table_name, .. } => {
                if !*to {
                    acc.table(table_name);
                }
            }
            // COPY (query) TO: the query may be a data-modifying one.
            CopySource::Query(query) => query_into(query, acc),
        },
        Statement::Drop {
            object_type: ObjectType::Table,
            names,
            ..
        } => {
            if names.is_empty() {
                acc.unknown = true;
            }
            for name in names {
                acc.table(name);
            }
        }
        Statement::AlterTable(alter) => acc.table(&alter.name),
        Statement::CreateIndex(index) => acc.table(&index.table_name),
        Statement::RefreshMaterializedView(refresh) => acc.table(&refresh.name),
        Statement::Explain {
            analyze,
            statement,
            options,
            ..
        } => {
            // Only EXPLAIN ANALYZE runs the statement: `EXPLAIN ANALYZE [VERBOSE] ...` or an
            // ANALYZE in the option list (`EXPLAIN (ANALYZE, BUFFERS) ...`; even
            // `(ANALYZE false)` counts: over-invalidating is a cost, missing a write a bug).
            let in_options = options
                .iter()
                .flatten()
                .any(|o| o.name.value.eq_ignore_ascii_case("analyze"));
            if *analyze || in_options {
                statement_into(statement, acc);
            }
        }
        // Harmless over-approximation: the write happens at EXECUTE (which is Unknown).
        Statement::Prepare { statement, .. } => statement_into(statement, acc),
        Statement::Declare { stmts, .. } => {
            for declare in stmts {
                if let Some(query) = &declare.for_query {
                    query_into(query, acc);
                }
            }
        }
        Statement::StartTransaction { statements, .. } => {
            for statement in statements {
                statement_into(statement, acc);
            }
        }
        _ if writes_nothing(statement) => {}
        // CALL, EXECUTE, other DDL, GRANT, COMMENT, anything new: cannot tell.
        _ => acc.unknown = true,
    }
}

/// Session, transaction, cursor and notification statements, and maintenance that keeps every
/// row's content (ANALYZE, VACUUM, LOCK): no data changes.
fn writes_nothing(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Set(_)
            | Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowFunctions { .. }
            | Statement::ShowCreate { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowViews { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::ShowCollation { .. }
            | Statement::ShowCharset(_)
            | Statement::ShowObjects(_)
            | Statement::ShowProcessList { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::ExplainTable { .. }
            | Statement::LISTEN { .. }
            | Statement::UNLISTEN { .. }
            | Statement::NOTIFY { .. }
            | Statement::Deallocate { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
            | Statement::Discard { .. }
            | Statement::Reset(_)
            | Statement::Analyze(_)
            | Statement::Vacuum(_)
            | Statement::Lock(_)
    )
}
