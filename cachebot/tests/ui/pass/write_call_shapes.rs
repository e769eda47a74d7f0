//! Every documented call shape of the write API compiles: the model named
//! by the result's type, or first in a turbofish.
use cachebot::{Cache, CacheBot, CachedModel};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

diesel::table! {
    tags (id) {
        id -> Int4,
        name -> Text,
    }
}

#[derive(Clone, Queryable, Selectable, Identifiable, AsChangeset, Serialize, Deserialize, CacheBot)]
#[diesel(table_name = tags)]
pub struct Tag {
    pub id: i32,
    pub name: String,
}

#[allow(dead_code)]
fn run(cache: &Cache, c: &mut PgConnection) -> QueryResult<()> {
    use cachebot::write;
    let _: Vec<Tag> = write::update(cache, c, tags::table.find(1), tags::name.eq("x"))?;
    write::update::<Tag, _, _, _>(cache, c, tags::table.find(1), tags::name.eq("y"))?;
    let statement = diesel::insert_into(tags::table).values(tags::name.eq("x"));
    let _: Vec<Tag> = write::insert(cache, c, statement)?;
    let statement = diesel::insert_into(tags::table).values(tags::name.eq("x"));
    write::insert::<Tag, _, _, _, _>(cache, c, statement)?;
    let _: Vec<Tag> = write::delete(cache, c, tags::table.find(1))?;
    write::delete::<Tag, _, _>(cache, c, tags::table.filter(tags::name.eq("x")))?;
    let _: Vec<Tag> = write::insert_values(cache, c, tags::name.eq("x"))?;
    write::insert_values::<Tag, _, _>(cache, c, tags::name.eq("x"))?;
    // The derive's methods name the model themselves.
    let tag = Tag::insert(cache, c, tags::name.eq("x"))?.remove(0);
    tag.save(cache, c)?;
    tag.delete(cache, c)?;
    Ok(())
}

fn main() {}
