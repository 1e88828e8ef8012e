//! Errors as RFC 9457 `application/problem+json`, each with a stable `code`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use xiezhi_core::CoreError;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every field a refused profile step names (`profile_rejected`): missing, empty, too
    /// long or unknown; `field` is the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_error: Option<QrErrorDetail>,
    /// The rule a rejected rule set failed on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// The scope a `403 forbidden` lacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The appeal already waiting (`appeal_exists`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appeal_id: Option<String>,
    /// A declined credit application (`credit_declined`): the score and the reasons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit: Option<xiezhi_core::CreditView>,
    /// Seconds to wait before trying again (also sent as `Retry-After`).
    #[serde(skip)]
    pub retry_after_s: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QrErrorDetail {
    pub code: String,
    pub field_id: Option<String>,
    pub offset: usize,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("https://xiezhi.dev/problems/{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            field: None,
            fields: None,
            qr_error: None,
            rule_id: None,
            scope: None,
            appeal_id: None,
            credit: None,
            retry_after_s: (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1),
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).expect("problems serialise");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub fn status_of(error: &CoreError) -> StatusCode {
    match error {
        CoreError::MerchantNotFound { .. }
        | CoreError::CreditLineNotFound { .. }
        | CoreError::PaymentNotFound { .. }
        | CoreError::ChallengeNotFound { .. }
        | CoreError::DecisionNotFound { .. }
        | CoreError::ListEntryNotFound { .. }
        | CoreError::ApiKeyNotFound { .. }
        | CoreError::RestrictionNotFound { .. }
        | CoreError::AppealNotFound { .. }
        | CoreError::OutboxMessageNotFound { .. }
        | CoreError::UserNotFound { .. } => StatusCode::NOT_FOUND,
        CoreError::RestrictionNotActive { .. }
        | CoreError::AppealExists { .. }
        | CoreError::AppealDecided { .. }
        | CoreError::AppealNotClaimed { .. }
        | CoreError::AppealClaimed { .. }
        | CoreError::OutboxNotDead { .. }
        | CoreError::OutboxCodeNotReplayable { .. } => StatusCode::CONFLICT,
        CoreError::NotAppealable { .. } | CoreError::InvalidText { .. } | CoreError::InvalidDeposit { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        CoreError::Forbidden { .. } => StatusCode::FORBIDDEN,
        CoreError::RuleRejected { .. } | CoreError::PolicyRejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        CoreError::ProfileRejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        CoreError::InvalidAmount { .. }
        | CoreError::UnknownCurrency { .. }
        | CoreError::AmountRequired
        | CoreError::InvalidRequest { .. }
        | CoreError::UnknownField { .. }
        | CoreError::MissingField { .. }
        | CoreError::InvalidType { .. } => StatusCode::BAD_REQUEST,
        CoreError::CreditDeclined { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        CoreError::InvalidQr { .. }
        | CoreError::CurrencyNotAdmitted { .. }
        | CoreError::MerchantNotAccepted { .. }
        | CoreError::AmountMismatch { .. }
        | CoreError::CurrencyMismatch { .. }
        | CoreError::CaptureExceedsAuthorized { .. }
        | CoreError::RefundExceedsCaptured { .. }
        | CoreError::RepaymentExceedsBalance { .. }
        | CoreError::IdempotencyKeyReused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        CoreError::InvalidPaymentState { .. } | CoreError::AuthorizationExpired { .. } => StatusCode::CONFLICT,
        CoreError::Overloaded | CoreError::StorageUnavailable { .. } | CoreError::ReadOnly { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        CoreError::BooksDisagree { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        CoreError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
    }
}

impl From<CoreError> for Problem {
    fn from(error: CoreError) -> Problem {
        let mut problem = Problem::new(status_of(&error), error.code(), error.to_string());
        match &error {
            CoreError::InvalidAmount { field, .. }
            | CoreError::InvalidRequest { field, .. }
            | CoreError::UnknownField { field }
            | CoreError::MissingField { field }
            | CoreError::InvalidType { field, .. }
            | CoreError::InvalidText { field, .. }
            | CoreError::InvalidDeposit { field, .. } => problem.field = Some(field.clone()),
            CoreError::ProfileRejected { fields, .. } => {
                problem.field = fields.first().cloned();
                problem.fields = Some(fields.clone());
            }
            CoreError::AppealExists { appeal_id } => problem.appeal_id = Some(appeal_id.clone()),
            CoreError::CreditDeclined { credit } => problem.credit = Some(credit.clone()),
            CoreError::AmountRequired => problem.field = Some("amount".into()),
            CoreError::RuleRejected { rule_id, .. } => problem.rule_id = Some(rule_id.clone()),
            CoreError::Forbidden { scope, .. } if !scope.is_empty() => problem.scope = Some(scope.clone()),
            CoreError::TooManyAttempts { retry_after_s } => problem.retry_after_s = Some(*retry_after_s),
            CoreError::InvalidQr { qr_error, field_id, offset, .. } => {
                problem.field = Some("qr_payload".into());
                problem.qr_error =
                    Some(QrErrorDetail { code: qr_error.clone(), field_id: field_id.clone(), offset: *offset });
            }
            _ => {}
        }
        problem
    }
}

/// Turns a JSON body error into a 400 that names the offending field (`path`, as
/// `serde_path_to_error` found it, e.g. `context.device_id`) and what was expected there.
pub fn json_problem(path: &str, error: &serde_json::Error) -> Problem {
    let message = error.to_string();
    let field_of = |rest: &str| rest.split('`').next().unwrap_or("").to_owned();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = field_of(rest);
        return Problem::new(StatusCode::BAD_REQUEST, "unknown_field", format!("unknown field `{field}`"))
            .with_field(field);
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = field_of(rest);
        return Problem::new(StatusCode::BAD_REQUEST, "missing_field", format!("missing field `{field}`"))
            .with_field(field);
    }
    if error.classify() == serde_json::error::Category::Data && !path.is_empty() && path != "." {
        // The JSON parsed; a value has the wrong type: say which field and what it takes.
        let detail = message.split(" at line ").next().unwrap_or(&message);
        let last = path.rsplit('.').next().unwrap_or(path);
        let money_field = matches!(last, "amount" | "tip" | "limit" | "max_amount");
        let hint = if money_field && (detail.contains("floating point") || detail.contains("integer")) {
            "; amounts are decimal strings such as \"12.30\""
        } else {
            ""
        };
        return Problem::new(StatusCode::BAD_REQUEST, "invalid_type", format!("`{path}`: {detail}{hint}"))
            .with_field(path);
    }
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid_json",
        format!("request body is not valid JSON for this endpoint: {message}"),
    )
}
