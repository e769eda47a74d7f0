//! The data model of a derive input: what the code generation reads.
//! Built by `parse` (attributes read by `attr`, names checked by `check`).

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::{Generics, Ident, Path, Type};

use crate::attr::BelongsTo;

/// A model, as the expansion sees it.
pub(crate) struct Model {
    /// The struct's name.
    pub(crate) ident: Ident,
    /// The struct's generics, passed through to the impls.
    pub(crate) generics: Generics,
    /// The Diesel table module (`schema::photos`), from
    /// `#[diesel(table_name = ..)]` or Diesel's default.
    pub(crate) table: Path,
    /// Every field, in declaration order.
    pub(crate) fields: Vec<Field>,
    /// The primary key: indices into `fields`, in key order.
    pub(crate) primary_key: Vec<usize>,
    /// Declared composite keys (`#[cachebot(key(..))]`), in declaration order.
    pub(crate) keys: Vec<CompositeKey>,
    /// `#[cachebot(cache_get = ..)]`; `true` unless turned off.
    pub(crate) cache_get: bool,
    /// `#[diesel(belongs_to(..))]`, in declaration order.
    pub(crate) belongs_to: Vec<BelongsTo>,
}

/// One field of the model.
pub(crate) struct Field {
    /// The field's name.
    pub(crate) ident: Ident,
    /// The field's Rust type.
    pub(crate) ty: Type,
    /// The column of the model's table the field holds (`column_name` or
    /// the field's name); `None` for fields that are not a plain column.
    pub(crate) column: Option<Ident>,
}

/// A `#[cachebot(key(a, b))]` declaration, resolved.
pub(crate) struct CompositeKey {
    /// The fields, as indices into [`Model::fields`], in declared order.
    pub(crate) fields: Vec<usize>,
    /// Where the key was declared.
    pub(crate) span: Span,
}

impl Model {
    /// The primary key's fields, in key order.
    pub(crate) fn pk_fields(&self) -> impl Iterator<Item = &Field> + '_ {
        self.primary_key.iter().map(|&i| &self.fields[i])
    }
}

impl Field {
    /// The column, for fields that have one (primary keys and key fields
    /// always do: [`crate::check`] makes sure).
    pub(crate) fn column(&self) -> &Ident {
        self.column.as_ref().unwrap_or(&self.ident)
    }
}

/// Index of the mapped field holding `column`.
pub(crate) fn find_column(fields: &[Field], column: &Ident) -> Option<usize> {
    fields.iter().position(|f| {
        f.column
            .as_ref()
            .is_some_and(|c| c.unraw() == column.unraw())
    })
}
