//! Generation keys named for the integration tests (internal feature
//! `__test-hooks`; not a public API, not covered by semver).
//!
//! Writes bump keys that no [`Dependency`](crate::Dependency) names: the
//! membership, inserts and column-change generations (see
//! [`write`](crate::write)). The tests of what a write bumps must name them,
//! and find them in the store, where every key is scoped to the cache's
//! database.

use crate::codec::Codec;
use crate::key;
use crate::store::Key;
use crate::Cache;

/// The membership generation of the rows whose `column` holds `value`
/// (`None`: SQL `NULL`; otherwise the bind bytes).
pub fn member_key(table: &str, column: &str, value: Option<&[u8]>) -> Key {
    key::member_key(table, column, value)
}

/// The membership generation of a composite key's combination (columns
/// in declared order).
pub fn member_composite_key(table: &str, values: &[(&str, Option<&[u8]>)]) -> Key {
    key::member_composite_key(table, values)
}

/// The generation of inserts into `table`.
pub fn inserts_key(table: &str) -> Key {
    key::inserts_key(table)
}

/// The generation of changes to `column` of `table`.
pub fn column_key(table: &str, column: &str) -> Key {
    key::column_key(table, column)
}

/// `key` as `cache`'s store holds it (scoped to the cache's database);
/// `None` before the cache learned its database (from a connection).
pub fn stored<C: Codec>(cache: &Cache<C>, key: Key) -> Option<Key> {
    let database = cache.reader.invalidator.database()?;
    Some(crate::scope::in_database(database, key))
}
