//! Policy strings compiled once at parse time: literal text, `*` and `?` wildcards, and
//! `${key}` policy variables filled in from the request when it is evaluated.
//!
//! A value substituted for a variable is always literal: a user named `*` must not be
//! able to widen `home/${aws:username}/*` into `home/*/*`.

use super::PolicyError;
use super::RequestContext;
use super::context::normalize_key;

/// Whether `*` and `?` are wildcards (`StringLike`, Action, Resource) or plain characters
/// (`StringEquals`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wildcards {
    Glob,
    Literal,
}

/// Whether `${...}` is a variable. AWS only recognises them in policies with
/// `"Version": "2012-10-17"`; in older or version-less policies they are literal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variables {
    Substitute,
    Literal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Case {
    Sensitive,
    Insensitive,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Lit(Box<str>),
    Var { key: Box<str>, default: Option<Box<str>> },
    Star,
    Question,
}

/// A compiled policy string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    tokens: Box<[Token]>,
    has_vars: bool,
}

/// A token with its variable already resolved.
#[derive(Debug, Clone, Copy)]
enum Piece<'a> {
    Lit(&'a str),
    Star,
    Question,
}

impl Template {
    pub(crate) fn parse(text: &str, wildcards: Wildcards, variables: Variables) -> Result<Template, PolicyError> {
        Ok(Template::from_tokens(tokenize(text, wildcards, variables)?))
    }

    /// Builds a template from tokens, merging neighbouring literals and repeated stars so the
    /// matcher sees the fewest pieces.
    pub(crate) fn from_tokens(tokens: Vec<Token>) -> Template {
        let mut merged: Vec<Token> = Vec::with_capacity(tokens.len());
        for token in tokens {
            match (merged.last_mut(), token) {
                (_, Token::Lit(text)) if text.is_empty() => {}
                (Some(Token::Lit(previous)), Token::Lit(text)) => {
                    *previous = format!("{previous}{text}").into_boxed_str();
                }
                (Some(Token::Star), Token::Star) => {}
                (_, token) => merged.push(token),
            }
        }
        let has_vars = merged.iter().any(|token| matches!(token, Token::Var { .. }));
        Template { tokens: merged.into_boxed_slice(), has_vars }
    }

    /// Whether `subject` matches. A variable the request cannot fill in matches nothing, so
    /// the template as a whole does not match.
    pub(crate) fn matches(&self, subject: &str, case: Case, ctx: &RequestContext) -> bool {
        if !self.has_vars {
            return match &*self.tokens {
                [] => subject.is_empty(),
                [Token::Star] => true,
                [Token::Lit(text)] => text_equal(text, subject, case),
                tokens => glob_match(tokens.len(), |index| static_piece(&tokens[index]), subject, case),
            };
        }
        let mut pieces = Vec::with_capacity(self.tokens.len());
        for token in &*self.tokens {
            pieces.push(match token {
                Token::Lit(text) => Piece::Lit(text),
                Token::Star => Piece::Star,
                Token::Question => Piece::Question,
                Token::Var { key, default } => match ctx.variable(key).or(default.as_deref()) {
                    Some(value) => Piece::Lit(value),
                    None => return false,
                },
            });
        }
        glob_match(pieces.len(), |index| pieces[index], subject, case)
    }

    pub(crate) fn into_tokens(self) -> Vec<Token> {
        self.tokens.into_vec()
    }
}

fn static_piece(token: &Token) -> Piece<'_> {
    match token {
        Token::Lit(text) => Piece::Lit(text),
        Token::Star => Piece::Star,
        Token::Question => Piece::Question,
        // Only templates without variables come here; an empty literal would still be safe.
        Token::Var { .. } => Piece::Lit(""),
    }
}

fn tokenize(text: &str, wildcards: Wildcards, variables: Variables) -> Result<Vec<Token>, PolicyError> {
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '$' if variables == Variables::Substitute && rest.starts_with('{') => {
                let Some((body, after)) = rest[1..].split_once('}') else {
                    return Err(PolicyError::InvalidVariable(text.to_owned(), "\"${\" without a closing \"}\""));
                };
                rest = after;
                match body {
                    // The escapes for characters that would otherwise be special.
                    "*" | "?" | "$" => literal.push_str(body),
                    _ => {
                        flush(&mut literal, &mut tokens);
                        tokens.push(parse_variable(body, text)?);
                    }
                }
            }
            '*' if wildcards == Wildcards::Glob => {
                flush(&mut literal, &mut tokens);
                tokens.push(Token::Star);
            }
            '?' if wildcards == Wildcards::Glob => {
                flush(&mut literal, &mut tokens);
                tokens.push(Token::Question);
            }
            _ => literal.push(c),
        }
    }
    flush(&mut literal, &mut tokens);
    Ok(tokens)
}

fn flush(literal: &mut String, tokens: &mut Vec<Token>) {
    if !literal.is_empty() {
        tokens.push(Token::Lit(std::mem::take(literal).into_boxed_str()));
    }
}

/// `aws:username` or, with a fallback for requests that lack the key,
/// `aws:username, 'anonymous'`.
fn parse_variable(body: &str, text: &str) -> Result<Token, PolicyError> {
    let (key, default) = match body.split_once(',') {
        None => (body.trim(), None),
        Some((key, default)) => {
            let default = default.trim();
            let Some(quoted) = default.strip_prefix('\'').and_then(|d| d.strip_suffix('\'')) else {
                return Err(PolicyError::InvalidVariable(text.to_owned(), "a default value must be in single quotes"));
            };
            (key.trim(), Some(quoted.into()))
        }
    };
    if key.is_empty() || key.contains(['$', '{']) {
        return Err(PolicyError::InvalidVariable(text.to_owned(), "expected ${key} such as ${aws:username}"));
    }
    Ok(Token::Var { key: normalize_key(key).into_boxed_str(), default })
}

fn text_equal(pattern: &str, subject: &str, case: Case) -> bool {
    match case {
        Case::Sensitive => pattern == subject,
        Case::Insensitive => {
            pattern.eq_ignore_ascii_case(subject)
                || (!(pattern.is_ascii() && subject.is_ascii())
                    && pattern.chars().flat_map(char::to_lowercase).eq(subject.chars().flat_map(char::to_lowercase)))
        }
    }
}

fn chars_equal(a: char, b: char, case: Case) -> bool {
    a == b
        || (case == Case::Insensitive
            && (a.eq_ignore_ascii_case(&b)
                || (!(a.is_ascii() && b.is_ascii()) && a.to_lowercase().eq(b.to_lowercase()))))
}

/// A position in the pattern: which piece, and how far into it when it is a literal.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    piece: usize,
    offset: usize,
}

/// Glob matching with one remembered star and no allocation: on a mismatch, the last star
/// takes one more character and matching resumes after it. Linear in the common cases and
/// O(pattern × subject) at worst, which bounded policy and key sizes keep small.
fn glob_match<'a>(len: usize, piece: impl Fn(usize) -> Piece<'a>, subject: &str, case: Case) -> bool {
    // Skips exhausted literals so the cursor always points at a real unit or the end.
    let settle = |mut at: Cursor| {
        while at.piece < len {
            match piece(at.piece) {
                Piece::Lit(text) if at.offset >= text.len() => at = Cursor { piece: at.piece + 1, offset: 0 },
                _ => break,
            }
        }
        at
    };
    let next_piece = |at: Cursor| settle(Cursor { piece: at.piece + 1, offset: 0 });

    let mut at = settle(Cursor { piece: 0, offset: 0 });
    let mut position = 0;
    let mut after_star: Option<(Cursor, usize)> = None;
    loop {
        let Some(c) = subject[position..].chars().next() else {
            while at.piece < len && matches!(piece(at.piece), Piece::Star) {
                at = next_piece(at);
            }
            return at.piece >= len;
        };
        if at.piece < len {
            match piece(at.piece) {
                Piece::Star => {
                    at = next_piece(at);
                    after_star = Some((at, position));
                    continue;
                }
                Piece::Question => {
                    at = next_piece(at);
                    position += c.len_utf8();
                    continue;
                }
                Piece::Lit(text) => {
                    if let Some(p) = text[at.offset..].chars().next()
                        && chars_equal(p, c, case)
                    {
                        at = settle(Cursor { piece: at.piece, offset: at.offset + p.len_utf8() });
                        position += c.len_utf8();
                        continue;
                    }
                }
            }
        }
        let Some((star_next, star_position)) = after_star else { return false };
        // The star swallows one more character; `star_position` is never past `position`.
        let Some(swallowed) = subject[star_position..].chars().next() else { return false };
        let star_position = star_position + swallowed.len_utf8();
        after_star = Some((star_next, star_position));
        at = star_next;
        position = star_position;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(pattern: &str, subject: &str) -> bool {
        let template = Template::parse(pattern, Wildcards::Glob, Variables::Substitute).unwrap();
        template.matches(subject, Case::Sensitive, &RequestContext::new("s3:GetObject", "*"))
    }

    #[test]
    fn wildcards() {
        let cases = [
            ("*", "", true),
            ("*", "anything/at/all", true),
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("abc", "ab", false),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ba", false),
            ("*c", "abc", true),
            ("*c", "abcd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "aéc", true),
            ("??", "é", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("a*bc", "abcbc", true),
            ("a**c", "abc", true),
            ("*/*", "bucket/key", true),
            ("*/*", "bucket", false),
            ("bucket/*", "bucket/", true),
            ("bucket/?*", "bucket/", false),
            ("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            ("", "", true),
            ("", "x", false),
        ];
        for (pattern, subject, expected) in cases {
            assert_eq!(glob(pattern, subject), expected, "{pattern:?} vs {subject:?}");
        }
    }

    #[test]
    fn literal_mode_keeps_wildcard_characters() {
        let template = Template::parse("a*c", Wildcards::Literal, Variables::Substitute).unwrap();
        let ctx = RequestContext::new("s3:GetObject", "*");
        assert!(template.matches("a*c", Case::Sensitive, &ctx));
        assert!(!template.matches("abc", Case::Sensitive, &ctx));
    }

    #[test]
    fn case_insensitive_matching() {
        let template = Template::parse("s3:Get*", Wildcards::Glob, Variables::Literal).unwrap();
        let ctx = RequestContext::new("s3:GetObject", "*");
        assert!(template.matches("S3:getobject", Case::Insensitive, &ctx));
        assert!(!template.matches("S3:getobject", Case::Sensitive, &ctx));
        let template = Template::parse("Straße", Wildcards::Literal, Variables::Literal).unwrap();
        assert!(template.matches("STRAẞE", Case::Insensitive, &ctx));
        assert!(!template.matches("STRASSE", Case::Insensitive, &ctx));
    }

    #[test]
    fn variables_are_substituted_literally() {
        let template = Template::parse("home/${aws:username}/*", Wildcards::Glob, Variables::Substitute).unwrap();
        let alice = RequestContext::new("s3:GetObject", "*").with_value("aws:username", "alice");
        let star = RequestContext::new("s3:GetObject", "*").with_value("aws:username", "*");
        let nobody = RequestContext::new("s3:GetObject", "*");
        assert!(template.matches("home/alice/notes.txt", Case::Sensitive, &alice));
        assert!(!template.matches("home/bob/notes.txt", Case::Sensitive, &alice));
        assert!(!template.matches("home/bob/notes.txt", Case::Sensitive, &star));
        assert!(template.matches("home/*/notes.txt", Case::Sensitive, &star));
        assert!(!template.matches("home//notes.txt", Case::Sensitive, &nobody));
    }

    #[test]
    fn escapes_defaults_and_versionless_literals() {
        let ctx = RequestContext::new("s3:GetObject", "*");
        let escaped = Template::parse("a${*}b${?}c${$}", Wildcards::Glob, Variables::Substitute).unwrap();
        assert!(escaped.matches("a*b?c$", Case::Sensitive, &ctx));
        assert!(!escaped.matches("axbycz", Case::Sensitive, &ctx));
        let defaulted =
            Template::parse("home/${aws:username, 'guest'}/*", Wildcards::Glob, Variables::Substitute).unwrap();
        assert!(defaulted.matches("home/guest/x", Case::Sensitive, &ctx));
        let literal = Template::parse("home/${aws:username}", Wildcards::Glob, Variables::Literal).unwrap();
        assert!(literal.matches("home/${aws:username}", Case::Sensitive, &ctx));
    }

    #[test]
    fn malformed_variables_are_refused() {
        for text in ["a${aws:username", "${}", "${ , 'x'}", "${aws:username, guest}"] {
            assert!(
                matches!(
                    Template::parse(text, Wildcards::Glob, Variables::Substitute),
                    Err(PolicyError::InvalidVariable(..))
                ),
                "{text}"
            );
        }
    }
}
