//! Reading a model: the struct, Diesel's attributes and `#[cachebot(...)]`.
//!
//! Everything the expansion needs ends up in a [`Model`]. Diesel's own
//! attributes are read only as far as the cache needs them (table, primary
//! key, column names, which fields map to a column, foreign keys); every
//! other Diesel key is skipped, since Diesel's derives validate them.
//! `#[cachebot(...)]` is validated strictly.

use proc_macro2::{Span, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Data, DeriveInput, Error, Expr, Fields, Generics, Ident, Lit, LitStr, Path, Result,
    Token, Type,
};

/// A model, as the expansion sees it.
pub struct Model {
    /// The struct's name.
    pub ident: Ident,
    /// The struct's generics, passed through to the impls.
    pub generics: Generics,
    /// The Diesel table module (`schema::photos`), from
    /// `#[diesel(table_name = ..)]` or Diesel's default.
    pub table: Path,
    /// Every field, in declaration order.
    pub fields: Vec<Field>,
    /// The primary key: indices into `fields`, in key order.
    pub primary_key: Vec<usize>,
    /// Declared composite keys (`#[cachebot(key(..))]`), in declaration order.
    pub keys: Vec<CompositeKey>,
    /// `#[cachebot(cache_get = ..)]`; `true` unless turned off.
    pub cache_get: bool,
    /// `#[diesel(belongs_to(..))]`, in declaration order.
    pub belongs_to: Vec<BelongsTo>,
}

/// One field of the model.
pub struct Field {
    /// The field's name.
    pub ident: Ident,
    /// The field's Rust type.
    pub ty: Type,
    /// The column of the model's table the field holds (`column_name` or
    /// the field's name); `None` for fields that are not a plain column.
    pub column: Option<Ident>,
}

/// A `#[cachebot(key(a, b))]` declaration.
pub struct CompositeKey {
    /// The fields, as indices into [`Model::fields`], in declared order.
    pub fields: Vec<usize>,
    /// Where the key was declared.
    pub span: Span,
}

/// A `#[diesel(belongs_to(Parent, foreign_key = col))]` declaration.
pub struct BelongsTo {
    /// The parent model's type.
    pub parent: Path,
    /// The foreign-key column (Diesel's default: `parent_id`).
    pub foreign_key: Ident,
}

impl Model {
    /// Read a model from a derive input.
    pub fn from_input(input: &DeriveInput) -> Result<Model> {
        let named =
            match &input.data {
                Data::Struct(s) => match &s.fields {
                    Fields::Named(named) => named,
                    Fields::Unnamed(f) => return Err(Error::new(
                        f.span(),
                        "#[derive(CacheBot)] needs a struct with named fields, not a tuple struct",
                    )),
                    Fields::Unit => return Err(Error::new(
                        input.ident.span(),
                        "#[derive(CacheBot)] needs a struct with named fields, not a unit struct",
                    )),
                },
                Data::Enum(e) => {
                    return Err(Error::new(
                        e.enum_token.span,
                        "#[derive(CacheBot)] needs a struct with named fields, not an enum",
                    ))
                }
                Data::Union(u) => {
                    return Err(Error::new(
                        u.union_token.span,
                        "#[derive(CacheBot)] needs a struct with named fields, not a union",
                    ))
                }
            };

        let mut errors = Errors::default();

        let mut fields = Vec::with_capacity(named.named.len());
        for f in &named.named {
            let Some(ident) = f.ident.clone() else {
                continue;
            };
            let mut column = Some(ident.clone());
            let mut renamed = None;
            for attr in &f.attrs {
                if attr.path().is_ident("cachebot") {
                    errors.push(Error::new_spanned(
                        attr,
                        "#[cachebot(..)] goes on the struct, not on a field",
                    ));
                    continue;
                }
                match diesel_items(attr) {
                    Ok(items) => {
                        for item in items {
                            match item {
                                DieselItem::ColumnName(c) => renamed = Some(c),
                                DieselItem::Unmapped => column = None,
                                _ => {}
                            }
                        }
                    }
                    Err(e) => errors.push(e),
                }
            }
            if column.is_some() {
                if let Some(c) = renamed {
                    column = Some(c);
                }
            }
            fields.push(Field {
                ident,
                ty: f.ty.clone(),
                column,
            });
        }

        let mut table: Option<Path> = None;
        let mut primary_key: Option<Vec<Ident>> = None;
        let mut belongs_to = Vec::new();
        let mut cache_get: Option<bool> = None;
        let mut key_decls: Vec<(Vec<Ident>, Span)> = Vec::new();
        for attr in &input.attrs {
            if attr.path().is_ident("cachebot") {
                match cachebot_items(attr) {
                    Ok(items) => {
                        for item in items {
                            match item {
                                CachebotItem::CacheGet(name, value) => {
                                    if cache_get.is_some() {
                                        errors.push(Error::new(
                                            name.span(),
                                            "duplicate `cache_get`: set it once",
                                        ));
                                    } else {
                                        cache_get = Some(value);
                                    }
                                }
                                CachebotItem::Key(columns, span) => key_decls.push((columns, span)),
                            }
                        }
                    }
                    Err(e) => errors.push(e),
                }
                continue;
            }
            match diesel_items(attr) {
                Ok(items) => {
                    for item in items {
                        match item {
                            // Diesel rejects a second table_name on the derives that take
                            // one; the first wins here.
                            DieselItem::TableName(p) => {
                                table.get_or_insert(p);
                            }
                            DieselItem::PrimaryKey(k) => primary_key = Some(k),
                            DieselItem::BelongsTo(b) => belongs_to.push(b),
                            _ => {}
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }

        let table = table.unwrap_or_else(|| {
            Path::from(Ident::new(
                &infer_table_name(&input.ident.to_string()),
                input.ident.span(),
            ))
        });

        let primary_key = match primary_key {
            Some(names) => names
                .iter()
                .filter_map(|name| match find_column(&fields, name) {
                    Some(i) => Some(i),
                    None => {
                        errors.push(Error::new(
                            name.span(),
                            format!(
                                "no field of `{}` holds the primary-key column `{}`",
                                input.ident,
                                name.unraw()
                            ),
                        ));
                        None
                    }
                })
                .collect(),
            None => match find_column(&fields, &Ident::new("id", Span::call_site())) {
                Some(i) => vec![i],
                None => {
                    errors.push(Error::new(
                        input.ident.span(),
                        format!(
                            "`{}` has no `id` field: name its primary key with \
                             #[diesel(primary_key(..))]",
                            input.ident
                        ),
                    ));
                    Vec::new()
                }
            },
        };

        let mut keys: Vec<CompositeKey> = Vec::new();
        for (names, span) in key_decls {
            let mut indices = Vec::with_capacity(names.len());
            for name in &names {
                let Some(i) = fields.iter().position(|f| f.ident.unraw() == name.unraw()) else {
                    errors.push(Error::new(
                        name.span(),
                        format!("`{}` has no field `{}`", input.ident, name.unraw()),
                    ));
                    continue;
                };
                if fields[i].column.is_none() {
                    errors.push(Error::new(
                        name.span(),
                        format!(
                            "field `{}` is not a plain column of the table (embed, select_expression, \
                             serialize_as or deserialize_as) and cannot be part of a key",
                            name.unraw()
                        ),
                    ));
                    continue;
                }
                if indices.contains(&i) {
                    errors.push(Error::new(
                        name.span(),
                        format!("field `{}` appears twice in this key", name.unraw()),
                    ));
                    continue;
                }
                indices.push(i);
            }
            if indices.len() != names.len() {
                continue;
            }
            let mut sorted = indices.clone();
            sorted.sort_unstable();
            if keys.iter().any(|k| {
                let mut other = k.fields.clone();
                other.sort_unstable();
                other == sorted
            }) {
                errors.push(Error::new(span, "this key is declared twice"));
                continue;
            }
            keys.push(CompositeKey {
                fields: indices,
                span,
            });
        }

        errors.finish()?;
        Ok(Model {
            ident: input.ident.clone(),
            generics: input.generics.clone(),
            table,
            fields,
            primary_key,
            keys,
            cache_get: cache_get.unwrap_or(true),
            belongs_to,
        })
    }

    /// The primary key's fields, in key order.
    pub fn pk_fields(&self) -> impl Iterator<Item = &Field> + '_ {
        self.primary_key.iter().map(|&i| &self.fields[i])
    }
}

impl Field {
    /// The column, for fields that have one (primary keys and key fields
    /// always do: the parser checks).
    pub fn column(&self) -> &Ident {
        self.column.as_ref().unwrap_or(&self.ident)
    }
}

/// Index of the mapped field holding `column`.
fn find_column(fields: &[Field], column: &Ident) -> Option<usize> {
    fields.iter().position(|f| {
        f.column
            .as_ref()
            .is_some_and(|c| c.unraw() == column.unraw())
    })
}

/// Diesel's default table name: snake case of the struct name, plus `s`
/// (`diesel_derives::model::infer_table_name`, reproduced exactly).
pub fn infer_table_name(name: &str) -> String {
    let mut result = String::with_capacity(name.len() + 1);
    let mut chars = name.chars();
    if let Some(first) = chars.next() {
        result.extend(first.to_lowercase());
    }
    for c in chars {
        if c.is_uppercase() {
            result.push('_');
            result.extend(c.to_lowercase());
        } else {
            result.push(c);
        }
    }
    result.push('s');
    result
}

/// Collects several errors into one.
#[derive(Default)]
struct Errors(Option<Error>);

impl Errors {
    fn push(&mut self, e: Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn finish(self) -> Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

// ---------------------------------------------------------------------------
// #[cachebot(..)]

enum CachebotItem {
    CacheGet(Ident, bool),
    Key(Vec<Ident>, Span),
}

const CACHEBOT_HELP: &str = "expected `cache_get = false` or `key(field, ...)`";

impl Parse for CachebotItem {
    fn parse(input: ParseStream) -> Result<Self> {
        let name = input.call(Ident::parse_any)?;
        match name.to_string().as_str() {
            "cache_get" => {
                if !input.peek(Token![=]) {
                    return Err(Error::new(
                        name.span(),
                        "`cache_get` needs a value: `cache_get = false`",
                    ));
                }
                input.parse::<Token![=]>()?;
                let value: Expr = input.parse()?;
                match &value {
                    Expr::Lit(syn::ExprLit {
                        lit: Lit::Bool(b), ..
                    }) => Ok(CachebotItem::CacheGet(name, b.value)),
                    other => Err(Error::new(
                        other.span(),
                        "`cache_get` takes `true` or `false` (without quotes)",
                    )),
                }
            }
            "key" => {
                if !input.peek(syn::token::Paren) {
                    return Err(Error::new(
                        name.span(),
                        "`key` lists fields: `key(field, ...)`",
                    ));
                }
                let content;
                let parens = syn::parenthesized!(content in input);
                let columns = Punctuated::<Ident, Token![,]>::parse_terminated_with(
                    &content,
                    Ident::parse_any,
                )?;
                let span = name
                    .span()
                    .join(parens.span.close())
                    .unwrap_or_else(|| name.span());
                if columns.is_empty() {
                    return Err(Error::new(
                        parens.span.join(),
                        "empty key: name at least one field, as in `key(user_id, status)`",
                    ));
                }
                Ok(CachebotItem::Key(columns.into_iter().collect(), span))
            }
            _ => Err(Error::new(
                name.span(),
                format!("unknown cachebot attribute `{name}`: {CACHEBOT_HELP}"),
            )),
        }
    }
}

fn cachebot_items(attr: &Attribute) -> Result<Vec<CachebotItem>> {
    match &attr.meta {
        syn::Meta::List(list) => {
            if list.tokens.is_empty() {
                return Err(Error::new(
                    list.delimiter.span().join(),
                    format!("empty #[cachebot()]: {CACHEBOT_HELP}"),
                ));
            }
            Ok(list
                .parse_args_with(Punctuated::<CachebotItem, Token![,]>::parse_terminated)?
                .into_iter()
                .collect())
        }
        _ => Err(Error::new_spanned(
            attr,
            format!("expected #[cachebot(..)]: {CACHEBOT_HELP}"),
        )),
    }
}

// ---------------------------------------------------------------------------
// #[diesel(..)]

/// What the cache reads of one `#[diesel(..)]` item.
enum DieselItem {
    TableName(Path),
    PrimaryKey(Vec<Ident>),
    BelongsTo(BelongsTo),
    ColumnName(Ident),
    /// `embed`, `select_expression`, `serialize_as`, `deserialize_as`: the
    /// field's value is not (or not necessarily) the column's.
    Unmapped,
    Other,
}

fn diesel_items(attr: &Attribute) -> Result<Vec<DieselItem>> {
    if !attr.path().is_ident("diesel") {
        return Ok(Vec::new());
    }
    match &attr.meta {
        syn::Meta::List(list) => Ok(list
            .parse_args_with(Punctuated::<DieselItem, Token![,]>::parse_terminated)?
            .into_iter()
            .collect()),
        // Diesel reports malformed attributes itself.
        _ => Ok(Vec::new()),
    }
}

impl Parse for DieselItem {
    fn parse(input: ParseStream) -> Result<Self> {
        let name = input.call(Ident::parse_any)?;
        match name.to_string().as_str() {
            "table_name" => {
                input.parse::<Token![=]>()?;
                Ok(DieselItem::TableName(input.call(Path::parse_mod_style)?))
            }
            "primary_key" => {
                let content;
                syn::parenthesized!(content in input);
                let keys = Punctuated::<Ident, Token![,]>::parse_terminated_with(
                    &content,
                    Ident::parse_any,
                )?;
                Ok(DieselItem::PrimaryKey(keys.into_iter().collect()))
            }
            "belongs_to" => {
                let content;
                syn::parenthesized!(content in input);
                Ok(DieselItem::BelongsTo(content.parse()?))
            }
            "column_name" => {
                input.parse::<Token![=]>()?;
                Ok(DieselItem::ColumnName(sql_identifier(input)?))
            }
            "embed" => Ok(DieselItem::Unmapped),
            "select_expression" => {
                input.parse::<Token![=]>()?;
                input.parse::<Expr>()?;
                Ok(DieselItem::Unmapped)
            }
            "serialize_as" | "deserialize_as" => {
                input.parse::<Token![=]>()?;
                input.parse::<Type>()?;
                Ok(DieselItem::Unmapped)
            }
            "base_query" => {
                input.parse::<Token![=]>()?;
                input.parse::<Expr>()?;
                Ok(DieselItem::Other)
            }
            _ => {
                skip_value(input)?;
                Ok(DieselItem::Other)
            }
        }
    }
}

/// `column_name = ident` or `column_name = "name"` (Diesel turns a string
/// into a raw identifier).
fn sql_identifier(input: ParseStream) -> Result<Ident> {
    if input.peek(LitStr) {
        let s: LitStr = input.parse()?;
        let name = s.value();
        let mut ident = syn::parse_str::<Ident>(&name)
            .or_else(|_| syn::parse_str::<Ident>(&format!("r#{name}")))
            .map_err(|_| {
                Error::new(
                    s.span(),
                    format!("`{name}` is not a valid column identifier"),
                )
            })?;
        ident.set_span(s.span());
        Ok(ident)
    } else {
        input.call(Ident::parse_any)
    }
}

/// Skip the value of a Diesel key this crate does not read: nothing, a
/// parenthesised list, or `= value` up to the next top-level comma (angle
/// brackets of types included).
fn skip_value(input: ParseStream) -> Result<()> {
    if input.peek(syn::token::Paren) {
        let _: TokenTree = input.parse()?;
        return Ok(());
    }
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        let mut depth = 0usize;
        while !input.is_empty() {
            if depth == 0 && input.peek(Token![,]) {
                break;
            }
            if input.peek(Token![->]) {
                input.parse::<Token![->]>()?;
                continue;
            }
            let tt: TokenTree = input.parse()?;
            if let TokenTree::Punct(p) = &tt {
                match p.as_char() {
                    '<' => depth += 1,
                    '>' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

impl Parse for BelongsTo {
    fn parse(input: ParseStream) -> Result<Self> {
        let parent: Path = input.parse()?;
        let mut foreign_key = None;
        while input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let name = input.call(Ident::parse_any)?;
            if name == "foreign_key" {
                input.parse::<Token![=]>()?;
                foreign_key = Some(input.call(Ident::parse_any)?);
            } else {
                skip_value(input)?;
            }
        }
        let foreign_key = foreign_key.unwrap_or_else(|| {
            let last = parent.segments.last().map(|s| s.ident.unraw().to_string());
            let snake = last.map(|n| {
                let mut t = infer_table_name(&n);
                t.pop();
                t
            });
            Ident::new(&format!("{}_id", snake.unwrap_or_default()), parent.span())
        });
        Ok(BelongsTo {
            parent,
            foreign_key,
        })
    }
}

/// For tests: parse a derive input from tokens.
#[cfg(test)]
pub fn parse(tokens: proc_macro2::TokenStream) -> Result<Model> {
    Model::from_input(&syn::parse2(tokens)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::TokenStream;
    use quote::quote;

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
            .contains("unknown cachebot attribute `nope`"));
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
}
