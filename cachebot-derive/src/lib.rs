//! `#[derive(CacheBot)]` for the `cachebot` crate.
//!
//! The derive (invalidation metadata, cached primary-key gets and
//! invalidating write methods generated from a Diesel model) is being built
//! in this crate; until it lands the crate exports nothing, and invalidation
//! is driven through `cachebot::Cache`'s explicit API.
#![forbid(unsafe_code)]
