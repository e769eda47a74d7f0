//! Real Diesel queries, rendered by the real PostgreSQL backend, analysed.

use crate::backend::SqlDialect;
use diesel::prelude::*;

use super::tests::show;
use super::*;

mod schema {
    diesel::table! {
        first_models (id) {
            id -> Int4,
            text -> Text,
        }
    }

    diesel::table! {
        second_models (id) {
            id -> Int4,
            text -> Text,
            first_model_id -> Int4,
        }
    }

    diesel::table! {
        third_models (id) {
            id -> Int4,
            text -> Text,
            second_model_id -> Int4,
        }
    }

    diesel::table! {
        users (id) {
            id -> Int4,
            name -> Text,
        }
    }

    diesel::table! {
        photos (id) {
            id -> Int4,
            user_id -> Int4,
            status -> Int4,
            title -> Text,
            score -> Float8,
            deleted_at -> Nullable<Timestamp>,
        }
    }

    diesel::joinable!(second_models -> first_models (first_model_id));
    diesel::joinable!(third_models -> second_models (second_model_id));
    diesel::joinable!(photos -> users (user_id));
    diesel::allow_tables_to_appear_in_same_query!(
        first_models,
        second_models,
        third_models,
        users,
        photos
    );
}

use schema::{first_models, photos, second_models, third_models, users};

fn render<Q: diesel::query_builder::QueryFragment<diesel::pg::Pg>>(q: &Q) -> String {
    use diesel::query_builder::QueryBuilder;
    let mut qb = diesel::pg::PgQueryBuilder::default();
    q.to_sql(&mut qb, &diesel::pg::Pg).unwrap();
    qb.finish()
}

/// Render, analyse, and compare with the compact form of [`show`].
#[track_caller]
fn check<Q: diesel::query_builder::QueryFragment<diesel::pg::Pg>>(q: &Q, expected: &str) {
    let sql = render(q);
    assert_eq!(
        show(&analyze(&sql, SqlDialect::PostgreSql)),
        expected,
        "\nSQL: {sql}"
    );
}

#[track_caller]
fn check_writes<Q: diesel::query_builder::QueryFragment<diesel::pg::Pg>>(q: &Q, expected: &[&str]) {
    let sql = render(q);
    assert_eq!(
        write_targets(&sql, SqlDialect::PostgreSql),
        WriteTargets::Tables(expected.iter().map(|s| s.to_string()).collect()),
        "\nSQL: {sql}"
    );
}

#[test]
fn rendering_has_the_expected_shape() {
    let q = third_models::table
        .inner_join(second_models::table)
        .filter(second_models::first_model_id.eq(1))
        .select(third_models::all_columns)
        .limit(5);
    assert_eq!(
        render(&q),
        r#"SELECT "third_models"."id", "third_models"."text", "third_models"."second_model_id" FROM ("third_models" INNER JOIN "second_models" ON ("third_models"."second_model_id" = "second_models"."id")) WHERE ("second_models"."first_model_id" = $1) LIMIT $2"#
    );
}

#[test]
fn filter_eq() {
    check(
        &photos::table.filter(photos::user_id.eq(7)),
        "photos: user_id=$1",
    );
    check(&photos::table.find(3), "photos: id=$1");
    check(
        &photos::table
            .filter(photos::user_id.eq(7))
            .filter(photos::status.eq(1)),
        "photos: status=$2 & user_id=$1",
    );
    check(
        &users::table.filter(users::name.eq("ann")),
        "users: name=$1",
    );
}

#[test]
fn filter_eq_any_with_a_vec() {
    check(
        &photos::table.filter(photos::id.eq_any(vec![1, 2, 3])),
        "photos: id=ANY($1)",
    );
    check(
        &photos::table
            .filter(photos::user_id.eq(1))
            .filter(photos::status.eq_any(vec![1, 2])),
        "photos: status=ANY($2) & user_id=$1",
    );
    check(
        &photos::table.filter(photos::id.eq_any(Vec::<i32>::new())),
        "photos: id=ANY($1)",
    );
}

#[test]
fn filter_eq_any_with_a_subselect_is_whole() {
    let names = users::table.filter(users::name.eq("ann")).select(users::id);
    check(
        &photos::table.filter(photos::user_id.eq_any(names)),
        "photos: *; users: *",
    );
    let names = users::table.filter(users::name.eq("ann")).select(users::id);
    check(
        &photos::table
            .filter(photos::status.eq(1))
            .filter(photos::user_id.eq_any(names)),
        "photos: status=$1; users: *",
    );
}

#[test]
fn non_equality_predicates_pin_nothing_but_spare_siblings() {
    check(&photos::table.filter(photos::status.ne(3)), "photos: *");
    check(&photos::table.filter(photos::status.gt(3)), "photos: *");
    check(&photos::table.filter(photos::title.like("a%")), "photos: *");
    check(
        &photos::table.filter(photos::title.ilike("a%")),
        "photos: *",
    );
    check(
        &photos::table.filter(photos::status.between(1, 3)),
        "photos: *",
    );
    check(
        &photos::table.filter(photos::deleted_at.is_not_null()),
        "photos: *",
    );
    check(
        &photos::table.filter(photos::status.ne_all(vec![1, 2])),
        "photos: *",
    );
    check(
        &photos::table
            .filter(photos::status.ne(3))
            .filter(photos::user_id.eq(7))
            .filter(photos::title.like("a%"))
            .filter(photos::score.gt(0.5)),
        "photos: user_id=$2",
    );
}

#[test]
fn is_null() {
    check(
        &photos::table.filter(photos::deleted_at.is_null()),
        "photos: deleted_at=NULL",
    );
    check(
        &photos::table
            .filter(photos::deleted_at.is_null())
            .filter(photos::user_id.eq(1)),
        "photos: deleted_at=NULL & user_id=$1",
    );
}

#[test]
fn and_or_or_filter_not() {
    check(
        &photos::table.filter(photos::user_id.eq(1).or(photos::user_id.eq(2))),
        "photos: user_id=$1 | user_id=$2",
    );
    check(
        &photos::table.filter(photos::user_id.eq(1).and(photos::status.eq(2))),
        "photos: status=$2 & user_id=$1",
    );
    check(
        &photos::table
            .filter(photos::user_id.eq(1))
            .or_filter(photos::id.eq(5)),
        "photos: id=$2 | user_id=$1",
    );
    check(
        &photos::table
            .filter(photos::user_id.eq(1))
            .or_filter(photos::status.gt(5)),
        "photos: *",
    );
    check(
        &photos::table
            .filter(photos::user_id.eq(1).or(photos::user_id.eq(2)))
            .filter(photos::status.eq(3).or(photos::deleted_at.is_null())),
        "photos: deleted_at=NULL & user_id=$1 | deleted_at=NULL & user_id=$2 | status=$3 & user_id=$1 | status=$3 & user_id=$2",
    );
    check(
        &photos::table.filter(diesel::dsl::not(photos::user_id.eq(1))),
        "photos: *",
    );
    check(
        &photos::table
            .filter(photos::status.eq(2))
            .filter(diesel::dsl::not(photos::user_id.eq(1))),
        "photos: status=$1",
    );
}

#[test]
fn floats_are_reported_like_any_bind() {
    // Whether a float bind may key a dependency is the key layer's decision (by bind type).
    check(
        &photos::table.filter(photos::score.eq(1.5)),
        "photos: score=$1",
    );
}

#[test]
fn inner_join_through_one_and_two_tables() {
    check(
        &third_models::table
            .inner_join(second_models::table)
            .filter(second_models::first_model_id.eq(1))
            .select(third_models::all_columns)
            .limit(5),
        "second_models: first_model_id=$1; third_models: *",
    );
    check(
        &third_models::table
            .inner_join(second_models::table)
            .filter(second_models::id.eq(1)),
        "second_models: id=$1; third_models: second_model_id=$1",
    );
    check(
        &third_models::table
            .inner_join(second_models::table.inner_join(first_models::table))
            .filter(first_models::id.eq(1)),
        "first_models: id=$1; second_models: first_model_id=$1; third_models: *",
    );
    check(
        &third_models::table
            .inner_join(second_models::table.inner_join(first_models::table))
            .filter(second_models::id.eq(4)),
        "first_models: *; second_models: id=$1; third_models: second_model_id=$1",
    );
    check(
        &third_models::table
            .inner_join(second_models::table.inner_join(first_models::table))
            .filter(first_models::id.eq_any(vec![1, 2]))
            .filter(third_models::text.eq("x")),
        "first_models: id=ANY($1); second_models: first_model_id=ANY($1); third_models: text=$2",
    );
    check(
        &users::table
            .inner_join(photos::table)
            .filter(users::id.eq(3)),
        "photos: user_id=$1; users: id=$1",
    );
    check(
        &users::table
            .inner_join(photos::table)
            .filter(photos::id.eq(3)),
        "photos: id=$1; users: *",
    );
}

#[test]
fn left_join_pins_the_nullable_side_from_the_preserved_one() {
    check(
        &first_models::table
            .left_join(second_models::table)
            .filter(first_models::id.eq(1)),
        "first_models: id=$1; second_models: first_model_id=$1",
    );
    check(
        &first_models::table
            .left_join(second_models::table)
            .filter(second_models::first_model_id.nullable().eq(1)),
        "first_models: *; second_models: first_model_id=$1",
    );
    // Anti-join: IS NULL on the nullable side pins nothing there.
    check(
        &first_models::table
            .left_join(second_models::table)
            .filter(first_models::id.eq(1))
            .filter(second_models::id.nullable().is_null()),
        "first_models: id=$1; second_models: first_model_id=$1",
    );
    // A custom ON: its extra condition narrows the nullable side only.
    check(
        &users::table
            .left_join(
                photos::table.on(photos::user_id
                    .eq(users::id)
                    .and(photos::deleted_at.is_null())
                    .and(photos::status.eq(2))),
            )
            .filter(users::id.eq(9)),
        "photos: deleted_at=NULL & status=$1 & user_id=$2; users: id=$2",
    );
    check(
        &users::table.left_join(photos::table.on(photos::user_id.eq(users::id))),
        "photos: *; users: *",
    );
}

#[test]
fn aliases_and_self_joins() {
    let p2 = diesel::alias!(photos as p2);
    check(
        &photos::table
            .inner_join(p2.on(p2.field(photos::user_id).eq(photos::user_id)))
            .filter(photos::user_id.eq(1))
            .select(photos::id),
        "photos: user_id=$1",
    );
    check(
        &photos::table
            .inner_join(p2.on(p2.field(photos::user_id).eq(photos::user_id)))
            .filter(photos::id.eq(1))
            .filter(p2.field(photos::id).eq(2))
            .select(photos::id),
        "photos: id=$1 | id=$2",
    );
    check(
        &photos::table
            .inner_join(p2.on(p2.field(photos::user_id).eq(photos::user_id)))
            .filter(photos::id.eq(1))
            .select(photos::id),
        "photos: *",
    );
    check(
        &p2.filter(p2.field(photos::status).eq(4)),
        "photos: status=$1",
    );
}

#[test]
fn boxed_queries() {
    let mut q = photos::table.into_boxed();
    q = q.filter(photos::user_id.eq(1));
    q = q.filter(photos::status.ne(2));
    q = q.or_filter(photos::id.eq(3));
    check(&q, "photos: id=$3 | user_id=$1");
    let mut q = photos::table.into_boxed();
    q = q.filter(photos::user_id.eq(1));
    q = q.or_filter(photos::status.ne(2));
    check(&q, "photos: *");
    let mut q = photos::table.select(photos::id).into_boxed();
    q = q.filter(photos::user_id.eq(1).or(photos::id.eq_any(vec![4, 5])));
    q = q.filter(photos::deleted_at.is_null());
    q = q.order(photos::id.desc()).limit(10).offset(20);
    check(
        &q,
        "photos: deleted_at=NULL & id=ANY($2) | deleted_at=NULL & user_id=$1",
    );
}

#[test]
fn count_select_tuples_order_limit_offset_distinct_group() {
    check(
        &photos::table.filter(photos::user_id.eq(1)).count(),
        "photos: user_id=$1",
    );
    check(
        &photos::table
            .filter(photos::user_id.eq(1))
            .select((photos::id, photos::title))
            .order((photos::status.asc(), photos::id.desc()))
            .limit(10)
            .offset(5),
        "photos: user_id=$1",
    );
    check(
        &photos::table
            .select(photos::user_id)
            .filter(photos::status.eq(1))
            .distinct(),
        "photos: status=$1",
    );
    check(
        &photos::table
            .filter(photos::status.eq(1))
            .group_by(photos::user_id)
            .select((photos::user_id, diesel::dsl::count_star())),
        "photos: status=$1",
    );
    check(
        &users::table
            .inner_join(photos::table)
            .filter(users::name.eq("ann"))
            .select((users::name, photos::title)),
        "photos: *; users: name=$1",
    );
}

#[test]
fn exists_is_whole() {
    check(
        &diesel::select(diesel::dsl::exists(
            photos::table.filter(photos::user_id.eq(1)),
        )),
        "photos: *",
    );
    check(
        &users::table
            .filter(users::id.eq(2))
            .filter(diesel::dsl::exists(
                photos::table.filter(photos::user_id.eq(1)),
            )),
        "photos: *; users: id=$1",
    );
}

#[test]
fn now_is_volatile() {
    use diesel::dsl::now;
    let sql = render(&photos::table.filter(photos::deleted_at.lt(now.nullable())));
    assert!(sql.contains("CURRENT_TIMESTAMP"), "{sql}");
    assert_eq!(
        analyze(&sql, SqlDialect::PostgreSql),
        Extracted::Uncacheable(Uncacheable::Volatile("current_timestamp".into())),
        "{sql}"
    );
    check(&diesel::select(now), "Volatile(current_timestamp)");
}

#[test]
fn diesel_writes() {
    check_writes(
        &diesel::insert_into(users::table).values((users::id.eq(1), users::name.eq("a"))),
        &["users"],
    );
    check_writes(
        &diesel::update(photos::table.filter(photos::id.eq(1))).set(photos::title.eq("x")),
        &["photos"],
    );
    check_writes(
        &diesel::delete(photos::table.filter(photos::user_id.eq(1))),
        &["photos"],
    );
    check_writes(
        &diesel::insert_into(users::table)
            .values((users::id.eq(1), users::name.eq("a")))
            .on_conflict(users::id)
            .do_update()
            .set(users::name.eq("b")),
        &["users"],
    );
    let sql = render(&photos::table.filter(photos::user_id.eq(1)));
    assert_eq!(
        write_targets(&sql, SqlDialect::PostgreSql),
        WriteTargets::None
    );
    // Writes are never cacheable reads.
    let sql = render(&diesel::delete(photos::table.filter(photos::user_id.eq(1))));
    assert_eq!(
        analyze(&sql, SqlDialect::PostgreSql),
        Extracted::Uncacheable(Uncacheable::NotARead)
    );
}
