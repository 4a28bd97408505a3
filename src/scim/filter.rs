//! The SCIM filter language (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2): parsing into an AST
//! and evaluating it against a resource.
//!
//! Operators, `and`/`or`/`not` and attribute names are case-insensitive; precedence is
//! `not` > `and` > `or`, with parentheses for grouping. Attribute paths may carry a schema URN
//! prefix (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`) and a
//! sub-attribute (`name.familyName`); value paths filter multi-valued attributes
//! (`emails[type eq "work" and primary eq true]`). Parsing never panics: any input either
//! parses or yields a [`FilterError`] saying where it went wrong.

use std::fmt;

use serde_json::Value;

/// Most nesting accepted, so hostile input cannot exhaust the stack (in the parser, the
/// evaluator, the SQL translation or when the tree is dropped). Every level counts: a bare
/// comparison is depth 1, and each parenthesis, `not`, value filter (`attr[…]`), `and` and `or`
/// adds one — `a pr and b pr and c pr` is depth 3; `a[f].b op v` reads as `a[f and b op v]`, so
/// each link of a chain `a[f].b[g].c[h]…` adds two.
pub const MAX_DEPTH: usize = 32;
/// Longest filter accepted.
pub const MAX_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, Op, CompValue),
    /// `attr[filter]`: some value of the multi-valued `attr` matches `filter`.
    ValuePath(AttrPath, Box<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

/// `[urn:]attr[.sub]`. Names are kept as written; comparisons ignore case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

impl AttrPath {
    pub fn simple(attr: &str) -> Self {
        AttrPath {
            urn: None,
            attr: attr.to_owned(),
            sub: None,
        }
    }

    /// Whether this names `attr` (and `sub`), ignoring case.
    pub fn is(&self, attr: &str, sub: Option<&str>) -> bool {
        self.attr.eq_ignore_ascii_case(attr)
            && match (&self.sub, sub) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.urn {
            write!(f, "{u}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

/// A PATCH path: `attrPath`, or `attrPath[filter]` optionally followed by `.subAttr`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// The sub-attribute after a value filter: `emails[type eq "work"].value`.
    pub sub_after_filter: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    LBracket,
    RBracket,
}

struct Lexer<'a> {
    src: &'a str,
    toks: Vec<(usize, Tok)>,
}

fn err<T>(position: usize, message: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError {
        position,
        message: message.into(),
    })
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$' | ':' | '.')
}

impl<'a> Lexer<'a> {
    fn run(src: &'a str) -> Result<Vec<(usize, Tok)>, FilterError> {
        let mut lx = Lexer {
            src,
            toks: Vec::new(),
        };
        lx.lex()?;
        Ok(lx.toks)
    }

    fn lex(&mut self) -> Result<(), FilterError> {
        let mut chars = self.src.char_indices().peekable();
        while let Some(&(i, c)) = chars.peek() {
            match c {
                ' ' | '\t' | '\n' | '\r' => {
                    chars.next();
                }
                '(' => {
                    chars.next();
                    self.toks.push((i, Tok::LParen));
                }
                ')' => {
                    chars.next();
                    self.toks.push((i, Tok::RParen));
                }
                '[' => {
                    chars.next();
                    self.toks.push((i, Tok::LBracket));
                }
                ']' => {
                    chars.next();
                    self.toks.push((i, Tok::RBracket));
                }
                '"' => {
                    chars.next();
                    let mut s = String::new();
                    let mut closed = false;
                    while let Some((j, c)) = chars.next() {
                        match c {
                            '"' => {
                                closed = true;
                                break;
                            }
                            '\\' => match chars.next() {
                                Some((_, '"')) => s.push('"'),
                                Some((_, '\\')) => s.push('\\'),
                                Some((_, '/')) => s.push('/'),
                                Some((_, 'b')) => s.push('\u{8}'),
                                Some((_, 'f')) => s.push('\u{c}'),
                                Some((_, 'n')) => s.push('\n'),
                                Some((_, 'r')) => s.push('\r'),
                                Some((_, 't')) => s.push('\t'),
                                Some((k, 'u')) => {
                                    let hex: String = (0..4)
                                        .filter_map(|_| chars.next().map(|(_, c)| c))
                                        .collect();
                                    let code =
                                        u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                                    match code {
                                        Some(ch) if hex.len() == 4 => s.push(ch),
                                        _ => return err(k, "bad \\u escape in string"),
                                    }
                                }
                                _ => return err(j, "bad escape in string"),
                            },
                            c => s.push(c),
                        }
                    }
                    if !closed {
                        return err(i, "unterminated string");
                    }
                    // No stored value holds one, and PostgreSQL refuses it in text.
                    if s.contains('\0') {
                        return err(i, "a string in a filter cannot contain NUL (U+0000)");
                    }
                    self.toks.push((i, Tok::Str(s)));
                }
                c if c == '-' || c.is_ascii_digit() => {
                    let start = i;
                    let mut end = i;
                    while let Some(&(j, c)) = chars.peek() {
                        if c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E') {
                            end = j + c.len_utf8();
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    let text = &self.src[start..end];
                    match text.parse::<f64>() {
                        Ok(n) if n.is_finite() => self.toks.push((start, Tok::Num(n))),
                        _ => return err(start, format!("`{text}` is not a number")),
                    }
                }
                c if is_word_char(c) => {
                    let start = i;
                    let mut end = i;
                    while let Some(&(j, c)) = chars.peek() {
                        if is_word_char(c) {
                            end = j + c.len_utf8();
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    self.toks
                        .push((start, Tok::Word(self.src[start..end].to_owned())));
                }
                other => return err(i, format!("unexpected character `{other}`")),
            }
        }
        Ok(())
    }
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(i, _)| *i)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        t
    }

    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn deeper(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(
                self.at(),
                format!("filter is nested too deeply (more than {MAX_DEPTH} levels)"),
            );
        }
        Ok(())
    }

    /// A node over children of depth `below`: refused when it would be nested too deeply, so
    /// the tree is never deeper than [`MAX_DEPTH`] (`and`/`or` chains are built in a loop, but
    /// every link is a level of the tree the evaluator walks).
    fn node(&self, at: usize, below: usize) -> Result<usize, FilterError> {
        let d = below + 1;
        if d > MAX_DEPTH {
            return err(
                at,
                format!("filter is nested too deeply (more than {MAX_DEPTH} levels)"),
            );
        }
        Ok(d)
    }

    fn or(&mut self) -> Result<(Filter, usize), FilterError> {
        let (mut left, mut depth) = self.and()?;
        while self.peek_keyword("or") {
            let at = self.at();
            self.next();
            let (right, d) = self.and()?;
            depth = self.node(at, depth.max(d))?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok((left, depth))
    }

    fn and(&mut self) -> Result<(Filter, usize), FilterError> {
        let (mut left, mut depth) = self.unary()?;
        while self.peek_keyword("and") {
            let at = self.at();
            self.next();
            let (right, d) = self.unary()?;
            depth = self.node(at, depth.max(d))?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok((left, depth))
    }

    fn unary(&mut self) -> Result<(Filter, usize), FilterError> {
        self.deeper()?;
        let result = self.unary_inner();
        self.depth -= 1;
        result
    }

    fn unary_inner(&mut self) -> Result<(Filter, usize), FilterError> {
        if self.peek_keyword("not") && matches!(self.toks.get(self.pos + 1), Some((_, Tok::LParen)))
        {
            let at = self.at();
            self.next();
            let (inner, d) = self.group()?;
            return Ok((Filter::Not(Box::new(inner)), self.node(at, d)?));
        }
        if matches!(self.peek(), Some(Tok::LParen)) {
            return self.group();
        }
        self.attr_expr()
    }

    fn group(&mut self) -> Result<(Filter, usize), FilterError> {
        let at = self.at();
        if self.next() != Some(Tok::LParen) {
            return err(at, "expected `(`");
        }
        let inner = self.or()?;
        let at = self.at();
        if self.next() != Some(Tok::RParen) {
            return err(at, "expected `)`");
        }
        Ok(inner)
    }

    fn attr_expr(&mut self) -> Result<(Filter, usize), FilterError> {
        let at = self.at();
        let path = match self.next() {
            Some(Tok::Word(w)) => parse_attr_path(&w).map_err(|m| FilterError {
                position: at,
                message: m,
            })?,
            _ => return err(at, "expected an attribute name"),
        };
        if matches!(self.peek(), Some(Tok::LBracket)) {
            if path.sub.is_some() {
                return err(
                    at,
                    "a value filter applies to an attribute, not a sub-attribute",
                );
            }
            self.next();
            // The inner filter's own level is counted where it is parsed (`unary`).
            let (inner, inner_depth) = self.or()?;
            let close = self.at();
            if self.next() != Some(Tok::RBracket) {
                return err(close, "expected `]`");
            }
            // `emails[type eq "work"].value co "x"` (beyond the RFC's grammar, but clients send
            // it): the comparison applies to the sub-attribute of the values the filter selects.
            if let Some(Tok::Word(w)) = self.peek()
                && let Some(sub) = w.strip_prefix('.')
            {
                let sub_at = self.at();
                let sub = parse_attr_path(sub).map_err(|m| FilterError {
                    position: sub_at,
                    message: m,
                })?;
                if sub.urn.is_some() || sub.sub.is_some() {
                    return err(sub_at, "expected a sub-attribute name after `].`");
                }
                self.toks[self.pos] = (sub_at, Tok::Word(sub.attr));
                // The comparison may itself be a value filter (`a[…].b[…]…`): each link is a
                // level, for the parser's recursion as for the tree.
                self.deeper()?;
                let cmp = self.attr_expr();
                self.depth -= 1;
                let (cmp, cmp_depth) = cmp?;
                let and = self.node(sub_at, inner_depth.max(cmp_depth))?;
                return Ok((
                    Filter::ValuePath(path, Box::new(Filter::And(Box::new(inner), Box::new(cmp)))),
                    self.node(at, and)?,
                ));
            }
            return Ok((
                Filter::ValuePath(path, Box::new(inner)),
                self.node(at, inner_depth)?,
            ));
        }
        let at = self.at();
        let op = match self.next() {
            Some(Tok::Word(w)) => w.to_ascii_lowercase(),
            _ => return err(at, format!("expected an operator after `{path}`")),
        };
        let op = match op.as_str() {
            "pr" => return Ok((Filter::Present(path), 1)),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => return err(at, format!("unknown operator `{other}`")),
        };
        let at = self.at();
        let value = match self.next() {
            Some(Tok::Str(s)) => CompValue::Str(s),
            Some(Tok::Num(n)) => CompValue::Num(n),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => CompValue::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => CompValue::Bool(false),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => CompValue::Null,
            _ => {
                return err(
                    at,
                    "expected a value: a \"string\", a number, true, false or null",
                );
            }
        };
        if value == CompValue::Null && !matches!(op, Op::Eq | Op::Ne) {
            return err(at, "null can only be compared with eq or ne");
        }
        if matches!(value, CompValue::Bool(_)) && !matches!(op, Op::Eq | Op::Ne) {
            return err(at, "booleans can only be compared with eq or ne");
        }
        Ok((Filter::Compare(path, op, value), 1))
    }
}

/// Parses `[urn:]attr[.sub]`.
pub fn parse_attr_path(text: &str) -> Result<AttrPath, String> {
    let bad = || format!("`{text}` is not an attribute path");
    if text.is_empty() || text.len() > 512 {
        return Err(bad());
    }
    let (urn, rest) = if text.to_ascii_lowercase().starts_with("urn:") {
        // The attribute follows the last `:`.
        let idx = text.rfind(':').ok_or_else(bad)?;
        (Some(text[..idx].to_owned()), &text[idx + 1..])
    } else {
        (None, text)
    };
    let mut parts = rest.split('.');
    let attr = parts.next().filter(|a| !a.is_empty()).ok_or_else(bad)?;
    let sub = parts.next();
    if parts.next().is_some() || sub.is_some_and(str::is_empty) {
        return Err(bad());
    }
    let name_ok = |n: &str| {
        n.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
    };
    if !name_ok(attr) || sub.is_some_and(|s| !name_ok(s)) {
        return Err(bad());
    }
    Ok(AttrPath {
        urn,
        attr: attr.to_owned(),
        sub: sub.map(str::to_owned),
    })
}

/// Parses a filter expression.
pub fn parse(text: &str) -> Result<Filter, FilterError> {
    if text.len() > MAX_LEN {
        return err(
            MAX_LEN,
            format!("filter is longer than {MAX_LEN} characters"),
        );
    }
    let toks = Lexer::run(text)?;
    if toks.is_empty() {
        return err(0, "filter is empty");
    }
    let mut p = Parser {
        toks,
        pos: 0,
        end: text.len(),
        depth: 0,
    };
    let (f, _) = p.or()?;
    if p.pos < p.toks.len() {
        return err(p.at(), "unexpected text after the filter");
    }
    Ok(f)
}

/// Parses a PATCH operation path.
pub fn parse_patch_path(text: &str) -> Result<PatchPath, FilterError> {
    let text = text.trim();
    if text.len() > MAX_LEN {
        return err(MAX_LEN, "path is too long");
    }
    let Some(open) = text.find('[') else {
        let attr = parse_attr_path(text).map_err(|m| FilterError {
            position: 0,
            message: m,
        })?;
        return Ok(PatchPath {
            attr,
            filter: None,
            sub_after_filter: None,
        });
    };
    let close = text.rfind(']').ok_or(FilterError {
        position: text.len(),
        message: "expected `]`".into(),
    })?;
    if close < open {
        return err(close, "`]` before `[`");
    }
    let attr = parse_attr_path(&text[..open]).map_err(|m| FilterError {
        position: 0,
        message: m,
    })?;
    if attr.sub.is_some() {
        return err(
            0,
            "a value filter applies to an attribute, not a sub-attribute",
        );
    }
    let filter = parse(&text[open + 1..close]).map_err(|e| FilterError {
        position: e.position + open + 1,
        message: e.message,
    })?;
    let rest = &text[close + 1..];
    let sub_after_filter = if rest.is_empty() {
        None
    } else {
        let sub = rest.strip_prefix('.').ok_or(FilterError {
            position: close + 1,
            message: "expected `.subAttribute` after `]`".into(),
        })?;
        let ok = sub.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && sub
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'));
        if !ok {
            return err(close + 2, format!("`{sub}` is not a sub-attribute name"));
        }
        Some(sub.to_owned())
    };
    Ok(PatchPath {
        attr,
        filter: Some(filter),
        sub_after_filter,
    })
}

/// What evaluation needs to know about attributes: which compare case-sensitively and which
/// hold date-times.
pub trait AttrInfo {
    fn case_exact(&self, path: &AttrPath) -> bool;
    fn is_datetime(&self, path: &AttrPath) -> bool;
}

/// Looks up a key in a JSON object ignoring case.
pub fn get_ci<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// The values an attribute path reaches in `resource` (flattening multi-valued attributes).
/// `urn` selects the extension object; core attributes are looked up at the top level.
pub fn values_at<'a>(resource: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let base = match &path.urn {
        Some(urn) if !is_core_urn(urn) => match get_ci(resource, urn) {
            Some(ext) => ext,
            None => return Vec::new(),
        },
        _ => resource,
    };
    let Some(v) = get_ci(base, &path.attr) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    match &path.sub {
        // A complex attribute compared as a whole compares by its `value` (RFC 7644 §3.4.2.2).
        None => items
            .into_iter()
            .map(|v| match v {
                Value::Object(_) => get_ci(v, "value").unwrap_or(v),
                other => other,
            })
            .filter(|v| !v.is_null())
            .collect(),
        Some(sub) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::Object(_) => get_ci(item, sub),
                _ => None,
            })
            .filter(|v| !v.is_null())
            .collect(),
    }
}

/// Whether a URN names a core schema (User or Group), whose attributes sit at the top level.
pub fn is_core_urn(urn: &str) -> bool {
    let u = urn.to_ascii_lowercase();
    u == "urn:ietf:params:scim:schemas:core:2.0:user"
        || u == "urn:ietf:params:scim:schemas:core:2.0:group"
}

fn compare_str(op: Op, have: &str, want: &str, case_exact: bool) -> bool {
    let (h, w) = if case_exact {
        (have.to_owned(), want.to_owned())
    } else {
        (have.to_lowercase(), want.to_lowercase())
    };
    match op {
        Op::Eq => h == w,
        Op::Ne => h != w,
        Op::Co => h.contains(&w),
        Op::Sw => h.starts_with(&w),
        Op::Ew => h.ends_with(&w),
        Op::Gt => h > w,
        Op::Ge => h >= w,
        Op::Lt => h < w,
        Op::Le => h <= w,
    }
}

fn compare_one(op: Op, have: &Value, want: &CompValue, case_exact: bool, datetime: bool) -> bool {
    match (have, want) {
        (Value::String(h), CompValue::Str(w)) if datetime => {
            match (
                chrono::DateTime::parse_from_rfc3339(h),
                chrono::DateTime::parse_from_rfc3339(w),
            ) {
                (Ok(a), Ok(b)) => match op {
                    Op::Eq => a == b,
                    Op::Ne => a != b,
                    Op::Gt => a > b,
                    Op::Ge => a >= b,
                    Op::Lt => a < b,
                    Op::Le => a <= b,
                    _ => compare_str(op, h, w, true),
                },
                _ => compare_str(op, h, w, true),
            }
        }
        // A number kept exactly as sent (see `number`) compares as a number.
        (Value::String(h), CompValue::Num(_)) if super::number::marked(h).is_some() => {
            let n = super::number::marked(h)
                .and_then(|t| t.parse::<f64>().ok())
                .and_then(serde_json::Number::from_f64);
            n.is_some_and(|n| compare_one(op, &Value::Number(n), want, case_exact, datetime))
        }
        (Value::String(h), CompValue::Str(w)) => compare_str(op, h, w, case_exact),
        (Value::Number(h), CompValue::Num(w)) => {
            let h = h.as_f64().unwrap_or(f64::NAN);
            match op {
                Op::Eq => h == *w,
                Op::Ne => h != *w,
                Op::Gt => h > *w,
                Op::Ge => h >= *w,
                Op::Lt => h < *w,
                Op::Le => h <= *w,
                Op::Co | Op::Sw | Op::Ew => compare_str(op, &h.to_string(), &w.to_string(), true),
            }
        }
        (Value::Bool(h), CompValue::Bool(w)) => match op {
            Op::Eq => h == w,
            Op::Ne => h != w,
            _ => false,
        },
        // Booleans sent as strings by some clients ("True"): compare as booleans.
        (Value::String(h), CompValue::Bool(w)) => match h.to_ascii_lowercase().as_str() {
            "true" => matches!(op, Op::Eq) == *w,
            "false" => matches!(op, Op::Eq) != *w,
            _ => false,
        },
        _ => matches!(op, Op::Ne),
    }
}

/// Evaluates a filter against one resource.
pub fn matches(f: &Filter, resource: &Value, info: &dyn AttrInfo) -> bool {
    match f {
        Filter::And(a, b) => matches(a, resource, info) && matches(b, resource, info),
        Filter::Or(a, b) => matches(a, resource, info) || matches(b, resource, info),
        Filter::Not(a) => !matches(a, resource, info),
        Filter::Present(path) => values_at(resource, path).iter().any(|v| match v {
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        }),
        Filter::Compare(path, op, want) => {
            let values = values_at(resource, path);
            if *want == CompValue::Null {
                return match op {
                    Op::Eq => values.is_empty(),
                    _ => !values.is_empty(),
                };
            }
            if values.is_empty() {
                // `ne` on an absent attribute holds, as `not (eq)` does.
                return *op == Op::Ne;
            }
            let (ce, dt) = (info.case_exact(path), info.is_datetime(path));
            if *op == Op::Ne {
                // Not equal: no value equals.
                return !values.iter().any(|v| compare_one(Op::Eq, v, want, ce, dt));
            }
            values.iter().any(|v| compare_one(*op, v, want, ce, dt))
        }
        Filter::ValuePath(path, inner) => {
            let base = match &path.urn {
                Some(urn) if !is_core_urn(urn) => get_ci(resource, urn),
                _ => Some(resource),
            };
            let Some(items) = base.and_then(|b| get_ci(b, &path.attr)) else {
                return false;
            };
            let items: Vec<&Value> = match items {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            let parent = path.attr.clone();
            let scoped = ScopedInfo {
                info,
                parent: &parent,
            };
            items.iter().any(|item| matches(inner, item, &scoped))
        }
    }
}

/// Inside a value path, attribute names are sub-attributes of the filtered attribute.
struct ScopedInfo<'a> {
    info: &'a dyn AttrInfo,
    parent: &'a str,
}

impl AttrInfo for ScopedInfo<'_> {
    fn case_exact(&self, path: &AttrPath) -> bool {
        self.info.case_exact(&AttrPath {
            urn: None,
            attr: self.parent.to_owned(),
            sub: Some(path.attr.clone()),
        })
    }
    fn is_datetime(&self, path: &AttrPath) -> bool {
        self.info.is_datetime(&AttrPath {
            urn: None,
            attr: self.parent.to_owned(),
            sub: Some(path.attr.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    struct Plain;
    impl AttrInfo for Plain {
        fn case_exact(&self, p: &AttrPath) -> bool {
            p.is("id", None)
        }
        fn is_datetime(&self, p: &AttrPath) -> bool {
            p.is("meta", Some("lastModified"))
        }
    }

    fn p(s: &str) -> Filter {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_the_rfc_examples() {
        for f in [
            r#"userName Eq "john""#,
            r#"name.familyName co "O'Malley""#,
            r#"userName sw "J""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            r#"title pr"#,
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
            r#"title pr and userType eq "Employee""#,
            r#"title pr or userType eq "Intern""#,
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
            r#"displayName eq "Barbara Jensen""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
            r#"active eq true and age gt 20.5"#,
            r#"x eq null"#,
        ] {
            p(f);
        }
    }

    #[test]
    fn precedence_and_grouping() {
        assert_eq!(
            p("a pr or b pr and c pr"),
            Filter::Or(
                Box::new(Filter::Present(AttrPath::simple("a"))),
                Box::new(Filter::And(
                    Box::new(Filter::Present(AttrPath::simple("b"))),
                    Box::new(Filter::Present(AttrPath::simple("c")))
                ))
            )
        );
        assert_eq!(
            p("(a pr or b pr) AND c pr"),
            Filter::And(
                Box::new(Filter::Or(
                    Box::new(Filter::Present(AttrPath::simple("a"))),
                    Box::new(Filter::Present(AttrPath::simple("b")))
                )),
                Box::new(Filter::Present(AttrPath::simple("c")))
            )
        );
        let urn =
            p("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"x\"");
        let Filter::Compare(path, Op::Eq, _) = urn else {
            panic!()
        };
        assert_eq!(
            path.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(path.attr, "manager");
        assert_eq!(path.sub.as_deref(), Some("value"));
    }

    #[test]
    fn rejects_bad_filters_with_a_position() {
        for bad in [
            "",
            "userName",
            "userName eq",
            "userName xx \"a\"",
            "userName eq \"unterminated",
            "(userName pr",
            "userName pr)",
            "emails[type eq \"work\"",
            "userName eq \"a\" and",
            "userName gt true",
            "userName co null",
            "a.b.c pr",
            "userName eq 'single'",
            "not userName pr",
            "userName eq \"a\u{0}b\"",
            "userName eq \"a\\u0000b\"",
            "userName eq \"a\" \u{0}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        let e = parse("userName eq \"a\" zz").unwrap_err();
        assert_eq!(e.position, 16);
    }

    #[test]
    fn evaluates_against_resources() {
        let user = json!({
            "id": "Abc",
            "userName": "Bjensen",
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "active": true,
            "meta": {"lastModified": "2011-05-13T04:42:34Z"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984"}
        });
        let yes = [
            r#"userName eq "bjensen""#,
            r#"USERNAME EQ "BJENSEN""#,
            r#"name.familyName co "ens""#,
            r#"emails[type eq "work" and primary eq true]"#,
            r#"emails[type eq "home"].value ew ".org""#,
            r#"emails.value co "example.com""#,
            r#"emails co "jensen.org""#,
            r#"meta.lastModified gt "2011-05-13T04:42:33Z""#,
            r#"meta.lastModified le "2011-05-13T06:42:34+02:00""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bj""#,
            r#"active eq true"#,
            r#"title eq null"#,
            r#"not (title pr)"#,
            r#"id eq "Abc""#,
            r#"userName ne "x""#,
        ];
        let no = [
            r#"id eq "abc""#,
            r#"emails[type eq "work" and primary eq false]"#,
            r#"emails[type eq "home" and primary eq true]"#,
            r#"title pr"#,
            r#"active eq false"#,
            r#"userName eq "bjensen" and title pr"#,
            r#"emails.value ne "babs@jensen.org""#,
        ];
        for f in yes {
            assert!(matches(&p(f), &user, &Plain), "{f} should match");
        }
        for f in no {
            assert!(!matches(&p(f), &user, &Plain), "{f} should not match");
        }
    }

    #[test]
    fn patch_paths() {
        let pp = parse_patch_path(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#)
            .unwrap();
        assert!(pp.attr.is("members", None));
        assert!(pp.filter.is_some());
        let pp = parse_patch_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(pp.sub_after_filter.as_deref(), Some("value"));
        let pp =
            parse_patch_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")
                .unwrap();
        assert!(pp.attr.is("manager", None));
        let pp = parse_patch_path("name.familyName").unwrap();
        assert!(pp.attr.is("name", Some("familyName")));
        for bad in [
            "",
            "emails[",
            "emails[type eq]",
            "emails]x[",
            "emails[type pr]junk",
            "a..b",
        ] {
            assert!(parse_patch_path(bad).is_err(), "{bad:?} parsed");
        }
    }

    proptest! {
        #[test]
        fn filter_parser_never_panics(s in "\\PC{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn filter_parser_never_panics_on_filter_like_text(s in "[a-zA-Z.:\\[\\]()\" ]{0,40}( (eq|co|pr|and|or|not) [\"a-z0-9()\\[\\]]{0,10}){0,6}") {
            let _ = parse(&s);
        }

        #[test]
        fn patch_path_parser_never_panics(s in "\\PC{0,200}") {
            let _ = parse_patch_path(&s);
        }

        #[test]
        fn deep_nesting_is_refused_not_overflowed(n in 1usize..2000) {
            let s = format!("{}a pr{}", "(".repeat(n), ")".repeat(n));
            let r = parse(&s);
            prop_assert_eq!(r.is_ok(), n < MAX_DEPTH, "{} parentheses", n);
        }

        #[test]
        fn parsed_trees_are_never_deeper_than_the_limit(
            s in "((not \\(|\\(|a\\[|a pr (and|or) |a\\[x pr\\]\\.b eq 1 and ){0,40}a pr[\\])]{0,40})"
        ) {
            if let Ok(f) = parse(&s) {
                prop_assert!(tree_depth(&f) <= MAX_DEPTH, "{}", s);
            }
        }
    }

    fn tree_depth(f: &Filter) -> usize {
        match f {
            Filter::And(a, b) | Filter::Or(a, b) => 1 + tree_depth(a).max(tree_depth(b)),
            Filter::Not(a) | Filter::ValuePath(_, a) => 1 + tree_depth(a),
            Filter::Present(_) | Filter::Compare(..) => 1,
        }
    }

    fn too_deep(s: &str) -> bool {
        parse(s).is_err_and(|e| e.message.contains("nested too deeply"))
    }

    #[test]
    fn every_level_counts_up_to_the_limit() {
        // `and` / `or` chains: n comparisons are n levels.
        for op in ["and", "or"] {
            let chain = |n: usize| vec!["a pr"; n].join(&format!(" {op} "));
            let f = p(&chain(MAX_DEPTH));
            assert_eq!(tree_depth(&f), MAX_DEPTH);
            assert!(too_deep(&chain(MAX_DEPTH + 1)), "{op} chain past the limit");
        }
        // `not (…)`: each is a level.
        let nots = |n: usize| format!("{}a pr{}", "not (".repeat(n), ")".repeat(n));
        assert_eq!(tree_depth(&p(&nots(MAX_DEPTH - 1))), MAX_DEPTH);
        assert!(too_deep(&nots(MAX_DEPTH)));
        // Parentheses: each is a level even though the tree does not keep them.
        let parens = |n: usize| format!("{}a pr{}", "(".repeat(n), ")".repeat(n));
        p(&parens(MAX_DEPTH - 1));
        assert!(too_deep(&parens(MAX_DEPTH)));
        // Nested value filters: `a[a[…a pr…]]`.
        let nested = |n: usize| format!("{}a pr{}", "a[".repeat(n), "]".repeat(n));
        assert_eq!(tree_depth(&p(&nested(MAX_DEPTH - 1))), MAX_DEPTH);
        assert!(too_deep(&nested(MAX_DEPTH)));
        // Chained value filters `a[x pr].a[x pr]…`: each link is two levels (value filter and
        // the `and` joining its filter to the comparison after it).
        let chained = |links: usize| format!("{}a pr", "a[x pr].".repeat(links));
        let at_limit = (MAX_DEPTH - 1) / 2;
        assert_eq!(tree_depth(&p(&chained(at_limit))), 2 * at_limit + 1);
        assert!(2 * at_limit < MAX_DEPTH && 2 * (at_limit + 1) + 1 > MAX_DEPTH);
        assert!(too_deep(&chained(at_limit + 1)));
    }

    #[test]
    fn huge_chains_are_refused_without_overflowing_the_stack() {
        // Each as long as the length limit allows: refused as too deep, never a crash.
        let fill = |unit: &str, tail: &str| {
            let n = (MAX_LEN - tail.len()) / unit.len();
            format!("{}{tail}", unit.repeat(n))
        };
        for s in [
            fill("a pr and ", "a pr"),
            fill("a pr or ", "a pr"),
            fill("a[x pr].", "a pr"),
            fill("a[", "a pr"),
            fill("not (", "a pr"),
            fill("(", "a pr"),
        ] {
            assert!(s.len() <= MAX_LEN);
            assert!(too_deep(&s), "{}…", &s[..40]);
        }
    }
}
