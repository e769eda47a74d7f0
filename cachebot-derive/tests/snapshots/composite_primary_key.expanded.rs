// The expansion of `#[derive(CacheBot)]` for the `composite_primary_key` snapshot in src/tests.rs.
// Regenerate: UPDATE_SNAPSHOTS=1 cargo test -p cachebot-derive --lib

const _: () = {
    #[automatically_derived]
    impl ::cachebot::CacheModel for Membership {
        type Table = memberships::table;
        const CACHE_GET: bool = true;
        fn table_name() -> &'static str {
            static NAME: ::std::sync::OnceLock<::std::string::String> = ::std::sync::OnceLock::new();
            ::std::string::String::as_str(
                ::std::sync::OnceLock::get_or_init(
                    &NAME,
                    || {
                        let name = ::cachebot::model::__private::table_name_of(
                            &memberships::group_id,
                        );
                        if ::std::string::String::is_empty(&name) {
                            ::std::borrow::ToOwned::to_owned("memberships")
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
                ::diesel::dsl::SqlTypeOf<memberships::group_id>,
                _,
            >(out, &memberships::group_id, &self.group_id);
            let v1 = ::cachebot::model::__private::push_value::<
                _,
                ::diesel::dsl::SqlTypeOf<memberships::member>,
                _,
            >(out, &memberships::member, &self.user_id);
            let v2 = ::cachebot::model::__private::push_value::<
                _,
                ::diesel::dsl::SqlTypeOf<memberships::role>,
                _,
            >(out, &memberships::role, &self.role);
            let names = [
                ::cachebot::model::__private::column_name(&memberships::group_id),
                ::cachebot::model::__private::column_name(&memberships::member),
                ::cachebot::model::__private::column_name(&memberships::role),
            ];
            ::cachebot::model::__private::push_composite(
                out,
                <Self as ::cachebot::CacheModel>::table_name(),
                &[
                    (
                        ::std::option::Option::map_or(
                            ::std::option::Option::as_ref(&names[0usize]),
                            "group_id",
                            |(_, c)| ::std::string::String::as_str(c),
                        ),
                        ::std::clone::Clone::clone(&v0),
                    ),
                    (
                        ::std::option::Option::map_or(
                            ::std::option::Option::as_ref(&names[1usize]),
                            "member",
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
                &__CachebotAllColumns(
                    <memberships::table as ::diesel::Table>::all_columns(),
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
                                ::diesel::dsl::SqlTypeOf<memberships::group_id>,
                                _,
                            >(&self.group_id),
                        ),
                    ),
                    ::std::option::Option::flatten(
                        ::std::result::Result::ok(
                            ::cachebot::model::__private::encode::<
                                ::diesel::dsl::SqlTypeOf<memberships::member>,
                                _,
                            >(&self.user_id),
                        ),
                    ),
                ],
            )
        }
        fn columns() -> ::std::vec::Vec<
            ::std::option::Option<(::std::string::String, ::std::string::String)>,
        > {
            ::std::vec![
                ::cachebot::model::__private::column_name(& memberships::group_id),
                ::cachebot::model::__private::column_name(& memberships::member),
                ::cachebot::model::__private::column_name(& memberships::role)
            ]
        }
        fn primary_key_fields() -> &'static [usize] {
            &[0usize, 1usize]
        }
        fn primary_key_values(
            &self,
        ) -> ::std::option::Option<
            ::std::vec::Vec<::std::option::Option<::std::vec::Vec<u8>>>,
        > {
            ::std::option::Option::Some(
                ::std::vec![
                    ::std::result::Result::ok(::cachebot::model::__private::encode:: <
                    ::diesel::dsl::SqlTypeOf < memberships::group_id >, _ > (& self
                    .group_id),) ?,
                    ::std::result::Result::ok(::cachebot::model::__private::encode:: <
                    ::diesel::dsl::SqlTypeOf < memberships::member >, _ > (& self
                    .user_id),) ?
                ],
            )
        }
    }
    ///Cached reads and invalidating writes for `Membership` (table `memberships`), generated by `#[derive(CacheBot)]`.
    #[automatically_derived]
    impl ::cachebot::CachedModel for Membership {
        type Id = (i32, i64);
        type Find = ::diesel::dsl::Select<
            ::diesel::dsl::Find<memberships::table, (i32, i64)>,
            ::diesel::dsl::AsSelect<Self, ::diesel::pg::Pg>,
        >;
        type Target = ::diesel::dsl::Find<memberships::table, (i32, i64)>;
        fn primary_key(&self) -> (i32, i64) {
            (
                ::std::clone::Clone::clone(&self.group_id),
                ::std::clone::Clone::clone(&self.user_id),
            )
        }
        fn find(id: (i32, i64)) -> Self::Find {
            ::diesel::QueryDsl::select(
                ::diesel::QueryDsl::find(memberships::table, id),
                <Self as ::diesel::SelectableHelper<::diesel::pg::Pg>>::as_select(),
            )
        }
        fn target(id: (i32, i64)) -> Self::Target {
            ::diesel::QueryDsl::find(memberships::table, id)
        }
        type ByPrimaryKeys = <Self as ::cachebot::CachedModel>::Find;
        fn by_primary_keys(ids: &[(i32, i64)]) -> ::std::vec::Vec<Self::ByPrimaryKeys> {
            ::std::iter::Iterator::collect(
                ::std::iter::Iterator::map(
                    <[(i32, i64)]>::iter(ids),
                    |id| <Self as ::cachebot::CachedModel>::find(
                        ::std::clone::Clone::clone(id),
                    ),
                ),
            )
        }
    }
};
