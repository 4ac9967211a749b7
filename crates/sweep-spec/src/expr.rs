//! The small expression language of `sweep.where` and of derived axis values.
//!
//! Integers (64-bit, checked), strings and booleans; `+ - * / %`, comparisons, `in [..]`,
//! `&&`/`and`, `||`/`or`, `!`/`not`, and the functions `min`, `max`, `abs`, `ceil_div`,
//! `round_up` and `if(condition, then, else)` (which evaluates only the branch it takes). Names are resolved to slots and type-checked once, when the spec is validated, so
//! that evaluating a point is a walk over a small tree with no string lookups.

use std::fmt;
use std::sync::Arc;

/// A value an axis or an expression can take.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    Int(i64),
    Str(Arc<str>),
    Bool(bool),
}

impl Value {
    pub fn ty(&self) -> Type {
        match self {
            Value::Int(_) => Type::Int,
            Value::Str(_) => Type::Str,
            Value::Bool(_) => Type::Bool,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Str(s) => write!(f, "{s}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    Int,
    Str,
    Bool,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Int => "an integer",
            Type::Str => "a string",
            Type::Bool => "a boolean",
        })
    }
}

/// Why an expression was rejected when the spec was validated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("{message} at character {offset} of `{source_text}`")]
    Syntax { message: String, offset: usize, source_text: String },
    #[error("unknown name `{name}`")]
    UnknownName { name: String, suggestion: Option<String>, known: Vec<String> },
    #[error("unknown function `{name}`; the functions are min, max, abs, ceil_div, round_up, if")]
    UnknownFunction { name: String },
    #[error("`{function}` takes {expected} argument(s), got {got}")]
    Arity { function: &'static str, expected: usize, got: usize },
    #[error("{context} needs {expected}, but this is {found}")]
    Type { context: String, expected: Type, found: Type },
}

/// Why evaluating an expression for one point failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("`{name}` has no value here (its role is not part of this point's mode); guard it with a `mode == \"…\"` test")]
    Undefined { name: String },
    #[error("division by zero")]
    DivisionByZero,
    #[error("integer overflow")]
    Overflow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Function {
    Min,
    Max,
    Abs,
    CeilDiv,
    RoundUp,
    If,
}

impl Function {
    fn lookup(name: &str) -> Option<(Function, &'static str, usize)> {
        Some(match name {
            "min" => (Function::Min, "min", 2),
            "max" => (Function::Max, "max", 2),
            "abs" => (Function::Abs, "abs", 1),
            "ceil_div" => (Function::CeilDiv, "ceil_div", 2),
            "round_up" => (Function::RoundUp, "round_up", 2),
            "if" => (Function::If, "if", 3),
            _ => return None,
        })
    }
}

/// A parsed expression whose names are still text.
#[derive(Clone, Debug, PartialEq)]
enum Ast {
    Lit(Value),
    Name(String),
    Neg(Box<Ast>),
    Not(Box<Ast>),
    Binary(BinaryOp, Box<Ast>, Box<Ast>),
    In(Box<Ast>, Vec<Ast>),
    Call(String, Vec<Ast>),
}

/// A parsed, resolved, type-checked expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    source: String,
    root: Node,
    ty: Type,
    names: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Lit(Value),
    Slot(usize, Arc<str>),
    Neg(Box<Node>),
    Not(Box<Node>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
    In(Box<Node>, Vec<Node>),
    Call(Function, Vec<Node>),
}

/// What a name refers to: its slot in the point's value array and its type.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    pub slot: usize,
    pub ty: Type,
}

impl Expr {
    /// Parses `source` and resolves each name with `resolve`, which returns `Err(known names)`
    /// for a name it does not know (used to suggest the closest).
    pub fn compile(
        source: &str,
        resolve: &dyn Fn(&str) -> Result<Binding, Vec<String>>,
    ) -> Result<Expr, ExprError> {
        let ast = Parser::new(source).parse()?;
        let mut names = Vec::new();
        let (root, ty) = lower(&ast, resolve, &mut names)?;
        names.sort_unstable();
        names.dedup();
        Ok(Expr { source: source.to_owned(), root, ty, names })
    }

    pub fn ty(&self) -> Type {
        self.ty
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The slots this expression reads.
    pub fn slots(&self) -> &[usize] {
        &self.names
    }

    pub fn eval(&self, slots: &[Option<Value>]) -> Result<Value, EvalError> {
        eval(&self.root, slots)
    }
}

fn lower(
    ast: &Ast,
    resolve: &dyn Fn(&str) -> Result<Binding, Vec<String>>,
    names: &mut Vec<usize>,
) -> Result<(Node, Type), ExprError> {
    let expect = |context: &str, expected: Type, found: Type| {
        if expected == found {
            Ok(())
        } else {
            Err(ExprError::Type { context: context.to_owned(), expected, found })
        }
    };
    Ok(match ast {
        Ast::Lit(value) => (Node::Lit(value.clone()), value.ty()),
        Ast::Name(name) => match resolve(name) {
            Ok(binding) => {
                names.push(binding.slot);
                (Node::Slot(binding.slot, Arc::from(name.as_str())), binding.ty)
            }
            Err(known) => {
                let suggestion = crate::closest(name, known.iter().map(String::as_str));
                return Err(ExprError::UnknownName { name: name.clone(), suggestion, known });
            }
        },
        Ast::Neg(inner) => {
            let (node, ty) = lower(inner, resolve, names)?;
            expect("`-`", Type::Int, ty)?;
            (Node::Neg(Box::new(node)), Type::Int)
        }
        Ast::Not(inner) => {
            let (node, ty) = lower(inner, resolve, names)?;
            expect("`!`", Type::Bool, ty)?;
            (Node::Not(Box::new(node)), Type::Bool)
        }
        Ast::Binary(op, left, right) => {
            let (l, lt) = lower(left, resolve, names)?;
            let (r, rt) = lower(right, resolve, names)?;
            let ty = match op {
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => {
                    expect("arithmetic", Type::Int, lt)?;
                    expect("arithmetic", Type::Int, rt)?;
                    Type::Int
                }
                BinaryOp::Eq | BinaryOp::Ne => {
                    expect("the right side of a comparison", lt, rt)?;
                    Type::Bool
                }
                BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                    expect("an ordering comparison", Type::Int, lt)?;
                    expect("an ordering comparison", Type::Int, rt)?;
                    Type::Bool
                }
                BinaryOp::And | BinaryOp::Or => {
                    expect("`&&` and `||`", Type::Bool, lt)?;
                    expect("`&&` and `||`", Type::Bool, rt)?;
                    Type::Bool
                }
            };
            (Node::Binary(*op, Box::new(l), Box::new(r)), ty)
        }
        Ast::In(needle, list) => {
            let (n, nt) = lower(needle, resolve, names)?;
            let mut items = Vec::with_capacity(list.len());
            for item in list {
                let (node, ty) = lower(item, resolve, names)?;
                expect("an item of an `in` list", nt, ty)?;
                items.push(node);
            }
            (Node::In(Box::new(n), items), Type::Bool)
        }
        Ast::Call(name, args) => {
            let (function, canonical, arity) =
                Function::lookup(name).ok_or_else(|| ExprError::UnknownFunction { name: name.clone() })?;
            if args.len() != arity {
                return Err(ExprError::Arity { function: canonical, expected: arity, got: args.len() });
            }
            let mut nodes = Vec::with_capacity(args.len());
            let mut types = Vec::with_capacity(args.len());
            for arg in args {
                let (node, ty) = lower(arg, resolve, names)?;
                nodes.push(node);
                types.push(ty);
            }
            let ty = if function == Function::If {
                expect("the condition of `if`", Type::Bool, types[0])?;
                expect("the else branch of `if`", types[1], types[2])?;
                types[1]
            } else {
                for ty in types {
                    expect(&format!("`{canonical}`"), Type::Int, ty)?;
                }
                Type::Int
            };
            (Node::Call(function, nodes), ty)
        }
    })
}

fn eval(node: &Node, slots: &[Option<Value>]) -> Result<Value, EvalError> {
    let int = |node: &Node| -> Result<i64, EvalError> {
        match eval(node, slots)? {
            Value::Int(v) => Ok(v),
            // Type checking at compile time rules this out; answer 0 rather than panic.
            _ => Ok(0),
        }
    };
    let boolean =
        |node: &Node| -> Result<bool, EvalError> { Ok(matches!(eval(node, slots)?, Value::Bool(true))) };
    Ok(match node {
        Node::Lit(value) => value.clone(),
        Node::Slot(slot, name) => match slots.get(*slot) {
            Some(Some(value)) => value.clone(),
            _ => return Err(EvalError::Undefined { name: name.to_string() }),
        },
        Node::Neg(inner) => Value::Int(int(inner)?.checked_neg().ok_or(EvalError::Overflow)?),
        Node::Not(inner) => Value::Bool(!boolean(inner)?),
        Node::Binary(BinaryOp::And, l, r) => Value::Bool(boolean(l)? && boolean(r)?),
        Node::Binary(BinaryOp::Or, l, r) => Value::Bool(boolean(l)? || boolean(r)?),
        Node::Binary(BinaryOp::Eq, l, r) => Value::Bool(eval(l, slots)? == eval(r, slots)?),
        Node::Binary(BinaryOp::Ne, l, r) => Value::Bool(eval(l, slots)? != eval(r, slots)?),
        Node::Binary(op, l, r) => {
            let (a, b) = (int(l)?, int(r)?);
            match op {
                BinaryOp::Add => Value::Int(a.checked_add(b).ok_or(EvalError::Overflow)?),
                BinaryOp::Sub => Value::Int(a.checked_sub(b).ok_or(EvalError::Overflow)?),
                BinaryOp::Mul => Value::Int(a.checked_mul(b).ok_or(EvalError::Overflow)?),
                BinaryOp::Div => Value::Int(checked_div(a, b)?),
                BinaryOp::Rem => {
                    if b == 0 {
                        return Err(EvalError::DivisionByZero);
                    }
                    Value::Int(a.checked_rem(b).ok_or(EvalError::Overflow)?)
                }
                BinaryOp::Lt => Value::Bool(a < b),
                BinaryOp::Le => Value::Bool(a <= b),
                BinaryOp::Gt => Value::Bool(a > b),
                BinaryOp::Ge => Value::Bool(a >= b),
                BinaryOp::And | BinaryOp::Or | BinaryOp::Eq | BinaryOp::Ne => {
                    unreachable!("handled above")
                }
            }
        }
        Node::In(needle, items) => {
            let needle = eval(needle, slots)?;
            for item in items {
                if eval(item, slots)? == needle {
                    return Ok(Value::Bool(true));
                }
            }
            Value::Bool(false)
        }
        Node::Call(Function::If, args) => {
            let branch = if boolean(&args[0])? { &args[1] } else { &args[2] };
            eval(branch, slots)?
        }
        Node::Call(function, args) => {
            let a = int(&args[0])?;
            match function {
                Function::If => unreachable!("handled above"),
                Function::Abs => Value::Int(a.checked_abs().ok_or(EvalError::Overflow)?),
                Function::Min => Value::Int(a.min(int(&args[1])?)),
                Function::Max => Value::Int(a.max(int(&args[1])?)),
                Function::CeilDiv => Value::Int(ceil_div(a, int(&args[1])?)?),
                Function::RoundUp => {
                    let m = int(&args[1])?;
                    Value::Int(ceil_div(a, m)?.checked_mul(m).ok_or(EvalError::Overflow)?)
                }
            }
        }
    })
}

fn checked_div(a: i64, b: i64) -> Result<i64, EvalError> {
    if b == 0 {
        return Err(EvalError::DivisionByZero);
    }
    a.checked_div(b).ok_or(EvalError::Overflow)
}

fn ceil_div(a: i64, b: i64) -> Result<i64, EvalError> {
    let q = checked_div(a, b)?;
    // Round towards positive infinity when the division is inexact.
    Ok(if (a % b != 0) && ((a < 0) == (b < 0)) { q + 1 } else { q })
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Int(i64),
    Str(String),
    Ident(String),
    Op(&'static str),
    End,
}

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<(Token, usize)>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(source: &'a str) -> Self {
        Self { source, tokens: Vec::new(), pos: 0 }
    }

    fn error(&self, message: impl Into<String>, offset: usize) -> ExprError {
        ExprError::Syntax { message: message.into(), offset, source_text: self.source.to_owned() }
    }

    fn tokenize(&mut self) -> Result<(), ExprError> {
        const OPERATORS: [&str; 20] = [
            "&&", "||", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "(", ")", "[", "]", ",",
            "!", "=",
        ];
        let bytes = self.source.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if c.is_ascii_whitespace() {
                i += 1;
            } else if c.is_ascii_digit() {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
                    i += 1;
                }
                let digits: String = self.source[start..i].chars().filter(|c| *c != '_').collect();
                let value =
                    digits.parse::<i64>().map_err(|_| self.error("integer literal out of range", start))?;
                self.tokens.push((Token::Int(value), start));
            } else if c.is_ascii_alphabetic() || c == b'_' {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
                {
                    i += 1;
                }
                self.tokens.push((Token::Ident(self.source[start..i].to_owned()), start));
            } else if c == b'"' || c == b'\'' {
                let start = i;
                let end = self.source[i + 1..]
                    .find(c as char)
                    .ok_or_else(|| self.error("unterminated string", start))?;
                let text = self.source[i + 1..i + 1 + end].to_owned();
                i += end + 2;
                self.tokens.push((Token::Str(text), start));
            } else {
                let rest = &self.source[i..];
                let op = OPERATORS.iter().find(|op| rest.starts_with(**op)).ok_or_else(|| {
                    self.error(format!("unexpected character `{}`", rest.chars().next().unwrap_or(' ')), i)
                })?;
                if *op == "=" {
                    return Err(self.error("`=` is not an operator; compare with `==`", i));
                }
                self.tokens.push((Token::Op(op), i));
                i += op.len();
            }
        }
        self.tokens.push((Token::End, self.source.len()));
        Ok(())
    }

    fn peek(&self) -> &Token {
        &self.tokens[self.pos].0
    }

    fn offset(&self) -> usize {
        self.tokens[self.pos].1
    }

    fn bump(&mut self) -> Token {
        let token = self.tokens[self.pos].0.clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Token::Op(o) if *o == op) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Token::Ident(w) if w == word) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_op(&mut self, op: &str) -> Result<(), ExprError> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(self.error(format!("expected `{op}`"), self.offset()))
        }
    }

    fn parse(mut self) -> Result<Ast, ExprError> {
        self.tokenize()?;
        if self.tokens.len() == 1 {
            return Err(self.error("empty expression", 0));
        }
        let ast = self.or()?;
        if *self.peek() != Token::End {
            return Err(self.error("unexpected text after the expression", self.offset()));
        }
        Ok(ast)
    }

    fn or(&mut self) -> Result<Ast, ExprError> {
        let mut left = self.and()?;
        while self.eat_op("||") || self.eat_word("or") {
            left = Ast::Binary(BinaryOp::Or, Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Ast, ExprError> {
        let mut left = self.not()?;
        while self.eat_op("&&") || self.eat_word("and") {
            left = Ast::Binary(BinaryOp::And, Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Ast, ExprError> {
        if self.eat_op("!") || self.eat_word("not") {
            return Ok(Ast::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Ast, ExprError> {
        let left = self.sum()?;
        const COMPARISONS: [(&str, BinaryOp); 6] = [
            ("==", BinaryOp::Eq),
            ("!=", BinaryOp::Ne),
            ("<=", BinaryOp::Le),
            (">=", BinaryOp::Ge),
            ("<", BinaryOp::Lt),
            (">", BinaryOp::Gt),
        ];
        for (text, op) in COMPARISONS {
            if self.eat_op(text) {
                return Ok(Ast::Binary(op, Box::new(left), Box::new(self.sum()?)));
            }
        }
        if self.eat_word("in") {
            self.expect_op("[")?;
            let mut items = Vec::new();
            if !self.eat_op("]") {
                loop {
                    items.push(self.sum()?);
                    if self.eat_op("]") {
                        break;
                    }
                    self.expect_op(",")?;
                }
            }
            return Ok(Ast::In(Box::new(left), items));
        }
        Ok(left)
    }

    fn sum(&mut self) -> Result<Ast, ExprError> {
        let mut left = self.product()?;
        loop {
            let op = if self.eat_op("+") {
                BinaryOp::Add
            } else if self.eat_op("-") {
                BinaryOp::Sub
            } else {
                return Ok(left);
            };
            left = Ast::Binary(op, Box::new(left), Box::new(self.product()?));
        }
    }

    fn product(&mut self) -> Result<Ast, ExprError> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat_op("*") {
                BinaryOp::Mul
            } else if self.eat_op("/") {
                BinaryOp::Div
            } else if self.eat_op("%") {
                BinaryOp::Rem
            } else {
                return Ok(left);
            };
            left = Ast::Binary(op, Box::new(left), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Ast, ExprError> {
        if self.eat_op("-") {
            return Ok(Ast::Neg(Box::new(self.unary()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Ast, ExprError> {
        let offset = self.offset();
        match self.bump() {
            Token::Int(v) => Ok(Ast::Lit(Value::Int(v))),
            Token::Str(s) => Ok(Ast::Lit(Value::Str(Arc::from(s)))),
            Token::Ident(word) => match word.as_str() {
                "true" => Ok(Ast::Lit(Value::Bool(true))),
                "false" => Ok(Ast::Lit(Value::Bool(false))),
                "and" | "or" | "not" | "in" => {
                    Err(self.error(format!("expected a value, found `{word}`"), offset))
                }
                _ if self.eat_op("(") => {
                    let mut args = Vec::new();
                    if !self.eat_op(")") {
                        loop {
                            args.push(self.or()?);
                            if self.eat_op(")") {
                                break;
                            }
                            self.expect_op(",")?;
                        }
                    }
                    Ok(Ast::Call(word, args))
                }
                _ => Ok(Ast::Name(word)),
            },
            Token::Op("(") => {
                let inner = self.or()?;
                self.expect_op(")")?;
                Ok(inner)
            }
            Token::End => Err(self.error("the expression ends too early", offset)),
            Token::Op(op) => Err(self.error(format!("expected a value, found `{op}`"), offset)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(name: &str) -> Result<Binding, Vec<String>> {
        match name {
            "gen.tp" => Ok(Binding { slot: 0, ty: Type::Int }),
            "gen.batch" => Ok(Binding { slot: 1, ty: Type::Int }),
            "mode" => Ok(Binding { slot: 2, ty: Type::Str }),
            "ctx.tp" => Ok(Binding { slot: 3, ty: Type::Int }),
            _ => Err(vec!["gen.tp".into(), "gen.batch".into(), "mode".into(), "ctx.tp".into()]),
        }
    }

    fn run(source: &str) -> Result<Value, EvalError> {
        let slots = [Some(Value::Int(8)), Some(Value::Int(256)), Some(Value::Str("agg".into())), None];
        Expr::compile(source, &names).expect("compiles").eval(&slots)
    }

    #[test]
    fn arithmetic_follows_usual_precedence() {
        assert_eq!(run("1 + 2 * 3 - 4 / 2"), Ok(Value::Int(5)));
        assert_eq!(run("-(2 + 3) % 4"), Ok(Value::Int(-1)));
        assert_eq!(run("gen.tp * gen.batch"), Ok(Value::Int(2048)));
    }

    #[test]
    fn max_num_tokens_formula_of_the_dynamo_sweep() {
        // layouts.md case 3: ceil64((mtp + 1) * batch + ISL + 128) with batch 1024, mtp 0, ISL 8150.
        assert_eq!(run("round_up((0 + 1) * 1024 + 8150 + 128, 64)"), Ok(Value::Int(9344)));
        assert_eq!(run("ceil_div(7, 2)"), Ok(Value::Int(4)));
        assert_eq!(run("ceil_div(-7, 2)"), Ok(Value::Int(-3)));
        assert_eq!(run("min(3, gen.tp) + max(1, 2) + abs(-4)"), Ok(Value::Int(9)));
        assert_eq!(run("if(mode == 'agg', gen.batch, ctx.tp)"), Ok(Value::Int(256)));
        assert_eq!(run("if(mode == 'x', 1, ctx.tp)"), Err(EvalError::Undefined { name: "ctx.tp".into() }));
    }

    #[test]
    fn logic_comparisons_and_membership() {
        assert_eq!(run("gen.tp >= 8 && gen.batch < 512"), Ok(Value::Bool(true)));
        assert_eq!(run("not gen.tp in [1, 2, 4] or false"), Ok(Value::Bool(true)));
        assert_eq!(run("mode == 'agg' and gen.tp != 8"), Ok(Value::Bool(false)));
    }

    #[test]
    fn short_circuit_guards_names_of_absent_roles() {
        assert_eq!(run("mode == \"agg\" || ctx.tp > 1"), Ok(Value::Bool(true)));
        assert_eq!(
            run("mode == \"disagg\" || ctx.tp > 1"),
            Err(EvalError::Undefined { name: "ctx.tp".into() })
        );
    }

    #[test]
    fn runtime_faults_are_errors_not_panics() {
        assert_eq!(run("gen.tp / (gen.tp - 8)"), Err(EvalError::DivisionByZero));
        assert_eq!(run("gen.tp % 0"), Err(EvalError::DivisionByZero));
        assert_eq!(run("9223372036854775807 + 1"), Err(EvalError::Overflow));
        assert_eq!(run("round_up(1, 0)"), Err(EvalError::DivisionByZero));
    }

    #[test]
    fn compile_errors_name_the_problem() {
        let err = |s: &str| Expr::compile(s, &names).expect_err(s);
        assert!(
            matches!(err("gen.tpp > 1"), ExprError::UnknownName { suggestion: Some(s), .. } if s == "gen.tp")
        );
        assert!(matches!(err("gen.tp = 4"), ExprError::Syntax { offset: 7, .. }));
        assert!(matches!(err("(gen.tp"), ExprError::Syntax { .. }));
        assert!(matches!(err(""), ExprError::Syntax { .. }));
        assert!(matches!(err("gen.tp + 'x'"), ExprError::Type { .. }));
        assert!(matches!(err("mode > 1"), ExprError::Type { .. }));
        assert!(matches!(err("floor(1)"), ExprError::UnknownFunction { .. }));
        assert!(matches!(err("min(1)"), ExprError::Arity { .. }));
        assert!(matches!(err("1 2"), ExprError::Syntax { .. }));
        assert!(matches!(err("'open"), ExprError::Syntax { .. }));
        assert!(matches!(err("if(1, 2, 3)"), ExprError::Type { .. }));
        assert!(matches!(err("if(true, 2, 'x')"), ExprError::Type { .. }));
    }

    #[test]
    fn records_the_slots_it_reads() {
        let expr = Expr::compile("gen.batch + gen.tp * gen.batch", &names).expect("compiles");
        assert_eq!(expr.slots(), &[0, 1]);
        assert_eq!(expr.ty(), Type::Int);
    }
}
