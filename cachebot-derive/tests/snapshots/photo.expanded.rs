// The expansion of `#[derive(CacheBot)]` for the `photo` snapshot in src/tests.rs.
// Regenerate: UPDATE_SNAPSHOTS=1 cargo test -p cachebot-derive --lib

const _: () = {
    #[automatically_derived]
    impl ::cachebot::CacheModel for Photo {
        type Table = schema::photos::table;
        const CACHE_GET: bool = true;
        fn table_name() -> &'static str {
            static NAME: ::std::sync::OnceLock<::std::string::String> = ::std::sync::OnceLock::new();
            ::std::string::String::as_str(
                ::std::sync::OnceLock::get_or_init(
                    &NAME,
                    || {
                        let name = ::cachebot::model::__private::table_name_of(
                            &schema::photos::id,
                        );
                        if ::std::string::String::is_empty(&name) {
                            ::std::borrow::ToOwned::to_owned("photos")
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
                ::diesel::dsl::SqlTypeOf<schema::photos::id>,
                _,
            >(out, &schema::photos::id, &self.id);
            let v1 = ::cachebot::model::__private::push_value::<
                _,
                ::diesel::dsl::SqlTypeOf<schema::photos::user_id>,
                _,
            >(out, &schema::photos::user_id, &self.user_id);
            let v2 = ::cachebot::model::__private::push_value::<
                _,
                ::diesel::dsl::SqlTypeOf<schema::photos::status>,
                _,
            >(out, &schema::photos::status, &self.status);
            let v3 = ::cachebot::model::__private::push_value::<
                _,
                ::diesel::dsl::SqlTypeOf<schema::photos::title>,
                _,
            >(out, &schema::photos::title, &self.name);
            let names = [
                ::cachebot::model::__private::column_name(&schema::photos::id),
                ::cachebot::model::__private::column_name(&schema::photos::user_id),
                ::cachebot::model::__private::column_name(&schema::photos::status),
                ::cachebot::model::__private::column_name(&schema::photos::title),
            ];
            ::cachebot::model::__private::push_composite(
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
                            "title",
                            |(_, c)| ::std::string::String::as_str(c),
                        ),
                        ::std::clone::Clone::clone(&v3),
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
                &__CachebotAllColumns(
                    <schema::photos::table as ::diesel::Table>::all_columns(),
                ),
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
                                ::diesel::dsl::SqlTypeOf<schema::photos::id>,
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
                            ::std::vec::Vec::leak(::std::vec![name(&
                            schema::photos::user_id, "user_id"), name(&
                            schema::photos::status, "status")]),
                            ::std::vec::Vec::leak(::std::vec![name(&
                            schema::photos::title, "title")])
                        ]
                    },
                ),
            )
        }
        fn columns() -> ::std::vec::Vec<
            ::std::option::Option<(::std::string::String, ::std::string::String)>,
        > {
            ::std::vec![
                ::cachebot::model::__private::column_name(& schema::photos::id),
                ::cachebot::model::__private::column_name(& schema::photos::user_id),
                ::cachebot::model::__private::column_name(& schema::photos::status),
                ::cachebot::model::__private::column_name(& schema::photos::title),
                ::std::option::Option::None
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
                    ::diesel::dsl::SqlTypeOf < schema::photos::id >, _ > (& self.id),) ?
                ],
            )
        }
    }
    /**Cached reads and invalidating writes for `Photo` (table `schema::photos`), generated by `#[derive(CacheBot)]`.

Belongs to `User` (through `user_id`).*/
    #[automatically_derived]
    impl ::cachebot::CachedModel for Photo {
        type Id = i32;
        type Find = ::diesel::dsl::Select<
            ::diesel::dsl::Find<schema::photos::table, i32>,
            ::diesel::dsl::AsSelect<Self, ::diesel::pg::Pg>,
        >;
        type Target = ::diesel::dsl::Find<schema::photos::table, i32>;
        fn primary_key(&self) -> i32 {
            ::std::clone::Clone::clone(&self.id)
        }
        fn find(id: i32) -> Self::Find {
            ::diesel::QueryDsl::select(
                ::diesel::QueryDsl::find(schema::photos::table, id),
                <Self as ::diesel::SelectableHelper<::diesel::pg::Pg>>::as_select(),
            )
        }
        fn target(id: i32) -> Self::Target {
            ::diesel::QueryDsl::find(schema::photos::table, id)
        }
        type ByPrimaryKeys = ::diesel::dsl::Select<
            ::diesel::dsl::Filter<
                schema::photos::table,
                ::diesel::dsl::EqAny<schema::photos::id, ::std::vec::Vec<i32>>,
            >,
            ::diesel::dsl::AsSelect<Self, ::diesel::pg::Pg>,
        >;
        fn by_primary_keys(ids: &[i32]) -> ::std::vec::Vec<Self::ByPrimaryKeys> {
            ::std::vec![
                ::diesel::QueryDsl::select(::diesel::QueryDsl::filter(schema::photos::table,
                ::diesel::ExpressionMethods::eq_any(schema::photos::id, < [i32] >
                ::to_vec(ids)),), < Self as ::diesel::SelectableHelper < ::diesel::pg::Pg
                >> ::as_select(),)
            ]
        }
    }
    #[automatically_derived]
    impl ::cachebot::DeclaredKey<Photo>
    for (schema::photos::user_id, schema::photos::status) {
        type Values = (i32, i32);
        type Query = ::diesel::dsl::Select<
            ::diesel::dsl::Filter<
                ::diesel::dsl::Filter<
                    schema::photos::table,
                    ::diesel::dsl::Eq<schema::photos::user_id, i32>,
                >,
                ::diesel::dsl::Eq<schema::photos::status, i32>,
            >,
            ::diesel::dsl::AsSelect<Photo, ::diesel::pg::Pg>,
        >;
        fn query(self, values: (i32, i32)) -> Self::Query {
            let (v0, v1) = values;
            ::diesel::QueryDsl::select(
                ::diesel::QueryDsl::filter(
                    ::diesel::QueryDsl::filter(
                        schema::photos::table,
                        ::diesel::ExpressionMethods::eq(schema::photos::user_id, v0),
                    ),
                    ::diesel::ExpressionMethods::eq(schema::photos::status, v1),
                ),
                <Photo as ::diesel::SelectableHelper<::diesel::pg::Pg>>::as_select(),
            )
        }
    }
    #[automatically_derived]
    impl ::cachebot::DeclaredKey<Photo> for schema::photos::title {
        type Values = String;
        type Query = ::diesel::dsl::Select<
            ::diesel::dsl::Filter<
                schema::photos::table,
                ::diesel::dsl::Eq<schema::photos::title, String>,
            >,
            ::diesel::dsl::AsSelect<Photo, ::diesel::pg::Pg>,
        >;
        fn query(self, values: String) -> Self::Query {
            let v0 = values;
            ::diesel::QueryDsl::select(
                ::diesel::QueryDsl::filter(
                    schema::photos::table,
                    ::diesel::ExpressionMethods::eq(schema::photos::title, v0),
                ),
                <Photo as ::diesel::SelectableHelper<::diesel::pg::Pg>>::as_select(),
            )
        }
    }
};
