// The expansion of `#[derive(CacheBot)]` for the `generic_model` snapshot in src/tests.rs.
// Regenerate: UPDATE_SNAPSHOTS=1 cargo test -p cachebot-derive --lib

const _: () = {
    #[automatically_derived]
    impl<'a, C, V> ::cachebot::CacheModel for M<'a, C, V>
    where
        V: Copy,
    {
        type Table = t::table;
        const CACHE_GET: bool = true;
        fn table_name() -> &'static str {
            static NAME: ::std::sync::OnceLock<::std::string::String> = ::std::sync::OnceLock::new();
            ::std::string::String::as_str(
                ::std::sync::OnceLock::get_or_init(
                    &NAME,
                    || {
                        let name = ::cachebot::model::__private::table_name_of(&t::id);
                        if ::std::string::String::is_empty(&name) {
                            ::std::borrow::ToOwned::to_owned("t")
                        } else {
                            name
                        }
                    },
                ),
            )
        }
        fn row_keys(&self, out: &mut ::cachebot::model::__private::RowKeys<'_>) {
            let v0 = ::cachebot::model::__private::push_value::<
                _,
                ::diesel::dsl::SqlTypeOf<t::id>,
                _,
            >(out, &t::id, &self.id);
            let v1 = ::cachebot::model::__private::push_value::<
                _,
                ::diesel::dsl::SqlTypeOf<t::c>,
                _,
            >(out, &t::c, &self.c);
            let v2 = ::cachebot::model::__private::push_value::<
                _,
                ::diesel::dsl::SqlTypeOf<t::p>,
                _,
            >(out, &t::p, &self.p);
            let names = [
                ::cachebot::model::__private::column_name(&t::id),
                ::cachebot::model::__private::column_name(&t::c),
                ::cachebot::model::__private::column_name(&t::p),
            ];
            ::cachebot::model::__private::push_composite(
                out,
                <Self as ::cachebot::CacheModel>::table_name(),
                &[
                    (
                        ::std::option::Option::map_or(
                            ::std::option::Option::as_ref(&names[1usize]),
                            "c",
                            |(_, c)| ::std::string::String::as_str(c),
                        ),
                        ::std::clone::Clone::clone(&v1),
                    ),
                ],
            );
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
            ::cachebot::model::__private::push_unless_covering(
                out,
                &__CachebotAllColumns(<t::table as ::diesel::Table>::all_columns()),
                &names,
            );
            ::cachebot::model::__private::push_rows(
                out,
                <Self as ::cachebot::CacheModel>::table_name(),
            );
        }
        fn identity(&self) -> ::std::vec::Vec<u8> {
            ::cachebot::model::__private::identity(
                &[
                    ::std::option::Option::flatten(
                        ::std::result::Result::ok(
                            ::cachebot::model::__private::encode::<
                                ::diesel::dsl::SqlTypeOf<t::id>,
                                _,
                            >(&self.id),
                        ),
                    ),
                ],
            )
        }
        fn composite_keys() -> &'static [&'static [&'static str]] {
            fn name<Col>(column: &Col, fallback: &'static str) -> &'static str
            where
                Col: ::diesel::query_builder::QueryFragment<::diesel::pg::Pg> + 'static,
            {
                match ::cachebot::model::__private::column_name(column) {
                    ::std::option::Option::Some((_, c)) if c != fallback => {
                        ::std::string::String::leak(c)
                    }
                    _ => fallback,
                }
            }
            static KEYS: ::std::sync::OnceLock<
                ::std::vec::Vec<&'static [&'static str]>,
            > = ::std::sync::OnceLock::new();
            ::std::vec::Vec::as_slice(
                ::std::sync::OnceLock::get_or_init(
                    &KEYS,
                    || ::std::vec![::std::vec::Vec::leak(::std::vec![name(& t::c, "c")])],
                ),
            )
        }
        fn columns() -> ::std::vec::Vec<
            ::std::option::Option<(::std::string::String, ::std::string::String)>,
        > {
            ::std::vec![
                ::cachebot::model::__private::column_name(& t::id),
                ::cachebot::model::__private::column_name(& t::c),
                ::cachebot::model::__private::column_name(& t::p)
            ]
        }
        fn primary_key_fields() -> &'static [usize] {
            &[0usize]
        }
        fn primary_key_values(
            &self,
        ) -> ::std::option::Option<
            ::std::vec::Vec<::std::option::Option<::std::vec::Vec<u8>>>,
        > {
            ::std::option::Option::Some(
                ::std::vec![
                    ::std::result::Result::ok(::cachebot::model::__private::encode:: <
                    ::diesel::dsl::SqlTypeOf < t::id >, _ > (& self.id),) ?
                ],
            )
        }
    }
    ///Cached reads and invalidating writes for `M` (table `t`), generated by `#[derive(CacheBot)]`.
    #[automatically_derived]
    impl<'a, C, V> ::cachebot::CachedModel for M<'a, C, V>
    where
        V: Copy,
    {
        type Id = i32;
        type Find = ::diesel::dsl::Select<
            ::diesel::dsl::Find<t::table, i32>,
            ::diesel::dsl::AsSelect<Self, ::diesel::pg::Pg>,
        >;
        type Target = ::diesel::dsl::Find<t::table, i32>;
        fn primary_key(&self) -> i32 {
            ::std::clone::Clone::clone(&self.id)
        }
        fn find(id: i32) -> Self::Find {
            ::diesel::QueryDsl::select(
                ::diesel::QueryDsl::find(t::table, id),
                <Self as ::diesel::SelectableHelper<::diesel::pg::Pg>>::as_select(),
            )
        }
        fn target(id: i32) -> Self::Target {
            ::diesel::QueryDsl::find(t::table, id)
        }
        type ByPrimaryKeys = ::diesel::dsl::Select<
            ::diesel::dsl::Filter<
                t::table,
                ::diesel::dsl::EqAny<t::id, ::std::vec::Vec<i32>>,
            >,
            ::diesel::dsl::AsSelect<Self, ::diesel::pg::Pg>,
        >;
        fn by_primary_keys(ids: &[i32]) -> ::std::vec::Vec<Self::ByPrimaryKeys> {
            ::std::vec![
                ::diesel::QueryDsl::select(::diesel::QueryDsl::filter(t::table,
                ::diesel::ExpressionMethods::eq_any(t::id, < [i32] > ::to_vec(ids)),), <
                Self as ::diesel::SelectableHelper < ::diesel::pg::Pg >> ::as_select(),)
            ]
        }
    }
    #[automatically_derived]
    impl<'a, C, V> ::cachebot::DeclaredKey<M<'a, C, V>> for t::c
    where
        V: Copy,
    {
        type Values = i32;
        type Query = ::diesel::dsl::Select<
            ::diesel::dsl::Filter<t::table, ::diesel::dsl::Eq<t::c, i32>>,
            ::diesel::dsl::AsSelect<M<'a, C, V>, ::diesel::pg::Pg>,
        >;
        fn query(self, values: i32) -> Self::Query {
            let v0 = values;
            ::diesel::QueryDsl::select(
                ::diesel::QueryDsl::filter(
                    t::table,
                    ::diesel::ExpressionMethods::eq(t::c, v0),
                ),
                <M<
                    'a,
                    C,
                    V,
                > as ::diesel::SelectableHelper<::diesel::pg::Pg>>::as_select(),
            )
        }
    }
};
