//! Rules as data. Each rule is a CEL expression over the feature set, parsed by the `cel`
//! crate's parser and then type-checked and compiled here into a small typed tree that
//! reads the feature vector directly.
//!
//! Why not the `cel` interpreter itself: it resolves every identifier through a string-keyed
//! context built per evaluation and boxes every value; `xiezhi bench decide --interpreter cel`
//! measures it against this compiler (docs/BENCHMARKS.md). Compiling also gives the checks a
//! rule author needs at load time: unknown features and type errors name the rule.
//!
//! The accepted subset: int, uint, bool and string literals; features by name; `! && || ?:`;
//! `== != < <= > >=`; `+ - * / %` and unary minus on ints; `in` against a list literal;
//! `size(s)`, `s.startsWith(t)`, `s.endsWith(t)`, `s.contains(t)`; `int(b)` of a bool.
//! Integer overflow and division by zero are evaluation errors, as in CEL; a rule whose
//! evaluation errs does not fire and the error is kept in the decision record.

use crate::catalogue::Catalogue;
use crate::features::{Feature, FeatureType, FeatureVector};
use crate::Outcome;
use cel::common::ast::{Expr, IdedExpr, LiteralValue};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use thiserror::Error;

/// Most rules in one rule set.
pub const MAX_RULES: usize = 1_000;
/// Longest rule expression in characters.
pub const MAX_EXPRESSION_CHARS: usize = 2_000;
/// Deepest expression tree accepted.
pub const MAX_EXPRESSION_DEPTH: usize = 48;
/// Longest list literal (`mcc in [...]`).
pub const MAX_LIST_ITEMS: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[error("rule `{rule_id}`: {message}")]
pub struct RuleError {
    pub rule_id: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleMode {
    Live,
    /// Evaluated and recorded, never changes the outcome.
    Shadow,
}

/// The layer of the pipeline a rule belongs to; decides its place in the decision record
/// and whether the trusted-device cap applies to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Policy,
    Lists,
    Behaviour,
    Environment,
    Score,
    Credit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Effect {
    /// The outcome this rule asks for when it fires (never `approve`).
    Outcome(Outcome),
    /// Risk points added to the fraud score; the policy's thresholds turn the sum into an outcome.
    Score(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDefinition {
    pub id: String,
    pub version: u32,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_layer")]
    pub layer: Layer,
    pub expression: String,
    pub effect: Effect,
    pub reason_code: String,
    pub mode: RuleMode,
}

fn default_layer() -> Layer {
    Layer::Behaviour
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSetDefinition {
    pub version: String,
    pub rules: Vec<RuleDefinition>,
}

/// A rule ready to run.
#[derive(Debug, Clone)]
pub struct Rule {
    pub definition: RuleDefinition,
    condition: BoolExpr,
    /// Features the expression reads, in feature order.
    pub features: Vec<Feature>,
}

impl Rule {
    pub fn evaluate(&self, features: &FeatureVector) -> Result<bool, EvalError> {
        self.condition.eval(features)
    }
}

#[derive(Debug, Clone)]
pub struct RuleSet {
    pub version: String,
    pub rules: Vec<Rule>,
}

impl RuleSet {
    pub fn empty() -> RuleSet {
        RuleSet { version: "none".into(), rules: vec![] }
    }

    /// Validates and compiles every rule; the first bad rule refuses the whole set, so a
    /// half-loaded rule set never goes live.
    pub fn compile(definition: RuleSetDefinition, catalogue: &Catalogue) -> Result<RuleSet, RuleError> {
        let set_error = |message: String| RuleError { rule_id: "(rule set)".into(), message };
        if definition.version.trim().is_empty() || definition.version.len() > 64 {
            return Err(set_error("`version` must be 1 to 64 characters".into()));
        }
        if definition.rules.len() > MAX_RULES {
            return Err(set_error(format!("at most {MAX_RULES} rules, got {}", definition.rules.len())));
        }
        let mut seen = HashSet::new();
        let mut rules = Vec::with_capacity(definition.rules.len());
        for rule in definition.rules {
            if !seen.insert(rule.id.clone()) {
                return Err(RuleError { rule_id: rule.id, message: "duplicate rule id".into() });
            }
            rules.push(compile_rule(rule, catalogue)?);
        }
        Ok(RuleSet { version: definition.version, rules })
    }

    pub fn definition(&self) -> RuleSetDefinition {
        RuleSetDefinition {
            version: self.version.clone(),
            rules: self.rules.iter().map(|r| r.definition.clone()).collect(),
        }
    }

    pub fn from_json(text: &str, catalogue: &Catalogue) -> Result<RuleSet, RuleError> {
        let definition: RuleSetDefinition = serde_json::from_str(text)
            .map_err(|e| RuleError { rule_id: "(rule set)".into(), message: format!("not a valid rule set: {e}") })?;
        RuleSet::compile(definition, catalogue)
    }
}

pub fn compile_rule(definition: RuleDefinition, catalogue: &Catalogue) -> Result<Rule, RuleError> {
    let error = |message: String| RuleError { rule_id: definition.id.clone(), message };
    let id_ok = !definition.id.is_empty()
        && definition.id.len() <= 64
        && definition.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !id_ok {
        return Err(RuleError {
            rule_id: definition.id.clone(),
            message: "rule id must be 1 to 64 characters of a-z, 0-9, `_`, `-`, `.`".into(),
        });
    }
    if definition.expression.chars().count() > MAX_EXPRESSION_CHARS {
        return Err(error(format!("expression longer than {MAX_EXPRESSION_CHARS} characters")));
    }
    if !catalogue.contains(&definition.reason_code) {
        return Err(error(format!("unknown reason code `{}` (see GET /v1/reason-codes)", definition.reason_code)));
    }
    match definition.effect {
        Effect::Outcome(Outcome::Approve) => {
            return Err(error("effect `approve` is not allowed: a rule can only ask for more scrutiny".into()))
        }
        Effect::Score(points) if !(-1_000..=1_000).contains(&points) => {
            return Err(error("score effect must be between -1000 and 1000".into()))
        }
        _ => {}
    }
    let ast = cel::parser::Parser::new()
        .parse(&definition.expression)
        .map_err(|e| error(format!("syntax error: {}", e.to_string().trim())))?;
    let mut compiler = Compiler { features: HashSet::new() };
    let condition = match compiler.compile(&ast, 0).map_err(error)? {
        Typed::Bool(b) => b,
        other => return Err(error(format!("expression must be a bool, it is {}", other.type_name()))),
    };
    let mut features: Vec<Feature> = compiler.features.into_iter().collect();
    features.sort();
    Ok(Rule { definition, condition, features })
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvalError {
    #[error("integer overflow")]
    Overflow,
    #[error("division by zero")]
    DivisionByZero,
}

#[derive(Debug, Clone, Copy)]
enum IntOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy)]
enum StrOp {
    StartsWith,
    EndsWith,
    Contains,
}

#[derive(Debug, Clone)]
enum IntExpr {
    Const(i64),
    Feature(Feature),
    Binary(IntOp, Box<IntExpr>, Box<IntExpr>),
    Neg(Box<IntExpr>),
    Size(Box<StrExpr>),
    FromBool(Box<BoolExpr>),
    Cond(Box<BoolExpr>, Box<IntExpr>, Box<IntExpr>),
}

#[derive(Debug, Clone)]
enum StrExpr {
    Const(String),
    Feature(Feature),
    Cond(Box<BoolExpr>, Box<StrExpr>, Box<StrExpr>),
}

#[derive(Debug, Clone)]
enum BoolExpr {
    Const(bool),
    Feature(Feature),
    Not(Box<BoolExpr>),
    And(Box<BoolExpr>, Box<BoolExpr>),
    Or(Box<BoolExpr>, Box<BoolExpr>),
    CmpInt(CmpOp, IntExpr, IntExpr),
    CmpStr(CmpOp, StrExpr, StrExpr),
    EqBool(bool, Box<BoolExpr>, Box<BoolExpr>),
    InInt(IntExpr, Vec<i64>),
    InStr(StrExpr, Vec<String>),
    StrTest(StrOp, StrExpr, StrExpr),
    Cond(Box<BoolExpr>, Box<BoolExpr>, Box<BoolExpr>),
}

impl IntExpr {
    fn eval(&self, f: &FeatureVector) -> Result<i64, EvalError> {
        Ok(match self {
            IntExpr::Const(v) => *v,
            IntExpr::Feature(feature) => f.int(*feature),
            IntExpr::Binary(op, a, b) => {
                let (a, b) = (a.eval(f)?, b.eval(f)?);
                match op {
                    IntOp::Add => a.checked_add(b).ok_or(EvalError::Overflow)?,
                    IntOp::Sub => a.checked_sub(b).ok_or(EvalError::Overflow)?,
                    IntOp::Mul => a.checked_mul(b).ok_or(EvalError::Overflow)?,
                    IntOp::Div if b == 0 => return Err(EvalError::DivisionByZero),
                    IntOp::Div => a.checked_div(b).ok_or(EvalError::Overflow)?,
                    IntOp::Rem if b == 0 => return Err(EvalError::DivisionByZero),
                    IntOp::Rem => a.checked_rem(b).ok_or(EvalError::Overflow)?,
                }
            }
            IntExpr::Neg(a) => a.eval(f)?.checked_neg().ok_or(EvalError::Overflow)?,
            IntExpr::Size(s) => s.eval(f).chars().count() as i64,
            IntExpr::FromBool(b) => i64::from(b.eval(f)?),
            IntExpr::Cond(c, a, b) => {
                if c.eval(f)? {
                    a.eval(f)?
                } else {
                    b.eval(f)?
                }
            }
        })
    }
}

impl StrExpr {
    fn eval<'a>(&'a self, f: &'a FeatureVector) -> &'a str {
        match self {
            StrExpr::Const(s) => s,
            StrExpr::Feature(feature) => f.string(*feature),
            // A string conditional whose condition errs picks the else branch; strings have
            // no error of their own, and rules rarely branch on strings.
            StrExpr::Cond(c, a, b) => {
                if c.eval(f).unwrap_or(false) {
                    a.eval(f)
                } else {
                    b.eval(f)
                }
            }
        }
    }
}

fn compare<T: Ord + ?Sized>(op: CmpOp, a: &T, b: &T) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
    }
}

impl BoolExpr {
    fn eval(&self, f: &FeatureVector) -> Result<bool, EvalError> {
        Ok(match self {
            BoolExpr::Const(v) => *v,
            BoolExpr::Feature(feature) => f.bool(*feature),
            BoolExpr::Not(a) => !a.eval(f)?,
            // CEL's logical operators absorb an error when the other side decides the result.
            BoolExpr::And(a, b) => match a.eval(f) {
                Ok(false) => false,
                Ok(true) => b.eval(f)?,
                Err(e) => match b.eval(f) {
                    Ok(false) => false,
                    _ => return Err(e),
                },
            },
            BoolExpr::Or(a, b) => match a.eval(f) {
                Ok(true) => true,
                Ok(false) => b.eval(f)?,
                Err(e) => match b.eval(f) {
                    Ok(true) => true,
                    _ => return Err(e),
                },
            },
            BoolExpr::CmpInt(op, a, b) => compare(*op, &a.eval(f)?, &b.eval(f)?),
            BoolExpr::CmpStr(op, a, b) => compare(*op, a.eval(f), b.eval(f)),
            BoolExpr::EqBool(equal, a, b) => (a.eval(f)? == b.eval(f)?) == *equal,
            BoolExpr::InInt(a, list) => list.binary_search(&a.eval(f)?).is_ok(),
            BoolExpr::InStr(a, list) => {
                let value = a.eval(f);
                list.binary_search_by(|item| item.as_str().cmp(value)).is_ok()
            }
            BoolExpr::StrTest(op, a, b) => {
                let (a, b) = (a.eval(f), b.eval(f));
                match op {
                    StrOp::StartsWith => a.starts_with(b),
                    StrOp::EndsWith => a.ends_with(b),
                    StrOp::Contains => a.contains(b),
                }
            }
            BoolExpr::Cond(c, a, b) => {
                if c.eval(f)? {
                    a.eval(f)?
                } else {
                    b.eval(f)?
                }
            }
        })
    }
}

enum Typed {
    Int(IntExpr),
    Bool(BoolExpr),
    Str(StrExpr),
    IntList(Vec<i64>),
    StrList(Vec<String>),
}

impl Typed {
    fn type_name(&self) -> &'static str {
        match self {
            Typed::Int(_) => "int",
            Typed::Bool(_) => "bool",
            Typed::Str(_) => "string",
            Typed::IntList(_) => "list(int)",
            Typed::StrList(_) => "list(string)",
        }
    }
}

struct Compiler {
    features: HashSet<Feature>,
}

impl Compiler {
    fn compile(&mut self, node: &IdedExpr, depth: usize) -> Result<Typed, String> {
        if depth > MAX_EXPRESSION_DEPTH {
            return Err(format!("expression nested deeper than {MAX_EXPRESSION_DEPTH}"));
        }
        match &node.expr {
            Expr::Literal(literal) => literal_value(literal),
            Expr::Ident(name) => {
                let feature = Feature::from_name(name).ok_or_else(|| unknown_feature(name))?;
                self.features.insert(feature);
                Ok(match feature.feature_type() {
                    FeatureType::Int => Typed::Int(IntExpr::Feature(feature)),
                    FeatureType::Bool => Typed::Bool(BoolExpr::Feature(feature)),
                    FeatureType::String => Typed::Str(StrExpr::Feature(feature)),
                })
            }
            Expr::List(list) => {
                if list.elements.len() > MAX_LIST_ITEMS {
                    return Err(format!("list literal longer than {MAX_LIST_ITEMS} items"));
                }
                let mut ints = Vec::new();
                let mut strings = Vec::new();
                for element in &list.elements {
                    match &element.expr {
                        Expr::Literal(literal) => match literal_value(literal)? {
                            Typed::Int(IntExpr::Const(v)) => ints.push(v),
                            Typed::Str(StrExpr::Const(s)) => strings.push(s),
                            other => {
                                return Err(format!("list items must be ints or strings, not {}", other.type_name()))
                            }
                        },
                        _ => return Err("list items must be literals".into()),
                    }
                }
                if !ints.is_empty() && !strings.is_empty() {
                    return Err("a list must hold only ints or only strings".into());
                }
                ints.sort_unstable();
                strings.sort_unstable();
                Ok(if ints.is_empty() { Typed::StrList(strings) } else { Typed::IntList(ints) })
            }
            Expr::Call(call) => self.call(&call.func_name, call.target.as_deref(), &call.args, depth),
            Expr::Select(select) => Err(format!(
                "field selection `.{}` is not supported: features are plain names (see GET /v1/rules/features)",
                select.field
            )),
            Expr::Comprehension(_) => Err("macros (all, exists, map, filter) are not supported".into()),
            Expr::Map(_) | Expr::Struct(_) => Err("map and message literals are not supported".into()),
            Expr::Unspecified => Err("empty expression".into()),
        }
    }

    fn call(
        &mut self,
        name: &str,
        target: Option<&IdedExpr>,
        args: &[IdedExpr],
        depth: usize,
    ) -> Result<Typed, String> {
        use cel::common::ast::operators as op;
        let arg = |this: &mut Compiler, i: usize| this.compile(&args[i], depth + 1);
        let arity = |n: usize| -> Result<(), String> {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!("`{name}` takes {n} argument(s)"))
            }
        };
        if let Some(target) = target {
            let method = match name {
                "startsWith" => StrOp::StartsWith,
                "endsWith" => StrOp::EndsWith,
                "contains" => StrOp::Contains,
                other => return Err(format!("unknown method `{other}`")),
            };
            arity(1)?;
            let this = self.compile(target, depth + 1)?;
            let other = arg(self, 0)?;
            return match (this, other) {
                (Typed::Str(a), Typed::Str(b)) => Ok(Typed::Bool(BoolExpr::StrTest(method, a, b))),
                (a, b) => Err(format!("`{name}` needs strings, got {} and {}", a.type_name(), b.type_name())),
            };
        }
        match name {
            op::LOGICAL_AND | op::LOGICAL_OR => {
                arity(2)?;
                let (a, b) = (want_bool(arg(self, 0)?, name)?, want_bool(arg(self, 1)?, name)?);
                Ok(Typed::Bool(if name == op::LOGICAL_AND {
                    BoolExpr::And(Box::new(a), Box::new(b))
                } else {
                    BoolExpr::Or(Box::new(a), Box::new(b))
                }))
            }
            op::LOGICAL_NOT => {
                arity(1)?;
                Ok(Typed::Bool(BoolExpr::Not(Box::new(want_bool(arg(self, 0)?, "!")?))))
            }
            op::NEGATE => {
                arity(1)?;
                match arg(self, 0)? {
                    Typed::Int(IntExpr::Const(v)) => {
                        Ok(Typed::Int(IntExpr::Const(v.checked_neg().ok_or("integer overflow")?)))
                    }
                    Typed::Int(a) => Ok(Typed::Int(IntExpr::Neg(Box::new(a)))),
                    other => Err(format!("`-` needs an int, got {}", other.type_name())),
                }
            }
            op::ADD | op::SUBSTRACT | op::MULTIPLY | op::DIVIDE | op::MODULO => {
                arity(2)?;
                let operator = match name {
                    op::ADD => IntOp::Add,
                    op::SUBSTRACT => IntOp::Sub,
                    op::MULTIPLY => IntOp::Mul,
                    op::DIVIDE => IntOp::Div,
                    _ => IntOp::Rem,
                };
                match (arg(self, 0)?, arg(self, 1)?) {
                    (Typed::Int(a), Typed::Int(b)) => {
                        Ok(Typed::Int(IntExpr::Binary(operator, Box::new(a), Box::new(b))))
                    }
                    (a, b) => Err(format!(
                        "arithmetic needs ints, got {} and {} (amounts are integers in minor units)",
                        a.type_name(),
                        b.type_name()
                    )),
                }
            }
            op::EQUALS | op::NOT_EQUALS | op::LESS | op::LESS_EQUALS | op::GREATER | op::GREATER_EQUALS => {
                arity(2)?;
                let cmp = match name {
                    op::EQUALS => CmpOp::Eq,
                    op::NOT_EQUALS => CmpOp::Ne,
                    op::LESS => CmpOp::Lt,
                    op::LESS_EQUALS => CmpOp::Le,
                    op::GREATER => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                let ordering = !matches!(cmp, CmpOp::Eq | CmpOp::Ne);
                match (arg(self, 0)?, arg(self, 1)?) {
                    (Typed::Int(a), Typed::Int(b)) => Ok(Typed::Bool(BoolExpr::CmpInt(cmp, a, b))),
                    (Typed::Str(a), Typed::Str(b)) => Ok(Typed::Bool(BoolExpr::CmpStr(cmp, a, b))),
                    (Typed::Bool(a), Typed::Bool(b)) if !ordering => {
                        Ok(Typed::Bool(BoolExpr::EqBool(matches!(cmp, CmpOp::Eq), Box::new(a), Box::new(b))))
                    }
                    (a, b) => Err(format!("cannot compare {} with {}", a.type_name(), b.type_name())),
                }
            }
            op::IN => {
                arity(2)?;
                match (arg(self, 0)?, arg(self, 1)?) {
                    (Typed::Int(a), Typed::IntList(list)) => Ok(Typed::Bool(BoolExpr::InInt(a, list))),
                    (Typed::Str(a), Typed::StrList(list)) => Ok(Typed::Bool(BoolExpr::InStr(a, list))),
                    (a, Typed::StrList(list)) if list.is_empty() => {
                        Err(format!("`in []` is always false for {}", a.type_name()))
                    }
                    (a, b) => Err(format!(
                        "`in` needs a value and a list of the same type, got {} in {}",
                        a.type_name(),
                        b.type_name()
                    )),
                }
            }
            op::CONDITIONAL => {
                arity(3)?;
                let condition = Box::new(want_bool(arg(self, 0)?, "?:")?);
                match (arg(self, 1)?, arg(self, 2)?) {
                    (Typed::Int(a), Typed::Int(b)) => {
                        Ok(Typed::Int(IntExpr::Cond(condition, Box::new(a), Box::new(b))))
                    }
                    (Typed::Bool(a), Typed::Bool(b)) => {
                        Ok(Typed::Bool(BoolExpr::Cond(condition, Box::new(a), Box::new(b))))
                    }
                    (Typed::Str(a), Typed::Str(b)) => {
                        Ok(Typed::Str(StrExpr::Cond(condition, Box::new(a), Box::new(b))))
                    }
                    (a, b) => Err(format!(
                        "both branches of `?:` must have one type, got {} and {}",
                        a.type_name(),
                        b.type_name()
                    )),
                }
            }
            "size" => {
                arity(1)?;
                match arg(self, 0)? {
                    Typed::Str(s) => Ok(Typed::Int(IntExpr::Size(Box::new(s)))),
                    other => Err(format!("`size` needs a string, got {}", other.type_name())),
                }
            }
            "int" => {
                arity(1)?;
                match arg(self, 0)? {
                    Typed::Bool(b) => Ok(Typed::Int(IntExpr::FromBool(Box::new(b)))),
                    Typed::Int(i) => Ok(Typed::Int(i)),
                    other => Err(format!("`int` needs a bool or an int, got {}", other.type_name())),
                }
            }
            other => Err(format!("unknown function `{}`", other.trim_matches('_').replace("_", " "))),
        }
    }
}

fn want_bool(typed: Typed, operator: &str) -> Result<BoolExpr, String> {
    match typed {
        Typed::Bool(b) => Ok(b),
        other => Err(format!("`{}` needs bools, got {}", operator.trim_matches('_'), other.type_name())),
    }
}

fn unknown_feature(name: &str) -> String {
    let close: Vec<&str> = Feature::ALL
        .iter()
        .map(|f| f.name())
        .filter(|candidate| {
            let prefix = name.split('_').next().unwrap_or(name);
            candidate.starts_with(prefix)
        })
        .take(5)
        .collect();
    if close.is_empty() {
        format!("unknown feature `{name}` (see GET /v1/rules/features)")
    } else {
        format!("unknown feature `{name}`; did you mean one of: {}", close.join(", "))
    }
}

fn literal_value(literal: &LiteralValue) -> Result<Typed, String> {
    match literal {
        LiteralValue::Boolean(b) => Ok(Typed::Bool(BoolExpr::Const(**b))),
        LiteralValue::Int(i) => Ok(Typed::Int(IntExpr::Const(**i))),
        LiteralValue::UInt(u) => {
            Ok(Typed::Int(IntExpr::Const(i64::try_from(**u).map_err(|_| "unsigned literal too large".to_string())?)))
        }
        LiteralValue::String(s) => Ok(Typed::Str(StrExpr::Const(s.to_string()))),
        LiteralValue::Double(_) => {
            Err("floating-point numbers are not supported: amounts are integers in minor units, ratios are integer percentages, the fraud score is per mille".into())
        }
        LiteralValue::Bytes(_) => Err("bytes literals are not supported".into()),
        LiteralValue::Null => Err("null is not supported".into()),
    }
}

/// The same rules run by the `cel` crate's own interpreter, for the benchmark that justifies
/// compiling them (`xiezhi bench decide --interpreter cel`) and for a test that both agree.
pub mod cel_interpreter {
    use super::RuleSet;
    use crate::features::{Feature, FeatureVector, Value};

    pub struct InterpretedRules {
        programs: Vec<cel::Program>,
    }

    impl InterpretedRules {
        pub fn new(rules: &RuleSet) -> InterpretedRules {
            let programs = rules
                .rules
                .iter()
                .map(|r| cel::Program::compile(&r.definition.expression).expect("compiled rules parse"))
                .collect();
            InterpretedRules { programs }
        }

        /// Which rules fire, building a CEL context from the features as an interpreter must.
        pub fn evaluate(&self, features: &FeatureVector) -> Vec<Option<bool>> {
            let mut context = cel::Context::default();
            for feature in Feature::ALL {
                let name = feature.name();
                match features.get(*feature) {
                    Value::Int(v) => context.add_variable_from_value(name, *v),
                    Value::Bool(v) => context.add_variable_from_value(name, *v),
                    Value::String(v) => context.add_variable_from_value(name, v.clone()),
                }
            }
            self.programs
                .iter()
                .map(|p| match p.execute(&context) {
                    Ok(cel::Value::Bool(b)) => Some(b),
                    _ => None,
                })
                .collect()
        }
    }
}
