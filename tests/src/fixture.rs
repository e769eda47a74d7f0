//! The parity fixture: one row per parity model, linked as in django-cachebot's test suite.

use diesel::connection::LoadConnection;
use diesel::pg::Pg;
use diesel::prelude::*;

use crate::models::{
    FirstModel, GenericModel, ManyModel, ManyModelFirstModel, ManyModelThirdModel, NewFirstModel,
    NewGenericModel, NewManyModel, NewManyModelFirstModel, NewManyModelThirdModel, NewSecondModel,
    NewThirdModel, SecondModel, ThirdModel,
};
use crate::schema::{
    first_models, generic_models, many_models, many_models_first_models, many_models_third_models,
    second_models, third_models,
};

/// The rows every parity scenario starts from:
/// f('test1'); s('test2', -> f); t('test3', -> s); g('test4', 'second_models', s.id);
/// m('test5') linked to f and to t.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixture {
    /// F: `first_models` row, text `test1`.
    pub f: FirstModel,
    /// S: `second_models` row, text `test2`, child of `f`.
    pub s: SecondModel,
    /// T: `third_models` row, text `test3`, child of `s`.
    pub t: ThirdModel,
    /// G: `generic_models` row, text `test4`, pointing at `s` (`content_type = 'second_models'`).
    pub g: GenericModel,
    /// M: `many_models` row, text `test5`.
    pub m: ManyModel,
    /// The `many_models_first_models` row linking `m` and `f`.
    pub m_f: ManyModelFirstModel,
    /// The `many_models_third_models` row linking `m` and `t`.
    pub m_t: ManyModelThirdModel,
}

impl Fixture {
    /// Inserts the fixture through `conn` (plain Diesel inserts) and returns the rows as stored.
    ///
    /// Works with any PostgreSQL connection, including `&mut *pool.get()?`. Panics on error.
    pub fn create<C>(conn: &mut C) -> Fixture
    where
        C: Connection<Backend = Pg> + LoadConnection,
    {
        let f: FirstModel = diesel::insert_into(first_models::table)
            .values(&NewFirstModel {
                text: "test1".into(),
            })
            .get_result(conn)
            .expect("insert fixture f");
        let s: SecondModel = diesel::insert_into(second_models::table)
            .values(&NewSecondModel {
                text: "test2".into(),
                first_model_id: f.id,
            })
            .get_result(conn)
            .expect("insert fixture s");
        let t: ThirdModel = diesel::insert_into(third_models::table)
            .values(&NewThirdModel {
                text: "test3".into(),
                second_model_id: s.id,
            })
            .get_result(conn)
            .expect("insert fixture t");
        let g: GenericModel = diesel::insert_into(generic_models::table)
            .values(&NewGenericModel {
                text: "test4".into(),
                content_type: "second_models".into(),
                object_id: s.id,
            })
            .get_result(conn)
            .expect("insert fixture g");
        let m: ManyModel = diesel::insert_into(many_models::table)
            .values(&NewManyModel {
                text: "test5".into(),
            })
            .get_result(conn)
            .expect("insert fixture m");
        let m_f: ManyModelFirstModel = diesel::insert_into(many_models_first_models::table)
            .values(&NewManyModelFirstModel {
                many_model_id: m.id,
                first_model_id: f.id,
            })
            .get_result(conn)
            .expect("insert fixture m <-> f");
        let m_t: ManyModelThirdModel = diesel::insert_into(many_models_third_models::table)
            .values(&NewManyModelThirdModel {
                many_model_id: m.id,
                third_model_id: t.id,
            })
            .get_result(conn)
            .expect("insert fixture m <-> t");
        Fixture {
            f,
            s,
            t,
            g,
            m,
            m_f,
            m_t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Kind, NewKind, NewPhoto, NewUser, Photo, User};
    use crate::schema::{kinds, photos, users};
    use crate::TestDb;

    #[test]
    fn fixture_inserts_linked_rows() {
        let db = TestDb::new();
        let mut conn = db.conn();
        let fx = Fixture::create(&mut conn);
        assert_eq!(fx.f.text, "test1");
        assert_eq!(
            (fx.s.text.as_str(), fx.s.first_model_id),
            ("test2", fx.f.id)
        );
        assert_eq!(
            (fx.t.text.as_str(), fx.t.second_model_id),
            ("test3", fx.s.id)
        );
        assert_eq!(
            (
                fx.g.text.as_str(),
                fx.g.content_type.as_str(),
                fx.g.object_id
            ),
            ("test4", "second_models", fx.s.id)
        );
        assert_eq!(fx.m.text, "test5");

        // The rows are really there, and the joins/associations line up.
        let (t, s, f): (ThirdModel, SecondModel, FirstModel) = third_models::table
            .inner_join(second_models::table.inner_join(first_models::table))
            .filter(third_models::id.eq(fx.t.id))
            .select((
                ThirdModel::as_select(),
                SecondModel::as_select(),
                FirstModel::as_select(),
            ))
            .first(&mut conn)
            .unwrap();
        assert_eq!((t, s, f), (fx.t.clone(), fx.s.clone(), fx.f.clone()));

        let children: Vec<SecondModel> = SecondModel::belonging_to(&fx.f)
            .select(SecondModel::as_select())
            .load(&mut conn)
            .unwrap();
        assert_eq!(children, vec![fx.s.clone()]);

        let ms: Vec<ManyModel> = many_models::table
            .inner_join(many_models_first_models::table)
            .filter(many_models_first_models::first_model_id.eq(fx.f.id))
            .select(ManyModel::as_select())
            .load(&mut conn)
            .unwrap();
        assert_eq!(ms, vec![fx.m.clone()]);
        let ms: Vec<ManyModel> = many_models::table
            .inner_join(many_models_third_models::table)
            .filter(many_models_third_models::third_model_id.eq(fx.t.id))
            .select(ManyModel::as_select())
            .load(&mut conn)
            .unwrap();
        assert_eq!(ms, vec![fx.m.clone()]);

        // ON DELETE CASCADE from the grandparent.
        diesel::delete(first_models::table.find(fx.f.id))
            .execute(&mut conn)
            .unwrap();
        assert_eq!(
            third_models::table
                .count()
                .get_result::<i64>(&mut conn)
                .unwrap(),
            0
        );
        assert_eq!(
            many_models_third_models::table
                .count()
                .get_result::<i64>(&mut conn)
                .unwrap(),
            0
        );
    }

    #[test]
    fn fixture_works_on_a_pooled_connection() {
        let db = TestDb::new();
        let pool = db.pool(1);
        let fx = Fixture::create(&mut *pool.get().unwrap());
        assert_eq!(fx.f.id, 1);
    }

    #[test]
    fn photos_and_kinds_round_trip() {
        let db = TestDb::new();
        let mut conn = db.conn();
        let user: User = diesel::insert_into(users::table)
            .values(&NewUser {
                name: "ann".into(),
                email: None,
            })
            .get_result(&mut conn)
            .unwrap();
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 123_000).unwrap();
        let photo: Photo = diesel::insert_into(photos::table)
            .values(&NewPhoto {
                user_id: user.id,
                status: 1,
                title: "sunset".into(),
                score: 0.5,
                deleted_at: Some(at),
            })
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(photo.deleted_at, Some(at));
        assert_eq!(
            Photo::belonging_to(&user)
                .count()
                .get_result::<i64>(&mut conn)
                .unwrap(),
            1
        );

        let new = NewKind {
            small: Some(-3),
            big: Some(i64::MAX),
            flag: Some(true),
            label: Some("label".into()),
            code: Some("c".repeat(32)),
            blob: Some(vec![0, 1, 255]),
            day: chrono::NaiveDate::from_ymd_opt(2026, 11, 25),
            at: Some(at.naive_utc()),
            at_tz: Some(at),
            ratio: Some(1.5),
            maybe: None,
        };
        let kind: Kind = diesel::insert_into(kinds::table)
            .values(&new)
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(
            NewKind {
                small: kind.small,
                big: kind.big,
                flag: kind.flag,
                label: kind.label.clone(),
                code: kind.code.clone(),
                blob: kind.blob.clone(),
                day: kind.day,
                at: kind.at,
                at_tz: kind.at_tz,
                ratio: kind.ratio,
                maybe: kind.maybe.clone(),
            },
            new
        );
        let empty: Kind = diesel::insert_into(kinds::table)
            .values(&NewKind::default())
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(empty.small, None);
        assert_eq!(empty.at_tz, None);
    }
}
