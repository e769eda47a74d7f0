//! Names: how identifiers are normalised, in one place, for the SQL analysis and for Diesel
//! column references read back into (table, column).
//!
//! A dependency found in a query's SQL and a column the caller hands the crate (narrowing,
//! explicit invalidation, a model's key) must name a table the same way, or an invalidation
//! misses the cached results it should reach. Both go through [`fold`]. Columns are rendered
//! with the real backend and their quoted names read back, which keeps `sql_name` renames and
//! schemas right.

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

/// Parse `"t"."c"`, `"s"."t"."c"` or a comma-separated list of them.
/// `None` if anything else is in the text (an expression, a literal).
pub(crate) fn column_list(sql: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in split_top(sql, ',')? {
        let parts = split_top(item.trim(), '.')?
            .into_iter()
            .map(|p| identifier(p.trim()))
            .collect::<Option<Vec<_>>>()?;
        match parts.as_slice() {
            [t, c] => out.push((t.clone(), c.clone())),
            // A schema written out stays: it is resolved per connection like
            // the SQL analysis's names (`public.t` is not `t` under every
            // search path).
            [s, t, c] => out.push((format!("{s}.{t}"), c.clone())),
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Split on `sep` outside double quotes. `None` on an unterminated quote.
fn split_top(s: &str, sep: char) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, ch) in s.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    parts.push(&s[start..]);
    Some(parts)
}

/// A quoted identifier as written (with `""` unescaped), or a bare word
/// lowercased, as PostgreSQL folds it (see [`fold`]).
fn identifier(s: &str) -> Option<String> {
    if let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        if inner.is_empty() {
            return None;
        }
        return Some(fold(&inner.replace("\"\"", "\""), true));
    }
    let bare = !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        && !s.starts_with(|c: char| c.is_ascii_digit());
    bare.then(|| fold(s, false))
}

/// The one identifier normalisation: a quoted identifier (`value` already
/// unquoted and unescaped) is kept as written, a bare one is lowercased, as
/// PostgreSQL folds it.
pub(super) fn fold(value: &str, quoted: bool) -> String {
    if quoted {
        value.to_owned()
    } else {
        value.to_lowercase()
    }
}

/// Normalise one identifier: quoted as written, unquoted lowercased (PostgreSQL folding).
pub(super) fn norm_ident(ident: &Ident) -> String {
    fold(&ident.value, ident.quote_style.is_some())
}

/// Join normalised name parts into a table name. A schema written out is
/// kept (`public.t` is not `t` under every search path): names are resolved
/// per connection (see `scope`).
pub(super) fn join_name(parts: Vec<String>) -> String {
    parts.join(".")
}

/// The normalised parts of an object name (function parts rendered as written, lowercased).
pub(super) fn name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => norm_ident(ident),
            other => other.to_string().to_lowercase(),
        })
        .collect()
}

/// The normalised table name of an object name.
pub(super) fn table_name(name: &ObjectName) -> String {
    join_name(name_parts(name))
}

#[cfg(test)]
mod tests {
    use super::column_list;

    fn pairs(v: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn reads_diesel_column_renderings() {
        assert_eq!(
            column_list(r#""photos"."user_id""#),
            pairs(&[("photos", "user_id")])
        );
        assert_eq!(
            column_list(r#""photos"."user_id", "users"."id""#),
            pairs(&[("photos", "user_id"), ("users", "id")])
        );
        assert_eq!(
            column_list(r#""public"."photos"."id""#),
            pairs(&[("public.photos", "id")])
        );
        assert_eq!(
            column_list(r#""app"."photos"."id""#),
            pairs(&[("app.photos", "id")])
        );
        assert_eq!(
            column_list(r#""we""ird"."a.b""#),
            pairs(&[("we\"ird", "a.b")])
        );
        assert_eq!(
            column_list("Photos.User_Id"),
            pairs(&[("photos", "user_id")])
        );
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            "",
            "\"photos\"",
            "$1",
            "\"a\".\"b\" + 1",
            "\"a",
            "lower(\"a\".\"b\")",
            "1a.b",
        ] {
            assert_eq!(column_list(bad), None, "{bad}");
        }
    }
}
