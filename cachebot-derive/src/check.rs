//! Checks: the names the attributes use resolve to fields that can carry
//! them (the primary key, each declared key's fields), and nothing is
//! declared twice. Every problem is reported to the [`Ctxt`]; what resolves
//! is returned, so that later checks still run.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::Ident;

use crate::attr::KeyDecl;
use crate::ctxt::Ctxt;
use crate::model::{find_column, CompositeKey, Field};

/// The primary key's fields (indices into `fields`, in key order): the
/// columns of `#[diesel(primary_key(..))]`, or Diesel's default `id`.
pub(crate) fn primary_key(
    cx: &Ctxt,
    model: &Ident,
    fields: &[Field],
    declared: Option<Vec<Ident>>,
) -> Vec<usize> {
    let Some(names) = declared else {
        return match find_column(fields, &Ident::new("id", Span::call_site())) {
            Some(i) => vec![i],
            None => {
                cx.error(
                    model.span(),
                    format!(
                        "`{model}` has no `id` field: name its primary key with \
                         #[diesel(primary_key(..))]"
                    ),
                );
                Vec::new()
            }
        };
    };
    names
        .iter()
        .filter_map(|name| {
            let found = find_column(fields, name);
            if found.is_none() {
                cx.error(
                    name.span(),
                    format!(
                        "no field of `{model}` holds the primary-key column `{}`",
                        name.unraw()
                    ),
                );
            }
            found
        })
        .collect()
}

/// The declared keys that resolve, in declaration order; a key with any
/// error is left out (after every error of it is reported), as is a key
/// declared twice (the same columns, in any order).
pub(crate) fn keys(
    cx: &Ctxt,
    model: &Ident,
    fields: &[Field],
    declared: Vec<KeyDecl>,
) -> Vec<CompositeKey> {
    let mut keys: Vec<CompositeKey> = Vec::new();
    let mut seen: Vec<Vec<String>> = Vec::new();
    for decl in declared {
        let Some(indices) = key_fields(cx, model, fields, &decl) else {
            continue;
        };
        let mut columns: Vec<String> = indices
            .iter()
            .map(|&i| fields[i].column().unraw().to_string())
            .collect();
        columns.sort_unstable();
        if seen.contains(&columns) {
            cx.error(decl.span, "this key is declared twice");
            continue;
        }
        seen.push(columns);
        keys.push(CompositeKey {
            fields: indices,
            span: decl.span,
        });
    }
    keys
}

/// One key's fields, or `None` if any of them is unknown, not a plain
/// column, or named twice.
fn key_fields(cx: &Ctxt, model: &Ident, fields: &[Field], decl: &KeyDecl) -> Option<Vec<usize>> {
    let mut indices = Vec::with_capacity(decl.fields.len());
    for name in &decl.fields {
        let Some(i) = fields.iter().position(|f| f.ident.unraw() == name.unraw()) else {
            cx.error(
                name.span(),
                format!("`{model}` has no field `{}`", name.unraw()),
            );
            continue;
        };
        if fields[i].column.is_none() {
            cx.error(
                name.span(),
                format!(
                    "field `{}` is not a plain column of the table (embed, select_expression, \
                     serialize_as or deserialize_as) and cannot be part of a key",
                    name.unraw()
                ),
            );
            continue;
        }
        if indices.contains(&i) {
            cx.error(
                name.span(),
                format!("field `{}` appears twice in this key", name.unraw()),
            );
            continue;
        }
        indices.push(i);
    }
    (indices.len() == decl.fields.len()).then_some(indices)
}
