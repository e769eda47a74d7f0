// The expansion of `#[derive(CacheBot)]` for the `odd_names` snapshot in src/tests.rs.
// Regenerate: UPDATE_SNAPSHOTS=1 cargo test -p cachebot-derive --lib

const _: () = {
    #[automatically_derived]
    impl ::cachebot::CacheModel for Odd {
        type Table = odds::table;
        const CACHE_GET: bool = true;
        fn table_name() -> &'static str {
            static NAME: ::std::sync::OnceLock<::std::string::String> = ::std::sync::OnceLock::new();
            ::std::string::String::as_str(
                ::std::sync::OnceLock::get_or_init(
                    &NAME,
                    || {
                        let name = ::cachebot::model::__private::table_name_of(
                            &odds::id,
                        );
                        if ::std::string::String::is_empty(&name) {
                            ::std::borrow::ToOwned::to_owned("odds")
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
                ::diesel::dsl::SqlTypeOf<odds::id>,
                _,
            >(out, &odds::id, &self.id);
            let v1 = ::cachebot::model::__private::push_value::<
                _,
                ::diesel::dsl::SqlTypeOf<odds::cache>,
                _,
            >(out, &odds::cache, &self.cache);
            let v2 = ::cachebot::model::__private::push_value::<
                _,
                ::diesel::dsl::SqlTypeOf<odds::conn>,
                _,
            >(out, &odds::conn, &self.conn);
            let v3 = ::cachebot::model::__private::push_value::<
                _,
                ::diesel::dsl::SqlTypeOf<odds::out>,
                _,
            >(out, &odds::out, &self.out);
            let v4 = ::cachebot::model::__private::push_value::<
                _,
                ::diesel::dsl::SqlTypeOf<odds::names>,
                _,
            >(out, &odds::names, &self.names);
            let v5 = ::cachebot::model::__private::push_value::<
                _,
                ::diesel::dsl::SqlTypeOf<odds::values>,
                _,
            >(out, &odds::values, &self.values);
            let v6 = ::cachebot::model::__private::push_value::<
                _,
                ::diesel::dsl::SqlTypeOf<odds::r#type>,
                _,
            >(out, &odds::r#type, &self.kind);
            let names = [
                ::cachebot::model::__private::column_name(&odds::id),
                ::cachebot::model::__private::column_name(&odds::cache),
                ::cachebot::model::__private::column_name(&odds::conn),
                ::cachebot::model::__private::column_name(&odds::out),
                ::cachebot::model::__private::column_name(&odds::names),
                ::cachebot::model::__private::column_name(&odds::values),
                ::cachebot::model::__private::column_name(&odds::r#type),
            ];
            ::cachebot::model::__private::push_composite(
                out,
                <Self as ::cachebot::CacheModel>::table_name(),
                &[
                    (
                        ::std::option::Option::map_or(
                            ::std::option::Option::as_ref(&names[1usize]),
                            "cache",
                            |(_, c)| ::std::string::String::as_str(c),
                        ),
                        ::std::clone::Clone::clone(&v1),
                    ),
                    (
                        ::std::option::Option::map_or(
                            ::std::option::Option::as_ref(&names[2usize]),
                            "conn",
                            |(_, c)| ::std::string::String::as_str(c),
                        ),
                        ::std::clone::Clone::clone(&v2),
                    ),
                ],
            );
            ::cachebot::model::__private::push_composite(
                out,
                <Self as ::cachebot::CacheModel>::table_name(),
                &[
                    (
                        ::std::option::Option::map_or(
                            ::std::option::Option::as_ref(&names[3usize]),
                            "out",
                            |(_, c)| ::std::string::String::as_str(c),
                        ),
                        ::std::clone::Clone::clone(&v3),
                    ),
                    (
                        ::std::option::Option::map_or(
                            ::std::option::Option::as_ref(&names[4usize]),
                            "names",
                            |(_, c)| ::std::string::String::as_str(c),
                        ),
                        ::std::clone::Clone::clone(&v4),
                    ),
                    (
                        ::std::option::Option::map_or(
                            ::std::option::Option::as_ref(&names[5usize]),
                            "values",
                            |(_, c)| ::std::string::String::as_str(c),
                        ),
                        ::std::clone::Clone::clone(&v5),
                    ),
                ],
            );
            ::cachebot::model::__private::push_composite(
                out,
                <Self as ::cachebot::CacheModel>::table_name(),
                &[
                    (
                        ::std::option::Option::map_or(
                            ::std::option::Option::as_ref(&names[6usize]),
                            "type",
                            |(_, c)| ::std::string::String::as_str(c),
                        ),
                        ::std::clone::Clone::clone(&v6),
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
                &__CachebotAllColumns(<odds::table as ::diesel::Table>::all_columns()),
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
                                ::diesel::dsl::SqlTypeOf<odds::id>,
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
                    || {
                        ::std::vec![
                            ::std::vec::Vec::leak(::std::vec![name(& odds::cache,
                            "cache"), name(& odds::conn, "conn")]),
                            ::std::vec::Vec::leak(::std::vec![name(& odds::out, "out"),
                            name(& odds::names, "names"), name(& odds::values,
                            "values")]), ::std::vec::Vec::leak(::std::vec![name(&
                            odds::r#type, "type")])
                        ]
                    },
                ),
            )
        }
        fn columns() -> ::std::vec::Vec<
            ::std::option::Option<(::std::string::String, ::std::string::String)>,
        > {
            ::std::vec![
                ::cachebot::model::__private::column_name(& odds::id),
                ::cachebot::model::__private::column_name(& odds::cache),
                ::cachebot::model::__private::column_name(& odds::conn),
                ::cachebot::model::__private::column_name(& odds::out),
                ::cachebot::model::__private::column_name(& odds::names),
                ::cachebot::model::__private::column_name(& odds::values),
                ::cachebot::model::__private::column_name(& odds::r#type)
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
                    ::diesel::dsl::SqlTypeOf < odds::id >, _ > (& self.id),) ?
                ],
            )
        }
    }
    ///Cached reads and invalidating writes for `Odd` (table `odds`), generated by `#[derive(CacheBot)]`.
    #[automatically_derived]
    impl ::cachebot::CachedModel for Odd {
        type Id = i32;
        type Find = ::diesel::dsl::Select<
            ::diesel::dsl::Find<odds::table, i32>,
            ::diesel::dsl::AsSelect<Self, ::diesel::pg::Pg>,
        >;
        type Target = ::diesel::dsl::Find<odds::table, i32>;
        fn primary_key(&self) -> i32 {
            ::std::clone::Clone::clone(&self.id)
        }
        fn find(id: i32) -> Self::Find {
            ::diesel::QueryDsl::select(
                ::diesel::QueryDsl::find(odds::table, id),
                <Self as ::diesel::SelectableHelper<::diesel::pg::Pg>>::as_select(),
            )
        }
        fn target(id: i32) -> Self::Target {
            ::diesel::QueryDsl::find(odds::table, id)
        }
        type ByPrimaryKeys = ::diesel::dsl::Select<
            ::diesel::dsl::Filter<
                odds::table,
                ::diesel::dsl::EqAny<odds::id, ::std::vec::Vec<i32>>,
            >,
            ::diesel::dsl::AsSelect<Self, ::diesel::pg::Pg>,
        >;
        fn by_primary_keys(ids: &[i32]) -> ::std::vec::Vec<Self::ByPrimaryKeys> {
            ::std::vec![
                ::diesel::QueryDsl::select(::diesel::QueryDsl::filter(odds::table,
                ::diesel::ExpressionMethods::eq_any(odds::id, < [i32] > ::to_vec(ids)),),
                < Self as ::diesel::SelectableHelper < ::diesel::pg::Pg >>
                ::as_select(),)
            ]
        }
    }
    #[automatically_derived]
    impl ::cachebot::DeclaredKey<Odd> for (odds::cache, odds::conn) {
        type Values = (i32, i32);
        type Query = ::diesel::dsl::Select<
            ::diesel::dsl::Filter<
                ::diesel::dsl::Filter<odds::table, ::diesel::dsl::Eq<odds::cache, i32>>,
                ::diesel::dsl::Eq<odds::conn, i32>,
            >,
            ::diesel::dsl::AsSelect<Odd, ::diesel::pg::Pg>,
        >;
        fn query(self, values: (i32, i32)) -> Self::Query {
            let (v0, v1) = values;
            ::diesel::QueryDsl::select(
                ::diesel::QueryDsl::filter(
                    ::diesel::QueryDsl::filter(
                        odds::table,
                        ::diesel::ExpressionMethods::eq(odds::cache, v0),
                    ),
                    ::diesel::ExpressionMethods::eq(odds::conn, v1),
                ),
                <Odd as ::diesel::SelectableHelper<::diesel::pg::Pg>>::as_select(),
            )
        }
    }
    #[automatically_derived]
    impl ::cachebot::DeclaredKey<Odd> for (odds::out, odds::names, odds::values) {
        type Values = (i32, i32, Option<i32>);
        type Query = ::diesel::dsl::Select<
            ::diesel::dsl::Filter<
                ::diesel::dsl::Filter<
                    ::diesel::dsl::Filter<
                        odds::table,
                        ::diesel::dsl::Eq<odds::out, i32>,
                    >,
                    ::diesel::dsl::Eq<odds::names, i32>,
                >,
                ::diesel::dsl::Eq<odds::values, Option<i32>>,
            >,
            ::diesel::dsl::AsSelect<Odd, ::diesel::pg::Pg>,
        >;
        fn query(self, values: (i32, i32, Option<i32>)) -> Self::Query {
            let (v0, v1, v2) = values;
            ::diesel::QueryDsl::select(
                ::diesel::QueryDsl::filter(
                    ::diesel::QueryDsl::filter(
                        ::diesel::QueryDsl::filter(
                            odds::table,
                            ::diesel::ExpressionMethods::eq(odds::out, v0),
                        ),
                        ::diesel::ExpressionMethods::eq(odds::names, v1),
                    ),
                    ::diesel::ExpressionMethods::eq(odds::values, v2),
                ),
                <Odd as ::diesel::SelectableHelper<::diesel::pg::Pg>>::as_select(),
            )
        }
    }
    #[automatically_derived]
    impl ::cachebot::DeclaredKey<Odd> for odds::r#type {
        type Values = String;
        type Query = ::diesel::dsl::Select<
            ::diesel::dsl::Filter<odds::table, ::diesel::dsl::Eq<odds::r#type, String>>,
            ::diesel::dsl::AsSelect<Odd, ::diesel::pg::Pg>,
        >;
        fn query(self, values: String) -> Self::Query {
            let v0 = values;
            ::diesel::QueryDsl::select(
                ::diesel::QueryDsl::filter(
                    odds::table,
                    ::diesel::ExpressionMethods::eq(odds::r#type, v0),
                ),
                <Odd as ::diesel::SelectableHelper<::diesel::pg::Pg>>::as_select(),
            )
        }
    }
};
