//! The OpenAPI 3.1 document, generated from the code: the operations from [`OPERATIONS`]
//! (which a test holds to the access table [`crate::auth::ROUTES`] the router enforces, so
//! the two cannot drift), their scopes from that table, and the body schemas from the
//! request and response types themselves (`utoipa::ToSchema`). Served at `GET /openapi.json`
//! and printed by `xiezhi openapi`.

use crate::auth::{access, Access};
use axum::http::Method;
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

/// What one operation takes and gives, beside what the access table says.
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// The request body's schema (a component name), `Some("object")` for a free-form JSON
    /// document, `None` for no body.
    pub body: Option<&'static str>,
    pub status: u16,
    /// The answer's schema (a component name), or `object` (a JSON document), `image`
    /// (PNG or SVG) or `text` (plain text).
    pub reply: &'static str,
}

macro_rules! ops {
    ($(($method:literal, $path:literal, $summary:literal, $body:expr, $status:literal, $reply:literal)),* $(,)?) => {
        &[$(Operation { method: $method, path: $path, summary: $summary, body: $body, status: $status, reply: $reply }),*]
    };
}

/// Every operation, in the README's order.
pub const OPERATIONS: &[Operation] = ops![
    ("GET", "/", "the index: every route in one screen", None, 200, "text"),
    ("GET", "/healthz", "liveness and readiness: writer up or down, read-only, the service clock", None, 200, "object"),
    ("GET", "/openapi.json", "this document", None, 200, "object"),
    ("GET", "/metrics", "Prometheus metrics", None, 200, "text"),
    ("GET", "/v1/stats", "live counters", None, 200, "object"),
    (
        "POST",
        "/v1/merchants",
        "register a merchant; returns it with its static QR payload",
        Some("NewMerchant"),
        201,
        "MerchantView"
    ),
    ("GET", "/v1/merchants/{id}", "a merchant", None, 200, "MerchantView"),
    (
        "GET",
        "/v1/merchants/{id}/qr",
        "a merchant's static QR code as an image (?format=png|svg&module_px=8)",
        None,
        200,
        "image"
    ),
    (
        "POST",
        "/v1/merchants/{id}/qr",
        "issue a dynamic QR code for one payment",
        Some("DynamicQrRequest"),
        201,
        "DynamicQrView"
    ),
    (
        "POST",
        "/v1/credit-lines",
        "open a credit line: with a fixed limit, or on an application the credit scorecard sets the limit of",
        Some("NewCreditLine"),
        201,
        "CreditLineView"
    ),
    (
        "GET",
        "/v1/credit-lines/{id}",
        "a credit line: limit, available, held, receivable, restriction",
        None,
        200,
        "CreditLineView"
    ),
    (
        "POST",
        "/v1/credit-lines/{id}/repayments",
        "repay; restores available credit",
        Some("AmountRequest"),
        201,
        "RepaymentView"
    ),
    (
        "POST",
        "/v1/credit-lines/{id}/profile",
        "complete your profile: the fields the policy's `kyc_levels` requires raise the line's KYC level \
         (values checked, never stored nor echoed)",
        Some("ProfileSubmission"),
        200,
        "ProfileStepView"
    ),
    ("GET", "/v1/credit-lines/{id}/notifications", "the shopper's inbox (never a code)", None, 200, "object"),
    ("POST", "/v1/payments", "decide and authorize a scan-to-pay payment", Some("NewPayment"), 201, "PaymentView"),
    ("GET", "/v1/payments/{id}", "a payment", None, 200, "PaymentView"),
    (
        "POST",
        "/v1/payments/{id}/capture",
        "capture all or part; the rest is released",
        Some("OptionalAmountRequest"),
        200,
        "PaymentView"
    ),
    ("POST", "/v1/payments/{id}/void", "release the hold", Some("EmptyRequest"), 200, "PaymentView"),
    (
        "POST",
        "/v1/payments/{id}/refunds",
        "refund all or part of what was captured",
        Some("AmountRequest"),
        201,
        "PaymentView"
    ),
    (
        "GET",
        "/v1/payments/{id}/decision",
        "the decision record: facts, features, signals, score, versions, and its lifecycle",
        None,
        200,
        "DecisionDocument"
    ),
    (
        "POST",
        "/v1/payments/{id}/decision/replay",
        "the recorded facts decided again under today's policy and rules",
        None,
        200,
        "object"
    ),
    ("GET", "/v1/challenges/{id}", "a step-up or restriction challenge", None, 200, "ChallengeView"),
    (
        "POST",
        "/v1/challenges/{id}",
        "answer a challenge with the code the shopper's phone received",
        Some("ChallengeAnswer"),
        200,
        "ChallengeView"
    ),
    ("GET", "/v1/rules", "the live rule set", None, 200, "object"),
    (
        "PUT",
        "/v1/rules",
        "replace the rule set (validated whole, swapped between two payments)",
        Some("object"),
        200,
        "object"
    ),
    ("GET", "/v1/rules/features", "the features rules can use", None, 200, "object"),
    ("GET", "/v1/reason-codes", "every reason code with zh/en text and ways out", None, 200, "object"),
    ("GET", "/v1/policy", "the regulatory policy document", None, 200, "object"),
    ("PUT", "/v1/policy", "replace the policy document", Some("object"), 200, "object"),
    ("GET", "/v1/lists", "deny and allow lists", None, 200, "object"),
    ("POST", "/v1/lists", "add a list entry", Some("NewListEntry"), 201, "object"),
    ("DELETE", "/v1/lists/{id}", "remove a list entry", None, 200, "object"),
    ("GET", "/v1/api-keys", "API keys, never a key or its hash", None, 200, "object"),
    ("POST", "/v1/api-keys", "make a key: answered once, with `key`", Some("NewApiKey"), 201, "object"),
    (
        "POST",
        "/v1/api-keys/{id}/rotate",
        "make a successor; the old key stays valid for the overlap",
        Some("RotateRequest"),
        201,
        "object"
    ),
    ("DELETE", "/v1/api-keys/{id}", "revoke a key at once", None, 200, "object"),
    (
        "POST",
        "/v1/shopper-tokens",
        "a shopper token for one of the caller's lines and one device",
        Some("TokenRequest"),
        201,
        "object"
    ),
    ("GET", "/v1/restrictions", "restrictions, oldest first, filtered, a page at a time", None, 200, "RestrictionPage"),
    (
        "GET",
        "/v1/restrictions/{id}",
        "a restriction: scope, reasons, who imposed it, its end and its history",
        None,
        200,
        "RestrictionRecordView"
    ),
    (
        "POST",
        "/v1/restrictions/{id}/lift",
        "lift a restriction in force, with a reason kept in its history",
        Some("LiftRequest"),
        200,
        "RestrictionRecordView"
    ),
    (
        "GET",
        "/v1/users/{user_id}/status",
        "can the user pay, and if not, why and what they can do",
        None,
        200,
        "UserStatusView"
    ),
    ("POST", "/v1/appeals", "appeal a decision or a restriction to a person", Some("NewAppeal"), 201, "AppealView"),
    ("GET", "/v1/appeals", "the appeals review queue, oldest first, a page at a time", None, 200, "AppealPage"),
    ("GET", "/v1/appeals/{id}", "an appeal", None, 200, "AppealView"),
    ("POST", "/v1/appeals/{id}/claim", "take an appeal to review it", Some("EmptyRequest"), 200, "AppealView"),
    (
        "POST",
        "/v1/appeals/{id}/decision",
        "decide a claimed appeal: uphold, or overturn (lifts, labels, compensation due)",
        Some("AppealDecision"),
        200,
        "AppealView"
    ),
    ("GET", "/v1/fund", "the compensation fund: balance per currency, and what waits for it", None, 200, "FundView"),
    (
        "POST",
        "/v1/fund/deposits",
        "pay the platform's own money into the compensation fund; pays waiting compensations oldest first",
        Some("FundDepositRequest"),
        201,
        "FundDepositView"
    ),
    (
        "GET",
        "/v1/compensations",
        "compensations owed and paid, oldest first, a page at a time",
        None,
        200,
        "CompensationPage"
    ),
    (
        "GET",
        "/v1/outbox",
        "notifications in the outbox by status, oldest first, a page at a time",
        None,
        200,
        "OutboxPage"
    ),
    (
        "POST",
        "/v1/outbox/replay",
        "send dead letters again: one by id, or the oldest (up to 16 a call)",
        Some("OutboxReplay"),
        200,
        "OutboxReplayView"
    ),
    (
        "GET",
        "/v1/reports/conduct",
        "the conduct report: restrictions, lifts, challenges, appeals, compensation, false positives",
        None,
        200,
        "ConductReport"
    ),
];

/// What an operation's summary has no room for.
fn notes(op: &Operation) -> Option<&'static str> {
    match (op.method, op.path) {
        ("GET", "/v1/users/{user_id}/status") => Some(
            "A shopper token for that user, a wallet key for its own users, or an operator key; another user is \
             404. Explanations put the language `Accept-Language` prefers first (zh when it names neither), and \
             `Content-Language` says which. `compensation` lists what the fund owes or paid the user (newest first, \
             at most 20).",
        ),
        ("POST", "/v1/credit-lines/{id}/profile") => Some(
            "A wallet key for its own lines, or an operator key; another's line is 404. `fields` holds exactly the \
             fields the policy's `kyc_levels` requires for `kyc_level`, each non-empty and at most 256 characters; \
             otherwise 422 `profile_rejected` naming each wrong one in `fields`. The line's KYC level is raised, \
             never lowered; the values are never stored, logged or echoed.",
        ),
        ("POST", "/v1/appeals") => Some(
            "A shopper token (or a wallet key) appeals only its own user's decision or restriction: another's is \
             404. One appeal waits at a time per decision and restriction: a second is 409 `appeal_exists` naming \
             the first in `appeal_id`.",
        ),
        ("POST", "/v1/appeals/{id}/decision") => Some(
            "Only the principal that claimed the appeal decides (another: 403); an unclaimed appeal is 409 \
             `appeal_not_claimed`; a decided one 409 `appeal_decided`.",
        ),
        ("POST", "/v1/fund/deposits") => Some(
            "A zero, negative or malformed amount, or a currency the policy grants no credit in, is 422 \
             `invalid_deposit` naming the `field`. Waiting compensations in that currency are paid oldest first \
             (up to six in the deposit's own batch, the rest by the writer's sweep within a second).",
        ),
        ("GET", "/v1/outbox") => Some(
            "`pending` is every row not yet delivered nor given up (pending, delivering, retry_at). Rows show the \
             event, the channel, the webhook endpoint id, the state and the last error; never an address, a number \
             or a text.",
        ),
        ("POST", "/v1/outbox/replay") => Some(
            "Give `id` or `all_dead: true`, not both (400). A message that is not dead is 409 `outbox_not_dead`; a \
             one-time code's row is never sent again, 409 `outbox_code_not_replayable` (`all_dead` skips it); an \
             unknown id 404. A replayed message keeps its id, so a receiver that remembers ids drops a copy it has.",
        ),
        ("GET", "/v1/reports/conduct") => Some(
            "`from` and `to` are ISO dates (UTC), both included, at most 366 days apart; malformed, missing or \
             reversed is 400 `invalid_request` naming the `field`. Every figure counts what began in the period \
             (restrictions imposed, appeals filed) as it stands at `as_of`, the service clock.",
        ),
        ("POST", "/v1/restrictions/{id}/lift") => {
            Some("A blank reason is 422 `invalid_text`; a restriction no longer in force 409 `restriction_not_active`.")
        }
        _ => None,
    }
}

/// The component schemas, from the types.
#[derive(OpenApi)]
#[openapi(components(schemas(
    xiezhi_core::NewMerchant,
    xiezhi_core::PartnerAccount,
    xiezhi_core::CreditLineRequest,
    xiezhi_core::CreditView,
    xiezhi_core::CreditReasonView,
    xiezhi_core::UserProfile,
    xiezhi_core::NewPayment,
    xiezhi_core::PaymentContext,
    xiezhi_core::ChallengeAnswer,
    xiezhi_core::MerchantView,
    xiezhi_core::CreditLineView,
    xiezhi_core::RestrictionView,
    xiezhi_core::PaymentView,
    xiezhi_core::PaymentStatus,
    xiezhi_core::Decision,
    xiezhi_core::RecoveryView,
    xiezhi_core::NoticeView,
    xiezhi_core::RefundView,
    xiezhi_core::RepaymentView,
    xiezhi_core::ProfileSubmission,
    xiezhi_core::ProfileStepView,
    xiezhi_core::DynamicQrView,
    xiezhi_core::ChallengeView,
    xiezhi_core::ChallengePurpose,
    xiezhi_core::ChallengeStatus,
    xiezhi_core::NewApiKey,
    xiezhi_core::KeyKind,
    xiezhi_core::xiezhi_risk::Explanation,
    xiezhi_core::xiezhi_risk::Outcome,
    xiezhi_core::xiezhi_risk::RecoveryKind,
    xiezhi_core::xiezhi_risk::ChallengeMethod,
    xiezhi_core::xiezhi_risk::NewListEntry,
    xiezhi_core::xiezhi_risk::lists::ListKind,
    xiezhi_core::xiezhi_risk::lists::SubjectKind,
    crate::problem::Problem,
    crate::problem::QrErrorDetail,
    crate::AmountRequest,
    crate::OptionalAmountRequest,
    crate::EmptyRequest,
    crate::DynamicQrRequest,
    crate::keys::RotateRequest,
    crate::keys::TokenRequest,
    xiezhi_core::RestrictionScope,
    xiezhi_core::ImposedBy,
    xiezhi_core::ImposerKind,
    xiezhi_core::RestrictionEventKind,
    xiezhi_core::LiftCause,
    xiezhi_core::AppealOutcome,
    xiezhi_core::RestrictionStatus,
    xiezhi_core::RestrictionEventView,
    xiezhi_core::RestrictionRecordView,
    xiezhi_core::RestrictionPage,
    xiezhi_core::LiftRequest,
    xiezhi_core::LineStatusView,
    xiezhi_core::RestrictionStatusView,
    xiezhi_core::UserStatusView,
    xiezhi_core::AppealStatus,
    xiezhi_core::AppealView,
    xiezhi_core::AppealPage,
    xiezhi_core::NewAppeal,
    xiezhi_core::AppealDecision,
    xiezhi_core::CompensationStatus,
    xiezhi_core::CompensationView,
    xiezhi_core::CompensationPage,
    xiezhi_core::FundDepositRequest,
    xiezhi_core::FundBalanceView,
    xiezhi_core::FundView,
    xiezhi_core::FundDepositView,
    xiezhi_core::Contact,
    xiezhi_core::Language,
    xiezhi_core::OutboxReplay,
    xiezhi_core::OutboxRowView,
    xiezhi_core::OutboxPage,
    xiezhi_core::OutboxReplayView,
    xiezhi_core::conduct::ConductReport,
    xiezhi_core::conduct::RestrictionFigures,
    xiezhi_core::conduct::ScopeCounts,
    xiezhi_core::conduct::ReasonCount,
    xiezhi_core::conduct::LiftTimes,
    xiezhi_core::conduct::LiftFigure,
    xiezhi_core::conduct::ChallengeFigures,
    xiezhi_core::conduct::AppealFigures,
    xiezhi_core::conduct::CompensationFigures,
    xiezhi_core::conduct::MoneyFigure,
    xiezhi_core::conduct::CurrencyAmount,
    xiezhi_core::LifecycleEvent,
    xiezhi_core::LifecycleKind,
)))]
struct Schemas;

fn schema(name: &str) -> Value {
    match name {
        "object" => json!({"type": "object"}),
        other => json!({"$ref": format!("#/components/schemas/{other}")}),
    }
}

fn success(op: &Operation) -> Value {
    let content = match op.reply {
        "text" => json!({"text/plain": {"schema": {"type": "string"}}}),
        "image" => json!({
            "image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}},
            "image/svg+xml": {"schema": {"type": "string"}},
        }),
        other => json!({"application/json": {"schema": schema(other)}}),
    };
    json!({"description": op.summary, "content": content})
}

fn parameters(op: &Operation) -> Vec<Value> {
    let mut parameters = Vec::new();
    if op.path.contains("{id}") {
        parameters.push(json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}));
    }
    if op.path.contains("{user_id}") {
        parameters.push(json!({"name": "user_id", "in": "path", "required": true, "schema": {"type": "string"}}));
        parameters.push(json!({"name": "Accept-Language", "in": "header", "schema": {"type": "string"}}));
    }
    let page = |statuses: &[&str]| {
        vec![
            json!({"name": "status", "in": "query", "schema": {"type": "string", "enum": statuses}}),
            json!({"name": "cursor", "in": "query", "schema": {"type": "string"},
                   "description": "`next_cursor` of the page before"}),
            json!({"name": "limit", "in": "query",
                   "schema": {"type": "integer", "minimum": 1, "maximum": xiezhi_core::MAX_PAGE}}),
        ]
    };
    match (op.method, op.path) {
        ("GET", "/v1/restrictions") => {
            parameters.extend(page(&["active", "lifted"]));
            for name in ["credit_line_id", "user_id"] {
                parameters.push(json!({"name": name, "in": "query", "schema": {"type": "string"}}));
            }
        }
        ("GET", "/v1/appeals") => parameters.extend(page(&["open", "claimed", "decided", "escalated"])),
        ("GET", "/v1/compensations") => parameters.extend(page(&["due", "waiting_for_funds", "paid"])),
        ("GET", "/v1/outbox") => parameters.extend(page(&["pending", "dead", "delivered"])),
        ("GET", "/v1/reports/conduct") => {
            for name in ["from", "to"] {
                parameters.push(json!({"name": name, "in": "query", "required": true,
                    "schema": {"type": "string", "format": "date", "example": "2026-11-30"}}));
            }
        }
        _ => {}
    }
    if op.path == "/v1/merchants/{id}/qr" && op.method == "GET" {
        parameters.push(json!({"name": "format", "in": "query", "schema": {"type": "string", "enum": ["png", "svg"]}}));
        parameters.push(
            json!({"name": "module_px", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 32}}),
        );
    }
    if op.method == "POST" || op.method == "PUT" {
        parameters.push(json!({
            "name": "Idempotency-Key", "in": "header",
            "description": "the same key with the same request returns the stored answer (per caller, 24 h)",
            "schema": {"type": "string", "minLength": 1, "maxLength": xiezhi_core::MAX_IDEMPOTENCY_KEY_BYTES},
        }));
    }
    parameters
}

fn operation(op: &Operation) -> Value {
    let method = Method::from_bytes(op.method.as_bytes()).expect("a method");
    let access =
        access(&method, op.path).unwrap_or_else(|| panic!("{} {} is not in the access table", op.method, op.path));
    let (security, scope) = match access {
        Access::Public => (json!([]), None),
        Access::Authenticated => (json!([{"bearer": []}]), None),
        Access::Key(scope) => (json!([{"bearer": []}]), Some(scope.as_str().to_owned())),
        Access::KeyOrShopper(scope) => {
            (json!([{"bearer": []}]), Some(format!("{} (or a shopper token)", scope.as_str())))
        }
    };
    let mut value = json!({
        "operationId": format!("{} {}", op.method, op.path),
        "summary": op.summary,
        "security": security,
        "parameters": parameters(op),
        "responses": {
            op.status.to_string(): success(op),
            "default": {
                "description": "a refusal: problem+json with a stable `code` (see the README's error list)",
                "content": {"application/problem+json": {"schema": schema("Problem")}},
            },
        },
    });
    if let Some(scope) = scope {
        value["x-scope"] = json!(scope);
        value["description"] = json!(format!("Needs the scope `{scope}`."));
    }
    if let Some(notes) = notes(op) {
        let before = value["description"].as_str().unwrap_or_default().to_owned();
        value["description"] = json!(format!("{before} {notes}").trim().to_owned());
    }
    if let Some(body) = op.body {
        value["requestBody"] = json!({"required": body != "EmptyRequest" && body != "OptionalAmountRequest" && body != "RotateRequest",
            "content": {"application/json": {"schema": schema(body)}}});
    }
    value
}

/// The credit line request as the service takes it: `application` is the shipped credit
/// scorecard's features (`CreditApplication`, generated from the model), and exactly one
/// of `limit` and `application` (with `monthly_income`) is given.
fn credit_application(schemas: &mut Value) {
    schemas["CreditApplication"] = xiezhi_core::xiezhi_risk::shipped_credit_model().application_schema();
    let line = &mut schemas["NewCreditLine"];
    let description = line["properties"]["application"]["description"].clone();
    line["properties"]["application"] = json!({
        "description": description,
        "oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/CreditApplication"}],
    });
    // A field given as `null` is a field not given.
    let given = |field: &str, kind: &str| json!({"required": [field], "properties": {field: {"type": kind}}});
    line["oneOf"] = json!([
        {"allOf": [given("limit", "string")],
         "not": {"anyOf": [given("application", "object"), given("monthly_income", "string")]}},
        {"allOf": [given("application", "object"), given("monthly_income", "string")],
         "not": given("limit", "string")},
    ]);
}

/// The decision record as `GET /v1/payments/{id}/decision` answers it: the engine's record
/// (free-form: its features and signals follow the engine in force), with the keys a client
/// can rely on named, `lifecycle` among them.
fn decision_document(schemas: &mut Value) {
    schemas["DecisionDocument"] = json!({
        "type": "object",
        "description": "The engine's record of one decision (facts, features by name, signals, score, \
                        versions), what happened after it (`lifecycle`) and, after an overturned appeal, \
                        its `label`.",
        "required": ["facts", "outcome", "reason_codes", "explanation", "recovery", "lifecycle"],
        "properties": {
            "facts": {"type": "object", "description": "the payment as the engine saw it"},
            "features": {"type": "object", "description": "every feature by name"},
            "signals": {"type": "array", "items": {"type": "object"}},
            "outcome": {"$ref": "#/components/schemas/Outcome"},
            "reason_codes": {"type": "array", "items": {"type": "string"}},
            "explanation": {"$ref": "#/components/schemas/Explanation"},
            "recovery": {"type": "array", "items": {"type": "object"},
                         "description": "the ways out as decided, amounts in minor units"},
            "lifecycle": {
                "type": "array",
                "description": "what happened after the decision, oldest first: challenge sent, passed, \
                                failed or expired; authorized or declined; captured, voided, expired, \
                                refunded; appealed and the appeal's outcome",
                "items": {"$ref": "#/components/schemas/LifecycleEvent"},
            },
            "label": {"type": "object", "description": "what a reviewer found the decision to be"},
        },
        "additionalProperties": true,
    });
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in OPERATIONS {
        let item = paths.entry(op.path).or_insert_with(|| json!({}));
        item[op.method.to_ascii_lowercase()] = operation(op);
    }
    let mut components = serde_json::to_value(Schemas::openapi().components).expect("schemas serialise");
    credit_application(&mut components["schemas"]);
    decision_document(&mut components["schemas"]);
    components["securitySchemes"] = json!({
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "an API key (`xz_…`) or a shopper token (PASETO `v4.public.…`)"},
    });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Xiezhi",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Real-time decisions and credit lines for consumer-credit scan-to-pay.",
        },
        "paths": paths,
        "components": components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ROUTES;
    use std::collections::BTreeSet;

    #[test]
    fn every_route_has_one_operation_and_every_operation_a_route() {
        for (method, path, _) in ROUTES {
            let found = OPERATIONS.iter().filter(|o| o.method == *method && o.path == *path).count();
            assert_eq!(found, 1, "{method} {path} is documented {found} times");
        }
        for op in OPERATIONS {
            assert!(
                ROUTES.iter().any(|(m, p, _)| *m == op.method && *p == op.path),
                "{} {} has no route",
                op.method,
                op.path
            );
        }
    }

    #[test]
    fn every_reference_resolves_and_protected_operations_need_the_bearer() {
        let document = document();
        let text = document.to_string();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(document["components"]["schemas"].get(name).is_some(), "no schema `{name}`");
        }
        assert_eq!(document["paths"]["/healthz"]["get"]["security"], json!([]));
        assert_eq!(document["paths"]["/v1/payments"]["post"]["security"], json!([{"bearer": []}]));
        assert_eq!(document["paths"]["/v1/payments"]["post"]["x-scope"], "payments:write");
        assert_eq!(document["openapi"], "3.1.0");
    }

    /// `METHOD /path` pairs in the README's API table.
    fn readme_operations() -> BTreeSet<(String, String)> {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
        let start = readme.find("| Method and path |").expect("the README's API table");
        let table = readme[start..].split("\n\n").next().unwrap();
        let mut found = BTreeSet::new();
        for cell in table.lines().filter_map(|l| l.split('|').nth(1)) {
            for piece in cell.split('`').skip(1).step_by(2) {
                let mut words = piece.split_whitespace();
                if let (Some(method), Some(path)) = (words.next(), words.next()) {
                    if ["GET", "POST", "PUT", "DELETE", "PATCH"].contains(&method) {
                        let path = path.split('?').next().unwrap();
                        found.insert((method.to_owned(), path.to_owned()));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn the_readme_api_table_and_the_document_agree() {
        let documented: BTreeSet<(String, String)> =
            OPERATIONS.iter().map(|o| (o.method.to_owned(), o.path.to_owned())).collect();
        let readme = readme_operations();
        let missing: Vec<_> = documented.difference(&readme).collect();
        let extra: Vec<_> = readme.difference(&documented).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "not in the README: {missing:?}; not in the document: {extra:?}"
        );
    }
}
