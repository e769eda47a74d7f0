//! Reading a model from the derive input: attributes, then checks, into
//! the data model (`model`), collecting every error on the way (`ctxt`).

use syn::{Data, DeriveInput, Fields, FieldsNamed, Ident, Path};

use crate::attr::{diesel_items, infer_table_name, BelongsTo, CachebotAttrs, DieselItem};
use crate::check;
use crate::ctxt::Ctxt;
use crate::model::{Field, Model};

/// The struct-level attributes, as read.
#[derive(Default)]
struct ContainerAttrs {
    cachebot: CachebotAttrs,
    table: Option<Path>,
    primary_key: Option<Vec<Ident>>,
    belongs_to: Vec<BelongsTo>,
}

impl Model {
    /// Read a model from a derive input: the model, or every error found.
    pub(crate) fn from_input(input: &DeriveInput) -> syn::Result<Model> {
        let cx = Ctxt::new();
        let model = Model::from_ast(&cx, input);
        cx.check()?;
        model.ok_or_else(|| syn::Error::new(input.ident.span(), "#[derive(CacheBot)] failed"))
    }

    /// The model, with errors reported to `cx`; `None` if the input is not
    /// a struct with named fields (nothing else is read then).
    fn from_ast(cx: &Ctxt, input: &DeriveInput) -> Option<Model> {
        let named = named_fields(cx, input)?;
        let fields = read_fields(cx, named);
        let attrs = read_container(cx, &input.attrs);
        let table = attrs.table.unwrap_or_else(|| {
            Path::from(Ident::new(
                &infer_table_name(&input.ident.to_string()),
                input.ident.span(),
            ))
        });
        let primary_key = check::primary_key(cx, &input.ident, &fields, attrs.primary_key);
        let keys = check::keys(cx, &input.ident, &fields, attrs.cachebot.keys);
        Some(Model {
            ident: input.ident.clone(),
            generics: input.generics.clone(),
            table,
            fields,
            primary_key,
            keys,
            cache_get: attrs.cachebot.cache_get.unwrap_or(true),
            belongs_to: attrs.belongs_to,
        })
    }
}

/// The named fields of a struct, or an error saying what the input is.
fn named_fields<'a>(cx: &Ctxt, input: &'a DeriveInput) -> Option<&'a FieldsNamed> {
    const NEEDS: &str = "#[derive(CacheBot)] needs a struct with named fields";
    match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => return Some(named),
            Fields::Unnamed(f) => cx.error_spanned_by(f, format!("{NEEDS}, not a tuple struct")),
            Fields::Unit => cx.error(input.ident.span(), format!("{NEEDS}, not a unit struct")),
        },
        Data::Enum(e) => cx.error(e.enum_token.span, format!("{NEEDS}, not an enum")),
        Data::Union(u) => cx.error(u.union_token.span, format!("{NEEDS}, not a union")),
    }
    None
}

/// Every field, with the column Diesel maps it to.
fn read_fields(cx: &Ctxt, named: &FieldsNamed) -> Vec<Field> {
    let mut fields = Vec::with_capacity(named.named.len());
    for f in &named.named {
        let Some(ident) = f.ident.clone() else {
            continue;
        };
        let mut mapped = true;
        let mut renamed = None;
        for attr in &f.attrs {
            if attr.path().is_ident("cachebot") {
                cx.error_spanned_by(attr, "#[cachebot(..)] goes on the struct, not on a field");
                continue;
            }
            match diesel_items(attr) {
                Ok(items) => {
                    for item in items {
                        match item {
                            DieselItem::ColumnName(c) => renamed = Some(c),
                            DieselItem::Unmapped => mapped = false,
                            _ => {}
                        }
                    }
                }
                Err(e) => cx.syn_error(e),
            }
        }
        let column = mapped.then(|| renamed.unwrap_or_else(|| ident.clone()));
        fields.push(Field {
            ident,
            ty: f.ty.clone(),
            column,
        });
    }
    fields
}

/// The struct's `#[cachebot(..)]` and `#[diesel(..)]`, in attribute order.
fn read_container(cx: &Ctxt, attrs: &[syn::Attribute]) -> ContainerAttrs {
    let mut out = ContainerAttrs::default();
    for attr in attrs {
        if attr.path().is_ident("cachebot") {
            out.cachebot.read(cx, attr);
            continue;
        }
        let items = match diesel_items(attr) {
            Ok(items) => items,
            Err(e) => {
                cx.syn_error(e);
                continue;
            }
        };
        for item in items {
            match item {
                // Diesel rejects a second table_name on the derives that
                // take one; the first wins here.
                DieselItem::TableName(p) => {
                    out.table.get_or_insert(p);
                }
                DieselItem::PrimaryKey(k) => out.primary_key = Some(k),
                DieselItem::BelongsTo(b) => out.belongs_to.push(b),
                _ => {}
            }
        }
    }
    out
}

/// For tests: parse a derive input from tokens.
#[cfg(test)]
pub(crate) fn parse(tokens: proc_macro2::TokenStream) -> syn::Result<Model> {
    Model::from_input(&syn::parse2(tokens)?)
}
