//! The attributes the derive reads, in two sections:
//!
//! - `#[cachebot(..)]`, the derive's own, parsed **strictly**: an unknown
//!   key, a missing or wrong value is an error that names what is valid;
//! - `#[diesel(..)]`, Diesel's, read **tolerantly**: only what the cache
//!   needs (table, primary key, column names, which fields are not plain
//!   columns, foreign keys); every other key is skipped, since Diesel's own
//!   derives validate them.
//!
//! Nothing here resolves names against the struct's fields: that is
//! [`crate::check`]'s job.

use proc_macro2::{Span, TokenTree};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Error, Expr, Ident, Lit, LitStr, Meta, Path, Result, Token, Type};

use crate::ctxt::Ctxt;

// ---------------------------------------------------------------------------
// #[cachebot(..)]: strict

/// The keys `#[cachebot(..)]` accepts.
const CACHEBOT_KEYS: &[&str] = &["cache_get", "key"];

/// What each key looks like.
const CACHEBOT_HELP: &str = "expected `cache_get = false` or `key(field, ...)`";

/// What `#[cachebot(..)]` attributes on the struct declare.
#[derive(Default)]
pub(crate) struct CachebotAttrs {
    /// `cache_get = ..`, if set.
    pub(crate) cache_get: Option<bool>,
    /// `key(..)` declarations, in order.
    pub(crate) keys: Vec<KeyDecl>,
}

/// One `key(a, b)` as written: field names, not yet resolved.
pub(crate) struct KeyDecl {
    /// The fields, as written.
    pub(crate) fields: Vec<Ident>,
    /// `key(..)`, for errors about the whole key.
    pub(crate) span: Span,
}

impl CachebotAttrs {
    /// Read one `#[cachebot(..)]` on the struct, reporting every error.
    pub(crate) fn read(&mut self, cx: &Ctxt, attr: &Attribute) {
        match &attr.meta {
            Meta::List(list) if list.tokens.is_empty() => cx.error(
                list.delimiter.span().join(),
                format!("empty #[cachebot()]: {CACHEBOT_HELP}"),
            ),
            Meta::List(_) => {
                if let Err(e) = attr.parse_nested_meta(|meta| self.item(cx, meta)) {
                    cx.syn_error(e);
                }
            }
            _ => cx.error_spanned_by(attr, format!("expected #[cachebot(..)]: {CACHEBOT_HELP}")),
        }
    }

    /// One item of the list. Errors about the item go to `cx` (so that the
    /// next items are read too); only malformed token streams stop the list.
    fn item(&mut self, cx: &Ctxt, meta: ParseNestedMeta<'_>) -> Result<()> {
        let name = match meta.path.get_ident() {
            Some(name) => name.unraw(),
            None => {
                cx.error_spanned_by(&meta.path, unknown_key(&meta.path));
                return skip_value(meta.input);
            }
        };
        match name.to_string().as_str() {
            "cache_get" => self.cache_get(cx, &name, meta.input),
            "key" => self.key(cx, &name, meta.input),
            _ => {
                cx.error(name.span(), unknown_key(&meta.path));
                skip_value(meta.input)
            }
        }
    }

    /// `cache_get = true|false`, once.
    fn cache_get(&mut self, cx: &Ctxt, name: &Ident, input: ParseStream<'_>) -> Result<()> {
        if !input.peek(Token![=]) {
            cx.error(
                name.span(),
                "`cache_get` needs a value: `cache_get = false`",
            );
            return skip_value(input);
        }
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        let Expr::Lit(syn::ExprLit {
            lit: Lit::Bool(b), ..
        }) = &value
        else {
            cx.error(
                value.span(),
                "`cache_get` takes `true` or `false` (without quotes)",
            );
            return Ok(());
        };
        if self.cache_get.is_some() {
            cx.error(name.span(), "duplicate `cache_get`: set it once");
        } else {
            self.cache_get = Some(b.value);
        }
        Ok(())
    }

    /// `key(field, ...)`, non-empty.
    fn key(&mut self, cx: &Ctxt, name: &Ident, input: ParseStream<'_>) -> Result<()> {
        if !input.peek(syn::token::Paren) {
            cx.error(name.span(), "`key` lists fields: `key(field, ...)`");
            return skip_value(input);
        }
        let content;
        let parens = syn::parenthesized!(content in input);
        let fields =
            Punctuated::<Ident, Token![,]>::parse_terminated_with(&content, Ident::parse_any)?;
        if fields.is_empty() {
            cx.error(
                parens.span.join(),
                "empty key: name at least one field, as in `key(user_id, status)`",
            );
            return Ok(());
        }
        let span = name
            .span()
            .join(parens.span.close())
            .unwrap_or_else(|| name.span());
        self.keys.push(KeyDecl {
            fields: fields.into_iter().collect(),
            span,
        });
        Ok(())
    }
}

/// "unknown key `x`; valid keys are ...".
fn unknown_key(path: &Path) -> String {
    let name = quote::quote!(#path).to_string().replace(' ', "");
    let valid = CACHEBOT_KEYS
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("unknown #[cachebot] key `{name}`; valid keys are {valid} ({CACHEBOT_HELP})")
}

/// Skip the value of a key: nothing, a parenthesised list, or `= value` up
/// to the next top-level comma (angle brackets of types included).
fn skip_value(input: ParseStream<'_>) -> Result<()> {
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

// ---------------------------------------------------------------------------
// #[diesel(..)]: tolerant

/// What the cache reads of one `#[diesel(..)]` item.
pub(crate) enum DieselItem {
    /// `table_name = path`.
    TableName(Path),
    /// `primary_key(col, ..)`: column names.
    PrimaryKey(Vec<Ident>),
    /// `belongs_to(Parent, foreign_key = col)`.
    BelongsTo(BelongsTo),
    /// `column_name = col` on a field.
    ColumnName(Ident),
    /// `embed`, `select_expression`, `serialize_as`, `deserialize_as`: the
    /// field's value is not (or not necessarily) the column's.
    Unmapped,
    /// Anything else: Diesel's business.
    Other,
}

/// A `#[diesel(belongs_to(Parent, foreign_key = col))]` declaration.
pub(crate) struct BelongsTo {
    /// The parent model's type.
    pub(crate) parent: Path,
    /// The foreign-key column (Diesel's default: `parent_id`).
    pub(crate) foreign_key: Ident,
}

/// The items of `attr` if it is `#[diesel(..)]`; nothing for any other
/// attribute, and nothing for a malformed `#[diesel]` (Diesel reports it).
pub(crate) fn diesel_items(attr: &Attribute) -> Result<Vec<DieselItem>> {
    if !attr.path().is_ident("diesel") {
        return Ok(Vec::new());
    }
    match &attr.meta {
        Meta::List(list) => Ok(list
            .parse_args_with(Punctuated::<DieselItem, Token![,]>::parse_terminated)?
            .into_iter()
            .collect()),
        _ => Ok(Vec::new()),
    }
}

impl Parse for DieselItem {
    fn parse(input: ParseStream<'_>) -> Result<Self> {
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
fn sql_identifier(input: ParseStream<'_>) -> Result<Ident> {
    if !input.peek(LitStr) {
        return input.call(Ident::parse_any);
    }
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
}

impl Parse for BelongsTo {
    fn parse(input: ParseStream<'_>) -> Result<Self> {
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

/// Diesel's default table name: snake case of the struct name, plus `s`
/// (`diesel_derives::model::infer_table_name`, reproduced exactly).
pub(crate) fn infer_table_name(name: &str) -> String {
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
