use serde::{Deserialize, Serialize};

/// Why the service refused a request. Serialisable because a refusal is part of what an
/// idempotency key replays. `code()` is the stable machine-readable name clients rely on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum CoreError {
    #[error("merchant `{id}` not found")]
    MerchantNotFound { id: String },
    #[error("credit line `{id}` not found")]
    CreditLineNotFound { id: String },
    #[error("payment `{id}` not found")]
    PaymentNotFound { id: String },
    #[error("{message}")]
    InvalidQr { qr_error: String, field_id: Option<String>, offset: usize, message: String },
    #[error("this QR code names no merchant that Xiezhi accepts: {reason}")]
    MerchantNotAccepted { reason: String },
    #[error("{message}")]
    InvalidAmount { field: String, message: String },
    #[error("unknown currency `{currency}`")]
    UnknownCurrency { currency: String },
    #[error("the policy grants no credit in {currency}: no clause in force caps payments in it")]
    CurrencyNotAdmitted { currency: String },
    #[error("`amount` is required: the QR code is static and carries no amount")]
    AmountRequired,
    #[error("amount {requested} does not match the amount {qr_amount} in the dynamic QR code")]
    AmountMismatch { requested: String, qr_amount: String },
    #[error("currency {got} does not match {expected}")]
    CurrencyMismatch { expected: String, got: String },
    #[error("{message}")]
    InvalidRequest { field: String, message: String },
    /// A profile step refused: the level or the fields named are missing or not acceptable.
    #[error("{message}")]
    ProfileRejected { fields: Vec<String>, message: String },
    #[error("payment is {status}: {message}")]
    InvalidPaymentState { status: String, message: String },
    #[error("capture of {requested} exceeds the authorized {authorized}")]
    CaptureExceedsAuthorized { requested: String, authorized: String },
    #[error("refund of {requested} exceeds the refundable {refundable}")]
    RefundExceedsCaptured { requested: String, refundable: String },
    #[error("repayment of {requested} exceeds the outstanding {outstanding}")]
    RepaymentExceedsBalance { requested: String, outstanding: String },
    #[error("the authorization expired at {expires_at}")]
    AuthorizationExpired { expires_at: String },
    #[error("idempotency key `{key}` was already used with a different request")]
    IdempotencyKeyReused { key: String },
    #[error("challenge `{id}` not found")]
    ChallengeNotFound { id: String },
    #[error("payment `{id}` has no decision record: it was refused before the risk engine ran")]
    DecisionNotFound { id: String },
    #[error("list entry `{id}` not found")]
    ListEntryNotFound { id: String },
    #[error("rule `{rule_id}` rejected: {message}")]
    RuleRejected { rule_id: String, message: String },
    #[error("policy rejected: {message}")]
    PolicyRejected { message: String },
    #[error("the service is overloaded; retry with the same idempotency key")]
    Overloaded,
    #[error("storage is unavailable: {message}")]
    StorageUnavailable { message: String },
    /// A stored record and the ledger disagree about `id`: nothing is done with it until an
    /// operator has looked (`xiezhi store check`).
    #[error("the books disagree about `{id}`: {detail}")]
    BooksDisagree { id: String, detail: String },
    #[error("the service is serving reads only: {reason}")]
    ReadOnly { reason: String },
    #[error("too many wrong codes on this credit line within the hour; try again in {retry_after_s} s")]
    TooManyAttempts { retry_after_s: u64 },
    #[error("API key `{id}` not found (or no longer valid)")]
    ApiKeyNotFound { id: String },
    /// The caller is known but may not do this: `scope` names the scope it lacks (empty
    /// when no scope would help, e.g. a merchant key asking for a rule change).
    #[error("{message}")]
    Forbidden { scope: String, message: String },
    /// A field the request may not have (in a body checked beyond its type, such as a
    /// credit application).
    #[error("unknown field `{field}`")]
    UnknownField { field: String },
    #[error("missing field `{field}`")]
    MissingField { field: String },
    #[error("{message}")]
    InvalidType { field: String, message: String },
    /// The application scored below every band of the policy's `credit_limits`: no line
    /// was opened. `credit` says the score and the reasons (an adverse-action notice).
    #[error("the application scored {} points, below every credit band: no line was opened", credit.score)]
    CreditDeclined { credit: crate::CreditView },
    #[error("restriction `{id}` not found")]
    RestrictionNotFound { id: String },
    #[error("appeal `{id}` not found")]
    AppealNotFound { id: String },
    /// No line of this user that the caller may see.
    #[error("user `{id}` not found")]
    UserNotFound { id: String },
    #[error("restriction `{id}` is not in force (lifted or ended)")]
    RestrictionNotActive { id: String },
    /// One appeal at a time per decision and restriction: `appeal_id` is the one waiting.
    #[error("an appeal of this is already waiting for a decision: `{appeal_id}`")]
    AppealExists { appeal_id: String },
    #[error("appeal `{id}` is decided; a decision is final")]
    AppealDecided { id: String },
    #[error("appeal `{id}` is not claimed: claim it (`POST /v1/appeals/{id}/claim`) before deciding")]
    AppealNotClaimed { id: String },
    #[error("appeal `{id}` is claimed by `{claimed_by}`")]
    AppealClaimed { id: String, claimed_by: String },
    /// The request is well formed but there is nothing it may appeal (an approval, a window
    /// that closed, too many appeals).
    #[error("{message}")]
    NotAppealable { message: String },
    /// Free text (a reason, a message, a note) that is blank, too long or not text.
    #[error("{message}")]
    InvalidText { field: String, message: String },
    /// A deposit into the compensation fund of no positive amount, or in a currency the
    /// policy grants no credit in.
    #[error("{message}")]
    InvalidDeposit { field: String, message: String },
    #[error("outbox message `{id}` not found")]
    OutboxMessageNotFound { id: String },
    /// Only a dead letter is replayed: a message still being delivered, or delivered, is not.
    #[error("outbox message `{id}` is {state}, not dead: only dead letters are replayed")]
    OutboxNotDead { id: String, state: String },
    /// A one-time code's row is never sent again once dead: its code was erased, and a
    /// late code is worthless. The shopper asks for a new one.
    #[error("outbox message `{id}` carried a one-time code: its code was erased when it died and it is never replayed; ask for a new code")]
    OutboxCodeNotReplayable { id: String },
}

impl CoreError {
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::MerchantNotFound { .. } => "merchant_not_found",
            CoreError::CreditLineNotFound { .. } => "credit_line_not_found",
            CoreError::PaymentNotFound { .. } => "payment_not_found",
            CoreError::InvalidQr { .. } => "invalid_qr",
            CoreError::MerchantNotAccepted { .. } => "merchant_not_accepted",
            CoreError::InvalidAmount { .. } => "invalid_amount",
            CoreError::UnknownCurrency { .. } => "unknown_currency",
            CoreError::CurrencyNotAdmitted { .. } => "currency_not_admitted",
            CoreError::AmountRequired => "amount_required",
            CoreError::AmountMismatch { .. } => "amount_mismatch",
            CoreError::CurrencyMismatch { .. } => "currency_mismatch",
            CoreError::InvalidRequest { .. } => "invalid_request",
            CoreError::ProfileRejected { .. } => "profile_rejected",
            CoreError::InvalidPaymentState { .. } => "invalid_payment_state",
            CoreError::CaptureExceedsAuthorized { .. } => "capture_exceeds_authorized",
            CoreError::RefundExceedsCaptured { .. } => "refund_exceeds_captured",
            CoreError::RepaymentExceedsBalance { .. } => "repayment_exceeds_balance",
            CoreError::AuthorizationExpired { .. } => "authorization_expired",
            CoreError::IdempotencyKeyReused { .. } => "idempotency_key_reused",
            CoreError::ChallengeNotFound { .. } => "challenge_not_found",
            CoreError::DecisionNotFound { .. } => "decision_not_found",
            CoreError::ListEntryNotFound { .. } => "list_entry_not_found",
            CoreError::RuleRejected { .. } => "rule_rejected",
            CoreError::PolicyRejected { .. } => "policy_rejected",
            CoreError::Overloaded => "overloaded",
            CoreError::StorageUnavailable { .. } => "storage_unavailable",
            CoreError::BooksDisagree { .. } => "books_disagree",
            CoreError::ReadOnly { .. } => "read_only",
            CoreError::TooManyAttempts { .. } => "too_many_attempts",
            CoreError::ApiKeyNotFound { .. } => "api_key_not_found",
            CoreError::Forbidden { .. } => "forbidden",
            CoreError::UnknownField { .. } => "unknown_field",
            CoreError::MissingField { .. } => "missing_field",
            CoreError::InvalidType { .. } => "invalid_type",
            CoreError::CreditDeclined { .. } => "credit_declined",
            CoreError::RestrictionNotFound { .. } => "restriction_not_found",
            CoreError::AppealNotFound { .. } => "appeal_not_found",
            CoreError::UserNotFound { .. } => "user_not_found",
            CoreError::RestrictionNotActive { .. } => "restriction_not_active",
            CoreError::AppealExists { .. } => "appeal_exists",
            CoreError::AppealDecided { .. } => "appeal_decided",
            CoreError::AppealNotClaimed { .. } => "appeal_not_claimed",
            CoreError::AppealClaimed { .. } => "appeal_claimed",
            CoreError::NotAppealable { .. } => "not_appealable",
            CoreError::InvalidText { .. } => "invalid_text",
            CoreError::InvalidDeposit { .. } => "invalid_deposit",
            CoreError::OutboxMessageNotFound { .. } => "outbox_message_not_found",
            CoreError::OutboxNotDead { .. } => "outbox_not_dead",
            CoreError::OutboxCodeNotReplayable { .. } => "outbox_code_not_replayable",
        }
    }

    /// Whether a retry of the same request may succeed (the idempotency record is not kept).
    pub fn is_transient(&self) -> bool {
        matches!(self, CoreError::Overloaded | CoreError::StorageUnavailable { .. })
    }
}

impl From<xiezhi_risk::ApplicationError> for CoreError {
    fn from(error: xiezhi_risk::ApplicationError) -> CoreError {
        let field = error.field();
        match error {
            xiezhi_risk::ApplicationError::UnknownField(_) => CoreError::UnknownField { field },
            xiezhi_risk::ApplicationError::MissingField(_) => CoreError::MissingField { field },
            xiezhi_risk::ApplicationError::InvalidType { .. } => {
                CoreError::InvalidType { field, message: error.to_string() }
            }
            xiezhi_risk::ApplicationError::InvalidValue { .. } => {
                CoreError::InvalidRequest { field, message: error.to_string() }
            }
        }
    }
}

impl From<xiezhi_qr::QrError> for CoreError {
    fn from(error: xiezhi_qr::QrError) -> CoreError {
        CoreError::InvalidQr {
            qr_error: error.code().to_owned(),
            field_id: error.field_id.clone(),
            offset: error.offset,
            message: format!("invalid QR payload: {error}"),
        }
    }
}
