//! Small building blocks shared by the store, the local tier and the plan memo.

pub(crate) mod clock_map;
pub(crate) mod key_hash;
