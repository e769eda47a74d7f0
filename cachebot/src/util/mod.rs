//! Small building blocks shared by the store, the local tier, the plan memo
//! and the SQL analysis memos.

pub(crate) mod clock_map;
pub(crate) mod key_hash;
pub(crate) mod memo;
pub(crate) mod ready;
