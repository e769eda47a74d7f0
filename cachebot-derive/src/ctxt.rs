//! Error collection: every error a model has, reported at once (as
//! serde_derive's `Ctxt` does), rather than only the first.

use std::cell::RefCell;
use std::fmt::Display;

use proc_macro2::Span;
use quote::ToTokens;
use syn::Error;

/// The errors found so far while reading one derive input.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: RefCell<Vec<Error>>,
}

impl Ctxt {
    pub(crate) fn new() -> Ctxt {
        Ctxt::default()
    }

    /// An error at `span`.
    pub(crate) fn error(&self, span: Span, message: impl Display) {
        self.errors.borrow_mut().push(Error::new(span, message));
    }

    /// An error spanning the tokens of `tokens`.
    pub(crate) fn error_spanned_by(&self, tokens: impl ToTokens, message: impl Display) {
        self.errors
            .borrow_mut()
            .push(Error::new_spanned(tokens, message));
    }

    /// An error `syn` reported.
    pub(crate) fn syn_error(&self, error: Error) {
        self.errors.borrow_mut().push(error);
    }

    /// All errors, combined into one, in the order they were found.
    pub(crate) fn check(self) -> syn::Result<()> {
        let mut errors = self.errors.into_inner().into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for e in errors {
            combined.combine(e);
        }
        Err(combined)
    }
}
