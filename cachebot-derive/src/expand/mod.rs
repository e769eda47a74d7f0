//! Code generation from a [`Model`].
//!
//! Everything comes out inside one `const _: () = { ... };`, so the
//! expansion adds no name to the user's module:
//!
//! - `impl ::cachebot::CacheModel` ([`cache_model`]): the table, the
//!   generation keys of a row (`row_keys`), its identity and its declared
//!   composite keys;
//! - `impl ::cachebot::CachedModel` ([`cached_model`]): the primary key and
//!   the queries that find rows by it, on which the trait provides `get`,
//!   `get_many`, `get_by`, `insert`, `save` and `delete`;
//! - one `impl ::cachebot::DeclaredKey<Model>` per `#[cachebot(key(..))]`,
//!   for the key's column (or tuple of columns): what `get_by` takes.
//!
//! The generated code names everything by absolute path (`::cachebot`,
//! `::diesel`, `::std`), brings nothing into scope, and its local variables
//! have mixed-site hygiene, so no field or user item can clash with them.
//! SQL types are always `SqlTypeOf<table::column>`, never guessed from
//! Rust types; column and table names are read at run time from the
//! rendered columns, so `sql_name` renames in `table!` stay right.

mod cache_model;
mod cached_model;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ext::IdentExt;
use syn::Ident;

use crate::model::{Field, Model};

/// The whole expansion.
pub(crate) fn expand(model: &Model) -> TokenStream {
    let cache_model = cache_model::impl_cache_model(model);
    let cached_model = cached_model::impl_cached_model(model);
    let declared_keys = cached_model::impl_declared_keys(model);
    quote! {
        const _: () = {
            #cache_model
            #cached_model
            #declared_keys
        };
    }
}

/// The hidden helpers generated code calls (`cachebot::model::__private`).
fn private() -> TokenStream {
    quote!(::cachebot::model::__private)
}

/// A local variable of the generated code: mixed-site hygiene, so that it
/// cannot clash with a field or a user's item of the same name.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// `table::column` for a mapped field.
fn column_path(model: &Model, field: &Field) -> TokenStream {
    let table = &model.table;
    let column = field.column();
    quote!(#table::#column)
}

/// The SQL name of a field's column as written in the source (the
/// fallback when the rendered name cannot be read).
fn column_str(field: &Field) -> String {
    field.column().unraw().to_string()
}

/// The types of `fields`: the one type, or a tuple of them.
fn one_or_tuple<T: quote::ToTokens>(items: &[T]) -> TokenStream {
    match items {
        [one] => quote!(#one),
        many => quote!((#(#many,)*)),
    }
}

/// The primary key's Rust type: the field's type, or a tuple for composite keys.
fn pk_type(model: &Model) -> TokenStream {
    let tys: Vec<_> = model.pk_fields().map(|f| &f.ty).collect();
    one_or_tuple(&tys)
}

/// The primary key's value from `row` (an expression of type `&Self`).
fn pk_value(model: &Model, row: &TokenStream) -> TokenStream {
    let values: Vec<_> = model
        .pk_fields()
        .map(|f| {
            let ident = &f.ident;
            quote!(::std::clone::Clone::clone(&#row.#ident))
        })
        .collect();
    one_or_tuple(&values)
}

/// `<Model as SelectableHelper<Pg>>::as_select()`.
fn as_select(model_ty: &TokenStream) -> TokenStream {
    quote!(<#model_ty as ::diesel::SelectableHelper<::diesel::pg::Pg>>::as_select())
}

/// `#[doc = ..]`.
fn doc(text: &str) -> TokenStream {
    quote!(#[doc = #text])
}
