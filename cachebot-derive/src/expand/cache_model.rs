//! `impl ::cachebot::CacheModel`: what a change to a row invalidates.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ext::IdentExt;

use super::{column_path, column_str, local, private};
use crate::model::{Field, Model};

/// The whole impl.
pub(super) fn impl_cache_model(model: &Model) -> TokenStream {
    let ident = &model.ident;
    let (impl_generics, ty_generics, where_clause) = model.generics.split_for_impl();
    let table = &model.table;
    let cache_get = model.cache_get;
    let table_name = table_name(model);
    let row_keys = row_keys(model);
    let identity = identity(model);
    let composite_keys = composite_keys(model);
    let returned_rows = returned_rows(model);
    quote! {
        #[automatically_derived]
        impl #impl_generics ::cachebot::CacheModel for #ident #ty_generics #where_clause {
            type Table = #table::table;

            const CACHE_GET: bool = #cache_get;

            fn table_name() -> &'static str {
                static NAME: ::std::sync::OnceLock<::std::string::String> =
                    ::std::sync::OnceLock::new();
                ::std::string::String::as_str(::std::sync::OnceLock::get_or_init(
                    &NAME,
                    || { #table_name },
                ))
            }

            #row_keys

            #identity

            #composite_keys

            #returned_rows
        }
    }
}

/// The table's SQL name: read from the first primary-key column as
/// rendered, or the table module's name.
fn table_name(model: &Model) -> TokenStream {
    let p = private();
    let table_fallback = model
        .table
        .segments
        .last()
        .map(|s| s.ident.unraw().to_string())
        .unwrap_or_default();
    let name = local("name");
    match model.pk_fields().next().map(|f| column_path(model, f)) {
        Some(col) => quote! {
            let #name = #p::table_name_of(&#col);
            if ::std::string::String::is_empty(&#name) {
                ::std::borrow::ToOwned::to_owned(#table_fallback)
            } else {
                #name
            }
        },
        None => quote!(::std::borrow::ToOwned::to_owned(#table_fallback)),
    }
}

/// The local holding the encoded value of field `i`.
fn value_local(i: usize) -> syn::Ident {
    format_ident!("v{}", i, span = proc_macro2::Span::mixed_site())
}

/// `fn row_keys`: one key per keyable column value, one per composite key
/// (declared ones, and a composite primary key), the table key for a model
/// that does not cover its table, and the rows key.
fn row_keys(model: &Model) -> TokenStream {
    let p = private();
    let table = &model.table;
    let (out, names, pass) = (local("out"), local("names"), local("pass"));
    // One local per mapped field: the encoded value, for composites.
    let mapped: Vec<(usize, &Field)> = model
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.column.is_some())
        .collect();
    let pushes = mapped.iter().map(|&(i, f)| {
        let col = column_path(model, f);
        let field = &f.ident;
        let v = value_local(i);
        quote! {
            let #v = #p::push_value::<_, ::diesel::dsl::SqlTypeOf<#col>, _>(
                #out, &#col, &self.#field,
            );
        }
    });
    let name_exprs = mapped.iter().map(|&(_, f)| {
        let col = column_path(model, f);
        quote!(#p::column_name(&#col))
    });
    let mut composites: Vec<TokenStream> = model
        .keys
        .iter()
        .map(|k| push_composite(model, &mapped, &k.fields))
        .collect();
    if model.primary_key.len() > 1 {
        composites.push(push_composite(model, &mapped, &model.primary_key));
    }
    quote! {
        fn row_keys(&self, #out: &mut #p::RowKeys<'_>) {
            #(#pushes)*
            let #names = [#(#name_exprs),*];
            #(#composites)*
            // The library memoises coverage per type of its second
            // argument: a type of this model's own keeps two models of
            // one table (one covering, one not) from sharing the answer.
            struct __CachebotAllColumns<T>(T);
            impl<T> ::diesel::query_builder::QueryFragment<::diesel::pg::Pg>
                for __CachebotAllColumns<T>
            where
                T: ::diesel::query_builder::QueryFragment<::diesel::pg::Pg>,
            {
                fn walk_ast<'b>(
                    &'b self,
                    #pass: ::diesel::query_builder::AstPass<'_, 'b, ::diesel::pg::Pg>,
                ) -> ::diesel::QueryResult<()> {
                    ::diesel::query_builder::QueryFragment::walk_ast(&self.0, #pass)
                }
            }
            #p::push_unless_covering(
                #out,
                &__CachebotAllColumns(<#table::table as ::diesel::Table>::all_columns()),
                &#names,
            );
            #p::push_rows(#out, <Self as ::cachebot::CacheModel>::table_name());
        }
    }
}

/// Push one composite key of `fields`, from the values already encoded.
fn push_composite(model: &Model, mapped: &[(usize, &Field)], fields: &[usize]) -> TokenStream {
    let p = private();
    let (out, names, c) = (local("out"), local("names"), local("c"));
    let parts = fields.iter().map(|&i| {
        let v = value_local(i);
        let fallback = column_str(&model.fields[i]);
        // Position of the field in `names`.
        let at = mapped.iter().position(|&(m, _)| m == i).unwrap_or_default();
        quote! {
            (
                ::std::option::Option::map_or(
                    ::std::option::Option::as_ref(&#names[#at]),
                    #fallback,
                    |(_, #c)| ::std::string::String::as_str(#c),
                ),
                ::std::clone::Clone::clone(&#v),
            )
        }
    });
    quote! {
        #p::push_composite(
            #out,
            <Self as ::cachebot::CacheModel>::table_name(),
            &[#(#parts),*],
        );
    }
}

/// `fn identity`: the encoded primary key.
fn identity(model: &Model) -> TokenStream {
    let p = private();
    let parts = model.pk_fields().map(|f| {
        let col = column_path(model, f);
        let field = &f.ident;
        quote! {
            ::std::option::Option::flatten(::std::result::Result::ok(
                #p::encode::<::diesel::dsl::SqlTypeOf<#col>, _>(&self.#field),
            ))
        }
    });
    quote! {
        fn identity(&self) -> ::std::vec::Vec<u8> {
            #p::identity(&[#(#parts),*])
        }
    }
}

/// `fn columns`, `fn primary_key_fields` and `fn primary_key_values`: what
/// lets a query returning this model depend on the rows it returned.
fn returned_rows(model: &Model) -> TokenStream {
    let p = private();
    let columns = model.fields.iter().map(|f| match &f.column {
        Some(_) => {
            let col = column_path(model, f);
            quote!(#p::column_name(&#col))
        }
        None => quote!(::std::option::Option::None),
    });
    let positions = model.primary_key.iter();
    let values = model.pk_fields().map(|f| {
        let col = column_path(model, f);
        let field = &f.ident;
        quote! {
            ::std::result::Result::ok(
                #p::encode::<::diesel::dsl::SqlTypeOf<#col>, _>(&self.#field),
            )?
        }
    });
    quote! {
        fn columns() -> ::std::vec::Vec<::std::option::Option<(
            ::std::string::String,
            ::std::string::String,
        )>> {
            ::std::vec![#(#columns),*]
        }

        fn primary_key_fields() -> &'static [usize] {
            &[#(#positions),*]
        }

        fn primary_key_values(
            &self,
        ) -> ::std::option::Option<::std::vec::Vec<::std::option::Option<::std::vec::Vec<u8>>>> {
            ::std::option::Option::Some(::std::vec![#(#values),*])
        }
    }
}

/// `fn composite_keys`, for models that declare keys (the default, none,
/// otherwise).
fn composite_keys(model: &Model) -> TokenStream {
    if model.keys.is_empty() {
        return quote!();
    }
    let p = private();
    let (column, fallback, c) = (local("column"), local("fallback"), local("c"));
    let keys = model.keys.iter().map(|k| {
        let parts = k.fields.iter().map(|&i| {
            let f = &model.fields[i];
            let col = column_path(model, f);
            let fallback = column_str(f);
            quote!(name(&#col, #fallback))
        });
        quote!(::std::vec::Vec::leak(::std::vec![#(#parts),*]))
    });
    quote! {
        fn composite_keys() -> &'static [&'static [&'static str]] {
            // The SQL names, read once from the rendered columns.
            fn name<Col>(#column: &Col, #fallback: &'static str) -> &'static str
            where
                Col: ::diesel::query_builder::QueryFragment<::diesel::pg::Pg> + 'static,
            {
                match #p::column_name(#column) {
                    ::std::option::Option::Some((_, #c)) if #c != #fallback => {
                        ::std::string::String::leak(#c)
                    }
                    _ => #fallback,
                }
            }
            static KEYS: ::std::sync::OnceLock<
                ::std::vec::Vec<&'static [&'static str]>,
            > = ::std::sync::OnceLock::new();
            ::std::vec::Vec::as_slice(::std::sync::OnceLock::get_or_init(
                &KEYS,
                || ::std::vec![#(#keys),*],
            ))
        }
    }
}
