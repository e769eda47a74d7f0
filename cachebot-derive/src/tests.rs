//! Unit tests: reading models ([`parse`]) and snapshots of expansions
//! ([`snapshots`]).
//!
//! Each snapshot is the expansion of one model, formatted with
//! `prettyplease`, compared with `tests/snapshots/<name>.expanded.rs`. When
//! an expansion changes on purpose, regenerate them and review the diff:
//!
//! ```text
//! UPDATE_SNAPSHOTS=1 cargo test -p cachebot-derive --lib
//! ```

mod parse {
    //! Reading models: attributes, defaults, and the errors users see.

    use proc_macro2::TokenStream;
    use quote::quote;
    use syn::ext::IdentExt;
    use syn::Path;

    use crate::attr::infer_table_name;
    use crate::model::Model;
    use crate::parse::parse;

    fn names(m: &Model) -> Vec<(String, Option<String>)> {
        m.fields
            .iter()
            .map(|f| {
                (
                    f.ident.to_string(),
                    f.column.as_ref().map(|c| c.unraw().to_string()),
                )
            })
            .collect()
    }

    fn path(p: &Path) -> String {
        quote!(#p).to_string()
    }

    fn err(tokens: TokenStream) -> String {
        match parse(tokens) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults() {
        let m = parse(quote! {
            pub struct FooBar { id: i32, text: String }
        })
        .unwrap();
        assert_eq!(path(&m.table), "foo_bars");
        assert!(m.cache_get);
        assert!(m.keys.is_empty());
        assert!(m.belongs_to.is_empty());
        assert_eq!(m.primary_key, vec![0]);
        assert_eq!(
            names(&m),
            vec![
                ("id".into(), Some("id".into())),
                ("text".into(), Some("text".into()))
            ]
        );
    }

    #[test]
    fn diesel_table_name_rule() {
        assert_eq!(infer_table_name("Photo"), "photos");
        assert_eq!(
            infer_table_name("ManyModelFirstModel"),
            "many_model_first_models"
        );
        assert_eq!(infer_table_name("HTTPLog"), "h_t_t_p_logs");
    }

    #[test]
    fn renamed_columns_and_table_path() {
        let m = parse(quote! {
            #[derive(Queryable)]
            #[diesel(table_name = crate::schema::photos, check_for_backend(diesel::pg::Pg))]
            pub struct Photo {
                pub id: i32,
                #[diesel(column_name = title)]
                pub name: String,
                #[diesel(column_name = "type")]
                pub kind: String,
                pub r#async: bool,
            }
        })
        .unwrap();
        assert_eq!(path(&m.table), "crate :: schema :: photos");
        assert_eq!(
            names(&m),
            vec![
                ("id".into(), Some("id".into())),
                ("name".into(), Some("title".into())),
                ("kind".into(), Some("type".into())),
                ("r#async".into(), Some("async".into())),
            ]
        );
        // A keyword column is a raw identifier, usable in a path.
        assert_eq!(m.fields[2].column().to_string(), "r#type");
    }

    #[test]
    fn composite_primary_key_by_column_name() {
        let m = parse(quote! {
            #[diesel(table_name = memberships, primary_key(group_id, member))]
            pub struct Membership {
                pub group_id: i32,
                #[diesel(column_name = member)]
                pub user_id: i32,
                pub role: String,
            }
        })
        .unwrap();
        assert_eq!(m.primary_key, vec![0, 1]);
        let pk: Vec<String> = m.pk_fields().map(|f| f.ident.to_string()).collect();
        assert_eq!(pk, ["group_id", "user_id"]);
    }

    #[test]
    fn nullable_fields_are_mapped() {
        let m = parse(quote! {
            #[diesel(table_name = users)]
            pub struct User { pub id: i32, pub email: Option<String> }
        })
        .unwrap();
        assert_eq!(m.fields.iter().filter(|f| f.column.is_some()).count(), 2);
        let ty = &m.fields[1].ty;
        assert_eq!(quote!(#ty).to_string(), "Option < String >");
    }

    #[test]
    fn multiple_keys_and_cache_get() {
        let m = parse(quote! {
            #[diesel(table_name = photos)]
            #[cachebot(key(user_id, status))]
            #[cachebot(key(status), cache_get = false)]
            pub struct Photo { pub id: i32, pub user_id: i32, pub status: i32 }
        })
        .unwrap();
        assert!(!m.cache_get);
        let keys: Vec<Vec<usize>> = m.keys.iter().map(|k| k.fields.clone()).collect();
        assert_eq!(keys, vec![vec![1, 2], vec![2]]);
    }

    #[test]
    fn other_diesel_keys_are_tolerated() {
        let m = parse(quote! {
            #[diesel(table_name = photos, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
            #[diesel(treat_none_as_null = true, treat_none_as_default_value = false)]
            #[diesel(belongs_to(User), belongs_to(crate::Album, foreign_key = album))]
            #[diesel(sql_type = Foo<A, B>, base_query = photos::table.filter(photos::id.gt(0)))]
            pub struct Photo {
                pub id: i32,
                pub user_id: i32,
                pub album: i32,
                #[diesel(embed)]
                pub extra: Extra,
                #[diesel(select_expression = photos::score * 2.0, select_expression_type = Mul<A, B>)]
                pub twice: f64,
                #[diesel(serialize_as = Wrapper<i32>, skip_insertion, skip_update)]
                pub wrapped: i32,
                #[diesel(deserialize_as = Other)]
                pub other: i32,
                #[diesel(sql_type = diesel::sql_types::Integer, treat_none_as_null = true)]
                pub plain: i32,
                #[serde(rename = "x")]
                pub x: i32,
            }
        })
        .unwrap();
        let mapped: Vec<String> = m
            .fields
            .iter()
            .filter(|f| f.column.is_some())
            .map(|f| f.ident.to_string())
            .collect();
        assert_eq!(mapped, ["id", "user_id", "album", "plain", "x"]);
        let fks: Vec<(String, String)> = m
            .belongs_to
            .iter()
            .map(|b| {
                let p = &b.parent;
                (quote!(#p).to_string(), b.foreign_key.to_string())
            })
            .collect();
        assert_eq!(
            fks,
            vec![
                ("User".into(), "user_id".into()),
                ("crate :: Album".into(), "album".into())
            ]
        );
    }

    #[test]
    fn belongs_to_default_foreign_key_is_snake_case() {
        let m = parse(quote! {
            #[diesel(belongs_to(ManyModel))]
            pub struct Link { pub id: i32, pub many_model_id: i32 }
        })
        .unwrap();
        assert_eq!(m.belongs_to[0].foreign_key.to_string(), "many_model_id");
        assert_eq!(path(&m.table), "links");
    }

    #[test]
    fn errors() {
        assert!(err(quote! { #[cachebot(nope)] struct A { id: i32 } })
            .contains("unknown #[cachebot] key `nope`; valid keys are `cache_get`, `key`"));
        assert!(err(quote! { #[cachebot(key(nope))] struct A { id: i32 } })
            .contains("`A` has no field `nope`"));
        assert!(err(quote! { #[cachebot(key())] struct A { id: i32 } }).contains("empty key"));
        assert!(
            err(quote! { #[cachebot(cache_get = "yes")] struct A { id: i32 } })
                .contains("`true` or `false`")
        );
        assert!(
            err(quote! { #[cachebot(cache_get)] struct A { id: i32 } }).contains("needs a value")
        );
        assert!(err(quote! {
            #[cachebot(cache_get = false)] #[cachebot(cache_get = true)] struct A { id: i32 }
        })
        .contains("duplicate `cache_get`"));
        assert!(
            err(quote! { #[cachebot(key(id, id))] struct A { id: i32 } }).contains("appears twice")
        );
        assert!(err(
            quote! { #[cachebot(key(b, a), key(a, b))] struct A { id: i32, a: i32, b: i32 } }
        )
        .contains("declared twice"));
        assert!(
            err(quote! { #[cachebot] struct A { id: i32 } }).contains("expected #[cachebot(..)]")
        );
        assert!(err(quote! { #[cachebot()] struct A { id: i32 } }).contains("empty #[cachebot()]"));
        assert!(err(quote! { struct A { #[cachebot(key(id))] id: i32 } })
            .contains("goes on the struct"));
        assert!(err(quote! { struct A(i32); }).contains("not a tuple struct"));
        assert!(err(quote! { struct A; }).contains("not a unit struct"));
        assert!(err(quote! { enum A { B } }).contains("not an enum"));
        assert!(err(quote! { union A { b: i32 } }).contains("not a union"));
        assert!(err(quote! { struct A { key: i32 } }).contains("has no `id` field"));
        assert!(
            err(quote! { #[diesel(primary_key(code))] struct A { id: i32 } })
                .contains("primary-key column `code`")
        );
    }

    #[test]
    fn unmapped_fields_cannot_be_keys() {
        let e = err(quote! {
            #[cachebot(key(e))]
            struct A { id: i32, #[diesel(embed)] e: E }
        });
        assert!(e.contains("cannot be part of a key"), "{e}");
    }

    #[test]
    fn several_errors_are_reported_together() {
        let e = match parse(quote! {
            #[cachebot(key(x), cache_get = false)]
            #[cachebot(cache_get = true, key(y))]
            struct A { id: i32 }
        }) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        };
        assert_eq!(e.len(), 3, "{e:?}");
    }

    #[test]
    fn every_error_of_one_attribute_is_reported() {
        let e = match parse(quote! {
            #[cachebot(ttl = 60, cache_get = "no", key(), key(x), other(a, b), key(id))]
            struct A { id: i32 }
        }) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        };
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(e[0].contains("unknown #[cachebot] key `ttl`"), "{e:?}");
        assert!(e[1].contains("`true` or `false`"), "{e:?}");
        assert!(e[2].contains("empty key"), "{e:?}");
        assert!(e[3].contains("unknown #[cachebot] key `other`"), "{e:?}");
        assert!(e[4].contains("`A` has no field `x`"), "{e:?}");
    }

    #[test]
    fn keys_on_the_same_columns_are_declared_twice() {
        // Two fields read the same column: the keys would be the same.
        let e = err(quote! {
            #[cachebot(key(a), key(b))]
            struct A { id: i32, a: i32, #[diesel(column_name = a)] b: i32 }
        });
        assert!(e.contains("declared twice"), "{e}");
    }
}

mod snapshots {
    //! The whole expansion of representative models, token for token.

    use std::path::PathBuf;

    use proc_macro2::TokenStream;
    use quote::quote;

    use crate::expand::expand;
    use crate::parse::parse;

    /// The formatted expansion of `input`.
    fn expanded(input: TokenStream) -> String {
        let model = match parse(input) {
            Ok(m) => m,
            Err(e) => panic!("the model does not parse: {e}"),
        };
        let file: syn::File = match syn::parse2(expand(&model)) {
            Ok(f) => f,
            Err(e) => panic!("the expansion is not a Rust file: {e}"),
        };
        prettyplease::unparse(&file)
    }

    /// Compare (or, with `UPDATE_SNAPSHOTS` set, write) the snapshot `name`;
    /// returns the expansion for further checks.
    #[track_caller]
    fn snapshot(name: &str, input: TokenStream) -> String {
        let text = expanded(input);
        let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "snapshots"]
            .iter()
            .collect::<PathBuf>()
            .join(format!("{name}.expanded.rs"));
        let file = format!(
            "// The expansion of `#[derive(CacheBot)]` for the `{name}` snapshot in \
             src/tests.rs.\n// Regenerate: UPDATE_SNAPSHOTS=1 cargo test -p cachebot-derive --lib\n\n{text}"
        );
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            if let Err(e) = std::fs::write(&path, &file) {
                panic!("cannot write {}: {e}", path.display());
            }
            return text;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}; create it with UPDATE_SNAPSHOTS=1",
                path.display()
            )
        });
        if want != file {
            let line = want
                .lines()
                .zip(file.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| want.lines().count().min(file.lines().count()));
            panic!(
                "the expansion differs from {} from line {}:\n  snapshot: {:?}\n  now:      {:?}\n\
                 If the change is intended, run with UPDATE_SNAPSHOTS=1 and review the diff.",
                path.display(),
                line + 1,
                want.lines().nth(line).unwrap_or("<end>"),
                file.lines().nth(line).unwrap_or("<end>"),
            );
        }
        text
    }

    #[test]
    fn photo() {
        let s = snapshot(
            "photo",
            quote! {
                #[derive(Queryable, Selectable, Identifiable, AsChangeset, CacheBot)]
                #[diesel(table_name = schema::photos, check_for_backend(diesel::pg::Pg))]
                #[diesel(belongs_to(User))]
                #[cachebot(key(user_id, status))]
                #[cachebot(key(name))]
                pub struct Photo {
                    pub id: i32,
                    pub user_id: i32,
                    pub status: i32,
                    #[diesel(column_name = title)]
                    pub name: String,
                    #[diesel(embed)]
                    pub extra: Extra,
                }
            },
        );
        // All of it inside one anonymous const.
        assert!(s.starts_with("const _: () = {"), "{s}");
        // The embedded field has no column: it is not keyed, and the
        // coverage check widens writes to the table.
        assert!(!s.contains("self.extra"), "{s}");
        // One key impl per declared key: a tuple of columns, a lone column.
        assert!(s.contains("for (schema::photos::user_id, schema::photos::status) {"));
        assert!(s.contains("impl ::cachebot::DeclaredKey<Photo> for schema::photos::title"));
        // No inherent methods any more.
        assert!(!s.contains("impl Photo {"), "{s}");
    }

    #[test]
    fn composite_primary_key() {
        let s = snapshot(
            "composite_primary_key",
            quote! {
                #[diesel(table_name = memberships, primary_key(group_id, member))]
                pub struct Membership {
                    pub group_id: i32,
                    #[diesel(column_name = member)]
                    pub user_id: i64,
                    pub role: String,
                }
            },
        );
        // Pushed as a composite key, but not declared: `composite_keys`
        // keeps its default, and there is no `DeclaredKey`.
        assert!(!s.contains("fn composite_keys"), "{s}");
        assert!(!s.contains("DeclaredKey"), "{s}");
        // No `= ANY` over tuples: missing ids are loaded one by one, by
        // `find`.
        assert!(!s.contains("eq_any"), "{s}");
        assert!(
            s.contains("type ByPrimaryKeys = <Self as ::cachebot::CachedModel>::Find;"),
            "{s}"
        );
    }

    #[test]
    fn small_model() {
        let s = snapshot(
            "small_model",
            quote! {
                #[diesel(table_name = t)]
                #[cachebot(cache_get = false)]
                struct M { id: i64 }
            },
        );
        assert!(s.contains("const CACHE_GET: bool = false;"), "{s}");
        // No declared key: no key impl (and so no registration).
        assert!(!s.contains("DeclaredKey"), "{s}");
    }

    #[test]
    fn generic_model() {
        snapshot(
            "generic_model",
            quote! {
                #[diesel(table_name = t)]
                #[cachebot(key(c))]
                struct M<'a, C, V> where V: Copy {
                    id: i32,
                    c: i32,
                    p: ::std::marker::PhantomData<&'a (C, V)>,
                }
            },
        );
    }

    #[test]
    fn fields_named_like_the_generated_locals() {
        // The key's locals and the methods' parameters are mixed-site: a
        // field or column called `cache`, `conn`, `out` or `values` cannot
        // clash with them (the integration test `tests/expand.rs` compiles
        // such a model).
        snapshot(
            "odd_names",
            quote! {
                #[diesel(table_name = odds)]
                #[cachebot(key(cache, conn), key(out, names, values), key(kind))]
                struct Odd {
                    id: i32,
                    cache: i32,
                    conn: i32,
                    out: i32,
                    names: i32,
                    values: Option<i32>,
                    #[diesel(column_name = "type")]
                    kind: String,
                }
            },
        );
    }
}
