//! The `rules:if` / `only:variables` / `workflow:rules:if` expression language: a lexer, a
//! precedence-climbing parser and an evaluator that follow GitLab's `Gitlab::Ci::Pipeline::Expression`.
//!
//! Values are null, strings and regular expressions. `==`/`!=`/`=~`/`!~` bind tighter than `&&`,
//! which binds tighter than `||`. `&&`/`||` return one of their operands (Ruby semantics) and the
//! final result is true iff it is "present": not null/false and not an empty or whitespace-only
//! string (Ruby's `present?`). Statements are limited to 100 tokens like GitLab's lexer.
//!
//! `${VAR}` is refused as GitLab's lexer refuses it (it is variable syntax, not expression
//! syntax). Deliberate differences from GitLab: `""` (empty string literal) is accepted; a one-character regex such as `/a/` is accepted; and `$UNDEFINED =~ /re/`
//! is false even when `/re/` matches the empty string (GitLab would match against "").

use std::collections::BTreeMap;

use regex::Regex;

use crate::pattern;

const MAX_TOKENS: usize = 100;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Var(String),
    Str(String),
    /// Regex body (slashes unescaped) and flags.
    Regex(String, String),
    Null,
    Eq,
    Ne,
    Match,
    NoMatch,
    And,
    Or,
    LParen,
    RParen,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Match,
    NoMatch,
    And,
    Or,
}

#[derive(Debug, Clone)]
enum Node {
    Var(String),
    Str(String),
    Regex(Regex),
    Null,
    Binary(Op, Box<Node>, Box<Node>),
}

/// A parsed, syntactically valid expression.
#[derive(Debug, Clone)]
pub(crate) struct Expression {
    root: Node,
}

/// An evaluated operand (Ruby: nil, String, Regexp, true/false).
#[derive(Debug, Clone)]
enum Val {
    Null,
    Str(String),
    Regex(Regex),
    Bool(bool),
}

impl Expression {
    /// Parses an expression; the error text says what is wrong (for logs; users see GitLab's
    /// generic "invalid expression syntax").
    pub(crate) fn parse(source: &str) -> Result<Expression, String> {
        let tokens = lex(source)?;
        if tokens.is_empty() {
            return Err("Empty expression".to_string());
        }
        let mut parser = Parser { tokens, pos: 0 };
        let root = parser.parse_or()?;
        if parser.pos != parser.tokens.len() {
            return Err("Unreachable nodes in parse tree".to_string());
        }
        Ok(Expression { root })
    }

    /// Evaluates against the visible variables; undefined variables are null.
    pub(crate) fn evaluate(&self, vars: &BTreeMap<String, String>) -> bool {
        present(&eval(&self.root, vars))
    }
}

fn lex(source: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    loop {
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        let Some(&c) = chars.get(i) else {
            return Ok(tokens);
        };
        if tokens.len() >= MAX_TOKENS {
            return Err("Too many tokens!".to_string());
        }
        let next = chars.get(i + 1).copied();
        let (token, len) = match (c, next) {
            ('(', _) => (Token::LParen, 1),
            (')', _) => (Token::RParen, 1),
            ('=', Some('=')) => (Token::Eq, 2),
            ('=', Some('~')) => (Token::Match, 2),
            ('!', Some('=')) => (Token::Ne, 2),
            ('!', Some('~')) => (Token::NoMatch, 2),
            ('&', Some('&')) => (Token::And, 2),
            ('|', Some('|')) => (Token::Or, 2),
            ('$', _) => lex_variable(&chars, i)?,
            ('"' | '\'', _) => lex_string(&chars, i, c)?,
            ('/', _) => lex_regex(&chars, i)?,
            ('n', _) if chars.get(i..i + 4) == Some(&['n', 'u', 'l', 'l']) => (Token::Null, 4),
            _ => return Err("Unknown lexeme found!".to_string()),
        };
        tokens.push(token);
        i += len;
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `$NAME`; returns the token and the number of chars consumed.
fn lex_variable(chars: &[char], start: usize) -> Result<(Token, usize), String> {
    // GitLab's `Lexeme::Variable` is `\$(?<name>\w+)`: `${NAME}` is not an expression.
    let name_start = start + 1;
    let mut end = name_start;
    while chars.get(end).copied().is_some_and(is_word) {
        end += 1;
    }
    if end == name_start {
        return Err("Unknown lexeme found!".to_string());
    }
    let name: String = chars
        .get(name_start..end)
        .unwrap_or_default()
        .iter()
        .collect();
    Ok((Token::Var(name), end - start))
}

/// A quoted string without escapes: everything up to the next identical quote.
fn lex_string(chars: &[char], start: usize, quote: char) -> Result<(Token, usize), String> {
    let rest = chars.get(start + 1..).unwrap_or_default();
    let close = rest
        .iter()
        .position(|&c| c == quote)
        .ok_or_else(|| "Unterminated string".to_string())?;
    let text: String = rest.get(..close).unwrap_or_default().iter().collect();
    Ok((Token::Str(text), close + 2))
}

/// `/body/flags`: the body ends at the first slash not preceded by a backslash.
fn lex_regex(chars: &[char], start: usize) -> Result<(Token, usize), String> {
    let mut i = start + 1;
    let mut body = String::new();
    loop {
        match chars.get(i) {
            None => return Err("Unterminated regular expression".to_string()),
            Some('\\') => {
                match chars.get(i + 1) {
                    // GitLab unescapes `\/` before handing the pattern to RE2.
                    Some('/') => body.push('/'),
                    Some(&other) => {
                        body.push('\\');
                        body.push(other);
                    }
                    None => return Err("Unterminated regular expression".to_string()),
                }
                i += 2;
            }
            Some('/') => break,
            Some(&c) => {
                body.push(c);
                i += 1;
            }
        }
    }
    if body.is_empty() {
        return Err("Empty regular expression".to_string());
    }
    i += 1;
    let mut flags = String::new();
    while let Some(&c) = chars.get(i).filter(|c| "ismU".contains(**c)) {
        flags.push(c);
        i += 1;
    }
    if pattern::compile(&body, &flags).is_err() {
        return Err("Invalid regular expression!".to_string());
    }
    Ok((Token::Regex(body, flags), i - start))
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn parse_or(&mut self) -> Result<Node, String> {
        let mut left = self.parse_and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            let right = self.parse_and()?;
            left = Node::Binary(Op::Or, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Node, String> {
        let mut left = self.parse_comparison()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            let right = self.parse_comparison()?;
            left = Node::Binary(Op::And, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_comparison(&mut self) -> Result<Node, String> {
        let mut left = self.parse_primary()?;
        loop {
            let op = match self.peek() {
                Some(Token::Eq) => Op::Eq,
                Some(Token::Ne) => Op::Ne,
                Some(Token::Match) => Op::Match,
                Some(Token::NoMatch) => Op::NoMatch,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.parse_primary()?;
            left = Node::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn parse_primary(&mut self) -> Result<Node, String> {
        let token = self
            .peek()
            .cloned()
            .ok_or_else(|| "Missing operand".to_string())?;
        self.pos += 1;
        match token {
            Token::Var(name) => Ok(Node::Var(name)),
            Token::Str(text) => Ok(Node::Str(text)),
            Token::Null => Ok(Node::Null),
            Token::Regex(body, flags) => pattern::compile(&body, &flags)
                .map(Node::Regex)
                .map_err(|_| "Invalid regular expression!".to_string()),
            Token::LParen => {
                let inner = self.parse_or()?;
                if self.peek() != Some(&Token::RParen) {
                    return Err("Unmatched parenthesis".to_string());
                }
                self.pos += 1;
                Ok(inner)
            }
            _ => Err("Unexpected operator".to_string()),
        }
    }
}

fn eval(node: &Node, vars: &BTreeMap<String, String>) -> Val {
    match node {
        Node::Var(name) => vars.get(name).map_or(Val::Null, |v| Val::Str(v.clone())),
        Node::Str(text) => Val::Str(text.clone()),
        Node::Regex(re) => Val::Regex(re.clone()),
        Node::Null => Val::Null,
        Node::Binary(Op::And, l, r) => {
            let left = eval(l, vars);
            if truthy(&left) {
                eval(r, vars)
            } else {
                left
            }
        }
        Node::Binary(Op::Or, l, r) => {
            let left = eval(l, vars);
            if truthy(&left) {
                left
            } else {
                eval(r, vars)
            }
        }
        Node::Binary(op, l, r) => {
            let (left, right) = (eval(l, vars), eval(r, vars));
            Val::Bool(match op {
                Op::Eq => equals(&left, &right),
                Op::Ne => !equals(&left, &right),
                Op::Match => matches(&left, &right),
                _ => !matches(&left, &right),
            })
        }
    }
}

/// Ruby truthiness: only nil and false are falsy (an empty string is truthy inside `&&`).
fn truthy(v: &Val) -> bool {
    !matches!(v, Val::Null | Val::Bool(false))
}

/// Ruby `present?` on the final value.
fn present(v: &Val) -> bool {
    match v {
        Val::Null => false,
        Val::Bool(b) => *b,
        Val::Str(s) => !s.trim().is_empty(),
        Val::Regex(_) => true,
    }
}

fn equals(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Regex(x), Val::Regex(y)) => x.as_str() == y.as_str(),
        _ => false,
    }
}

/// `=~`: the right side is a regex, or a string that is itself a `/…/` literal (a variable
/// holding a pattern), or else a plain string matched as a substring (Ruby `String#scan`).
fn matches(left: &Val, right: &Val) -> bool {
    let text = match left {
        Val::Null => return false,
        Val::Str(s) => s.clone(),
        Val::Bool(b) => b.to_string(),
        Val::Regex(re) => re.as_str().to_string(),
    };
    match right {
        Val::Null => false,
        Val::Regex(re) => re.is_match(&text),
        Val::Str(s) => match pattern::from_literal(s) {
            Some(Ok(re)) => re.is_match(&text),
            _ => text.contains(s.as_str()),
        },
        Val::Bool(b) => text.contains(&b.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_COMMIT_REF_NAME", "main"),
            ("CI_PIPELINE_SOURCE", "push"),
            ("EMPTY", ""),
            ("SPACES", "   "),
            ("DEPLOY", "true"),
            ("VERSION", "v1.2.3"),
            ("PATTERN", "/^v\\d+/"),
            ("PATTERN_I", "/^V/i"),
            ("PLAIN", "ain"),
            ("MSG", "fix: [skip tests] please"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn eval_str(src: &str) -> bool {
        Expression::parse(src)
            .unwrap_or_else(|e| panic!("{src:?} should parse: {e}"))
            .evaluate(&vars())
    }

    #[test]
    fn evaluation_cases() {
        let cases: &[(&str, bool)] = &[
            ("$CI_COMMIT_BRANCH", true),
            ("$UNDEFINED", false),
            ("$EMPTY", false),
            ("$SPACES", false),
            ("$CI_COMMIT_BRANCH == \"main\"", true),
            ("$CI_COMMIT_BRANCH == 'main'", true),
            ("$CI_COMMIT_BRANCH != \"main\"", false),
            ("$CI_COMMIT_BRANCH == \"develop\"", false),
            ("$UNDEFINED == null", true),
            ("$EMPTY == null", false),
            ("$EMPTY == \"\"", true),
            ("null == $UNDEFINED", true),
            ("$UNDEFINED != null", false),
            ("$CI_COMMIT_BRANCH =~ /^ma/", true),
            ("$CI_COMMIT_BRANCH =~ /^MA/", false),
            ("$CI_COMMIT_BRANCH =~ /^MA/i", true),
            ("$CI_COMMIT_BRANCH !~ /^ma/", false),
            ("$CI_COMMIT_BRANCH !~ /^feature/", true),
            ("$UNDEFINED =~ /.*/", false),
            ("$UNDEFINED =~ /^$/", false),
            ("$UNDEFINED !~ /x/", true),
            ("$VERSION =~ $PATTERN", true),
            ("$VERSION =~ $PATTERN_I", true),
            ("$CI_COMMIT_BRANCH =~ $PLAIN", true),
            ("$CI_COMMIT_BRANCH =~ $UNDEFINED", false),
            ("$MSG =~ /\\[skip tests\\]/", true),
            ("$VERSION =~ /v1\\.2/", true),
            ("$DEPLOY == \"true\" && $CI_COMMIT_BRANCH == \"main\"", true),
            (
                "$DEPLOY == \"false\" && $CI_COMMIT_BRANCH == \"main\"",
                false,
            ),
            (
                "$DEPLOY == \"false\" || $CI_COMMIT_BRANCH == \"main\"",
                true,
            ),
            ("$UNDEFINED || $EMPTY", false),
            ("$UNDEFINED || $DEPLOY", true),
            ("$EMPTY && $DEPLOY", true),
            // Ruby `||` returns its left operand when it is truthy, and "" is truthy in Ruby,
            // so GitLab ends with "" and the rule does not match.
            ("$EMPTY || $DEPLOY", false),
            ("$UNDEFINED && $DEPLOY", false),
            // && binds tighter than ||: true || (false && false)
            ("$DEPLOY || $UNDEFINED && $UNDEFINED", true),
            // Parentheses override it: (true || false) && false
            ("($DEPLOY || $UNDEFINED) && $UNDEFINED", false),
            ("(($CI_COMMIT_BRANCH == 'main'))", true),
            (
                "$CI_PIPELINE_SOURCE == \"push\" && ($CI_COMMIT_TAG || $CI_COMMIT_BRANCH =~ /^ma/)",
                true,
            ),
            ("\"main\" == $CI_COMMIT_BRANCH", true),
            ("'a' == 'a' == 'b'", false),
            ("/x/ == /x/", true),
            ("\"a/b\" =~ /a\\/b/", true),
            ("null", false),
            ("\"text\"", true),
        ];
        for (src, expected) in cases {
            assert_eq!(eval_str(src), *expected, "{src}");
        }
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "",
            "   ",
            "$",
            "${",
            "${FOO",
            "${FOO}",
            "${FOO} == 'x'",
            "$FOO ==",
            "== $FOO",
            "$FOO $BAR",
            "$FOO = 'x'",
            "$FOO == 'unterminated",
            "($FOO == 'x'",
            "$FOO == 'x')",
            "$FOO =~ /unterminated",
            "$FOO =~ /(/",
            "$FOO =~ //",
            "true",
            "$FOO && && $BAR",
            "()",
            "$FOO ! $BAR",
            "nul",
        ] {
            assert!(Expression::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn token_limit() {
        let long = vec!["$A"; 51].join(" || ");
        assert!(Expression::parse(&long).is_err());
        let ok = vec!["$A"; 50].join(" || ");
        assert!(Expression::parse(&ok).is_ok());
    }
}
