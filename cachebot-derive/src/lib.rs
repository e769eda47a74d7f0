//! `#[derive(CacheBot)]` for the `cachebot` crate.
//!
//! Use it through `cachebot` (`#[derive(cachebot::CacheBot)]`); the
//! generated code names `::cachebot` and `::diesel`, so both must be
//! dependencies of the crate deriving.
//!
//! The crate reads a Diesel model (`#[diesel(table_name, primary_key,
//! column_name, belongs_to, embed, ..)]`) and two attributes of its own:
//!
//! ```text
//! #[cachebot(cache_get = false)]      // primary-key gets bypass the cache
//! #[cachebot(key(field, field, ..))]  // a composite key (repeatable)
//! ```
//!
//! and generates `impl cachebot::CacheModel` plus the cached gets
//! (`get`, `get_many`, one `get_by_a_and_b` per key) and the invalidating
//! writes (`insert`, `save`, `delete`). See `cachebot`'s documentation.
#![forbid(unsafe_code)]

mod attr;
mod expand;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derive `cachebot::CacheModel` and the cached get / invalidating write
/// methods for a Diesel model. See the crate documentation.
#[proc_macro_derive(CacheBot, attributes(cachebot, diesel))]
pub fn derive_cache_bot(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    attr::Model::from_input(&input)
        .map(|model| expand::expand(&model))
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
