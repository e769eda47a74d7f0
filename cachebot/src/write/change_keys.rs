//! The finer generations a write bumps besides its rows' content keys:
//! membership, inserts and column changes.
//!
//! A value's content key is bumped by any change to a row holding it, which
//! is more than some reads need: a count of a user's photos changes only
//! when a photo enters or leaves the user, not when one is retitled. So a
//! write also bumps, per row, from its old and new images paired by
//! identity (primary key):
//!
//! - an **insert** (a new image with no old one) or a **delete** (an old
//!   image with no new one): the membership key of each keyable value the
//!   image holds, and of each composite key it holds; an insert also bumps
//!   the table's inserts key (once per write);
//! - an **update** (both images): for every column whose bytes differ, the
//!   column's key (keyable or not), and, for a keyable one, the membership
//!   keys of its old and its new value; for every composite one of whose
//!   columns changed, the membership keys of its old and new combination.
//!   Unchanged columns bump nothing here.
//!
//! A primary-key change is thus a delete and an insert. Where an image
//! cannot be compared column by column (a model whose `row_keys` records
//! nothing, a value that did not encode, a column whose name could not be
//! read), the row **widens** to the table's "all" key, which every read
//! depends on: never narrower than exact.

use std::collections::HashMap;

use crate::key;
use crate::model::images::{ColumnValue, CompositeValue, Images, RowImage};
use crate::model::{CacheModel, RowKeys};
use crate::scope::Tables;
use crate::store::Key;

/// Every key a write's rows bump: the content keys of each old and new
/// image, and the finer keys of their changes, old and new images paired
/// by identity. Sorted, without duplicates; with whether some new image
/// had no old one.
pub(crate) fn row_keys<M: CacheModel>(
    tables: &dyn Tables,
    old: &[M],
    new: &[M],
) -> (Vec<Key>, bool) {
    let mut rows = RowKeys::recording(tables, old.len() + new.len());
    for row in old.iter().chain(new) {
        rows.record_row(row);
    }
    let (keys, images) = rows.into_parts();
    let images = images.unwrap_or_default();
    let mut changes = ChangeKeys::new(&images, tables);
    // One row updated (the common write): no pairing tables.
    if let ([o], [n]) = (old, new) {
        if o.identity() == n.identity() {
            changes.update(0, 1);
            return (changes.finish::<M>(keys), false);
        }
    }
    let mut paired = vec![false; new.len()];
    for (i, j) in pair(old, new).into_iter().enumerate() {
        match j {
            Some(j) => {
                if let Some(p) = paired.get_mut(j) {
                    *p = true;
                }
                changes.update(i, old.len() + j);
            }
            None => changes.delete(i),
        }
    }
    let mut unpaired_new = false;
    for (j, p) in paired.iter().enumerate() {
        if !p {
            unpaired_new = true;
            changes.insert(old.len() + j);
        }
    }
    (changes.finish::<M>(keys), unpaired_new)
}

/// Every key a change to `row`, known by this one image, can need: its
/// content keys, and, since it may have been inserted, deleted or changed
/// in any column, the membership keys of all its values and composites,
/// the column key of each of its columns and the table's inserts key.
/// Sorted, without duplicates.
pub(crate) fn any_change_keys<M: CacheModel>(tables: &dyn Tables, row: &M) -> Vec<Key> {
    let mut rows = RowKeys::recording(tables, 1);
    rows.record_row(row);
    let (keys, images) = rows.into_parts();
    let images = images.unwrap_or_default();
    let mut changes = ChangeKeys::new(&images, tables);
    changes.insert(0);
    changes.every_column(0);
    changes.finish::<M>(keys)
}

/// A composite's (column, value) pairs, as its keys take them.
type Combination<'a> = Vec<(&'a str, Option<&'a [u8]>)>;

/// The finer keys of a write's paired images.
pub(crate) struct ChangeKeys<'a> {
    images: &'a Images,
    tables: &'a dyn Tables,
    /// Each of `images.tables` as `tables` resolves it, once asked.
    resolved: Vec<Option<Option<Vec<String>>>>,
    /// The membership and column keys gathered so far.
    pub(crate) keys: Vec<Key>,
    /// Some row could not be compared: the caller bumps its table's "all" key.
    pub(crate) widen: bool,
    /// Some row was inserted: the caller bumps its table's inserts key.
    pub(crate) inserted: bool,
}

impl<'a> ChangeKeys<'a> {
    pub(crate) fn new(images: &'a Images, tables: &'a dyn Tables) -> ChangeKeys<'a> {
        ChangeKeys {
            images,
            tables,
            resolved: vec![None; images.tables.len()],
            keys: Vec::with_capacity(8),
            widen: false,
            inserted: false,
        }
    }

    /// `content` (the rows' content keys) with these keys, and `M`'s
    /// table's "all" and inserts keys where needed; sorted, without
    /// duplicates.
    fn finish<M: CacheModel>(mut self, mut content: Vec<Key>) -> Vec<Key> {
        content.reserve(self.keys.len() + 2);
        content.append(&mut self.keys);
        let table = |key: fn(&str) -> Key| match self.tables.qualified(M::table_name()) {
            Some(names) => names.iter().map(|t| key(t)).collect(),
            None => vec![key::global_key()],
        };
        if self.widen {
            content.extend(table(key::table_key));
        }
        if self.inserted {
            content.extend(table(key::inserts_key));
        }
        content.sort_unstable();
        content.dedup();
        content
    }

    /// Push `key(t)` for each table the image's table `table` resolves to,
    /// or the global key (as `RowKeys` does for the content keys).
    fn per_table(&mut self, table: usize, key: impl Fn(&str) -> Key) {
        let (Some(slot), Some(written)) =
            (self.resolved.get_mut(table), self.images.tables.get(table))
        else {
            self.keys.push(key::global_key());
            return;
        };
        let tables = self.tables;
        match slot.get_or_insert_with(|| tables.qualified(written)) {
            Some(names) => self.keys.extend(names.iter().map(|t| key(t))),
            None => self.keys.push(key::global_key()),
        }
    }

    fn row(&self, row: usize) -> Option<&'a RowImage> {
        self.images.rows.get(row)
    }

    /// The `row`-th recorded image was inserted.
    pub(crate) fn insert(&mut self, row: usize) {
        self.inserted = true;
        self.enter_or_leave(row);
    }

    /// The `row`-th recorded image was deleted.
    pub(crate) fn delete(&mut self, row: usize) {
        self.enter_or_leave(row);
    }

    /// The column key of every column the `row`-th image holds.
    fn every_column(&mut self, row: usize) {
        let images = self.images;
        if let Some(row) = self.row(row) {
            for value in images.values_of(row) {
                self.per_table(value.table, |t| key::column_key(t, &value.column));
            }
        }
    }

    /// A row entered or left every value and composite its image holds.
    fn enter_or_leave(&mut self, row: usize) {
        let images = self.images;
        let Some(row) = self.row(row).filter(|r| r.known()) else {
            self.widen = true;
            return;
        };
        for value in images.values_of(row) {
            self.member(value);
        }
        for composite in images.composites_of(row) {
            self.member_composite(composite);
        }
    }

    /// The `old`-th and `new`-th recorded images are one row before and
    /// after an update.
    pub(crate) fn update(&mut self, old: usize, new: usize) {
        let images = self.images;
        let (Some(o), Some(n)) = (self.row(old), self.row(new)) else {
            self.widen = true;
            return;
        };
        let (ov, nv) = (images.values_of(o), images.values_of(n));
        let (oc, nc) = (images.composites_of(o), images.composites_of(n));
        // Images of one model record the same columns in the same order.
        let comparable = o.known()
            && n.known()
            && ov.len() == nv.len()
            && oc.len() == nc.len()
            && ov
                .iter()
                .zip(nv)
                .all(|(a, b)| a.table == b.table && a.column == b.column)
            && oc
                .iter()
                .zip(nc)
                .all(|(a, b)| a.table == b.table && a.parts.len() == b.parts.len());
        if !comparable {
            self.widen = true;
            self.enter_or_leave(old);
            self.enter_or_leave(new);
            return;
        }
        for (a, b) in ov.iter().zip(nv) {
            if changed(Some(a), Some(b)) {
                self.per_table(a.table, |t| key::column_key(t, &a.column));
                self.member(a);
                self.member(b);
            }
        }
        for (a, b) in oc.iter().zip(nc) {
            let mut parts = images.parts_of(a).zip(images.parts_of(b));
            if parts.any(|(x, y)| changed(x, y)) {
                self.member_composite(a);
                self.member_composite(b);
            }
        }
    }

    /// The membership key of a keyable value (widening when its bytes are
    /// not known).
    fn member(&mut self, value: &ColumnValue) {
        match &value.bytes {
            None => self.widen = true,
            Some(bytes) if value.keyable => {
                self.per_table(value.table, |t| {
                    key::member_key(t, &value.column, bytes.as_deref())
                });
            }
            Some(_) => {}
        }
    }

    /// The membership key of a composite that got a composite key.
    fn member_composite(&mut self, composite: &CompositeValue) {
        if !composite.keyed {
            return;
        }
        let parts: Option<Combination<'_>> = self
            .images
            .parts_of(composite)
            .map(|v| {
                let v = v?;
                Some((v.column.as_str(), v.bytes.as_ref()?.as_deref()))
            })
            .collect();
        match parts {
            Some(parts) => {
                self.per_table(composite.table, |t| key::member_composite_key(t, &parts))
            }
            None => self.widen = true,
        }
    }
}

/// Whether a column's value differs between two images (or cannot be
/// compared: then it counts as changed).
fn changed(a: Option<&ColumnValue>, b: Option<&ColumnValue>) -> bool {
    match (
        a.and_then(|a| a.bytes.as_ref()),
        b.and_then(|b| b.bytes.as_ref()),
    ) {
        (Some(x), Some(y)) => x != y,
        _ => true,
    }
}

/// Pair old and new images by identity: for each old row, the index of the
/// new row with the same identity, if any. Each new row pairs at most once
/// (a repeated identity, which a real primary key never has, leaves the
/// extra rows unpaired: a delete and an insert, wider than any pairing).
pub(crate) fn pair<M: CacheModel>(old: &[M], new: &[M]) -> Vec<Option<usize>> {
    if old.is_empty() || new.is_empty() {
        return vec![None; old.len()];
    }
    let old_ids: Vec<Vec<u8>> = old.iter().map(M::identity).collect();
    let new_ids: Vec<Vec<u8>> = new.iter().map(M::identity).collect();
    // The one-statement update returns each row's images side by side.
    if old_ids == new_ids {
        return (0..old.len()).map(Some).collect();
    }
    let mut unpaired: HashMap<&[u8], usize> = HashMap::with_capacity(new.len());
    for (j, id) in new_ids.iter().enumerate().rev() {
        unpaired.insert(id, j);
    }
    old_ids
        .iter()
        .map(|id| unpaired.remove(id.as_slice()))
        .collect()
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::{Float8, Int4, Nullable, Text};

    use super::*;
    use crate::model::__private::{encode, identity, push_composite, push_rows, push_value};

    diesel::table! {
        photos (id) {
            id -> Int4,
            user_id -> Int4,
            status -> Int4,
            title -> Text,
            score -> Float8,
            album -> Nullable<Int4>,
        }
    }

    /// Resolves `photos` into the schema `s`, and nothing else.
    struct InS;
    impl Tables for InS {
        fn qualified(&self, written: &str) -> Option<Vec<String>> {
            (written == "photos").then(|| vec!["s.photos".to_owned()])
        }
    }

    const T: &str = "s.photos";

    /// What the derive generates for a model with `#[cachebot(key(user_id, status))]`.
    #[derive(Clone, Debug)]
    struct Photo {
        id: i32,
        user_id: i32,
        status: i32,
        title: String,
        score: f64,
        album: Option<i32>,
    }

    impl CacheModel for Photo {
        type Table = photos::table;
        fn table_name() -> &'static str {
            "photos"
        }
        fn row_keys(&self, out: &mut RowKeys<'_>) {
            push_value::<_, Int4, _>(out, &photos::id, &self.id);
            let user = push_value::<_, Int4, _>(out, &photos::user_id, &self.user_id);
            let status = push_value::<_, Int4, _>(out, &photos::status, &self.status);
            push_value::<_, Text, _>(out, &photos::title, &self.title);
            push_value::<_, Float8, _>(out, &photos::score, &self.score);
            push_value::<_, Nullable<Int4>, _>(out, &photos::album, &self.album);
            push_composite(out, "photos", &[("user_id", user), ("status", status)]);
            push_rows(out, "photos");
        }
        fn identity(&self) -> Vec<u8> {
            identity(&[encode::<Int4, _>(&self.id).ok().flatten()])
        }
    }

    /// A hand-written model whose `row_keys` records no values.
    #[derive(Clone, Debug)]
    struct Opaque(i32);

    impl CacheModel for Opaque {
        type Table = photos::table;
        fn table_name() -> &'static str {
            "photos"
        }
        fn row_keys(&self, out: &mut RowKeys<'_>) {
            push_rows(out, "photos");
        }
        fn identity(&self) -> Vec<u8> {
            self.0.to_be_bytes().to_vec()
        }
    }

    fn photo(id: i32) -> Photo {
        Photo {
            id,
            user_id: 7,
            status: 2,
            title: "sunset".into(),
            score: 0.5,
            album: None,
        }
    }

    fn int(x: i32) -> Option<Vec<u8>> {
        Some(x.to_be_bytes().to_vec())
    }

    fn member(column: &str, value: Option<Vec<u8>>) -> Key {
        key::member_key(T, column, value.as_deref())
    }

    fn member_combo(user: i32, status: i32) -> Key {
        key::member_composite_key(
            T,
            &[
                ("user_id", Some(&user.to_be_bytes()[..])),
                ("status", Some(&status.to_be_bytes()[..])),
            ],
        )
    }

    /// Every membership key an insert or delete of `p` bumps.
    fn all_members(p: &Photo) -> Vec<Key> {
        vec![
            member("id", int(p.id)),
            member("user_id", int(p.user_id)),
            member("status", int(p.status)),
            member("title", Some(p.title.as_bytes().to_vec())),
            member("album", p.album.and_then(int)),
            member_combo(p.user_id, p.status),
        ]
    }

    /// The content keys of the images, as before this change.
    fn content<M: CacheModel>(rows: &[&M]) -> Vec<Key> {
        let mut out = RowKeys::new(&InS);
        for row in rows {
            row.row_keys(&mut out);
        }
        out.into_parts().0
    }

    fn sorted(mut keys: Vec<Key>) -> Vec<Key> {
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// `(keys, unpaired_new)` of a write, checked to hold every content key.
    fn write<M: CacheModel>(old: &[M], new: &[M]) -> (Vec<Key>, bool) {
        let (keys, unpaired) = row_keys(&InS, old, new);
        let all: Vec<&M> = old.iter().chain(new).collect();
        for k in content(&all) {
            assert!(keys.contains(&k), "a content key is missing");
        }
        (keys, unpaired)
    }

    /// The keys beyond the content keys of the images.
    fn finer<M: CacheModel>(old: &[M], new: &[M]) -> Vec<Key> {
        let (keys, _) = write(old, new);
        let all: Vec<&M> = old.iter().chain(new).collect();
        let content = content(&all);
        keys.into_iter().filter(|k| !content.contains(k)).collect()
    }

    #[test]
    fn insert_bumps_every_membership_and_the_inserts_key() {
        let p = photo(1);
        let (_, unpaired) = write(&[], std::slice::from_ref(&p));
        assert!(unpaired);
        let mut want = all_members(&p);
        want.push(key::inserts_key(T));
        assert_eq!(finer(&[], &[p]), sorted(want));
    }

    #[test]
    fn delete_bumps_every_membership_and_no_inserts_key() {
        let p = photo(1);
        assert_eq!(
            finer(std::slice::from_ref(&p), &[]),
            sorted(all_members(&p))
        );
        assert!(!write(&[p], &[]).1);
    }

    #[test]
    fn title_edit_bumps_its_memberships_and_column_only() {
        let old = photo(1);
        let new = Photo {
            title: "dawn".into(),
            ..old.clone()
        };
        let got = finer(&[old], &[new]);
        assert_eq!(
            got,
            sorted(vec![
                member("title", Some(b"sunset".to_vec())),
                member("title", Some(b"dawn".to_vec())),
                key::column_key(T, "title"),
            ])
        );
        assert!(!got.contains(&member("user_id", int(7))));
    }

    #[test]
    fn move_to_another_user_bumps_both_users_and_both_combinations() {
        let old = photo(1);
        let new = Photo {
            user_id: 8,
            ..old.clone()
        };
        assert_eq!(
            finer(&[old], &[new]),
            sorted(vec![
                member("user_id", int(7)),
                member("user_id", int(8)),
                key::column_key(T, "user_id"),
                member_combo(7, 2),
                member_combo(8, 2),
            ])
        );
    }

    #[test]
    fn composite_column_change_bumps_the_combinations() {
        let old = photo(1);
        let new = Photo {
            status: 3,
            ..old.clone()
        };
        let got = finer(&[old], &[new]);
        assert!(got.contains(&member_combo(7, 2)) && got.contains(&member_combo(7, 3)));
        assert!(got.contains(&member("status", int(2))) && got.contains(&member("status", int(3))));
        assert!(!got.contains(&member("user_id", int(7))));
    }

    #[test]
    fn null_to_value_bumps_null_and_value() {
        let old = photo(1);
        let new = Photo {
            album: Some(4),
            ..old.clone()
        };
        assert_eq!(
            finer(&[old], &[new]),
            sorted(vec![
                member("album", None),
                member("album", int(4)),
                key::column_key(T, "album"),
            ])
        );
    }

    #[test]
    fn non_keyable_column_change_bumps_its_column_only() {
        let old = photo(1);
        let new = Photo {
            score: 0.75,
            ..old.clone()
        };
        assert_eq!(finer(&[old], &[new]), vec![key::column_key(T, "score")]);
    }

    #[test]
    fn no_op_update_bumps_no_membership_or_column() {
        let old = photo(1);
        let same = std::slice::from_ref(&old);
        assert_eq!(finer(same, same), vec![]);
    }

    #[test]
    fn primary_key_change_is_a_delete_and_an_insert() {
        let old = photo(1);
        let new = Photo {
            id: 2,
            ..old.clone()
        };
        let (_, unpaired) = write(std::slice::from_ref(&old), std::slice::from_ref(&new));
        assert!(unpaired);
        let mut want = all_members(&old);
        want.extend(all_members(&new));
        want.push(key::inserts_key(T));
        assert_eq!(finer(&[old], &[new]), sorted(want));
    }

    #[test]
    fn images_pair_by_identity_in_any_order() {
        let (a, b) = (photo(1), photo(2));
        let a2 = Photo {
            title: "a2".into(),
            ..a.clone()
        };
        let b2 = Photo {
            score: 9.0,
            ..b.clone()
        };
        let got = finer(&[a.clone(), b.clone()], &[b2.clone(), a2.clone()]);
        assert_eq!(
            got,
            sorted(vec![
                member("title", Some(b"sunset".to_vec())),
                member("title", Some(b"a2".to_vec())),
                key::column_key(T, "title"),
                key::column_key(T, "score"),
            ])
        );
        // Two rows trading users: by identity, each moved to the other user.
        let swapped_old = [
            photo(1),
            Photo {
                user_id: 8,
                ..photo(2)
            },
        ];
        let swapped_new = [
            Photo {
                user_id: 8,
                ..photo(1)
            },
            photo(2),
        ];
        let got = finer(&swapped_old, &swapped_new);
        assert!(
            got.contains(&member("user_id", int(7))) && got.contains(&member("user_id", int(8)))
        );
    }

    #[test]
    fn rows_that_record_nothing_widen_to_the_table() {
        for (old, new) in [
            (vec![Opaque(1)], vec![Opaque(1)]),
            (vec![], vec![Opaque(1)]),
            (vec![Opaque(1)], vec![]),
        ] {
            let (keys, _) = write(&old, &new);
            assert!(keys.contains(&key::table_key(T)), "{old:?} -> {new:?}");
        }
    }

    #[test]
    fn unresolvable_tables_bump_the_global_key() {
        struct Nowhere;
        impl Tables for Nowhere {
            fn qualified(&self, _: &str) -> Option<Vec<String>> {
                None
            }
        }
        let (keys, _) = row_keys(&Nowhere, &[], &[photo(1)]);
        assert_eq!(keys, vec![key::global_key()]);
    }

    #[test]
    fn pairing_is_linear_and_pairs_each_row_once() {
        let old: Vec<Photo> = (0..4).map(photo).collect();
        let new: Vec<Photo> = [3, 1, 1, 9].into_iter().map(photo).collect();
        assert_eq!(pair(&old, &new), vec![None, Some(1), None, Some(0)]);
        assert_eq!(pair(&old, &[]), vec![None; 4]);
        assert_eq!(pair(&old, &old), vec![Some(0), Some(1), Some(2), Some(3)]);
    }
}
