//! Code generation from a [`Model`].
//!
//! Two items come out of a model:
//!
//! - `impl ::cachebot::CacheModel`: the table, the generation keys of a row
//!   (`row_keys`), its identity and its declared composite keys;
//! - an inherent `impl` with the cached primary-key gets (`get`,
//!   `get_many`), one `get_by_..` per declared key, and the invalidating
//!   writes (`insert`, `save`, `delete`).
//!
//! The generated code names everything by absolute path (`::cachebot`,
//! `::diesel`, `::std`), brings nothing into scope, and its local variables
//! have mixed-site hygiene, so no field or user item can clash with them.
//! SQL types are always `SqlTypeOf<table::column>`, never guessed from
//! Rust types; column and table names are read at run time from the
//! rendered columns, so `sql_name` renames in `table!` stay right.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::{GenericParam, Ident, Lifetime};

use crate::attr::{Field, Model};

/// Hygienic identifiers for the generated code's own locals.
struct Names {
    cache: Ident,
    conn: Ident,
    out: Ident,
    id: Ident,
    ids: Ident,
    row: Ident,
    rows: Ident,
    missing: Ident,
    query: Ident,
    names: Ident,
    /// Method type parameters, chosen not to shadow the struct's own.
    codec: Ident,
    values: Ident,
    lt_q: Lifetime,
    lt_a: Lifetime,
}

impl Names {
    fn new(model: &Model) -> Names {
        let local = |n: &str| Ident::new(n, Span::mixed_site());
        let taken: Vec<String> = model
            .generics
            .params
            .iter()
            .map(|p| match p {
                GenericParam::Type(t) => t.ident.to_string(),
                GenericParam::Lifetime(l) => format!("'{}", l.lifetime.ident),
                GenericParam::Const(c) => c.ident.to_string(),
            })
            .collect();
        let free = |base: &str| -> String {
            let mut name = base.to_owned();
            let mut n = 0;
            while taken.contains(&name) {
                n += 1;
                name = format!("{base}{n}");
            }
            name
        };
        Names {
            cache: local("cache"),
            conn: local("conn"),
            out: local("out"),
            id: local("id"),
            ids: local("ids"),
            row: local("row"),
            rows: local("rows"),
            missing: local("missing"),
            query: local("query"),
            names: local("names"),
            codec: Ident::new(&free("C"), Span::call_site()),
            values: Ident::new(&free("V"), Span::call_site()),
            lt_q: Lifetime::new(&free("'q"), Span::call_site()),
            lt_a: Lifetime::new(&free("'a"), Span::call_site()),
        }
    }
}

/// The whole expansion.
pub fn expand(model: &Model) -> TokenStream {
    let n = Names::new(model);
    let cache_model = impl_cache_model(model, &n);
    let methods = impl_methods(model, &n);
    quote! {
        #cache_model
        #methods
    }
}

fn private() -> TokenStream {
    quote!(::cachebot::model::__private)
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

/// The primary key's Rust type: the field's type, or a tuple for composite keys.
fn pk_type(model: &Model) -> TokenStream {
    let tys: Vec<_> = model.pk_fields().map(|f| &f.ty).collect();
    match tys.as_slice() {
        [one] => quote!(#one),
        many => quote!((#(#many,)*)),
    }
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
    match values.as_slice() {
        [one] => one.clone(),
        many => quote!((#(#many,)*)),
    }
}

fn impl_cache_model(model: &Model, n: &Names) -> TokenStream {
    let p = private();
    let ident = &model.ident;
    let (impl_generics, ty_generics, where_clause) = model.generics.split_for_impl();
    let table = &model.table;
    let cache_get = model.cache_get;
    let Names { out, names, .. } = n;

    let table_fallback = model
        .table
        .segments
        .last()
        .map(|s| s.ident.unraw().to_string())
        .unwrap_or_default();
    let first_pk = model.pk_fields().next().map(|f| column_path(model, f));
    let table_name = match first_pk {
        Some(col) => quote! {
            let name = #p::table_name_of(&#col);
            if ::std::string::String::is_empty(&name) {
                ::std::borrow::ToOwned::to_owned(#table_fallback)
            } else {
                name
            }
        },
        None => quote!(::std::borrow::ToOwned::to_owned(#table_fallback)),
    };

    // One local per mapped field: the encoded value, for composites.
    let mapped: Vec<(usize, &Field)> = model
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.column.is_some())
        .collect();
    let value_local = |i: usize| format_ident!("v{}", i, span = Span::mixed_site());
    let pushes = mapped.iter().map(|&(i, f)| {
        let col = column_path(model, f);
        let field = &f.ident;
        let local = value_local(i);
        quote! {
            let #local = #p::push_value::<_, ::diesel::dsl::SqlTypeOf<#col>, _>(
                #out, &#col, &self.#field,
            );
        }
    });
    let name_exprs = mapped.iter().map(|&(_, f)| {
        let col = column_path(model, f);
        quote!(#p::column_name(&#col))
    });
    // Position of a field in `names`.
    let name_index = |field: usize| mapped.iter().position(|&(i, _)| i == field);
    let composite = |fields: &[usize]| -> TokenStream {
        let parts = fields.iter().map(|&i| {
            let local = value_local(i);
            let fallback = column_str(&model.fields[i]);
            let at = name_index(i).unwrap_or_default();
            quote! {
                (
                    ::std::option::Option::map_or(
                        ::std::option::Option::as_ref(&#names[#at]),
                        #fallback,
                        |(_, c)| ::std::string::String::as_str(c),
                    ),
                    ::std::clone::Clone::clone(&#local),
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
    };
    let mut composites: Vec<TokenStream> =
        model.keys.iter().map(|k| composite(&k.fields)).collect();
    if model.primary_key.len() > 1 {
        composites.push(composite(&model.primary_key));
    }

    let identity_parts = model.pk_fields().map(|f| {
        let col = column_path(model, f);
        let field = &f.ident;
        quote! {
            ::std::option::Option::flatten(::std::result::Result::ok(
                #p::encode::<::diesel::dsl::SqlTypeOf<#col>, _>(&self.#field),
            ))
        }
    });

    let composite_keys = if model.keys.is_empty() {
        quote!()
    } else {
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
                fn name<Col>(column: &Col, fallback: &'static str) -> &'static str
                where
                    Col: ::diesel::query_builder::QueryFragment<::diesel::pg::Pg> + 'static,
                {
                    match #p::column_name(column) {
                        ::std::option::Option::Some((_, c)) if c != fallback => {
                            ::std::string::String::leak(c)
                        }
                        _ => fallback,
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
    };

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
                        pass: ::diesel::query_builder::AstPass<'_, 'b, ::diesel::pg::Pg>,
                    ) -> ::diesel::QueryResult<()> {
                        ::diesel::query_builder::QueryFragment::walk_ast(&self.0, pass)
                    }
                }
                #p::push_unless_covering(
                    #out,
                    &__CachebotAllColumns(<#table::table as ::diesel::Table>::all_columns()),
                    &#names,
                );
                #p::push_rows(#out, <Self as ::cachebot::CacheModel>::table_name());
            }

            fn identity(&self) -> ::std::vec::Vec<u8> {
                #p::identity(&[#(#identity_parts),*])
            }

            #composite_keys
        }
    }
}

fn doc(text: String) -> TokenStream {
    quote!(#[doc = #text])
}

fn impl_methods(model: &Model, n: &Names) -> TokenStream {
    let p = private();
    let ident = &model.ident;
    let name = ident.to_string();
    let (impl_generics, ty_generics, where_clause) = model.generics.split_for_impl();
    let table = &model.table;
    let table_str = quote!(#table).to_string().replace(' ', "");
    let Names {
        cache,
        conn,
        id,
        ids,
        row,
        rows,
        missing,
        query,
        codec,
        values,
        lt_q,
        lt_a,
        ..
    } = n;
    let load_missing_fn = Ident::new("load_missing", Span::mixed_site());
    let id_of_fn = Ident::new("id_of", Span::mixed_site());
    let values_arg = Ident::new("values", Span::mixed_site());
    let pk_ty = pk_type(model);
    let composite_pk = model.primary_key.len() > 1;
    let select = quote!(<Self as ::diesel::SelectableHelper<::diesel::pg::Pg>>::as_select());
    let find = |id: TokenStream| {
        quote! {
            ::diesel::QueryDsl::select(::diesel::QueryDsl::find(#table::table, #id), #select)
        }
    };
    let cache_param = quote!(#cache: &::cachebot::Cache<#codec>);
    let conn_param = quote!(#conn: &mut ::diesel::PgConnection);
    let codec_param = quote!(#codec: ::cachebot::codec::Codec);
    let caches_gets = quote! {
        <Self as ::cachebot::CacheModel>::CACHE_GET && ::cachebot::Cache::caches_gets(#cache)
    };
    let first = |rows: TokenStream| quote!(::std::iter::Iterator::next(&mut ::std::iter::IntoIterator::into_iter(#rows)));
    let load_cached = |query: TokenStream| {
        quote! {
            ::cachebot::CachedRunQueryDsl::load(::cachebot::CacheDsl::cache(#query, #cache), #conn)
        }
    };

    // get
    let get_query = find(quote!(#id));
    let get_doc = doc(format!(
        "Load the `{name}` whose primary key is `id`, or `None`.\n\n\
         Reads through `cache` (\"not found\" is cached too) unless the model has \
         `#[cachebot(cache_get = false)]` or the cache was built with `cache_gets(false)`; \
         then it queries the database. Generated by `#[derive(CacheBot)]`."
    ));
    let get_cached = load_cached(quote!(#query));
    let get_first = first(quote!(#rows));
    let get = quote! {
        #get_doc
        pub fn get<#codec_param>(
            #cache_param,
            #conn_param,
            #id: #pk_ty,
        ) -> ::diesel::QueryResult<::std::option::Option<Self>> {
            let #query = #get_query;
            let #rows: ::std::vec::Vec<Self> = if #caches_gets {
                #get_cached?
            } else {
                ::cachebot::model::__private::count_bypass(#cache, 1);
                ::diesel::RunQueryDsl::load(#query, #conn)?
            };
            ::std::result::Result::Ok(#get_first)
        }
    };

    // get_many
    let find_one = find(quote!(::std::clone::Clone::clone(#id)));
    let row_ref = quote!(#row);
    let id_of = pk_value(model, &row_ref);
    let load_missing = if composite_pk {
        // No `= ANY` for tuples: one query per missing id.
        quote! {
            |#conn: &mut ::diesel::PgConnection,
             #missing: &[#pk_ty]|
             -> ::diesel::QueryResult<::std::vec::Vec<Self>> {
                let mut #rows = ::std::vec::Vec::with_capacity(<[#pk_ty]>::len(#missing));
                for #id in #missing {
                    let #query = #find_one;
                    ::std::iter::Extend::extend(
                        &mut #rows,
                        ::diesel::RunQueryDsl::load::<Self>(#query, #conn)?,
                    );
                }
                ::std::result::Result::Ok(#rows)
            }
        }
    } else {
        let pk_col = model
            .pk_fields()
            .next()
            .map(|f| column_path(model, f))
            .unwrap_or_default();
        quote! {
            |#conn: &mut ::diesel::PgConnection,
             #missing: &[#pk_ty]|
             -> ::diesel::QueryResult<::std::vec::Vec<Self>> {
                ::diesel::RunQueryDsl::load(
                    ::diesel::QueryDsl::select(
                        ::diesel::QueryDsl::filter(
                            #table::table,
                            ::diesel::ExpressionMethods::eq_any(
                                #pk_col,
                                <[#pk_ty]>::to_vec(#missing),
                            ),
                        ),
                        #select,
                    ),
                    #conn,
                )
            }
        }
    };
    let how_missing = if composite_pk {
        "the ids the cache does not hold are loaded one query each (a composite primary key \
         has no `= ANY`)"
    } else {
        "the ids the cache does not hold are loaded with one `= ANY` query"
    };
    let get_many_doc = doc(format!(
        "Load the `{name}` rows whose primary keys are `ids`, in the order of `ids` \
         (ids without a row are skipped; a repeated id yields its row once).\n\n\
         Through the cache: one store round trip for all ids, and {how_missing}; each id \
         shares its entry with [`get`](Self::get). Without cached gets \
         (`#[cachebot(cache_get = false)]`, `cache_gets(false)`) the rows come from the \
         database directly. Generated by `#[derive(CacheBot)]`."
    ));
    let get_many = quote! {
        #get_many_doc
        pub fn get_many<#codec_param>(
            #cache_param,
            #conn_param,
            #ids: &[#pk_ty],
        ) -> ::diesel::QueryResult<::std::vec::Vec<Self>> {
            let #load_missing_fn = #load_missing;
            let #id_of_fn = |#row: &Self| -> #pk_ty { #id_of };
            if #caches_gets {
                return ::cachebot::Cache::get_many(
                    #cache,
                    #conn,
                    #ids,
                    |#id: &#pk_ty| #find_one,
                    #load_missing_fn,
                    #id_of_fn,
                );
            }
            ::cachebot::model::__private::count_bypass(#cache, #ids.len() as u64);
            // The same order as the cached path: by `ids`, each row once.
            let mut #rows: ::std::vec::Vec<::std::option::Option<Self>> =
                ::std::iter::Iterator::collect(::std::iter::Iterator::map(
                    ::std::iter::IntoIterator::into_iter(#load_missing_fn(#conn, #ids)?),
                    ::std::option::Option::Some,
                ));
            ::std::result::Result::Ok(::std::iter::Iterator::collect(
                ::std::iter::Iterator::filter_map(::std::iter::IntoIterator::into_iter(#ids), |#id| {
                    ::std::option::Option::take(::std::iter::Iterator::find(
                        &mut ::std::iter::IntoIterator::into_iter(&mut #rows),
                        |#row| match &**#row {
                            ::std::option::Option::Some(#row) => #id_of_fn(#row) == *#id,
                            ::std::option::Option::None => false,
                        },
                    )?)
                }),
            ))
        }
    };

    // get_by_...
    let get_bys = model.keys.iter().map(|k| {
        let fields: Vec<&Field> = k.fields.iter().map(|&i| &model.fields[i]).collect();
        let method = format_ident!(
            "get_by_{}",
            fields.iter().map(|f| f.ident.unraw().to_string()).collect::<Vec<_>>().join("_and_"),
            span = k.span
        );
        let params = fields.iter().map(|f| {
            let (ident, ty) = (&f.ident, &f.ty);
            quote!(#ident: #ty)
        });
        let mut q = quote!(#table::table);
        for f in &fields {
            let col = column_path(model, f);
            let ident = &f.ident;
            q = quote!(::diesel::QueryDsl::filter(#q, ::diesel::ExpressionMethods::eq(#col, #ident)));
        }
        let list = fields
            .iter()
            .map(|f| format!("`{}`", f.ident.unraw()))
            .collect::<Vec<_>>()
            .join(", ");
        let method_doc = doc(format!(
            "Load the `{name}` rows with the given {list} (SQL `=`: a `NULL` matches nothing), \
             through `cache`.\n\n\
             The result is keyed on the declared composite key `#[cachebot(key(..))]`, so \
             only writes to rows with these values (before or after) invalidate it. \
             Generated by `#[derive(CacheBot)]`."
        ));
        let by_cached = load_cached(quote!(#query));
        quote! {
            #method_doc
            #[allow(clippy::too_many_arguments)]
            pub fn #method<#codec_param>(
                #cache_param,
                #conn_param,
                #(#params),*
            ) -> ::diesel::QueryResult<::std::vec::Vec<Self>> {
                #p::register::<Self>();
                let #query = ::diesel::QueryDsl::select(#q, #select);
                #by_cached
            }
        }
    });

    // insert
    let insert_doc = doc(format!(
        "Insert `values` into `{table_str}` (any Diesel `Insertable` of the table: a struct, a \
         `Vec` of them, a tuple of `column.eq(value)`) and return the inserted `{name}` rows, \
         invalidating every cached result their values can change.\n\n\
         Generated by `#[derive(CacheBot)]`."
    ));
    let insert = quote! {
        #insert_doc
        pub fn insert<#lt_q, #values, #codec_param>(
            #cache_param,
            #conn_param,
            #values_arg: #values,
        ) -> ::diesel::QueryResult<::std::vec::Vec<Self>>
        where
            #values: ::cachebot::write::InsertValues<#lt_q, Self>,
        {
            ::cachebot::write::insert_values::<Self, #values, #codec>(#cache, #conn, #values_arg)
        }
    };

    // save
    let pk_self = pk_value(model, &quote!(self));
    let save_doc = doc(format!(
        "Write this `{name}`'s fields to its row (found by primary key) and return the row as \
         stored, invalidating what its old and new values can change; `Err(NotFound)` if the \
         row is gone.\n\n\
         Needs `#[derive(AsChangeset)]` on `{name}`. Generated by `#[derive(CacheBot)]`."
    ));
    let save_first = first(quote!(#rows));
    let save = quote! {
        #save_doc
        pub fn save<#lt_a, #codec_param>(
            &#lt_a self,
            #cache_param,
            #conn_param,
        ) -> ::diesel::QueryResult<Self>
        where
            &#lt_a Self: ::cachebot::write::UpdateChanges<
                #lt_a,
                Self,
                ::diesel::dsl::Find<#table::table, #pk_ty>,
            >,
        {
            let #rows = <&#lt_a Self as ::cachebot::write::UpdateChanges<
                #lt_a,
                Self,
                ::diesel::dsl::Find<#table::table, #pk_ty>,
            >>::update(self, #cache, #conn, ::diesel::QueryDsl::find(#table::table, #pk_self))?;
            ::std::option::Option::ok_or(#save_first, ::diesel::result::Error::NotFound)
        }
    };

    // delete
    let delete_doc = doc(format!(
        "Delete this `{name}`'s row (by primary key) and return how many rows were deleted \
         (0 or 1), invalidating what its values can change, including tables whose foreign \
         keys cascade from `{table_str}`.\n\n\
         Generated by `#[derive(CacheBot)]`."
    ));
    let delete = quote! {
        #delete_doc
        pub fn delete<#codec_param>(
            &self,
            #cache_param,
            #conn_param,
        ) -> ::diesel::QueryResult<usize> {
            let #rows: ::std::vec::Vec<Self> = ::cachebot::write::delete::<Self, _, #codec>(
                #cache,
                #conn,
                ::diesel::QueryDsl::find(#table::table, #pk_self),
            )?;
            ::std::result::Result::Ok(::std::vec::Vec::len(&#rows))
        }
    };

    let mut impl_doc = format!(
        "Cached reads and invalidating writes for `{name}` (table `{table_str}`), generated by \
         `#[derive(CacheBot)]`."
    );
    if !model.belongs_to.is_empty() {
        let parents = model
            .belongs_to
            .iter()
            .map(|b| {
                let parent = &b.parent;
                format!(
                    "`{}` (through `{}`)",
                    quote!(#parent).to_string().replace(' ', ""),
                    b.foreign_key.unraw()
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        impl_doc.push_str(&format!("\n\nBelongs to {parents}."));
    }
    let impl_doc = doc(impl_doc);

    quote! {
        #impl_doc
        impl #impl_generics #ident #ty_generics #where_clause {
            #get
            #get_many
            #(#get_bys)*
            #insert
            #save
            #delete
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::parse;

    fn expand_str(tokens: TokenStream) -> String {
        expand(&parse(tokens).unwrap()).to_string()
    }

    fn squash(s: &str) -> String {
        s.split_whitespace().collect()
    }

    #[track_caller]
    fn contains(haystack: &str, needle: TokenStream) {
        let (h, n) = (squash(haystack), squash(&needle.to_string()));
        assert!(h.contains(&n), "expansion lacks\n  {n}\nin\n  {h}");
    }

    #[track_caller]
    fn lacks(haystack: &str, needle: &str) {
        assert!(
            !squash(haystack).contains(&squash(needle)),
            "expansion has {needle}"
        );
    }

    fn photo() -> String {
        expand_str(quote! {
            #[derive(Queryable, Selectable, Identifiable, AsChangeset, CacheBot)]
            #[diesel(table_name = schema::photos, check_for_backend(diesel::pg::Pg))]
            #[diesel(belongs_to(User))]
            #[cachebot(key(user_id, status))]
            pub struct Photo {
                pub id: i32,
                pub user_id: i32,
                pub status: i32,
                #[diesel(column_name = title)]
                pub name: String,
                #[diesel(embed)]
                pub extra: Extra,
            }
        })
    }

    #[test]
    fn cache_model_impl() {
        let s = photo();
        let p = quote!(::cachebot::model::__private);
        contains(&s, quote!(impl ::cachebot::CacheModel for Photo));
        contains(
            &s,
            quote!(
                type Table = schema::photos::table;
            ),
        );
        contains(
            &s,
            quote!(
                const CACHE_GET: bool = true;
            ),
        );
        contains(&s, quote!(#p::table_name_of(&schema::photos::id)));
        // Renamed column: the column's path and SQL type, the field's value.
        contains(
            &s,
            quote! {
                let v3 = #p::push_value::<_, ::diesel::dsl::SqlTypeOf<schema::photos::title>, _>(
                    out, &schema::photos::title, &self.name,
                );
            },
        );
        // The embedded field has no column: it is not keyed, and the
        // coverage check widens writes to the table.
        lacks(&s, "self.extra");
        contains(
            &s,
            quote! {
                let names = [
                    #p::column_name(&schema::photos::id),
                    #p::column_name(&schema::photos::user_id),
                    #p::column_name(&schema::photos::status),
                    #p::column_name(&schema::photos::title)
                ];
            },
        );
        // The declared key, from the values already encoded.
        contains(
            &s,
            quote! {
                #p::push_composite(
                    out,
                    <Self as ::cachebot::CacheModel>::table_name(),
                    &[
                        (
                            ::std::option::Option::map_or(
                                ::std::option::Option::as_ref(&names[1usize]),
                                "user_id",
                                |(_, c)| ::std::string::String::as_str(c),
                            ),
                            ::std::clone::Clone::clone(&v1),
                        ),
                        (
                            ::std::option::Option::map_or(
                                ::std::option::Option::as_ref(&names[2usize]),
                                "status",
                                |(_, c)| ::std::string::String::as_str(c),
                            ),
                            ::std::clone::Clone::clone(&v2),
                        )
                    ],
                );
            },
        );
        contains(
            &s,
            quote! {
                #p::push_unless_covering(
                    out,
                    &__CachebotAllColumns(<schema::photos::table as ::diesel::Table>::all_columns()),
                    &names,
                );
                #p::push_rows(out, <Self as ::cachebot::CacheModel>::table_name());
            },
        );
        contains(
            &s,
            quote! {
                #p::identity(&[::std::option::Option::flatten(::std::result::Result::ok(
                    #p::encode::<::diesel::dsl::SqlTypeOf<schema::photos::id>, _>(&self.id),
                ))])
            },
        );
        contains(
            &s,
            quote! {
                ::std::vec::Vec::leak(::std::vec![
                    name(&schema::photos::user_id, "user_id"),
                    name(&schema::photos::status, "status")
                ])
            },
        );
    }

    #[test]
    fn inherent_methods() {
        let s = photo();
        let select = quote!(<Self as ::diesel::SelectableHelper<::diesel::pg::Pg>>::as_select());
        contains(&s, quote!(impl Photo));
        contains(
            &s,
            quote! {
                pub fn get<C: ::cachebot::codec::Codec>(
                    cache: &::cachebot::Cache<C>,
                    conn: &mut ::diesel::PgConnection,
                    id: i32,
                ) -> ::diesel::QueryResult<::std::option::Option<Self>>
            },
        );
        contains(
            &s,
            quote! {
                let query = ::diesel::QueryDsl::select(
                    ::diesel::QueryDsl::find(schema::photos::table, id),
                    #select
                );
            },
        );
        contains(
            &s,
            quote! {
                if <Self as ::cachebot::CacheModel>::CACHE_GET
                    && ::cachebot::Cache::caches_gets(cache)
                {
                    ::cachebot::CachedRunQueryDsl::load(::cachebot::CacheDsl::cache(query, cache), conn)?
                } else {
                    ::cachebot::model::__private::count_bypass(cache, 1);
                    ::diesel::RunQueryDsl::load(query, conn)?
                }
            },
        );
        contains(&s, quote!(pub fn get_many<C: ::cachebot::codec::Codec>));
        contains(
            &s,
            quote!(::diesel::ExpressionMethods::eq_any(
                schema::photos::id,
                <[i32]>::to_vec(missing),
            )),
        );
        contains(
            &s,
            quote! {
                return ::cachebot::Cache::get_many(
                    cache,
                    conn,
                    ids,
                    |id: &i32| ::diesel::QueryDsl::select(
                        ::diesel::QueryDsl::find(schema::photos::table, ::std::clone::Clone::clone(id)),
                        #select
                    ),
                    load_missing,
                    id_of,
                );
            },
        );
        contains(
            &s,
            quote!(let id_of = |row: &Self| -> i32 { ::std::clone::Clone::clone(&row.id) };),
        );
        contains(
            &s,
            quote! {
                pub fn get_by_user_id_and_status<C: ::cachebot::codec::Codec>(
                    cache: &::cachebot::Cache<C>,
                    conn: &mut ::diesel::PgConnection,
                    user_id: i32,
                    status: i32
                ) -> ::diesel::QueryResult<::std::vec::Vec<Self>> {
                    ::cachebot::model::__private::register::<Self>();
                    let query = ::diesel::QueryDsl::select(
                        ::diesel::QueryDsl::filter(
                            ::diesel::QueryDsl::filter(
                                schema::photos::table,
                                ::diesel::ExpressionMethods::eq(schema::photos::user_id, user_id)
                            ),
                            ::diesel::ExpressionMethods::eq(schema::photos::status, status)
                        ),
                        #select
                    );
                    ::cachebot::CachedRunQueryDsl::load(::cachebot::CacheDsl::cache(query, cache), conn)
                }
            },
        );
        contains(
            &s,
            quote! {
                pub fn insert<'q, V, C: ::cachebot::codec::Codec>(
                    cache: &::cachebot::Cache<C>,
                    conn: &mut ::diesel::PgConnection,
                    values: V,
                ) -> ::diesel::QueryResult<::std::vec::Vec<Self>>
                where
                    V: ::cachebot::write::InsertValues<'q, Self>,
                {
                    ::cachebot::write::insert_values::<Self, V, C>(cache, conn, values)
                }
            },
        );
        contains(
            &s,
            quote! {
                pub fn save<'a, C: ::cachebot::codec::Codec>(
                    &'a self,
                    cache: &::cachebot::Cache<C>,
                    conn: &mut ::diesel::PgConnection,
                ) -> ::diesel::QueryResult<Self>
                where
                    &'a Self: ::cachebot::write::UpdateChanges<
                        'a,
                        Self,
                        ::diesel::dsl::Find<schema::photos::table, i32>,
                    >,
            },
        );
        contains(
            &s,
            quote! {
                ::cachebot::write::delete::<Self, _, C>(
                    cache,
                    conn,
                    ::diesel::QueryDsl::find(schema::photos::table, ::std::clone::Clone::clone(&self.id)),
                )?;
            },
        );
        contains(
            &s,
            quote!(#[doc = "Cached reads and invalidating writes for `Photo` (table `schema::photos`), generated by `#[derive(CacheBot)]`.\n\nBelongs to `User` (through `user_id`)."]),
        );
    }

    #[test]
    fn composite_primary_key() {
        let s = expand_str(quote! {
            #[diesel(table_name = memberships, primary_key(group_id, member))]
            pub struct Membership {
                pub group_id: i32,
                #[diesel(column_name = member)]
                pub user_id: i64,
                pub role: String,
            }
        });
        let p = quote!(::cachebot::model::__private);
        contains(&s, quote!(id: (i32, i64,),));
        contains(
            &s,
            quote!(::diesel::dsl::Find<memberships::table, (i32, i64,)>),
        );
        contains(
            &s,
            quote! {
                ::diesel::QueryDsl::find(
                    memberships::table,
                    (
                        ::std::clone::Clone::clone(&self.group_id),
                        ::std::clone::Clone::clone(&self.user_id),
                    )
                )
            },
        );
        contains(
            &s,
            quote! {
                #p::identity(&[
                    ::std::option::Option::flatten(::std::result::Result::ok(
                        #p::encode::<::diesel::dsl::SqlTypeOf<memberships::group_id>, _>(&self.group_id),
                    )),
                    ::std::option::Option::flatten(::std::result::Result::ok(
                        #p::encode::<::diesel::dsl::SqlTypeOf<memberships::member>, _>(&self.user_id),
                    ))
                ])
            },
        );
        // The composite primary key is pushed as a composite key...
        contains(
            &s,
            quote! {
                (
                    ::std::option::Option::map_or(
                        ::std::option::Option::as_ref(&names[1usize]),
                        "member",
                        |(_, c)| ::std::string::String::as_str(c),
                    ),
                    ::std::clone::Clone::clone(&v1),
                )
            },
        );
        // ...but not declared: `composite_keys` keeps its default.
        lacks(&s, "fn composite_keys");
        // No `= ANY` over tuples: missing ids are loaded one by one.
        lacks(&s, "eq_any");
        contains(&s, quote!(for id in missing));
    }

    #[test]
    fn small_model_token_for_token() {
        let s = expand_str(quote! {
            #[diesel(table_name = t)]
            #[cachebot(cache_get = false)]
            struct M { id: i64 }
        });
        let p = quote!(::cachebot::model::__private);
        let expected = quote! {
            #[automatically_derived]
            impl ::cachebot::CacheModel for M {
                type Table = t::table;
                const CACHE_GET: bool = false;
                fn table_name() -> &'static str {
                    static NAME: ::std::sync::OnceLock<::std::string::String> =
                        ::std::sync::OnceLock::new();
                    ::std::string::String::as_str(::std::sync::OnceLock::get_or_init(
                        &NAME,
                        || {
                            let name = #p::table_name_of(&t::id);
                            if ::std::string::String::is_empty(&name) {
                                ::std::borrow::ToOwned::to_owned("t")
                            } else {
                                name
                            }
                        },
                    ))
                }
                fn row_keys(&self, out: &mut #p::RowKeys<'_>) {
                    let v0 = #p::push_value::<_, ::diesel::dsl::SqlTypeOf<t::id>, _>(
                        out, &t::id, &self.id,
                    );
                    let names = [#p::column_name(&t::id)];
                    struct __CachebotAllColumns<T>(T);
                    impl<T> ::diesel::query_builder::QueryFragment<::diesel::pg::Pg>
                        for __CachebotAllColumns<T>
                    where
                        T: ::diesel::query_builder::QueryFragment<::diesel::pg::Pg>,
                    {
                        fn walk_ast<'b>(
                            &'b self,
                            pass: ::diesel::query_builder::AstPass<'_, 'b, ::diesel::pg::Pg>,
                        ) -> ::diesel::QueryResult<()> {
                            ::diesel::query_builder::QueryFragment::walk_ast(&self.0, pass)
                        }
                    }
                    #p::push_unless_covering(
                        out,
                        &__CachebotAllColumns(<t::table as ::diesel::Table>::all_columns()),
                        &names,
                    );
                    #p::push_rows(out, <Self as ::cachebot::CacheModel>::table_name());
                }
                fn identity(&self) -> ::std::vec::Vec<u8> {
                    #p::identity(&[::std::option::Option::flatten(::std::result::Result::ok(
                        #p::encode::<::diesel::dsl::SqlTypeOf<t::id>, _>(&self.id),
                    ))])
                }
            }
        };
        let trait_impl = &s[..s.find("# [doc").unwrap()];
        assert_eq!(squash(trait_impl), squash(&expected.to_string()));
        // No declared key: no get_by, no registration.
        lacks(&s, "get_by_");
        lacks(&s, "register");
    }

    #[test]
    fn generic_names_do_not_shadow_the_structs() {
        let s = expand_str(quote! {
            #[diesel(table_name = t)]
            struct M<'a, C, V> { id: i32, c: ::std::marker::PhantomData<&'a (C, V)> }
        });
        contains(
            &s,
            quote!(impl<'a, C, V> ::cachebot::CacheModel for M<'a, C, V>),
        );
        contains(&s, quote!(impl<'a, C, V> M<'a, C, V>));
        contains(&s, quote!(pub fn get<C1: ::cachebot::codec::Codec>));
        contains(
            &s,
            quote!(pub fn insert<'q, V1, C1: ::cachebot::codec::Codec>),
        );
        contains(&s, quote!(pub fn save<'a1, C1: ::cachebot::codec::Codec>));
    }

    #[test]
    fn keys_named_like_the_methods_parameters() {
        // The key's parameters are the fields' identifiers (call site); the
        // method's own `cache` and `conn` are mixed-site, so they coexist.
        let m = parse(quote! {
            #[diesel(table_name = t)]
            #[cachebot(key(cache, conn))]
            struct M { id: i32, cache: i32, conn: i32 }
        })
        .unwrap();
        let n = Names::new(&m);
        assert_eq!(
            (n.cache.to_string(), n.conn.to_string()),
            ("cache".into(), "conn".into())
        );
        contains(
            &expand(&m).to_string(),
            quote! {
                pub fn get_by_cache_and_conn<C: ::cachebot::codec::Codec>(
                    cache: &::cachebot::Cache<C>,
                    conn: &mut ::diesel::PgConnection,
                    cache: i32,
                    conn: i32
                )
            },
        );
    }
}
