//! A forgiving tokenizer and the conservative scans built on it: the fallback when sqlparser
//! cannot parse a statement (or must not be given it), the token scan of AST fragments the walk
//! does not model, and the batch splitter.
//!
//! The tokenizer never fails: unterminated strings, quoted identifiers and comments run to the
//! end of the text, unknown characters are skipped.

use std::collections::BTreeSet;

use super::write_acc::{is_writer_function, WriteAcc};
use super::{
    finish, is_deterministic, is_time_special, join_name, Extracted, Uncacheable, WriteTargets,
    MAX_FALLBACK_TABLES, MAX_OPERATOR_TOKENS, PARENLESS_VOLATILE,
};

/// A token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Tok {
    /// A bare word, lowercased.
    Word(String),
    /// A double-quoted identifier, as written (`""` unescaped).
    Quoted(String),
    /// A string literal's content (any quoting).
    Str(String),
    Number,
    /// `$n`.
    Param,
    LParen,
    RParen,
    Comma,
    Dot,
    Semi,
    /// An operator (a run of operator characters).
    Op(String),
}

/// Tokenize; each token with its starting byte offset.
pub(super) fn lex(sql: &str) -> Vec<(Tok, usize)> {
    let mut lexer = Lexer {
        sql,
        cs: sql.char_indices().collect(),
        i: 0,
        out: Vec::new(),
    };
    while let Some(&(pos, c)) = lexer.cs.get(lexer.i) {
        lexer.step(pos, c);
    }
    lexer.out
}

/// [`lex`]'s state: the characters (with their byte offsets), the index of the next one, and
/// the tokens so far.
struct Lexer<'s> {
    sql: &'s str,
    cs: Vec<(usize, char)>,
    i: usize,
    out: Vec<(Tok, usize)>,
}

impl Lexer<'_> {
    /// The character at index `k`.
    fn at(&self, k: usize) -> Option<char> {
        self.cs.get(k).map(|&(_, c)| c)
    }

    /// The byte offset of the character at index `k` (the text's length past the end).
    fn byte_at(&self, k: usize) -> usize {
        self.cs.get(k).map_or(self.sql.len(), |&(b, _)| b)
    }

    /// Consume what starts at `self.i` (character `c` at byte `pos`): one token, a comment or
    /// whitespace.
    fn step(&mut self, pos: usize, c: char) {
        let i = self.i;
        if c.is_whitespace() {
            self.i += 1;
        } else if c == '-' && self.at(i + 1) == Some('-') {
            while self.at(self.i).is_some_and(|d| d != '\n') {
                self.i += 1;
            }
        } else if c == '/' && self.at(i + 1) == Some('*') {
            self.block_comment();
        } else if c == '\'' {
            self.quoted_token(i, '\'', false, pos);
        } else if c == '"' {
            self.quoted_token(i, '"', false, pos);
        } else if c == '$' && self.at(i + 1).is_some_and(|d| d.is_ascii_digit()) {
            self.i += 1;
            while self.at(self.i).is_some_and(|d| d.is_ascii_digit()) {
                self.i += 1;
            }
            self.out.push((Tok::Param, pos));
        } else if c == '$' {
            self.dollar(pos);
        } else if c.is_ascii_digit()
            || (c == '.' && self.at(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            self.number(pos);
        } else if c.is_alphabetic() || c == '_' {
            self.word(pos);
        } else {
            self.i += 1;
            if let Some(tok) = self.punctuation(c) {
                self.out.push((tok, pos));
            }
        }
    }

    /// A block comment starting at `self.i`; block comments nest in PostgreSQL.
    fn block_comment(&mut self) {
        let mut depth = 0usize;
        while let Some(c) = self.at(self.i) {
            let next = self.at(self.i + 1);
            if c == '/' && next == Some('*') {
                depth += 1;
                self.i += 2;
            } else if c == '*' && next == Some('/') {
                depth -= 1;
                self.i += 2;
                if depth == 0 {
                    break;
                }
            } else {
                self.i += 1;
            }
        }
    }

    /// A quoted run whose opening quote is at index `start` (see [`quoted`]): a string literal,
    /// or a quoted identifier when `quote` is `"`.
    fn quoted_token(&mut self, start: usize, quote: char, backslash: bool, pos: usize) {
        let (text, next) = quoted(&self.cs, start, quote, backslash);
        let tok = if quote == '"' {
            Tok::Quoted(text)
        } else {
            Tok::Str(text)
        };
        self.out.push((tok, pos));
        self.i = next;
    }

    /// Dollar quoting: `$$...$$` or `$tag$...$tag$`; a lone `$` is an operator.
    fn dollar(&mut self, pos: usize) {
        let sql = self.sql;
        let mut j = self.i + 1;
        while self.at(j).is_some_and(|d| d.is_alphanumeric() || d == '_') {
            j += 1;
        }
        if self.at(j) == Some('$') {
            let tag = &sql[pos..self.byte_at(j + 1)];
            let body_start = self.byte_at(j + 1);
            let (body, end) = match sql[body_start..].find(tag) {
                Some(k) => (&sql[body_start..body_start + k], body_start + k + tag.len()),
                None => (&sql[body_start..], sql.len()),
            };
            self.out.push((Tok::Str(body.to_string()), pos));
            self.i = self.cs.partition_point(|&(b, _)| b < end);
        } else {
            self.out.push((Tok::Op("$".to_string()), pos));
            self.i += 1;
        }
    }

    /// A numeric literal (digits, letters, `_`, `.`, and a sign after an exponent's `e`).
    fn number(&mut self, pos: usize) {
        self.i += 1;
        while let Some(d) = self.at(self.i) {
            let i = self.i;
            let exponent_sign = (d == '+' || d == '-')
                && i > 0
                && matches!(self.at(i - 1), Some('e' | 'E'))
                && self.at(i + 1).is_some_and(|x| x.is_ascii_digit());
            if d.is_ascii_alphanumeric() || d == '_' || d == '.' || exponent_sign {
                self.i += 1;
            } else {
                break;
            }
        }
        self.out.push((Tok::Number, pos));
    }

    /// A bare word, or a prefixed string: `E'..'` (backslash escapes), `B'..'`, `X'..'`,
    /// `N'..'`, `U&'..'` (and the identifier `U&".."`).
    fn word(&mut self, pos: usize) {
        let start = self.i;
        while self
            .at(self.i)
            .is_some_and(|d| d.is_alphanumeric() || d == '_' || d == '$')
        {
            self.i += 1;
        }
        let i = self.i;
        let word: String = self.cs[start..i]
            .iter()
            .map(|&(_, ch)| ch)
            .collect::<String>();
        let lower = super::names::fold(&word, false);
        if self.at(i) == Some('\'') && matches!(lower.as_str(), "e" | "b" | "x" | "n") {
            self.quoted_token(i, '\'', lower == "e", pos);
        } else if lower == "u" && self.at(i) == Some('&') {
            match self.at(i + 1) {
                Some(q @ ('\'' | '"')) => self.quoted_token(i + 1, q, false, pos),
                _ => self.out.push((Tok::Word(lower), pos)),
            }
        } else {
            self.out.push((Tok::Word(lower), pos));
        }
    }

    /// Punctuation or an operator starting with `c` (`self.i` is already past `c`); `None` for
    /// brackets and anything unknown, which no scan needs.
    fn punctuation(&mut self, c: char) -> Option<Tok> {
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            ';' => Tok::Semi,
            c if is_op_char(c) => {
                let mut op = String::from(c);
                while let Some(d) = self.at(self.i) {
                    let next = self.at(self.i + 1);
                    let comment =
                        (d == '-' && next == Some('-')) || (d == '/' && next == Some('*'));
                    if !is_op_char(d) || comment {
                        break;
                    }
                    op.push(d);
                    self.i += 1;
                }
                Tok::Op(op)
            }
            _ => return None,
        };
        Some(tok)
    }
}

fn is_op_char(c: char) -> bool {
    "+-*/<>=~!@#%^&|`?:".contains(c)
}

/// A quoted run starting at `cs[start]` (the opening quote); doubled quotes escape it, and with
/// `backslash` so does `\`. Returns the content and the index after the closing quote.
fn quoted(cs: &[(usize, char)], start: usize, quote: char, backslash: bool) -> (String, usize) {
    let mut text = String::new();
    let mut i = start + 1;
    while let Some(&(_, c)) = cs.get(i) {
        if backslash && c == '\\' {
            if let Some(&(_, next)) = cs.get(i + 1) {
                text.push(next);
            }
            i += 2;
        } else if c == quote {
            if cs.get(i + 1).map(|&(_, d)| d) == Some(quote) {
                text.push(quote);
                i += 2;
            } else {
                return (text, i + 1);
            }
        } else {
            text.push(c);
            i += 1;
        }
    }
    (text, cs.len())
}

/// Words that are operators for the purpose of [`too_complex`].
const OPERATOR_WORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "is",
    "in",
    "like",
    "ilike",
    "between",
    "collate",
    "at",
    "similar",
    "union",
    "intersect",
    "except",
    "escape",
    "isnull",
    "notnull",
    "overlaps",
];

/// Whether the text has too many operators to be handed to the parser safely (see
/// [`MAX_OPERATOR_TOKENS`]). Free for short texts.
pub(super) fn too_complex(sql: &str) -> bool {
    if sql.len() <= MAX_OPERATOR_TOKENS {
        return false;
    }
    let operators = lex(sql)
        .iter()
        .filter(|(tok, _)| match tok {
            Tok::Op(_) => true,
            Tok::Word(w) => OPERATOR_WORDS.contains(&w.as_str()),
            _ => false,
        })
        .count();
    // Each `[` nests an array type or subscript one level deeper.
    let brackets = sql.bytes().filter(|b| *b == b'[').count();
    operators + brackets > MAX_OPERATOR_TOKENS
}

/// PostgreSQL's reserved key words (and those reserved except as function or type names): a
/// bare one is never a table name.
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "system_user",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
    "authorization",
    "binary",
    "collation",
    "concurrently",
    "cross",
    "current_schema",
    "freeze",
    "full",
    "ilike",
    "inner",
    "is",
    "isnull",
    "join",
    "left",
    "like",
    "natural",
    "notnull",
    "outer",
    "overlaps",
    "right",
    "similar",
    "tablesample",
    "verbose",
];

/// Bare words that may precede `(` without being a function call.
const NOT_FUNCTIONS: &[&str] = &[
    "all",
    "and",
    "any",
    "array",
    "as",
    "at",
    "between",
    "bit",
    "by",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "collate",
    "conflict",
    "constraint",
    "cube",
    "decimal",
    "default",
    "distinct",
    "do",
    "double",
    "else",
    "escape",
    "except",
    "exists",
    "extract",
    "filter",
    "float",
    "for",
    "foreign",
    "from",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "index",
    "insert",
    "intersect",
    "interval",
    "into",
    "is",
    "join",
    "key",
    "lateral",
    "like",
    "limit",
    "materialized",
    "not",
    "numeric",
    "of",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "over",
    "overlay",
    "partition",
    "position",
    "precision",
    "primary",
    "recursive",
    "references",
    "returning",
    "rollup",
    "row",
    "select",
    "set",
    "sets",
    "similar",
    "some",
    "substring",
    "then",
    "time",
    "timestamp",
    "to",
    "trim",
    "union",
    "unique",
    "using",
    "values",
    "varchar",
    "varying",
    "when",
    "where",
    "window",
    "with",
    "within",
    "zone",
];

/// Words that end a FROM list at their nesting level.
const FROM_LIST_END: &[&str] = &[
    "where",
    "group",
    "having",
    "order",
    "limit",
    "offset",
    "fetch",
    "for",
    "window",
    "union",
    "intersect",
    "except",
    "returning",
    "select",
    "into",
    "set",
    "values",
    "qualify",
];

/// What a token scan found.
#[derive(Debug, Default)]
pub(super) struct ScanResult {
    /// Candidate tables (normalised).
    pub(super) tables: BTreeSet<String>,
    /// Functions called (normalised name parts joined by `.`).
    pub(super) functions: BTreeSet<String>,
    /// The first call to a non-allow-listed function, or a volatile keyword.
    pub(super) volatile: Option<String>,
}

/// A name at `toks[i]`: a quoted identifier or a non-reserved bare word.
fn name_part(tok: Option<&(Tok, usize)>) -> Option<String> {
    match tok.map(|(t, _)| t) {
        Some(Tok::Quoted(s)) => Some(s.clone()),
        Some(Tok::Word(w)) if !RESERVED.contains(&w.as_str()) => Some(w.clone()),
        _ => None,
    }
}

/// A dotted name starting at `toks[i]`: its parts and the index after it.
fn dotted_name(toks: &[(Tok, usize)], i: usize) -> Option<(Vec<String>, usize)> {
    let mut parts = vec![name_part(toks.get(i))?];
    let mut j = i + 1;
    while matches!(toks.get(j), Some((Tok::Dot, _))) {
        match name_part(toks.get(j + 1)) {
            Some(part) => {
                parts.push(part);
                j += 2;
            }
            None => break,
        }
    }
    Some((parts, j))
}

/// Scan tokens for tables (after FROM/JOIN, after commas of a FROM list, and with `qualifiers`
/// also every `x.` qualifier), function calls and volatile keywords.
fn scan_tokens(toks: &[(Tok, usize)], qualifiers: bool) -> ScanResult {
    let mut found = ScanResult::default();
    // Per parenthesis level: inside a FROM list?
    let mut in_from: Vec<bool> = vec![false];
    // The next name is a table (after FROM, JOIN, a FROM-list comma).
    let mut expect_table = false;
    let mut i = 0;
    while i < toks.len() {
        let tok = &toks[i].0;
        match tok {
            Tok::Word(w) if w == "from" || w == "join" => {
                if let Some(level) = in_from.last_mut() {
                    *level = true;
                }
                expect_table = true;
                i += 1;
                continue;
            }
            Tok::Word(w) if expect_table && (w == "only" || w == "lateral") => {
                i += 1;
                continue;
            }
            Tok::Word(w) if FROM_LIST_END.contains(&w.as_str()) => {
                if let Some(level) = in_from.last_mut() {
                    *level = false;
                }
            }
            _ => {}
        }
        match tok {
            Tok::LParen => {
                // `FROM ((a JOIN b) ...)`: still expecting tables inside.
                in_from.push(expect_table);
                i += 1;
                continue;
            }
            Tok::RParen => {
                in_from.pop();
                if in_from.is_empty() {
                    in_from.push(false);
                }
            }
            Tok::Comma if in_from.last().copied().unwrap_or(false) => {
                expect_table = true;
                i += 1;
                continue;
            }
            Tok::Str(s) if is_time_special(s) => {
                found.volatile.get_or_insert_with(|| "now".to_string());
            }
            Tok::Word(_) | Tok::Quoted(_) => {
                let after_dot = i > 0 && matches!(toks[i - 1].0, Tok::Dot);
                if !after_dot {
                    if let Some((parts, next)) = dotted_name(toks, i) {
                        if let ([single], Tok::Word(_)) = (parts.as_slice(), tok) {
                            volatile_word(&mut found, single, toks.get(next));
                        }
                        if matches!(toks.get(next), Some((Tok::LParen, _))) {
                            call(&mut found, &parts);
                        } else if expect_table {
                            found.tables.insert(join_name(parts));
                        } else if qualifiers {
                            let star = matches!(toks.get(next), Some((Tok::Dot, _)))
                                && matches!(toks.get(next + 1), Some((Tok::Op(op), _)) if op == "*");
                            if star {
                                found.tables.insert(join_name(parts));
                            } else if parts.len() >= 2 {
                                found
                                    .tables
                                    .insert(join_name(parts[..parts.len() - 1].to_vec()));
                            }
                        }

                        expect_table = false;
                        i = next;
                        continue;
                    }
                    if let Tok::Word(w) = tok {
                        volatile_word(&mut found, w, toks.get(i + 1));
                        if matches!(toks.get(i + 1), Some((Tok::LParen, _)))
                            && !NOT_FUNCTIONS.contains(&w.as_str())
                        {
                            call(&mut found, std::slice::from_ref(w));
                        }
                    }
                }
            }
            _ => {}
        }
        expect_table = false;
        i += 1;
    }
    found
}

/// A bare word that is a volatile value by itself (CURRENT_TIMESTAMP, USER...).
fn volatile_word(found: &mut ScanResult, word: &str, next: Option<&(Tok, usize)>) {
    let called = matches!(next, Some((Tok::LParen, _)));
    if !called && PARENLESS_VOLATILE.contains(&word) {
        found.volatile.get_or_insert_with(|| word.to_string());
    }
}

/// A function call seen by the scan.
fn call(found: &mut ScanResult, parts: &[String]) {
    if let [single] = parts {
        if NOT_FUNCTIONS.contains(&single.as_str()) {
            return;
        }
    }
    let joined = parts.join(".");
    if !is_deterministic(parts) {
        found.volatile.get_or_insert_with(|| joined.to_lowercase());
    }
    found.functions.insert(joined);
}

/// Scan the SQL rendering of an AST fragment: tables only after FROM/JOIN (qualifiers there
/// name relations of the enclosing, already analysed query).
pub(super) fn scan_fragment(text: &str) -> ScanResult {
    scan_tokens(&lex(text), false)
}

/// The conservative analysis of SQL we could not (or would not) parse.
pub(super) fn fallback_analyze(sql: &str) -> Extracted {
    let toks = lex(sql);
    let words = || {
        toks.iter().filter_map(|(t, _)| match t {
            Tok::Word(w) => Some(w.as_str()),
            _ => None,
        })
    };
    // It must look like one plain SELECT.
    let first = toks.iter().find(|(t, _)| *t != Tok::LParen).map(|(t, _)| t);
    let starts_with_select = matches!(first, Some(Tok::Word(w)) if w == "select");
    let writes = words().any(|w| {
        matches!(
            w,
            "insert" | "update" | "delete" | "merge" | "truncate" | "into"
        )
    });
    // FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE.
    let locks = toks.windows(2).any(|pair| {
        matches!(&pair[0].0, Tok::Word(w) if w == "for")
            && matches!(&pair[1].0, Tok::Word(w) if matches!(w.as_str(), "update" | "share" | "no" | "key"))
    });
    let several = toks
        .iter()
        .position(|(t, _)| *t == Tok::Semi)
        .is_some_and(|k| toks[k + 1..].iter().any(|(t, _)| *t != Tok::Semi));
    if !starts_with_select || writes || locks || several {
        return Extracted::Uncacheable(Uncacheable::NotARead);
    }
    let found = scan_tokens(&toks, true);
    if let Some(name) = found.volatile {
        return Extracted::Uncacheable(Uncacheable::Volatile(name));
    }
    if found.tables.is_empty() || found.tables.len() > MAX_FALLBACK_TABLES {
        return Extracted::Uncacheable(Uncacheable::NoTable);
    }
    finish(
        Default::default(),
        found.tables,
        true,
        false,
        Default::default(),
    )
}

/// The statements of a batch, in order: split at `;` outside strings, quoted identifiers,
/// comments, parentheses (a rule's `DO ALSO (INSERT ...; DELETE ...)`) and the
/// `BEGIN ATOMIC ... END` body of an SQL-standard function (whose `END` is not a COMMIT).
pub(super) fn split_statements(sql: &str) -> Vec<&str> {
    let toks = lex(sql);
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut parens = 0usize;
    // Open BEGIN ATOMIC blocks and CASE expressions inside them, each closed by an END.
    let mut atomic = 0usize;
    for (i, (tok, pos)) in toks.iter().enumerate() {
        match tok {
            Tok::LParen => parens += 1,
            Tok::RParen => parens = parens.saturating_sub(1),
            Tok::Word(w) if w == "begin" => {
                if matches!(toks.get(i + 1), Some((Tok::Word(a), _)) if a == "atomic") {
                    atomic += 1;
                }
            }
            Tok::Word(w) if w == "case" && atomic > 0 => atomic += 1,
            Tok::Word(w) if w == "end" && atomic > 0 => atomic -= 1,
            Tok::Semi if parens == 0 && atomic == 0 => {
                pieces.push(&sql[start..*pos]);
                start = pos + 1;
            }
            _ => {}
        }
    }
    pieces.push(&sql[start..]);
    pieces.retain(|p| !lex_is_empty(p));
    pieces
}

/// Whether a piece holds no token (only blanks and comments).
fn lex_is_empty(piece: &str) -> bool {
    piece.trim().is_empty() || lex(piece).is_empty()
}

/// A leading token of a statement, for recognising transaction control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lead {
    /// A bare word, lowercased.
    Word(String),
    /// A double-quoted identifier, as written.
    Quoted(String),
    /// A string literal's content.
    Str(String),
    /// Anything else (punctuation, numbers, operators).
    Other,
}

/// The first `n` tokens of a statement, comments skipped.
pub(super) fn leading_tokens(sql: &str, n: usize) -> Vec<Lead> {
    // Lex a prefix first: statements can be long, and only their head matters.
    let mut cut = sql.len().min(256);
    while !sql.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut toks = lex(&sql[..cut]);
    if toks.len() < n + 1 && cut < sql.len() {
        toks = lex(sql);
    }
    toks.into_iter()
        .take(n)
        .map(|(tok, _)| match tok {
            Tok::Word(w) => Lead::Word(w),
            Tok::Quoted(q) => Lead::Quoted(q),
            Tok::Str(s) => Lead::Str(s),
            _ => Lead::Other,
        })
        .collect()
}

/// Keywords of statements that may write without a target we can extract (EXECUTE runs a
/// prepared statement of any kind).
const OPAQUE_WRITES: &[&str] = &[
    "merge", "copy", "alter", "drop", "create", "call", "grant", "revoke", "vacuum", "cluster",
    "reindex", "refresh", "comment", "lock", "execute", "import",
];

/// The conservative write targets of SQL we could not (or would not) parse.
pub(super) fn fallback_writes(sql: &str) -> WriteTargets {
    let toks = lex(sql);
    let word = |k: usize| match toks.get(k) {
        Some((Tok::Word(w), _)) => Some(w.as_str()),
        _ => None,
    };
    let mut acc = WriteAcc::default();
    let mut writes = false;
    // The table named at `k` (after an optional ONLY).
    let target = |mut k: usize, acc: &mut WriteAcc| -> usize {
        if word(k) == Some("only") {
            k += 1;
        }
        match dotted_name(&toks, k) {
            Some((parts, next)) => {
                acc.tables.insert(join_name(parts));
                next
            }
            None => {
                acc.unknown = true;
                k
            }
        }
    };
    for (i, (tok, _)) in toks.iter().enumerate() {
        let Tok::Word(w) = tok else { continue };
        let qualified =
            (i > 0 && toks[i - 1].0 == Tok::Dot) || matches!(toks.get(i + 1), Some((Tok::Dot, _)));
        if qualified {
            continue;
        }
        let prev = i.checked_sub(1).and_then(word);
        match w.as_str() {
            "insert" => {
                writes = true;
                if word(i + 1) == Some("into") {
                    target(i + 2, &mut acc);
                } else {
                    acc.unknown = true;
                }
            }
            "update" => {
                writes = true;
                // FOR [NO KEY] UPDATE locks; ON CONFLICT DO UPDATE writes the INSERT's table.
                if !matches!(prev, Some("for" | "key" | "do")) {
                    target(i + 1, &mut acc);
                }
            }
            "delete" => {
                writes = true;
                if word(i + 1) == Some("from") {
                    target(i + 2, &mut acc);
                } else {
                    acc.unknown = true;
                }
            }
            "truncate" => {
                writes = true;
                // CASCADE empties referencing tables no statement names.
                if toks
                    .iter()
                    .any(|(t, _)| matches!(t, Tok::Word(c) if c == "cascade"))
                {
                    acc.unknown = true;
                }
                let mut k = i + 1;
                if word(k) == Some("table") {
                    k += 1;
                }
                loop {
                    k = target(k, &mut acc);
                    if matches!(toks.get(k), Some((Tok::Op(op), _)) if op == "*") {
                        k += 1;
                    }
                    if matches!(toks.get(k), Some((Tok::Comma, _))) {
                        k += 1;
                    } else {
                        break;
                    }
                }
            }
            // Two-phase commit: COMMIT PREPARED makes a prepared transaction's writes visible
            // (its statements may have run in another session); PREPARE TRANSACTION ends the
            // current one without committing it.
            "commit" if word(i + 1) == Some("prepared") => {
                writes = true;
                acc.unknown = true;
            }
            "prepare" if word(i + 1) == Some("transaction") => {
                writes = true;
                acc.unknown = true;
            }
            // ON CONFLICT DO UPDATE / DO NOTHING belong to an INSERT.
            "do" if matches!(word(i + 1), Some("update" | "nothing")) => {}
            "do" => {
                writes = true;
                acc.unknown = true;
            }
            w if OPAQUE_WRITES.contains(&w) => {
                writes = true;
                acc.unknown = true;
            }
            _ => {}
        }
    }
    // SELECT lo_unlink(...) and the like.
    let found = scan_tokens(&toks, false);
    if found.functions.iter().any(|f| is_writer_function(f)) {
        return WriteTargets::Unknown;
    }
    if !writes {
        return WriteTargets::None;
    }
    acc.finish()
}
