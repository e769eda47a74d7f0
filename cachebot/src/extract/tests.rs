//! Hand-written SQL for every rule of [`super::analyze`] and [`super::write_targets`].

use crate::backend::SqlDialect;

use super::*;

fn an(sql: &str) -> Extracted {
    analyze(sql, SqlDialect::PostgreSql)
}

fn wt(sql: &str) -> WriteTargets {
    write_targets(sql, SqlDialect::PostgreSql)
}

/// A compact rendering: `table: col=$1 & col2=ANY($2) | col=NULL; other: *`, with `$n` 1-based
/// as in the SQL, and ` (fallback)` when not parsed.
pub(super) fn show(e: &Extracted) -> String {
    match e {
        Extracted::Uncacheable(Uncacheable::NoTable) => "NoTable".into(),
        Extracted::Uncacheable(Uncacheable::NotARead) => "NotARead".into(),
        Extracted::Uncacheable(Uncacheable::Volatile(f)) => format!("Volatile({f})"),
        Extracted::Cacheable(a) => {
            let tables: Vec<String> = a
                .tables
                .iter()
                .map(|t| {
                    let pins = match &t.pins {
                        Pins::Whole => "*".to_string(),
                        Pins::AnyOf(conjunctions) => conjunctions
                            .iter()
                            .map(|c| {
                                c.atoms
                                    .iter()
                                    .map(|a| match a.value {
                                        ValueRef::Bind(i) => format!("{}=${}", a.column, i + 1),
                                        ValueRef::AnyOf(i) => {
                                            format!("{}=ANY(${})", a.column, i + 1)
                                        }
                                        ValueRef::Null => format!("{}=NULL", a.column),
                                    })
                                    .collect::<Vec<_>>()
                                    .join(" & ")
                            })
                            .collect::<Vec<_>>()
                            .join(" | "),
                    };
                    format!("{}: {}", t.table, pins)
                })
                .collect();
            let suffix = if a.parsed { "" } else { " (fallback)" };
            format!("{}{}", tables.join("; "), suffix)
        }
    }
}

#[track_caller]
fn check(sql: &str, expected: &str) {
    assert_eq!(show(&an(sql)), expected, "\nSQL: {sql}");
}

fn tables(names: &[&str]) -> WriteTargets {
    WriteTargets::Tables(names.iter().map(|s| s.to_string()).collect())
}

#[track_caller]
fn check_writes(sql: &str, expected: WriteTargets) {
    assert_eq!(wt(sql), expected, "\nSQL: {sql}");
}

// ---------------------------------------------------------------------------------------------
// Public shapes

#[test]
fn raw_shape_of_a_simple_analysis() {
    let sql = r#"SELECT "t"."id" FROM "t" WHERE ("t"."a" = $1) AND ("t"."b" IS NULL)"#;
    assert_eq!(
        an(sql),
        Extracted::Cacheable(Analysis {
            tables: vec![TableDeps {
                table: "t".into(),
                pins: Pins::AnyOf(vec![Conjunction {
                    atoms: vec![
                        Atom {
                            column: "a".into(),
                            value: ValueRef::Bind(0)
                        },
                        Atom {
                            column: "b".into(),
                            value: ValueRef::Null
                        },
                    ],
                }]),
            }],
            parsed: true,
            shape: Shape {
                reads: [("t".to_string(), ["a", "b", "id"].map(String::from).into())].into(),
                projection: Some(vec![("t".into(), "id".into())]),
                entry: [(
                    "t".to_string(),
                    Entry::Alone {
                        columns: ["a", "b"].map(String::from).into()
                    }
                )]
                .into(),
            },
        })
    );
}

#[test]
fn max_conjunctions_is_64() {
    assert_eq!(MAX_CONJUNCTIONS, 64);
}

// ---------------------------------------------------------------------------------------------
// Atoms

#[test]
fn equality_with_a_placeholder_pins() {
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."a" = $1)"#,
        "t: a=$1",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ($1 = "t"."a")"#,
        "t: a=$1",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $12"#,
        "t: a=$12",
    );
}

#[test]
fn eq_any_pins_with_the_array_bind() {
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."a" = ANY($1))"#,
        "t: a=ANY($1)",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = SOME($2)"#,
        "t: a=ANY($2)",
    );
}

#[test]
fn in_list_of_placeholders_is_a_union() {
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" IN ($1, $2, $3)"#,
        "t: a=$1 | a=$2 | a=$3",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" IN ($1, $1)"#,
        "t: a=$1",
    );
    // A literal in the list: we only key on binds.
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" IN ($1, 3)"#,
        "t: *",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" NOT IN ($1, $2)"#,
        "t: *",
    );
}

#[test]
fn row_constructor_equality_pins_each_column() {
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."a", "t"."b") = ($1, $2)"#,
        "t: a=$1 & b=$2",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ($1, $2) = ("t"."a", "t"."b")"#,
        "t: a=$1 & b=$2",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."a", "t"."b") IN (($1, $2), ($3, $4))"#,
        "t: a=$1 & b=$2 | a=$3 & b=$4",
    );
    // A literal element pins nothing, the others still do.
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."a", "t"."b") = ($1, 2)"#,
        "t: a=$1",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."a", "t"."b") = ($1)"#,
        "t: *",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."a", "t"."b") IN (($1, 2), (3, 4))"#,
        "t: *",
    );
    // Row equality between relations links pairwise.
    check(
        r#"SELECT "a"."id" FROM "a" INNER JOIN "b" ON ("b"."x", "b"."y") = ("a"."x", "a"."y") WHERE "a"."x" = $1 AND "a"."y" = $2"#,
        "a: x=$1 & y=$2; b: x=$1 & y=$2",
    );
}

#[test]
fn is_null_pins_null() {
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."a" IS NULL)"#,
        "t: a=NULL",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."a" IS NOT NULL)"#,
        "t: *",
    );
}

#[test]
fn other_predicates_pin_nothing() {
    for predicate in [
        r#""t"."a" != $1"#,
        r#""t"."a" <> $1"#,
        r#""t"."a" < $1"#,
        r#""t"."a" > $1"#,
        r#""t"."a" <= $1"#,
        r#""t"."a" >= $1"#,
        r#""t"."a" LIKE $1"#,
        r#""t"."a" ILIKE $1"#,
        r#""t"."a" NOT LIKE $1"#,
        r#""t"."a" BETWEEN $1 AND $2"#,
        r#""t"."a" IS DISTINCT FROM $1"#,
        r#""t"."a" IS NOT DISTINCT FROM $1"#,
        r#"NOT ("t"."a" = $1)"#,
        r#"lower("t"."a") = $1"#,
        r#""t"."a" = lower($1)"#,
        r#""t"."a" = $1::int4"#,
        r#""t"."a" + 1 = $1"#,
        r#""t"."flag""#,
        r#""t"."a" = 3"#,
        r#""t"."a" = 'x'"#,
        r#""t"."a" = "t"."b""#,
        r#""t"."a" != ALL($1)"#,
        r#""t"."a" < ANY($1)"#,
        r#""t"."a" = $0"#,
        r#"$1 = $2"#,
        r#"CASE WHEN "t"."a" = $1 THEN true ELSE false END"#,
        r#""t"."a" = ANY(ARRAY[$1, $2])"#,
        r#""t"."a" IN (SELECT "u"."x" FROM "u")"#,
        r#"TRUE"#,
    ] {
        let sql = format!(r#"SELECT "t"."id" FROM "t" WHERE {predicate}"#);
        let shown = show(&an(&sql));
        assert!(shown.starts_with("t: *"), "{predicate}: {shown}");
    }
}

#[test]
fn nested_parentheses_are_transparent() {
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ((("t"."a" = ($1))))"#,
        "t: a=$1",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ((("t"."a" = $1) AND (("t"."b" = $2))))"#,
        "t: a=$1 & b=$2",
    );
}

#[test]
fn bind_index_is_zero_based() {
    let Extracted::Cacheable(a) = an(r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $10"#) else {
        panic!("not cacheable")
    };
    assert_eq!(
        a.tables[0].pins,
        Pins::AnyOf(vec![Conjunction {
            atoms: vec![Atom {
                column: "a".into(),
                value: ValueRef::Bind(9)
            }]
        }])
    );
}

// ---------------------------------------------------------------------------------------------
// AND / OR

#[test]
fn and_combines_and_does_not_spoil_siblings() {
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."a" = $1) AND ("t"."b" = $2)"#,
        "t: a=$1 & b=$2",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."status" != $1) AND ("t"."user_id" = $2)"#,
        "t: user_id=$2",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."title" LIKE $1 AND "t"."user_id" = $2 AND "t"."score" > $3"#,
        "t: user_id=$2",
    );
    // Duplicate atoms collapse.
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1 AND "t"."a" = $1"#,
        "t: a=$1",
    );
    // Contradictory conjunctions are kept (harmless).
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1 AND "t"."a" = $2"#,
        "t: a=$1 & a=$2",
    );
}

#[test]
fn or_unions_only_when_both_sides_pin() {
    check(
        r#"SELECT "t"."id" FROM "t" WHERE (("t"."a" = $1) OR ("t"."b" = $2))"#,
        "t: a=$1 | b=$2",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE (("t"."a" = $1) OR ("t"."b" > $2))"#,
        "t: *",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1 OR "t"."a" = $1"#,
        "t: a=$1",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1 OR "t"."a" = $2 OR "t"."a" IS NULL"#,
        "t: a=$1 | a=$2 | a=NULL",
    );
}

#[test]
fn and_or_nesting_distributes() {
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."a" = $1 OR "t"."a" = $2) AND ("t"."b" = $3 OR "t"."b" = $4)"#,
        "t: a=$1 & b=$3 | a=$1 & b=$4 | a=$2 & b=$3 | a=$2 & b=$4",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."a" = $1 AND "t"."b" > $2) OR ("t"."c" = $3 AND "t"."d" = $4)"#,
        "t: a=$1 | c=$3 & d=$4",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."a" = $1 OR "t"."b" > $2) AND "t"."c" = $3"#,
        "t: c=$3",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1 AND ("t"."b" = $2 OR ("t"."c" = $3 AND ("t"."d" = $4 OR "t"."d" = $5)))"#,
        "t: a=$1 & b=$2 | a=$1 & c=$3 & d=$4 | a=$1 & c=$3 & d=$5",
    );
}

#[test]
fn or_across_tables_is_whole_for_both() {
    check(
        r#"SELECT "a"."id" FROM ("a" INNER JOIN "b" ON ("b"."a_id" = "a"."id")) WHERE (("a"."x" = $1) OR ("b"."y" = $2))"#,
        "a: *; b: *",
    );
}

fn or_group(column: &str, first: usize, n: usize) -> String {
    let parts: Vec<String> = (first..first + n)
        .map(|i| format!(r#""t"."{column}" = ${i}"#))
        .collect();
    format!("({})", parts.join(" OR "))
}

fn conjunction_count(sql: &str) -> Option<(usize, Vec<Conjunction>)> {
    match an(sql) {
        Extracted::Cacheable(a) => match &a.tables[0].pins {
            Pins::AnyOf(c) => Some((c.len(), c.clone())),
            Pins::Whole => None,
        },
        _ => None,
    }
}

#[test]
fn and_cross_product_is_capped_keeping_the_narrower_side() {
    // 8 x 8 = 64: kept.
    let sql = format!(
        r#"SELECT "t"."id" FROM "t" WHERE {} AND {}"#,
        or_group("a", 1, 8),
        or_group("b", 9, 8)
    );
    assert_eq!(conjunction_count(&sql).map(|c| c.0), Some(64));
    // 9 x 8 = 72 > 64: keep the 8 b's.
    let sql = format!(
        r#"SELECT "t"."id" FROM "t" WHERE {} AND {}"#,
        or_group("a", 1, 9),
        or_group("b", 10, 8)
    );
    let (n, conjunctions) = conjunction_count(&sql).expect("pinned");
    assert_eq!(n, 8);
    assert!(conjunctions
        .iter()
        .all(|c| c.atoms.len() == 1 && c.atoms[0].column == "b"));
    // The order of the operands does not matter.
    let sql = format!(
        r#"SELECT "t"."id" FROM "t" WHERE {} AND {}"#,
        or_group("b", 1, 8),
        or_group("a", 9, 9)
    );
    let (n, conjunctions) = conjunction_count(&sql).expect("pinned");
    assert_eq!(n, 8);
    assert!(conjunctions.iter().all(|c| c.atoms[0].column == "b"));
    // Over the cap, a further single atom still multiplies in (8 x 1).
    let sql = format!(
        r#"SELECT "t"."id" FROM "t" WHERE {} AND {} AND "t"."c" = $99"#,
        or_group("a", 1, 9),
        or_group("b", 10, 8)
    );
    let (n, conjunctions) = conjunction_count(&sql).expect("pinned");
    assert_eq!(n, 8);
    assert!(conjunctions.iter().all(|c| c.atoms.len() == 2));
}

#[test]
fn big_in_lists_and_or_chains_are_not_capped() {
    let list: Vec<String> = (1..=300).map(|i| format!("${i}")).collect();
    let sql = format!(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" IN ({})"#,
        list.join(", ")
    );
    assert_eq!(conjunction_count(&sql).map(|c| c.0), Some(300));
    let sql = format!(
        r#"SELECT "t"."id" FROM "t" WHERE {}"#,
        or_group("a", 1, 200)
    );
    assert_eq!(conjunction_count(&sql).map(|c| c.0), Some(200));
}

// ---------------------------------------------------------------------------------------------
// Names and column resolution

#[test]
fn names_are_normalised() {
    check(
        r#"SELECT "t"."id" FROM "public"."t" WHERE "t"."a" = $1"#,
        "public.t: a=$1",
    );
    check(
        r#"SELECT "t"."id" FROM "public"."t" WHERE "public"."t"."a" = $1"#,
        "public.t: a=$1",
    );
    check(
        r#"SELECT "t"."id" FROM public.t WHERE public.t.a = $1"#,
        "public.t: a=$1",
    );
    check(
        r#"SELECT "t"."id" FROM "app"."t" WHERE "app"."t"."a" = $1"#,
        "app.t: a=$1",
    );
    check(
        r#"SELECT "t"."id" FROM "app"."t" WHERE "t"."a" = $1"#,
        "app.t: a=$1",
    );
    check(
        r#"SELECT Users.Id FROM Users WHERE Users.Name = $1"#,
        "users: name=$1",
    );
    check(
        r#"SELECT "Users"."Id" FROM "Users" WHERE "Users"."Name" = $1"#,
        "Users: Name=$1",
    );
    check(
        r#"SELECT "we""ird"."a" FROM "we""ird" WHERE "we""ird"."a" = $1"#,
        "we\"ird: a=$1",
    );
    check(
        r#"SELECT * FROM "Mixed" AS "M" WHERE "M"."Col" = $1"#,
        "Mixed: Col=$1",
    );
}

#[test]
fn unqualified_columns_resolve_only_with_a_single_relation() {
    check(
        r#"SELECT id FROM t WHERE a = $1 AND "B" = $2"#,
        "t: B=$2 & a=$1",
    );
    check(
        r#"SELECT "a"."id" FROM "a" INNER JOIN "b" ON "b"."a_id" = "a"."id" WHERE "x" = $1"#,
        "a: *; b: *",
    );
}

#[test]
fn qualifiers_resolve_by_alias_or_table_name() {
    check(
        r#"SELECT "p"."id" FROM "photos" AS "p" WHERE "p"."user_id" = $1"#,
        "photos: user_id=$1",
    );
    check(
        r#"SELECT p.id FROM photos p WHERE p.user_id = $1"#,
        "photos: user_id=$1",
    );
    // Once aliased, the table name no longer names it.
    check(
        r#"SELECT "p"."id" FROM "photos" AS "p" WHERE "photos"."user_id" = $1"#,
        "photos: *",
    );
    // Unknown qualifier.
    check(r#"SELECT "t"."id" FROM "t" WHERE "nope"."a" = $1"#, "t: *");
}

#[test]
fn an_alias_with_a_column_list_renames_columns() {
    check(
        r#"SELECT "x"."id" FROM "t" AS "x"("id", "b") WHERE "x"."b" = $1"#,
        "t: *",
    );
}

// ---------------------------------------------------------------------------------------------
// Joins

const THREE: &str = r#"FROM (("third_models" INNER JOIN "second_models" ON ("third_models"."second_model_id" = "second_models"."id")) INNER JOIN "first_models" ON ("second_models"."first_model_id" = "first_models"."id"))"#;

#[test]
fn inner_join_propagates_pins_across_links() {
    check(
        r#"SELECT "third_models"."id", "third_models"."text" FROM ("third_models" INNER JOIN "second_models" ON ("third_models"."second_model_id" = "second_models"."id")) WHERE ("second_models"."first_model_id" = $1) LIMIT $2"#,
        "second_models: first_model_id=$1; third_models: *",
    );
    check(
        r#"SELECT "third_models"."id" FROM ("third_models" INNER JOIN "second_models" ON ("third_models"."second_model_id" = "second_models"."id")) WHERE ("second_models"."id" = $1)"#,
        "second_models: id=$1; third_models: second_model_id=$1",
    );
}

#[test]
fn join_propagation_through_two_inner_joins() {
    check(
        &format!(r#"SELECT "third_models"."id" {THREE} WHERE ("first_models"."id" = $1)"#),
        "first_models: id=$1; second_models: first_model_id=$1; third_models: *",
    );
    check(
        &format!(r#"SELECT "third_models"."id" {THREE} WHERE ("second_models"."id" = $1)"#),
        "first_models: *; second_models: id=$1; third_models: second_model_id=$1",
    );
    check(
        &format!(
            r#"SELECT "third_models"."id" {THREE} WHERE ("first_models"."id" = $1) AND ("third_models"."id" = ANY($2))"#
        ),
        "first_models: id=$1; second_models: first_model_id=$1; third_models: id=ANY($2)",
    );
    // Two hops: c.b_a_id = b.a_id = a.id = $1.
    check(
        r#"SELECT "c"."id" FROM (("a" INNER JOIN "b" ON ("b"."a_id" = "a"."id")) INNER JOIN "c" ON ("c"."b_a_id" = "b"."a_id")) WHERE ("a"."id" = $1)"#,
        "a: id=$1; b: a_id=$1; c: b_a_id=$1",
    );
    // An ANY pin travels too, and an IN list.
    check(
        r#"SELECT "b"."id" FROM "a" INNER JOIN "b" ON "b"."a_id" = "a"."id" WHERE "a"."id" = ANY($1)"#,
        "a: id=ANY($1); b: a_id=ANY($1)",
    );
    check(
        r#"SELECT "b"."id" FROM "a" INNER JOIN "b" ON "b"."a_id" = "a"."id" WHERE "a"."id" IN ($1, $2)"#,
        "a: id=$1 | id=$2; b: a_id=$1 | a_id=$2",
    );
}

#[test]
fn links_join_columns_of_the_same_relation_and_values_under_or() {
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = "t"."b" AND "t"."a" = $1"#,
        "t: a=$1 & b=$1",
    );
    check(
        r#"SELECT "b"."id" FROM "a" INNER JOIN "b" ON "b"."a_id" = "a"."id" WHERE ("a"."id" = $1 OR "a"."id" = $2)"#,
        "a: id=$1 | id=$2; b: a_id=$1 | a_id=$2",
    );
    // An equality inside an OR is not a link.
    check(
        r#"SELECT "b"."id" FROM "a" INNER JOIN "b" ON ("b"."a_id" = "a"."id" OR "b"."k" = $2) WHERE "a"."id" = $1"#,
        "a: id=$1; b: *",
    );
    // IS NULL does not travel.
    check(
        r#"SELECT "b"."id" FROM "a" INNER JOIN "b" ON "b"."a_id" = "a"."id" WHERE "a"."id" IS NULL"#,
        "a: id=NULL; b: *",
    );
}

#[test]
fn inner_join_on_pins_and_is_null_in_inner_on() {
    check(
        r#"SELECT "a"."id" FROM "a" INNER JOIN "b" ON ("b"."a_id" = "a"."id" AND "b"."deleted_at" IS NULL AND "a"."k" = $1)"#,
        "a: k=$1; b: deleted_at=NULL",
    );
}

#[test]
fn comma_from_list_is_an_inner_join() {
    check(
        r#"SELECT "a"."id" FROM "a", "b" WHERE "a"."id" = "b"."a_id" AND "a"."id" = $1"#,
        "a: id=$1; b: a_id=$1",
    );
}

#[test]
fn left_join_propagates_from_preserved_to_nullable_only() {
    check(
        r#"SELECT "first_models"."id" FROM ("first_models" LEFT OUTER JOIN "second_models" ON ("second_models"."first_model_id" = "first_models"."id")) WHERE ("first_models"."id" = $1)"#,
        "first_models: id=$1; second_models: first_model_id=$1",
    );
    // A pin on the nullable side does not reach the preserved side through the ON.
    check(
        r#"SELECT "first_models"."id" FROM ("first_models" LEFT OUTER JOIN "second_models" ON ("second_models"."first_model_id" = "first_models"."id")) WHERE ("second_models"."first_model_id" = $1)"#,
        "first_models: *; second_models: first_model_id=$1",
    );
    // The ON narrows the nullable side only.
    check(
        r#"SELECT "a"."id" FROM "a" LEFT JOIN "b" ON ("b"."a_id" = "a"."id" AND "b"."kind" = $1)"#,
        "a: *; b: kind=$1",
    );
    check(
        r#"SELECT "a"."id" FROM "a" LEFT JOIN "b" ON ("b"."a_id" = "a"."id" AND "a"."kind" = $1)"#,
        "a: *; b: *",
    );
}

#[test]
fn is_null_on_a_left_joined_relation() {
    // In WHERE: the anti-join pattern, pins nothing for b.
    check(
        r#"SELECT "a"."id" FROM ("a" LEFT OUTER JOIN "b" ON ("b"."a_id" = "a"."id")) WHERE ("a"."id" = $1) AND ("b"."id" IS NULL)"#,
        "a: id=$1; b: a_id=$1",
    );
    check(
        r#"SELECT "a"."id" FROM ("a" LEFT OUTER JOIN "b" ON ("b"."a_id" = "a"."id")) WHERE ("b"."id" IS NULL)"#,
        "a: *; b: *",
    );
    // In the LEFT JOIN's own ON: b is not null-extended there, so it pins.
    check(
        r#"SELECT "a"."id" FROM ("a" LEFT OUTER JOIN "b" ON (("b"."a_id" = "a"."id") AND ("b"."deleted_at" IS NULL))) WHERE ("a"."id" = $1)"#,
        "a: id=$1; b: a_id=$1 & deleted_at=NULL",
    );
    // On the preserved side, IS NULL in WHERE still pins.
    check(
        r#"SELECT "a"."id" FROM ("a" LEFT OUTER JOIN "b" ON ("b"."a_id" = "a"."id")) WHERE ("a"."deleted_at" IS NULL)"#,
        "a: deleted_at=NULL; b: *",
    );
}

#[test]
fn nested_joins_scope_their_on_clauses() {
    // The inner join nested in the nullable side applies only inside it.
    check(
        r#"SELECT "a"."id" FROM "a" LEFT JOIN ("b" INNER JOIN "c" ON ("c"."b_id" = "b"."id" AND "c"."k" = $2)) ON "b"."a_id" = "a"."id" WHERE "a"."x" = $1"#,
        "a: x=$1; b: *; c: k=$2",
    );
    // Inner-join ONs of the preserved side hold for the nullable side too.
    check(
        r#"SELECT "a"."id" FROM ("a" INNER JOIN "b" ON "b"."id" = "a"."b_id") LEFT JOIN "c" ON "c"."b_id" = "b"."id" WHERE "a"."b_id" = $1"#,
        "a: b_id=$1; b: id=$1; c: b_id=$1",
    );
    // A nested left join: IS NULL in the outer ON on the innermost nullable relation pins
    // nothing, in its own ON it pins.
    check(
        r#"SELECT "a"."id" FROM "a" LEFT JOIN ("b" LEFT JOIN "c" ON ("c"."b_id" = "b"."id" AND "c"."d" IS NULL)) ON ("b"."a_id" = "a"."id" AND "c"."e" IS NULL) WHERE "a"."id" = $1"#,
        "a: id=$1; b: a_id=$1; c: d=NULL",
    );
    // An inner join whose right side is a parenthesised join: its ONs hold for everyone.
    check(
        r#"SELECT "a"."id" FROM "a" INNER JOIN ("b" INNER JOIN "c" ON "c"."b_id" = "b"."id") ON "b"."a_id" = "a"."id" WHERE "c"."b_id" = $1"#,
        "a: *; b: id=$1; c: b_id=$1",
    );
}

#[test]
fn self_join_via_alias_merges_both_relations() {
    check(
        r#"SELECT "photos"."id" FROM ("photos" INNER JOIN "photos" AS "p2" ON ("p2"."user_id" = "photos"."user_id")) WHERE ("photos"."user_id" = $1)"#,
        "photos: user_id=$1",
    );
    check(
        r#"SELECT "photos"."id" FROM ("photos" INNER JOIN "photos" AS "p2" ON ("p2"."user_id" = "photos"."user_id")) WHERE ("photos"."id" = $1) AND ("p2"."id" = $2)"#,
        "photos: id=$1 | id=$2",
    );
    // One of the two unpinned: the table is whole.
    check(
        r#"SELECT "photos"."id" FROM ("photos" INNER JOIN "photos" AS "p2" ON ("p2"."user_id" = "photos"."user_id")) WHERE ("photos"."id" = $1)"#,
        "photos: *",
    );
}

#[test]
fn unmodelled_joins_make_every_table_whole() {
    for join in [
        r#""a" RIGHT JOIN "b" ON "b"."a_id" = "a"."id""#,
        r#""a" RIGHT OUTER JOIN "b" ON "b"."a_id" = "a"."id""#,
        r#""a" FULL OUTER JOIN "b" ON "b"."a_id" = "a"."id""#,
        r#""a" CROSS JOIN "b""#,
        r#""a" NATURAL JOIN "b""#,
        r#""a" INNER JOIN "b" USING ("id")"#,
        r#""a", LATERAL (SELECT * FROM "b" WHERE "b"."a_id" = "a"."id") AS "l""#,
    ] {
        let sql = format!(r#"SELECT "a"."id" FROM {join} WHERE "a"."id" = $1"#);
        let shown = show(&an(&sql));
        assert!(shown.starts_with("a: *; b: *"), "{join}: {shown}");
    }
}

// ---------------------------------------------------------------------------------------------
// Sub-selects, derived tables, set operations, CTEs

#[test]
fn sub_selects_are_whole() {
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1 AND "t"."b" IN (SELECT "u"."id" FROM "u" WHERE "u"."x" = $2)"#,
        "t: a=$1; u: *",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."b" IN (SELECT "u"."id" FROM "u" WHERE "u"."x" = $1)"#,
        "t: *; u: *",
    );
    check(
        r#"SELECT "t"."id", (SELECT COUNT(*) FROM "u" WHERE "u"."t_id" = "t"."id") FROM "t" WHERE "t"."a" = $1"#,
        "t: a=$1; u: *",
    );
    check(
        r#"SELECT "t"."a", COUNT(*) FROM "t" WHERE "t"."a" = $1 GROUP BY "t"."a" HAVING COUNT(*) > (SELECT COUNT(*) FROM "v")"#,
        "t: a=$1; v: *",
    );
    check(
        r#"SELECT "t"."id" FROM "t" INNER JOIN "u" ON ("u"."t_id" = "t"."id" AND "u"."k" IN (SELECT "w"."k" FROM "w")) WHERE "t"."id" = $1"#,
        "t: id=$1; u: t_id=$1; w: *",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = ANY(SELECT "u"."a" FROM "u")"#,
        "t: *; u: *",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1 ORDER BY (SELECT MAX("u"."x") FROM "u")"#,
        "t: a=$1; u: *",
    );
    check(
        r#"SELECT ARRAY(SELECT "u"."x" FROM "u") FROM "t" WHERE "t"."a" = $1"#,
        "t: a=$1; u: *",
    );
    // A table read at the top and in a sub-select is whole.
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1 AND "t"."b" IN (SELECT "t"."b" FROM "t")"#,
        "t: *",
    );
    // Deep nesting.
    check(
        r#"SELECT "a"."id" FROM "a" WHERE "a"."x" IN (SELECT "b"."x" FROM "b" WHERE "b"."y" IN (SELECT "c"."y" FROM "c" WHERE EXISTS (SELECT 1 FROM "d")))"#,
        "a: *; b: *; c: *; d: *",
    );
}

#[test]
fn exists_sub_selects_are_whole() {
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."a" = $1) AND EXISTS (SELECT "u"."id" FROM "u" WHERE ("u"."t_id" = "t"."id"))"#,
        "t: a=$1; u: *",
    );
    check(
        r#"SELECT EXISTS (SELECT "u"."id" FROM "u" WHERE ("u"."id" = $1))"#,
        "u: *",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE NOT EXISTS (SELECT 1 FROM "u" WHERE "u"."t_id" = "t"."id")"#,
        "t: *; u: *",
    );
}

#[test]
fn derived_tables_are_whole_inside() {
    check(
        r#"SELECT "s"."id" FROM (SELECT "t"."id", "t"."b" FROM "t" WHERE "t"."a" = $1) AS "s" WHERE "s"."b" = $2"#,
        "t: *",
    );
    // A pin can travel through a derived table's column to a real table.
    check(
        r#"SELECT "u"."id" FROM "u" INNER JOIN (SELECT "t"."x" FROM "t") AS "d" ON "d"."x" = "u"."x" WHERE "d"."x" = $1"#,
        "t: *; u: x=$1",
    );
    // With a derived table there are two relations: unqualified names resolve to nothing.
    check(
        r#"SELECT * FROM "u", (SELECT 1 AS "one") AS "d" WHERE "x" = $1"#,
        "u: *",
    );
    // A function in FROM.
    check(
        r#"SELECT "u"."id" FROM "u", generate_series(1, 3) AS "g" WHERE "u"."id" = $1"#,
        "u: id=$1",
    );
    check(
        r#"SELECT "u"."id" FROM "u", unnest($2::int4[]) AS "g"("v") WHERE "u"."id" = $1"#,
        "u: id=$1",
    );
}

#[test]
fn set_operations_merge_branches() {
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1 UNION SELECT "t"."id" FROM "t" WHERE "t"."a" = $2"#,
        "t: a=$1 | a=$2",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1 UNION ALL SELECT "t"."id" FROM "t" WHERE "t"."b" > $2"#,
        "t: *",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1 INTERSECT SELECT "u"."id" FROM "u" WHERE "u"."b" = $2"#,
        "t: a=$1; u: b=$2",
    );
    check(
        r#"(SELECT "t"."id" FROM "t" WHERE "t"."a" = $1) EXCEPT (SELECT "u"."id" FROM "u" WHERE "u"."b" = $2) ORDER BY 1 LIMIT $3"#,
        "t: a=$1; u: b=$2",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1 UNION SELECT "u"."id" FROM "u" UNION SELECT "t"."id" FROM "t" WHERE "t"."a" = $2"#,
        "t: a=$1 | a=$2; u: *",
    );
    // A RIGHT JOIN in one branch: every table whole.
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1 UNION SELECT "u"."id" FROM "u" RIGHT JOIN "v" ON "v"."id" = "u"."id""#,
        "t: *; u: *; v: *",
    );
}

#[test]
fn ctes_make_every_table_whole() {
    check(
        r#"WITH "x" AS (SELECT "t"."id", "t"."u_id" FROM "t" WHERE "t"."a" = $1) SELECT "u"."id" FROM "x" INNER JOIN "u" ON "u"."id" = "x"."u_id" WHERE "u"."id" = $2"#,
        "t: *; u: *",
    );
    // Without RECURSIVE a CTE cannot see itself: the inner "x" is the real table.
    check(
        r#"WITH "x" AS (SELECT * FROM "x") SELECT * FROM "x""#,
        "x: *",
    );
    // A later CTE sees an earlier one.
    check(
        r#"WITH "a" AS (SELECT * FROM "t"), "b" AS (SELECT * FROM "a") SELECT * FROM "b""#,
        "t: *",
    );
    // ...but not the other way round.
    check(
        r#"WITH "a" AS (SELECT * FROM "b"), "b" AS (SELECT * FROM "t") SELECT * FROM "a""#,
        "b: *; t: *",
    );
    check(
        r#"WITH RECURSIVE "r"("n") AS (SELECT 1 UNION ALL SELECT "n" + 1 FROM "r" WHERE "n" < 10) SELECT * FROM "r", "t""#,
        "t: *",
    );
    // A CTE in a sub-select, and a CTE name only in scope inside it.
    check(
        r#"SELECT * FROM "t" WHERE "t"."id" IN (WITH "c" AS (SELECT "u"."id" FROM "u") SELECT "c"."id" FROM "c") AND "t"."a" = $1"#,
        "t: a=$1; u: *",
    );
    check(r#"WITH "c" AS (SELECT 1) SELECT * FROM "c""#, "NoTable");
}

#[test]
fn derived_tables_with_lateral_or_tablesample() {
    check(
        r#"SELECT * FROM "t" TABLESAMPLE BERNOULLI (10)"#,
        "Volatile(tablesample)",
    );
}

// ---------------------------------------------------------------------------------------------
// Not reads

#[test]
fn writes_locks_and_batches_are_not_reads() {
    for sql in [
        r#"SELECT "t"."id" FROM "t" WHERE "t"."id" = $1 FOR UPDATE"#,
        r#"SELECT "t"."id" FROM "t" WHERE "t"."id" = $1 FOR NO KEY UPDATE"#,
        r#"SELECT "t"."id" FROM "t" WHERE "t"."id" = $1 FOR SHARE"#,
        r#"SELECT "t"."id" FROM "t" WHERE "t"."id" = $1 FOR KEY SHARE SKIP LOCKED"#,
        r#"SELECT "t"."id" FROM "t" FOR UPDATE OF "t" NOWAIT"#,
        r#"SELECT * FROM (SELECT * FROM "t" FOR UPDATE) AS "s""#,
        r#"WITH "d" AS (DELETE FROM "t" RETURNING *) SELECT * FROM "d""#,
        r#"WITH "i" AS (INSERT INTO "t" ("a") VALUES ($1) RETURNING *) SELECT * FROM "i""#,
        r#"WITH "u" AS (UPDATE "t" SET "a" = $1 RETURNING *) SELECT * FROM "u""#,
        r#"SELECT * INTO "copy" FROM "t""#,
        r#"SELECT 1; SELECT 2"#,
        r#"SELECT * FROM "t"; SELECT * FROM "u""#,
        r#"INSERT INTO "t" ("a") VALUES ($1)"#,
        r#"UPDATE "t" SET "a" = $1 WHERE "t"."id" = $2"#,
        r#"DELETE FROM "t" WHERE "t"."id" = $1"#,
        r#"CREATE TABLE "t" ("id" int4)"#,
        r#"DROP TABLE "t""#,
        r#"TRUNCATE "t""#,
        r#"EXPLAIN SELECT * FROM "t""#,
        r#"SET search_path TO app"#,
        r#"BEGIN"#,
    ] {
        assert_eq!(show(&an(sql)), "NotARead", "{sql}");
    }
}

#[test]
fn no_table() {
    for sql in [
        "SELECT 1",
        "SELECT $1",
        "SELECT 1 + 2 AS three",
        "VALUES (1), (2)",
        "",
        "  ;  ",
    ] {
        assert_eq!(show(&an(sql)), "NoTable", "{sql:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Functions

#[test]
fn volatile_functions_make_the_query_uncacheable() {
    for (sql, name) in [
        (r#"SELECT now()"#, "now"),
        (r#"SELECT "t"."id" FROM "t" WHERE "t"."at" < now()"#, "now"),
        (r#"SELECT "t"."id" FROM "t" WHERE "t"."at" < NOW()"#, "now"),
        (
            r#"SELECT "t"."id" FROM "t" WHERE "t"."at" < CURRENT_TIMESTAMP"#,
            "current_timestamp",
        ),
        (
            r#"SELECT "t"."id" FROM "t" WHERE "t"."at" < CURRENT_DATE"#,
            "current_date",
        ),
        (
            r#"SELECT "t"."id" FROM "t" WHERE "t"."at" < CURRENT_TIME"#,
            "current_time",
        ),
        (
            r#"SELECT "t"."id" FROM "t" WHERE "t"."at" < LOCALTIME"#,
            "localtime",
        ),
        (
            r#"SELECT "t"."id" FROM "t" WHERE "t"."at" < LOCALTIMESTAMP"#,
            "localtimestamp",
        ),
        (
            r#"SELECT "t"."id" FROM "t" WHERE "t"."owner" = CURRENT_USER"#,
            "current_user",
        ),
        (
            r#"SELECT "t"."id" FROM "t" WHERE "t"."owner" = SESSION_USER"#,
            "session_user",
        ),
        (
            r#"SELECT "t"."id" FROM "t" WHERE "t"."owner" = CURRENT_ROLE"#,
            "current_role",
        ),
        (
            r#"SELECT "t"."id" FROM "t" WHERE "t"."owner" = USER"#,
            "user",
        ),
        (
            r#"SELECT CURRENT_SCHEMA, "t"."id" FROM "t""#,
            "current_schema",
        ),
        (r#"SELECT "t"."id" FROM "t" ORDER BY random()"#, "random"),
        (r#"SELECT nextval('seq'), "t"."id" FROM "t""#, "nextval"),
        (r#"SELECT currval('seq') FROM "t""#, "currval"),
        (r#"SELECT gen_random_uuid() FROM "t""#, "gen_random_uuid"),
        (r#"SELECT clock_timestamp() FROM "t""#, "clock_timestamp"),
        (r#"SELECT txid_current() FROM "t""#, "txid_current"),
        (r#"SELECT pg_sleep(1) FROM "t""#, "pg_sleep"),
        (r#"SELECT my_func("t"."id") FROM "t""#, "my_func"),
        (
            r#"SELECT "app"."my_func"("t"."id") FROM "t""#,
            "app.my_func",
        ),
        (r#"SELECT pg_catalog.now() FROM "t""#, "pg_catalog.now"),
        (r#"SELECT "LOWER"("t"."a") FROM "t""#, "lower"),
        (
            r#"SELECT * FROM "t" WHERE "t"."at" < 'now'::timestamp"#,
            "now",
        ),
        (
            r#"SELECT * FROM "t" WHERE "t"."at" < TIMESTAMP 'now'"#,
            "now",
        ),
        (
            r#"SELECT * FROM "t" WHERE "t"."d" = CAST('today' AS date)"#,
            "now",
        ),
        (
            r#"SELECT * FROM "t" WHERE "t"."id" IN (SELECT "u"."id" FROM "u" WHERE "u"."at" < now())"#,
            "now",
        ),
        (
            r#"SELECT * FROM "t" INNER JOIN "u" ON "u"."id" = "t"."id" AND "u"."at" < now()"#,
            "now",
        ),
        (
            r#"SELECT * FROM "t", generate_series(now(), now(), '1 day') AS "g""#,
            "now",
        ),
        (r#"SELECT * FROM "t", my_srf() AS "g""#, "my_srf"),
        (
            r#"SELECT count(*) FILTER (WHERE "t"."at" < now()) FROM "t""#,
            "now",
        ),
        (
            r#"SELECT sum("t"."a") OVER (ORDER BY random()) FROM "t""#,
            "random",
        ),
        (r#"SELECT * FROM "t" LIMIT floor(random() * 10)"#, "random"),
        (
            r#"SELECT * FROM "t" WHERE EXISTS (SELECT 1 WHERE random() > 0.5)"#,
            "random",
        ),
    ] {
        assert_eq!(
            an(sql),
            Extracted::Uncacheable(Uncacheable::Volatile(name.into())),
            "{sql}"
        );
    }
}

#[test]
fn deterministic_functions_and_constructs_are_fine() {
    for sql in [
        r#"SELECT COUNT(*) FROM "t" WHERE "t"."a" = $1"#,
        r#"SELECT count(DISTINCT "t"."b") FROM "t" WHERE "t"."a" = $1"#,
        r#"SELECT sum("t"."b"), avg("t"."b"), min("t"."b"), max("t"."b") FROM "t" WHERE "t"."a" = $1"#,
        r#"SELECT array_agg("t"."b" ORDER BY "t"."c"), string_agg("t"."d", ',' ORDER BY "t"."c") FROM "t" WHERE "t"."a" = $1"#,
        r#"SELECT bool_and("t"."f"), bool_or("t"."f"), every("t"."f") FROM "t" WHERE "t"."a" = $1"#,
        r#"SELECT lower("t"."b"), upper("t"."b"), length("t"."b"), char_length("t"."b"), octet_length("t"."b") FROM "t" WHERE "t"."a" = $1"#,
        r#"SELECT abs("t"."n"), round("t"."n"), ceil("t"."n"), floor("t"."n"), trunc("t"."n") FROM "t" WHERE "t"."a" = $1"#,
        r#"SELECT coalesce("t"."b", 'x'), nullif("t"."b", ''), greatest(1, 2), least(1, 2) FROM "t" WHERE "t"."a" = $1"#,
        r#"SELECT concat("t"."b", 'x'), concat_ws(',', "t"."b"), substring("t"."b" FROM 1 FOR 2), substr("t"."b", 1), trim("t"."b"), btrim("t"."b"), ltrim("t"."b"), rtrim("t"."b") FROM "t" WHERE "t"."a" = $1"#,
        r#"SELECT replace("t"."b", 'a', 'b'), position('a' IN "t"."b"), strpos("t"."b", 'a'), left("t"."b", 1), right("t"."b", 1), lpad("t"."b", 3), rpad("t"."b", 3), md5("t"."b") FROM "t" WHERE "t"."a" = $1"#,
        r#"SELECT CAST("t"."b" AS text), "t"."b"::text, EXTRACT(YEAR FROM "t"."at"), CASE WHEN "t"."b" = 'x' THEN 1 ELSE 2 END FROM "t" WHERE "t"."a" = $1"#,
        r#"SELECT pg_catalog.lower("t"."b"), "lower"("t"."b") FROM "t" WHERE "t"."a" = $1"#,
        r#"SELECT ROW("t"."b", 1), ARRAY["t"."b"] FROM "t" WHERE "t"."a" = $1"#,
        r#"SELECT row_number() OVER (PARTITION BY "t"."b" ORDER BY "t"."c") FROM "t" WHERE "t"."a" = $1"#,
        r#"SELECT * FROM "t" WHERE "t"."a" = $1 AND "t"."at" > $2::timestamp - INTERVAL '1 day'"#,
        r#"SELECT * FROM "t" WHERE "t"."a" = $1 AND "t"."d" = DATE '2020-01-01'"#,
    ] {
        let shown = show(&an(sql));
        assert_eq!(shown, "t: a=$1", "{sql}");
    }
}

// ---------------------------------------------------------------------------------------------
// Fallback scan

#[test]
fn unparseable_selects_fall_back_to_a_conservative_scan() {
    check(
        r#"SELECT "t"."a" FROM "t" WHERE ("t"."a" = $1"#,
        "t: * (fallback)",
    );
    check(
        r#"SELECT "p2"."id" FROM ("photos" INNER JOIN "photos" AS "p2" ON ("p2"."user_id" = "photos"."user_id")) WHERE "#,
        "p2: *; photos: * (fallback)",
    );
    check(
        r#"SELECT x FROM a, public.b, "app"."c" AS z, ONLY d JOIN e ON e.k = y.k WHERE f.g = ) ("#,
        // `z` is an alias never used as a qualifier: not a candidate (harmless either way).
        "a: *; app.c: *; d: *; e: *; f: *; public.b: *; y: * (fallback)",
    );
    check(
        r#"SELECT * FROM (SELECT * FROM "inner" WHERE x = 1) s, LATERAL "other" WHERE ((("#,
        "inner: *; other: * (fallback)",
    );
    // Qualifiers of wildcards and three-part names.
    check(
        r#"SELECT "t".*, "s"."u"."c" FROM WHERE ((("#,
        "s.u: *; t: * (fallback)",
    );
    // Comments and strings do not confuse the scan.
    check(
        "SELECT 'FROM fake' /* FROM fake2 */ -- FROM fake3\n FROM real WHERE ((",
        "real: * (fallback)",
    );
}

#[test]
fn fallback_refuses_what_it_cannot_vouch_for() {
    // Writes and locks.
    for sql in [
        r#"INSERT INTO "t" VALUES (("#,
        r#"UPDATE "t" SET (("#,
        r#"DELETE FROM "t" WHERE (("#,
        r#"WITH "x" AS (DELETE FROM "t") SELECT (("#,
        r#"TRUNCATE "t" (("#,
        r#"SELECT * FROM "t" WHERE (( FOR UPDATE"#,
        r#"SELECT * FROM "t" WHERE (( FOR SHARE"#,
        r#"SELECT * INTO "u" FROM "t" WHERE (("#,
        r#"SELECT * FROM "t" WHERE ((; SELECT 1"#,
        r#"MERGE garbage (("#,
        r#"garbage garbage"#,
    ] {
        assert_eq!(show(&an(sql)), "NotARead", "{sql}");
    }
    // Volatile functions and keywords are still found.
    assert_eq!(
        show(&an(r#"SELECT now() FROM "t" WHERE (("#)),
        "Volatile(now)"
    );
    assert_eq!(
        show(&an(r#"SELECT CURRENT_DATE FROM "t" WHERE (("#)),
        "Volatile(current_date)"
    );
    assert_eq!(
        show(&an(r#"SELECT pg_catalog.random() FROM "t" (("#)),
        "Volatile(pg_catalog.random)"
    );
    assert_eq!(
        show(&an(r#"SELECT 'now'::date FROM "t" (("#)),
        "Volatile(now)"
    );
    // Known functions and keyword-parentheses are not calls.
    check(
        r#"SELECT COUNT(*), lower("t"."a") FROM "t" WHERE "t"."a" IN ($1) AND EXISTS (SELECT 1) AND "t"."b" = ANY($2) AND CAST("t"."c" AS varchar(10)) = $3 (("#,
        "t: * (fallback)",
    );
    // No table, or too many.
    assert_eq!(show(&an("SELECT (((")), "NoTable");
    let many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
    assert_eq!(
        show(&an(&format!("SELECT * FROM {} WHERE ((", many.join(", ")))),
        "NoTable"
    );
    let some: Vec<String> = (0..64).map(|i| format!("t{i}")).collect();
    assert!(
        show(&an(&format!("SELECT * FROM {} WHERE ((", some.join(", ")))).ends_with("(fallback)")
    );
}

#[test]
fn too_many_operators_skip_the_parser() {
    let mut sql = String::from(r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1"#);
    for _ in 0..(MAX_OPERATOR_TOKENS + 10) {
        sql.push_str(r#" AND "t"."a" = $1"#);
    }
    check(&sql, "t: * (fallback)");
    // Under the limit it is parsed normally.
    let mut sql = String::from(r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1"#);
    for _ in 0..300 {
        sql.push_str(r#" AND "t"."b" = $2"#);
    }
    check(&sql, "t: a=$1 & b=$2");
}

// ---------------------------------------------------------------------------------------------
// write_targets

#[test]
fn writes_of_single_statements() {
    check_writes(
        r#"INSERT INTO "users" ("name") VALUES ($1)"#,
        tables(&["users"]),
    );
    check_writes(
        r#"INSERT INTO "users" ("name") SELECT "o"."name" FROM "others" AS "o""#,
        tables(&["users"]),
    );
    check_writes(
        r#"INSERT INTO "users" ("id", "name") VALUES ($1, $2) ON CONFLICT ("id") DO UPDATE SET "name" = excluded."name" RETURNING "users"."id""#,
        tables(&["users"]),
    );
    check_writes(
        r#"UPDATE "users" SET "name" = $1 WHERE ("users"."id" = $2)"#,
        tables(&["users"]),
    );
    check_writes(
        r#"UPDATE "users" SET "name" = "o"."name" FROM "others" AS "o" WHERE "o"."id" = "users"."id""#,
        tables(&["users"]),
    );
    check_writes(
        r#"DELETE FROM "users" WHERE ("users"."id" = $1)"#,
        tables(&["users"]),
    );
    check_writes(
        r#"DELETE FROM "users" USING "others" WHERE "others"."id" = "users"."id""#,
        tables(&["users"]),
    );
    check_writes(r#"TRUNCATE "a", "b""#, tables(&["a", "b"]));
    check_writes(
        r#"TRUNCATE TABLE ONLY public.a, app.b RESTART IDENTITY CASCADE"#,
        tables(&["app.b", "public.a"]),
    );
    check_writes(
        r#"MERGE INTO "t" USING "s" ON "t"."id" = "s"."id" WHEN MATCHED THEN UPDATE SET "x" = "s"."x" WHEN NOT MATCHED THEN INSERT ("id") VALUES ("s"."id")"#,
        tables(&["t"]),
    );
    check_writes(r#"COPY "t" FROM STDIN"#, tables(&["t"]));
    check_writes(
        r#"COPY "t" ("a", "b") FROM STDIN WITH (FORMAT csv)"#,
        tables(&["t"]),
    );
    check_writes(r#"COPY "t" TO STDOUT"#, WriteTargets::None);
    check_writes(r#"COPY (SELECT * FROM "t") TO STDOUT"#, WriteTargets::None);
    check_writes(
        r#"DROP TABLE "a", "public"."b""#,
        tables(&["a", "public.b"]),
    );
    check_writes(
        r#"ALTER TABLE "users" ADD COLUMN "x" int4"#,
        tables(&["users"]),
    );
    check_writes(
        r#"CREATE INDEX "i" ON "users" ("name")"#,
        tables(&["users"]),
    );
    check_writes(r#"REFRESH MATERIALIZED VIEW "mv""#, tables(&["mv"]));
}

#[test]
fn writable_ctes_and_select_into() {
    check_writes(
        r#"WITH "d" AS (DELETE FROM "a" RETURNING *) SELECT * FROM "d""#,
        tables(&["a"]),
    );
    check_writes(
        r#"WITH "d" AS (DELETE FROM "a" RETURNING *) INSERT INTO "b" SELECT * FROM "d""#,
        tables(&["a", "b"]),
    );
    check_writes(
        r#"WITH "u" AS (UPDATE "a" SET "x" = 1 RETURNING *) UPDATE "b" SET "y" = 2 FROM "u""#,
        tables(&["a", "b"]),
    );
    check_writes(
        r#"WITH "old" AS (SELECT * FROM "a" WHERE "a"."id" = $1 FOR UPDATE) UPDATE "a" SET "x" = $2 FROM "old" WHERE "a"."id" = "old"."id" RETURNING "a"."id""#,
        tables(&["a"]),
    );
    check_writes(r#"SELECT * INTO "copy" FROM "t""#, tables(&["copy"]));
}

#[test]
fn statements_that_write_nothing() {
    for sql in [
        r#"SELECT * FROM "t""#,
        r#"SELECT * FROM "t" FOR UPDATE"#,
        r#"SELECT nextval('s')"#,
        r#"SELECT now(), my_func(1)"#,
        r#"SET search_path TO app"#,
        r#"SET TIME ZONE 'UTC'"#,
        r#"SHOW search_path"#,
        r#"BEGIN"#,
        r#"BEGIN ISOLATION LEVEL SERIALIZABLE"#,
        r#"START TRANSACTION READ ONLY"#,
        r#"COMMIT"#,
        r#"ROLLBACK"#,
        r#"SAVEPOINT "s1""#,
        r#"RELEASE SAVEPOINT "s1""#,
        r#"ROLLBACK TO SAVEPOINT "s1""#,
        r#"EXPLAIN SELECT * FROM "t""#,
        r#"EXPLAIN DELETE FROM "t""#,
        r#"LISTEN "chan""#,
        r#"UNLISTEN "chan""#,
        r#"NOTIFY "chan", 'x'"#,
        r#"DEALLOCATE "p""#,
        r#"PREPARE "p" AS SELECT * FROM "t""#,
        r#"ANALYZE "t""#,
        r#"LOCK TABLE "t" IN ACCESS EXCLUSIVE MODE"#,
        r#"RESET ALL"#,
        r#"DISCARD ALL"#,
        "",
        "  ;  ",
        "-- just a comment",
    ] {
        assert_eq!(wt(sql), WriteTargets::None, "{sql:?}");
    }
}

#[test]
fn statements_with_unknown_targets() {
    for sql in [
        r#"CALL "proc"(1)"#,
        r#"DO $$ BEGIN INSERT INTO "x" VALUES (1); END $$"#,
        r#"CREATE TABLE "t" ("id" int4)"#,
        r#"CREATE VIEW "v" AS SELECT 1"#,
        r#"DROP VIEW "v""#,
        r#"DROP INDEX "i""#,
        r#"DROP SCHEMA "app" CASCADE"#,
        r#"GRANT SELECT ON "t" TO "u""#,
        r#"EXECUTE "p"(1)"#,
        r#"SELECT lo_unlink(42)"#,
        r#"SELECT * FROM dblink_exec('db', 'DELETE FROM t')"#,
        r#"COMMENT ON TABLE "t" IS 'x'"#,
    ] {
        assert_eq!(wt(sql), WriteTargets::Unknown, "{sql}");
    }
}

#[test]
fn explain_analyze_runs_the_statement() {
    check_writes(r#"EXPLAIN ANALYZE DELETE FROM "t""#, tables(&["t"]));
    check_writes(r#"EXPLAIN ANALYZE SELECT * FROM "t""#, WriteTargets::None);
}

#[test]
fn batches_union_their_statements() {
    check_writes(
        r#"BEGIN; INSERT INTO "a" VALUES (1); UPDATE "b" SET "x" = 1; DELETE FROM "c"; SELECT * FROM "d"; COMMIT;"#,
        tables(&["a", "b", "c"]),
    );
    check_writes(
        r#"INSERT INTO "a" VALUES (1); CALL "p"()"#,
        WriteTargets::Unknown,
    );
    check_writes(r#"SELECT 1; SHOW x; SET y = 1"#, WriteTargets::None);
    check_writes(
        "CREATE TABLE x (id int4);\nCREATE INDEX ON x (id);",
        WriteTargets::Unknown,
    );
}

#[test]
fn write_fallback_on_parse_failure() {
    check_writes(r#"INSERT INTO "x" VALUES (("#, tables(&["x"]));
    check_writes(r#"INSERT INTO public.x VALUES (("#, tables(&["public.x"]));
    check_writes(r#"UPDATE ONLY "y" SET garbage (("#, tables(&["y"]));
    check_writes(r#"DELETE FROM "app"."z" WHERE (("#, tables(&["app.z"]));
    check_writes(
        r#"TRUNCATE a, ONLY "B", c * garbage (("#,
        tables(&["B", "a", "c"]),
    );
    check_writes(r#"TRUNCATE TABLE a (("#, tables(&["a"]));
    check_writes(r#"SELECT garbage (( FOR UPDATE"#, WriteTargets::None);
    check_writes(r#"SELECT garbage (( FOR NO KEY UPDATE"#, WriteTargets::None);
    check_writes(
        r#"INSERT INTO x VALUES (( ON CONFLICT DO UPDATE SET a = 1"#,
        tables(&["x"]),
    );
    check_writes(
        r#"INSERT INTO x VALUES (( ON CONFLICT DO NOTHING"#,
        tables(&["x"]),
    );
    check_writes(r#"garbage (( 'INSERT INTO x' "update""#, WriteTargets::None);
    check_writes(r#"INSERT garbage (("#, WriteTargets::Unknown);
    check_writes(r#"DELETE garbage (("#, WriteTargets::Unknown);
    check_writes(r#"UPDATE (("#, WriteTargets::Unknown);
    for keyword in [
        "MERGE", "COPY", "ALTER", "DROP", "CREATE", "CALL", "DO", "GRANT", "REVOKE", "VACUUM",
        "CLUSTER", "REINDEX", "REFRESH", "COMMENT", "LOCK",
    ] {
        check_writes(&format!("{keyword} garbage (("), WriteTargets::Unknown);
    }
    // In a batch, a bad statement does not hide the good ones (or the other way round).
    check_writes(
        r#"INSERT INTO "a" VALUES (1); UPDATE "b" SET garbage ((; DELETE FROM "c""#,
        tables(&["a", "b", "c"]),
    );
    check_writes(r#"SELECT garbage ((; CALL p()"#, WriteTargets::Unknown);
    // Two-phase commit (sqlparser does not parse these).
    check_writes("COMMIT PREPARED 'tx1'", WriteTargets::Unknown);
    check_writes("PREPARE TRANSACTION 'tx1'", WriteTargets::Unknown);
    check_writes("ROLLBACK PREPARED 'tx1'", WriteTargets::None);
    check_writes("EXECUTE p(1", WriteTargets::Unknown);
    // Known writer functions.
    check_writes("SELECT lo_unlink(42) ((", WriteTargets::Unknown);
    check_writes("SELECT pg_catalog.lo_unlink(42) ((", WriteTargets::Unknown);
    check_writes("SELECT my_func(42) ((", WriteTargets::None);
}

#[test]
fn huge_batches_keep_per_statement_precision() {
    // Over the operator budget as a whole, but each statement is small.
    let mut sql = String::new();
    for i in 0..1_000 {
        sql.push_str(&format!(
            r#"UPDATE "t{}" SET "a" = 1 WHERE "id" = 1 AND "b" = 2; "#,
            i % 3
        ));
    }
    sql.push_str("SELECT lo_unlink(1)");
    check_writes(&sql, WriteTargets::Unknown);
    let mut sql = String::new();
    for i in 0..1_000 {
        sql.push_str(&format!(
            r#"UPDATE "t{}" SET "a" = 1 WHERE "id" = 1 AND "b" = 2; "#,
            i % 3
        ));
    }
    check_writes(&sql, tables(&["t0", "t1", "t2"]));
    // A single huge statement takes the keyword fallback.
    let mut sql = String::from(r#"DELETE FROM "t" WHERE "a" = 1"#);
    for _ in 0..5_000 {
        sql.push_str(r#" OR "a" = 1"#);
    }
    check_writes(&sql, tables(&["t"]));
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

#[test]
fn tokenizer_handles_quotes_and_comments() {
    use super::scan::{lex, Tok};
    let toks: Vec<Tok> = lex(
        "SELECT 'it''s', E'a\\'b', \"q\"\"x\", $tag$ a ; b $tag$, $$x$$, $1, 1.5e-3, U&'d', -- c\n/* a /* b */ c */ ;",
    )
    .into_iter()
    .map(|(t, _)| t)
    .collect();
    assert_eq!(
        toks,
        vec![
            Tok::Word("select".into()),
            Tok::Str("it's".into()),
            Tok::Comma,
            Tok::Str("a'b".into()),
            Tok::Comma,
            Tok::Quoted("q\"x".into()),
            Tok::Comma,
            Tok::Str(" a ; b ".into()),
            Tok::Comma,
            Tok::Str("x".into()),
            Tok::Comma,
            Tok::Param,
            Tok::Comma,
            Tok::Number,
            Tok::Comma,
            Tok::Str("d".into()),
            Tok::Comma,
            Tok::Semi,
        ]
    );
    assert_eq!(
        super::scan::split_statements("SELECT ';'; SELECT $$;$$ ;; -- ;\n SELECT \"a;b\""),
        vec!["SELECT ';'", " SELECT $$;$$ ", " -- ;\n SELECT \"a;b\""]
    );
}

// ---------------------------------------------------------------------------------------------
// Robustness

/// A tiny deterministic generator (no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn both(sql: &str) {
    let _ = an(sql);
    let _ = wt(sql);
}

#[test]
fn pathological_inputs_do_not_panic() {
    let mut inputs: Vec<String> = vec![
        String::new(),
        " ".into(),
        ";".into(),
        ";;;".into(),
        "'".into(),
        "\"".into(),
        "$".into(),
        "$$".into(),
        "$a$".into(),
        "$1".into(),
        "/*".into(),
        "/* /* */".into(),
        "--".into(),
        "E'\\".into(),
        "U&".into(),
        "U&'".into(),
        "SELECT".into(),
        "SELECT * FROM".into(),
        "SELECT * FROM \"".into(),
        "SELECT * FROM t WHERE a = '".into(),
        "SELECT * FROM t WHERE a = $".into(),
        "SELECT * FROM t WHERE a = $0".into(),
        "SELECT * FROM t WHERE a = $99999999999999999999999".into(),
        "SELECT * FROM t WHERE a IN ()".into(),
        "SELECT * FROM \"\" WHERE \"\".\"\" = $1".into(),
        "SELECT * FROM t.".into(),
        "SELECT * FROM .t".into(),
        "SELECT 日本語 FROM テーブル WHERE 列 = $1".into(),
        "SELECT \"日本\".\"列\" FROM \"日本\" WHERE \"日本\".\"列\" = $1".into(),
        "SELECT * FROM t WHERE a = '\u{0}\u{1}\u{7f}'".into(),
        "\u{feff}SELECT 1".into(),
        "SELECT \u{200b} FROM t".into(),
        "ＳＥＬＥＣＴ * ＦＲＯＭ t".into(),
        "SELECT 🦀 FROM 🦀".into(),
        "INSERT INTO".into(),
        "UPDATE".into(),
        "DELETE FROM".into(),
        "TRUNCATE".into(),
        "TRUNCATE ,,,".into(),
        "TRUNCATE a,".into(),
        "WITH".into(),
        "WITH RECURSIVE x AS (SELECT * FROM x) SELECT * FROM x".into(),
        "COPY".into(),
        "EXPLAIN ANALYZE".into(),
        "PREPARE p AS".into(),
        "SELECT * FROM a NATURAL FULL JOIN b".into(),
    ];
    // Deep nesting of every kind.
    for n in [10, 100, 1_000, 10_000] {
        inputs.push(format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n)));
        inputs.push(format!(
            "SELECT * FROM t WHERE {}t.a = $1{}",
            "(".repeat(n),
            ")".repeat(n)
        ));
        inputs.push(format!("SELECT * FROM {}t{}", "(".repeat(n), ")".repeat(n)));
        inputs.push("SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c IN (".repeat(n / 10 + 1));
        inputs.push(format!(
            "SELECT * FROM t WHERE {}t.a = $1",
            "NOT ".repeat(n)
        ));
        inputs.push(format!("SELECT {}1", "- ".repeat(n)));
        inputs.push(format!(
            "SELECT * FROM t WHERE t.a = $1{}",
            " OR t.a = $1".repeat(n)
        ));
        inputs.push(format!("SELECT 1{}", "::int".repeat(n)));
        inputs.push(format!("SELECT 1{}", " UNION SELECT 1".repeat(n)));
        inputs.push(format!(
            "SELECT * FROM t0{}",
            (1..n)
                .map(|i| format!(" JOIN t{i} ON t{i}.a = t0.a"))
                .collect::<String>()
        ));
        inputs.push(format!(
            "SELECT * FROM t WHERE a IN ({})",
            vec!["$1"; n].join(",")
        ));
        inputs.push("/*".repeat(n));
        inputs.push("INSERT INTO x VALUES (1);".repeat(n / 10 + 1));
        inputs.push(format!(
            "SELECT * FROM t WHERE {}",
            "t.a = $1 AND (".repeat(n / 2)
        ));
    }
    // Garbage bytes (valid UTF-8 by construction) and token soup.
    let alphabet: Vec<char> = "SELECT FROM WHERE AND OR NOT IN ( ) , . ; ' \" $ 1 $1 = <> ::  /* */ -- \n\t\0é日🦀 INSERT UPDATE DELETE JOIN LEFT ON IS NULL ANY".chars().collect();
    let words = [
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "(", ")", ",", ".", ";", "'", "\"",
        "$1", "$2", "=", "<>", "::", "/*", "*/", "--", "\n", "JOIN", "LEFT", "ON", "IS", "NULL",
        "ANY", "\"t\"", "\"u\"", "t", "a", "INSERT", "INTO", "UPDATE", "SET", "DELETE", "WITH",
        "AS", "UNION", "EXISTS", "now()", "count(*)", "FOR", "TRUNCATE", "*", "$$", "E'",
        "LATERAL", "CROSS", "USING", "VALUES", "ORDER", "BY", "LIMIT", "DO", "COPY",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..1_500 {
        let len = rng.below(60);
        let s: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        inputs.push(s);
        let len = rng.below(40);
        let s: Vec<&str> = (0..len).map(|_| words[rng.below(words.len())]).collect();
        inputs.push(s.join(" "));
    }
    // Every prefix of a real query.
    let real = r#"WITH "x" AS (SELECT "a"."id" FROM "a" WHERE "a"."k" = ANY($1)) SELECT "t"."id", COUNT(*) FROM ("t" LEFT OUTER JOIN "u" AS "v" ON (("v"."t_id" = "t"."id") AND ("v"."d" IS NULL))) WHERE (("t"."a" = $2) OR "t"."b" IN ($3, $4)) AND EXISTS (SELECT 1 FROM "x") GROUP BY "t"."id" LIMIT $5"#;
    for end in 0..=real.len() {
        if real.is_char_boundary(end) {
            inputs.push(real[..end].to_string());
        }
    }
    // Run on a thread with a small (1 MiB) stack to catch deep recursion.
    let handle = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            for input in &inputs {
                both(input);
            }
        })
        .expect("spawn");
    handle
        .join()
        .expect("a pathological input panicked or overflowed");
}

#[test]
fn long_operator_chain_does_not_overflow_a_small_stack() {
    let handle = std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(|| {
            let mut sql = String::from(r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1"#);
            for _ in 0..100_000 {
                sql.push_str(r#" AND "t"."a" = $1"#);
            }
            (show(&an(&sql)), wt(&sql))
        })
        .expect("spawn");
    let (shown, writes) = handle.join().expect("overflowed");
    assert_eq!(shown, "t: * (fallback)");
    assert_eq!(writes, WriteTargets::None);
}

#[test]
fn an_expression_level_collation_pins_nothing() {
    // `COLLATE` can make unequal bytes equal (a nondeterministic collation): the
    // comparison is not byte equality, so the table is whole.
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" COLLATE "ci" = $1"#,
        "t: *",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE "t"."a" = $1 COLLATE "ci""#,
        "t: *",
    );
    check(
        r#"SELECT "t"."id" FROM "t" WHERE ("t"."a" = ($1 COLLATE "ci")) AND "t"."b" = $2"#,
        "t: b=$2",
    );
}

#[test]
fn explain_analyze_runs_the_statement_whatever_the_option_syntax() {
    for sql in [
        "EXPLAIN (ANALYZE, BUFFERS) UPDATE b SET x = 1",
        "EXPLAIN (FORMAT JSON, ANALYZE true, TIMING false) UPDATE b SET x = 1",
        "explain (analyze) update b set x = 1",
        "EXPLAIN (ANALYZE false) UPDATE b SET x = 1", // over-invalidates, never misses
        "EXPLAIN ANALYZE VERBOSE DELETE FROM b",
        "EXPLAIN ANALYZE WITH d AS (DELETE FROM b RETURNING *) SELECT * FROM d",
    ] {
        check_writes(sql, tables(&["b"]));
    }
    for sql in [
        "EXPLAIN UPDATE b SET x = 1",
        "EXPLAIN VERBOSE DELETE FROM b",
        "EXPLAIN (COSTS false, VERBOSE) UPDATE b SET x = 1",
    ] {
        check_writes(sql, WriteTargets::None);
    }
}

#[test]
fn other_write_shapes() {
    for (sql, want) in [
        (
            "WITH x AS (UPDATE b SET x = 1 RETURNING *) SELECT * FROM x",
            tables(&["b"]),
        ),
        ("SELECT * FROM b FOR UPDATE", WriteTargets::None),
        (
            "SELECT * FROM b FOR NO KEY UPDATE SKIP LOCKED",
            WriteTargets::None,
        ),
        ("COPY b FROM STDIN", tables(&["b"])),
        ("COPY b TO STDOUT", WriteTargets::None),
        (
            "MERGE INTO b USING c ON b.id = c.id WHEN MATCHED THEN DELETE",
            tables(&["b"]),
        ),
        ("INSERT INTO b SELECT * FROM c", tables(&["b"])),
        ("SELECT * INTO d FROM b", tables(&["d"])),
        ("CREATE TABLE d AS SELECT * FROM b", WriteTargets::Unknown),
        ("ALTER TABLE b ADD COLUMN y INT", tables(&["b"])),
        ("DROP TABLE b, c CASCADE", tables(&["b", "c"])),
        ("CALL p()", WriteTargets::Unknown),
        ("DO $$ BEGIN COMMIT; END $$", WriteTargets::Unknown),
        (
            "IMPORT FOREIGN SCHEMA s FROM SERVER f INTO public",
            WriteTargets::Unknown,
        ),
        ("SELECT lo_unlink(1)", WriteTargets::Unknown),
    ] {
        check_writes(sql, want);
    }
}

fn bw(sql: &str) -> Vec<(String, WriteTargets, bool)> {
    batch_writes(sql, SqlDialect::PostgreSql)
        .into_iter()
        .map(|s| (s.text.trim().to_owned(), s.writes, s.truncate_cascade))
        .collect()
}

#[test]
fn a_batch_is_split_into_its_statements_in_order() {
    let got = bw("BEGIN; SET LOCAL lock_timeout = '5s;'; UPDATE b SET t = ';' -- ;\n; COMMIT");
    let texts: Vec<&str> = got.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(
        texts,
        [
            "BEGIN",
            "SET LOCAL lock_timeout = '5s;'",
            "UPDATE b SET t = ';' -- ;",
            "COMMIT"
        ]
    );
    assert_eq!(got[2].1, tables(&["b"]));
    assert_eq!(got[1].1, WriteTargets::None);
    // Comments are comments, wherever the markers are.
    let got = bw("SELECT 1 -- binds: x\n; UPDATE b SET x = 1");
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].1, tables(&["b"]));
    // Comment-only pieces are no statements.
    assert_eq!(bw("SELECT 1; -- bye\n; /* nothing */").len(), 1);
    // A rule's actions and an SQL-standard function body are one statement each.
    let got = bw(
        "CREATE RULE r AS ON UPDATE TO b DO ALSO (INSERT INTO a VALUES (1); DELETE FROM c); \
         CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC \
         SELECT CASE WHEN true THEN 1 END; UPDATE c SET x = 1; END; UPDATE d SET x = 1",
    );
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[2].1, tables(&["d"]));
}

#[test]
fn truncate_cascade_is_flagged() {
    assert_eq!(
        bw("TRUNCATE a CASCADE"),
        [("TRUNCATE a CASCADE".to_owned(), tables(&["a"]), true)]
    );
    assert_eq!(
        bw("TRUNCATE TABLE a, b RESTART IDENTITY"),
        [(
            "TRUNCATE TABLE a, b RESTART IDENTITY".to_owned(),
            tables(&["a", "b"]),
            false
        )]
    );
    // Unparsed: everything.
    assert_eq!(
        fallback_writes_of("TRUNCATE a CASCADE garbage("),
        WriteTargets::Unknown
    );
}

fn fallback_writes_of(sql: &str) -> WriteTargets {
    scan::fallback_writes(sql)
}
