//! Requests, stored records and the views returned to clients. Amounts travel as decimal
//! strings in the currency's major unit ("12.30"); inside they are `i64` minor units.

use serde::{Deserialize, Serialize};
use xiezhi_money::{format_minor, Currency};

/// The most refunds one payment may have (each partial refund is one entry).
pub const MAX_REFUNDS_PER_PAYMENT: usize = 100;
/// Longest accepted free-text field (names, ids, device ids) in characters.
pub const MAX_TEXT_CHARS: usize = 128;
/// Longest `context.user_agent`, in characters (browser user agents run to 200 and more).
pub const MAX_USER_AGENT_CHARS: usize = 256;
/// Longest `context.network` ("wifi", "4g", "5g", …) and `context.app_version`.
pub const MAX_CONTEXT_TAG_CHARS: usize = 32;
/// Longest `context.ip` (the longest IPv6 text form is 45 characters).
pub const MAX_IP_CHARS: usize = 64;

pub fn timestamp(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_else(|_| ms.to_string())
}

pub fn decimal(amount_minor: i64, currency: Currency) -> String {
    format_minor(amount_minor, currency.minor_unit_exponent())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PartnerAccount {
    /// Globally unique identifier of a partner scheme admitted by configuration.
    pub globally_unique_identifier: String,
    /// The merchant's identifier within that scheme.
    pub merchant_ref: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewMerchant {
    #[cfg_attr(feature = "utoipa", schema(min_length = 1, max_length = 128, example = "Lotus Market"))]
    pub name: String,
    #[cfg_attr(feature = "utoipa", schema(min_length = 1, max_length = 128, example = "Hangzhou"))]
    pub city: String,
    /// ISO 3166-1 alpha-2.
    #[cfg_attr(feature = "utoipa", schema(pattern = r"^[A-Z]{2}$", example = "CN"))]
    pub country: String,
    /// ISO 18245 merchant category code, four digits.
    #[cfg_attr(feature = "utoipa", schema(pattern = r"^[0-9]{4}$", example = "5411"))]
    pub mcc: String,
    #[cfg_attr(feature = "utoipa", schema(pattern = r"^[A-Z]{3}$", example = "CNY"))]
    pub currency: String,
    #[serde(default)]
    pub partner_accounts: Vec<PartnerAccount>,
    /// When the merchant was onboarded, for a merchant moved from an existing book (RFC 3339;
    /// not in the future). The risk engine reads the merchant's age from it. Default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(format = DateTime, example = "2025-01-01T00:00:00Z"))]
    pub onboarded_at: Option<String>,
}

#[cfg(test)]
impl NewMerchant {
    /// The grocer the crate's unit tests pay: a Hangzhou supermarket (MCC 5411) in CNY.
    pub(crate) fn lotus_market() -> NewMerchant {
        NewMerchant {
            name: "Lotus Market".into(),
            city: "Hangzhou".into(),
            country: "CN".into(),
            mcc: "5411".into(),
            currency: "CNY".into(),
            partner_accounts: vec![],
            onboarded_at: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewCreditLine {
    #[cfg_attr(feature = "utoipa", schema(min_length = 1, max_length = 128, example = "alice"))]
    pub user_id: String,
    #[cfg_attr(feature = "utoipa", schema(pattern = r"^[A-Z]{3}$", example = "CNY"))]
    pub currency: String,
    #[cfg_attr(feature = "utoipa", schema(pattern = r"^[0-9]{1,13}(\.[0-9]{1,2})?$", example = "2000.00"))]
    pub limit: String,
    /// Age, identity verification level and region, which regulatory policy may require.
    #[serde(default)]
    pub profile: UserProfile,
    /// When the line was opened, for a line moved from an existing book (RFC 3339; not in
    /// the future). The risk engine reads the line's age from it. Default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(format = DateTime, example = "2025-01-01T00:00:00Z"))]
    pub opened_at: Option<String>,
    /// The wallet the line belongs to (whose wallet keys and shopper tokens act for it). A
    /// wallet key's lines are its own wallet's; an operator names the wallet when it moves
    /// lines in for one. Default: the caller's wallet, or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_id: Option<String>,
    /// How the line's owner is told of restrictions, appeals and compensation besides the
    /// app (an email address; the language messages are written in). Optional: SMS goes to
    /// the user id, which the SMS gateway maps to the number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
}

/// Longest email address (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// Where a line's owner is told of what happens to them, kept apart from the risk engine's
/// `profile`: the profile is copied into every decision record, and an address has no
/// business there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Where email notifications go (when the service sends email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(max_length = 254, example = "alice@example.com"))]
    pub email: Option<String>,
    /// The language of every message to this user; Chinese when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<crate::status::Language>,
}

/// `POST /v1/credit-lines`: a line with a fixed `limit`, or one whose limit the credit
/// scorecard and the policy's `credit_limits` set from an `application` (what the applicant
/// declares, keyed by the scorecard's features) and the declared `monthly_income`. Exactly
/// one of `limit` and `application`; `monthly_income` goes with `application` only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "utoipa", schema(as = NewCreditLine))]
#[serde(deny_unknown_fields)]
pub struct CreditLineRequest {
    #[cfg_attr(feature = "utoipa", schema(min_length = 1, max_length = 128, example = "alice"))]
    pub user_id: String,
    #[cfg_attr(feature = "utoipa", schema(pattern = r"^[A-Z]{3}$", example = "CNY"))]
    pub currency: String,
    /// A fixed limit, decimal in the line's currency. Not with `application`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(pattern = r"^[0-9]{1,13}(\.[0-9]{1,2})?$", example = "2000.00"))]
    pub limit: Option<String>,
    /// What the applicant declares, one field per feature of the credit scorecard (the
    /// `CreditApplication` schema). Not with `limit`; needs `monthly_income`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<Object>))]
    pub application: Option<serde_json::Map<String, serde_json::Value>>,
    /// Declared monthly income, decimal in the line's currency: the band's income multiple
    /// applies to it. Only with `application`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(pattern = r"^[0-9]{1,13}(\.[0-9]{1,2})?$", example = "12000.00"))]
    pub monthly_income: Option<String>,
    /// Age, identity verification level and region, which regulatory policy may require.
    #[serde(default)]
    pub profile: UserProfile,
    /// When the line was opened, for a line moved from an existing book (RFC 3339; not in
    /// the future). The risk engine reads the line's age from it. Default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(format = DateTime, example = "2025-01-01T00:00:00Z"))]
    pub opened_at: Option<String>,
    /// The wallet the line belongs to (whose wallet keys and shopper tokens act for it). A
    /// wallet key's lines are its own wallet's; an operator names the wallet when it moves
    /// lines in for one. Default: the caller's wallet, or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_id: Option<String>,
    /// How the line's owner is told of restrictions, appeals and compensation besides the
    /// app (an email address; the language messages are written in). Optional: SMS goes to
    /// the user id, which the SMS gateway maps to the number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
}

/// A line applied for: the line's own fields (`line.limit` is unused: the assessment sets
/// the limit), the application checked against the credit model, and the declared income.
#[derive(Debug, Clone)]
pub struct CreditLineApplication {
    pub line: NewCreditLine,
    pub application: xiezhi_risk::Application,
    pub monthly_income: String,
}

/// What the credit scorecard made of a line's application: the score, the policy band it
/// fell in (none: declined) and the reasons that set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct CreditView {
    /// Scorecard points: 600 at 50:1 good to bad odds, 20 points to double them.
    pub score: i64,
    /// The policy's `credit_limits` band; `null` when the score is below every band.
    pub band: Option<String>,
    /// The features that cost the applicant most points, as `credit_*` codes with zh/en
    /// text: never a protected attribute.
    pub reasons: Vec<CreditReasonView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct CreditReasonView {
    pub code: String,
    pub explanation: Explanation,
}

impl From<&xiezhi_risk::CreditAssessment> for CreditView {
    fn from(a: &xiezhi_risk::CreditAssessment) -> CreditView {
        CreditView {
            score: a.score,
            band: a.band.clone(),
            reasons: a
                .reasons
                .iter()
                .map(|r| CreditReasonView { code: r.code.clone(), explanation: r.explanation.clone() })
                .collect(),
        }
    }
}

/// Where the payment came from, as the client reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PaymentContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(min_length = 1, max_length = 128, example = "d1"))]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(format = Ipv4, example = "203.0.113.9"))]
    pub ip: Option<String>,
    /// e.g. "wifi", "4g", "5g".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewPayment {
    pub credit_line_id: String,
    pub qr_payload: String,
    /// Required when the QR code is static; must match when it is dynamic.
    #[serde(default)]
    #[cfg_attr(feature = "utoipa", schema(pattern = r"^[0-9]{1,13}(\.[0-9]{1,2})?$", example = "88.80"))]
    pub amount: Option<String>,
    /// Only where the QR code prompts for a tip (indicator 01).
    #[serde(default)]
    #[cfg_attr(feature = "utoipa", schema(pattern = r"^[0-9]{1,13}(\.[0-9]{1,2})?$", example = "2.00"))]
    pub tip: Option<String>,
    #[serde(default)]
    pub context: PaymentContext,
}

pub use xiezhi_risk::{Explanation, Outcome, RecoveryKind, UserProfile};

/// A way out of a decision, as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RecoveryView {
    pub action: RecoveryKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<String>,
    /// `complete_profile` of a `policy_kyc_level` decline: the KYC level the payment needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kyc_level: Option<i64>,
    /// The profile fields the policy requires for `kyc_level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// Where to submit them: `POST /v1/credit-lines/{id}/profile` of the payment's line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl RecoveryView {
    /// A way out with no details yet.
    pub fn new(action: RecoveryKind) -> RecoveryView {
        RecoveryView {
            action,
            max_amount: None,
            until: None,
            deadline: None,
            challenge_id: None,
            kyc_level: None,
            fields: None,
            endpoint: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct NoticeView {
    pub clause_id: String,
    pub reason_code: String,
    pub effective_from: String,
    pub explanation: Explanation,
}

/// The decision on a payment: what happened, why, in words, and the ways out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Decision {
    pub outcome: Outcome,
    pub reason_codes: Vec<String>,
    #[serde(default)]
    pub explanation: Explanation,
    #[serde(default)]
    pub recovery: Vec<RecoveryView>,
    /// When a restriction ends, a challenge lapses, or a declined payment may be retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The challenge to complete (`POST /v1/challenges/{id}`) for a step-up or restriction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<String>,
    /// Policy changes that will soon affect payments like this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<NoticeView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Authorized,
    /// Stepped up: waits for its challenge (`POST /v1/challenges/{id}`); no credit is held.
    ChallengeRequired,
    Declined,
    Captured,
    PartiallyRefunded,
    Refunded,
    Voided,
    Expired,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::ChallengeRequired => "challenge_required",
            PaymentStatus::Declined => "declined",
            PaymentStatus::Captured => "captured",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::Voided => "voided",
            PaymentStatus::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merchant {
    pub id: String,
    pub name: String,
    pub city: String,
    pub country: String,
    pub mcc: String,
    pub currency: Currency,
    pub qr_payload: String,
    #[serde(default)]
    pub partner_accounts: Vec<PartnerAccount>,
    pub created_at_ms: i64,
    /// The key that registered the merchant (and set `onboarded_at`, if it did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundEntry {
    pub id: String,
    pub amount_minor: i64,
    pub at_ms: i64,
}

/// A payment as stored. Its id is also the id of its hold in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    pub credit_line_id: String,
    pub merchant_id: String,
    pub merchant_name: String,
    pub currency: Currency,
    pub amount_minor: i64,
    /// Part of `amount_minor` that is a tip or convenience fee from the QR code.
    pub fee_minor: i64,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    pub status: PaymentStatus,
    pub decision: Decision,
    pub refunds: Vec<RefundEntry>,
    pub context: PaymentContext,
    pub dynamic_qr: bool,
    pub bill_number: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    /// What happened after the decision, oldest first (`lifecycle.rs`). Absent from
    /// payments recorded before lifecycles were kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lifecycle: Vec<crate::lifecycle::LifecycleEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct MerchantView {
    pub id: String,
    pub name: String,
    pub city: String,
    pub country: String,
    pub mcc: String,
    pub currency: String,
    pub qr_payload: String,
    pub partner_accounts: Vec<PartnerAccount>,
    pub created_at: String,
}

impl From<&Merchant> for MerchantView {
    fn from(m: &Merchant) -> MerchantView {
        MerchantView {
            id: m.id.clone(),
            name: m.name.clone(),
            city: m.city.clone(),
            country: m.country.clone(),
            mcc: m.mcc.clone(),
            currency: m.currency.alpha().to_owned(),
            qr_payload: m.qr_payload.clone(),
            partner_accounts: m.partner_accounts.clone(),
            created_at: timestamp(m.created_at_ms),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct CreditLineView {
    pub id: String,
    pub user_id: String,
    pub currency: String,
    pub limit: String,
    pub available: String,
    pub held: String,
    pub receivable: String,
    pub credit_balance: String,
    /// The restriction in force on scan-to-pay, with its end and way out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restriction: Option<RestrictionView>,
    /// For a line opened on an application: the score, band and reasons that set its limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<CreditView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RestrictionView {
    /// The restriction's id (`GET /v1/restrictions/{id}`).
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub scope: RestrictionScope,
    /// The first of `reason_codes`.
    pub reason_code: String,
    #[serde(default)]
    pub reason_codes: Vec<String>,
    pub explanation: Explanation,
    /// When it was imposed.
    #[serde(default)]
    pub imposed_at: String,
    /// When it ends by itself (the same instant as `until`).
    #[serde(default)]
    pub expires_at: String,
    pub until: String,
    pub payment_id: Option<String>,
    /// Pass this challenge to lift the restriction now.
    pub challenge_id: Option<String>,
    pub appeal_deadline: String,
}

impl From<&xiezhi_ledger::CreditLine> for CreditLineView {
    fn from(line: &xiezhi_ledger::CreditLine) -> CreditLineView {
        let c = line.currency;
        CreditLineView {
            id: line.id.clone(),
            user_id: line.user_id.clone(),
            currency: c.alpha().to_owned(),
            limit: decimal(line.limit_minor(), c),
            available: decimal(line.available_minor(), c),
            held: decimal(line.held_minor(), c),
            receivable: decimal(line.receivable_minor(), c),
            credit_balance: decimal(line.credit_balance_minor(), c),
            restriction: None,
            credit: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RefundView {
    pub id: String,
    pub amount: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct PaymentView {
    pub id: String,
    pub status: PaymentStatus,
    pub credit_line_id: String,
    pub merchant_id: String,
    pub merchant_name: String,
    pub currency: String,
    pub amount: String,
    pub fee: String,
    pub captured_amount: String,
    pub refunded_amount: String,
    pub decision: Decision,
    pub refunds: Vec<RefundView>,
    pub context: PaymentContext,
    pub dynamic_qr: bool,
    pub bill_number: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: Option<String>,
}

impl From<&Payment> for PaymentView {
    fn from(p: &Payment) -> PaymentView {
        let c = p.currency;
        PaymentView {
            id: p.id.clone(),
            status: p.status,
            credit_line_id: p.credit_line_id.clone(),
            merchant_id: p.merchant_id.clone(),
            merchant_name: p.merchant_name.clone(),
            currency: c.alpha().to_owned(),
            amount: decimal(p.amount_minor, c),
            fee: decimal(p.fee_minor, c),
            captured_amount: decimal(p.captured_minor, c),
            refunded_amount: decimal(p.refunded_minor, c),
            decision: p.decision.clone(),
            refunds: p
                .refunds
                .iter()
                .map(|r| RefundView {
                    id: r.id.clone(),
                    amount: decimal(r.amount_minor, c),
                    created_at: timestamp(r.at_ms),
                })
                .collect(),
            context: p.context.clone(),
            dynamic_qr: p.dynamic_qr,
            bill_number: p.bill_number.clone(),
            created_at: timestamp(p.created_at_ms),
            updated_at: timestamp(p.updated_at_ms),
            expires_at: p.expires_at_ms.map(timestamp),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RepaymentView {
    pub id: String,
    pub amount: String,
    pub credit_line: CreditLineView,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct DynamicQrView {
    pub merchant_id: String,
    pub amount: String,
    pub currency: String,
    pub bill_number: Option<String>,
    pub qr_payload: String,
}

/// A successful reply. Tagged so that an idempotency record can store and replay it.
// Moved once from the writer to the caller, so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum Reply {
    Merchant(MerchantView),
    CreditLine(CreditLineView),
    Payment(PaymentView),
    Repayment(RepaymentView),
    DynamicQr(DynamicQrView),
    Challenge(ChallengeView),
    /// Administrative and read-only answers (decision records, rules, lists, policy).
    Document(serde_json::Value),
    /// A user's status, typed so that its explanations keep the user's language first.
    UserStatus(Box<crate::UserStatusView>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChallengePurpose {
    /// Completes a stepped-up payment.
    Payment,
    /// Lifts a restriction on the credit line.
    LiftRestriction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChallengeStatus {
    Pending,
    Passed,
    Failed,
    Expired,
}

/// A challenge as stored. The code itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub id: String,
    pub purpose: ChallengePurpose,
    pub method: xiezhi_risk::ChallengeMethod,
    pub payment_id: Option<String>,
    pub credit_line_id: String,
    pub user_id: String,
    pub device_id: Option<String>,
    /// HMAC-SHA-256 of the code under the service's code secret (hex): a copy of the store
    /// alone neither shows the code nor lets anyone try the million codes against it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code_hmac: String,
    /// Before issue 12: SHA-256 of `id:code`, still honoured for challenges opened then.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code_sha256: String,
    pub attempts: u32,
    pub max_attempts: u32,
    /// When each wrong answer came: replayed into the engine at start-up.
    #[serde(default)]
    pub wrong_answers_at_ms: Vec<i64>,
    pub status: ChallengeStatus,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ChallengeView {
    pub id: String,
    pub purpose: ChallengePurpose,
    pub method: xiezhi_risk::ChallengeMethod,
    pub status: ChallengeStatus,
    pub credit_line_id: String,
    pub payment_id: Option<String>,
    pub attempts_left: u32,
    pub expires_at: String,
    /// The payment after the challenge, for payment challenges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_line: Option<CreditLineView>,
}

impl From<&Challenge> for ChallengeView {
    fn from(c: &Challenge) -> ChallengeView {
        ChallengeView {
            id: c.id.clone(),
            purpose: c.purpose,
            method: c.method,
            status: c.status,
            credit_line_id: c.credit_line_id.clone(),
            payment_id: c.payment_id.clone(),
            attempts_left: c.max_attempts.saturating_sub(c.attempts),
            expires_at: timestamp(c.expires_at_ms),
            payment: None,
            credit_line: None,
        }
    }
}

/// `POST /v1/challenges/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChallengeAnswer {
    #[cfg_attr(feature = "utoipa", schema(pattern = r"^[0-9]{6}$", example = "123456"))]
    pub code: String,
}

/// One message in a user's app inbox: restriction notices, and that a code was sent (the
/// code itself goes out through the `Notifier` only). Records written by builds before
/// that held a `code` field; it is not read, so it is never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub kind: String,
    pub message: Explanation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<String>,
    pub created_at: String,
}

/// A restriction as stored, keyed by its id. Records stored before restrictions had ids
/// (keyed by credit line, one `reason_code`, no scope, author or history) still load:
/// [`Restriction::upgrade`] fills in what they lack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restriction {
    /// `rs_…`; an older record gets its store key (its credit line's id) when loaded.
    #[serde(default)]
    pub id: String,
    pub credit_line_id: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub scope: RestrictionScope,
    /// Every reason code of the decision that imposed it.
    #[serde(default)]
    pub reason_codes: Vec<String>,
    /// The first reason code, still written so that a build from before `reason_codes`
    /// reads the record.
    pub reason_code: String,
    pub explanation: Explanation,
    pub payment_id: Option<String>,
    pub challenge_id: Option<String>,
    #[serde(default)]
    pub imposed_by: ImposedBy,
    /// When it was imposed.
    pub created_at_ms: i64,
    /// When it ends by itself: never later than the policy's `max_duration_hours` after
    /// `created_at_ms`.
    pub until_ms: i64,
    /// Until when the user may appeal it.
    pub appeal_deadline_ms: i64,
    pub lifted_at_ms: Option<i64>,
    /// What happened to it, oldest first (at most [`MAX_RESTRICTION_EVENTS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RestrictionEvent>,
}

/// The most events one restriction's history keeps: imposing, a challenge, appeals (at most
/// [`MAX_APPEALS_PER_SUBJECT`], each filed, escalated and decided) and the lift fit well
/// within it; beyond it the oldest events after the first are dropped (never the lift).
pub const MAX_RESTRICTION_EVENTS: usize = 32;
/// The most appeals one decision or restriction may have (one open at a time).
pub const MAX_APPEALS_PER_SUBJECT: usize = 3;

impl Restriction {
    /// Fills in what a record stored before restrictions had ids lacks: its id (`key`, the
    /// id it is stored under), its reason codes, its user and the history it implies.
    pub fn upgrade(&mut self, key: &str, user_id: Option<&str>) {
        if self.id.is_empty() {
            self.id = key.to_owned();
        }
        if self.reason_codes.is_empty() && !self.reason_code.is_empty() {
            self.reason_codes = vec![self.reason_code.clone()];
        }
        if self.user_id.is_empty() {
            self.user_id = user_id.unwrap_or_default().to_owned();
        }
        if self.history.is_empty() {
            self.history.push(RestrictionEvent::new(RestrictionEventKind::Imposed, self.created_at_ms));
            if let Some(at_ms) = self.lifted_at_ms {
                self.history.push(RestrictionEvent::new(RestrictionEventKind::Lifted, at_ms));
            }
        }
    }

    /// In force at `now_ms`: not lifted and not yet at its end.
    pub fn in_force(&self, now_ms: i64) -> bool {
        self.lifted_at_ms.is_none() && self.until_ms > now_ms
    }

    /// Appends an event. A full history drops its oldest event after the first, never the
    /// first (imposed) nor a lift.
    pub fn record(&mut self, event: RestrictionEvent) {
        if self.history.len() >= MAX_RESTRICTION_EVENTS {
            let droppable = self.history.iter().skip(1).position(|e| e.kind != RestrictionEventKind::Lifted);
            if let Some(i) = droppable {
                self.history.remove(i + 1);
            }
        }
        self.history.push(event);
    }
}

/// What a restriction pauses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RestrictionScope {
    /// One payment (not imposed by anything yet).
    Payment,
    /// Credit scan-to-pay on the line: what the risk engine's `restrict` imposes.
    #[default]
    ScanToPay,
    /// Everything on the line (not imposed by anything yet).
    CreditLine,
}

/// Who or what imposed a restriction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ImposerKind {
    /// The risk engine, deciding a payment.
    Decision,
    /// An operator (a key or a console user).
    Operator,
    /// Stored before restrictions said who imposed them.
    #[default]
    Unrecorded,
}

/// Who or what imposed a restriction: for a decision, the payment, what raised the
/// signals that restricted (policy clause ids, `rule_id@version`, the scorer, built-in
/// checks) and the versions of policy, rules and model in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ImposedBy {
    pub kind: ImposerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The operator's key id or console user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RestrictionEventKind {
    Imposed,
    /// The lifting challenge was passed (the lift follows as its own event).
    ChallengePassed,
    AppealFiled,
    /// An appeal passed its deadline undecided.
    AppealEscalated,
    AppealDecided,
    Lifted,
}

/// Why a restriction was lifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LiftCause {
    /// It reached its end.
    Expired,
    ChallengePassed,
    /// A reviewer found for the user.
    AppealOverturned,
    /// Its appeal was not decided in time and the policy lifts on escalation.
    AppealEscalated,
    /// An operator lifted it, with a reason.
    Operator,
    /// A newer restriction on the same line replaced it.
    Superseded,
    /// It was imposed for the KYC level alone, and the line's profile step reached it
    /// (`POST /v1/credit-lines/{id}/profile`).
    ProfileCompleted,
}

/// One event in a restriction's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestrictionEvent {
    pub kind: RestrictionEventKind,
    pub at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<LiftCause>,
    /// Who: an API key's id, `system` (the service's own clock) or `shopper:<credit line>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appeal_id: Option<String>,
    /// An appeal's outcome (`uphold`, `overturn`), on `appeal_decided`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<AppealOutcome>,
}

impl RestrictionEvent {
    pub fn new(kind: RestrictionEventKind, at_ms: i64) -> RestrictionEvent {
        RestrictionEvent { kind, at_ms, cause: None, by: None, reason: None, appeal_id: None, outcome: None }
    }
}

impl From<&Restriction> for RestrictionView {
    fn from(r: &Restriction) -> RestrictionView {
        RestrictionView {
            id: r.id.clone(),
            scope: r.scope,
            reason_code: r.reason_code.clone(),
            reason_codes: r.reason_codes.clone(),
            explanation: r.explanation.clone(),
            imposed_at: timestamp(r.created_at_ms),
            expires_at: timestamp(r.until_ms),
            until: timestamp(r.until_ms),
            payment_id: r.payment_id.clone(),
            challenge_id: r.challenge_id.clone(),
            appeal_deadline: timestamp(r.appeal_deadline_ms),
        }
    }
}

/// An appeal's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AppealOutcome {
    /// The decision stands.
    Uphold,
    /// The decision was wrong: the restriction is lifted, the decision labelled a false
    /// positive, and compensation is due.
    Overturn,
}

/// Per credit line facts the ledger does not keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineProfile {
    pub credit_line_id: String,
    pub user_id: String,
    pub profile: UserProfile,
    pub opened_at_ms: i64,
    /// The wallet the line belongs to: its wallet keys and shopper tokens act for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_id: Option<String>,
    /// The key that opened the line (and set `opened_at` or the KYC level, if it did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_by: Option<String>,
    /// For a line opened on an application: the scorecard's assessment (score, band,
    /// limit, reasons) and the declared monthly income. The band is the `credit_band` of
    /// the line's payments. A line opened with a fixed limit has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<LineCredit>,
    /// How the owner is told of what happens to them (outbox notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
    /// The profile steps completed on the line: field names and times, never the values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profile_steps: Vec<crate::profile::ProfileStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineCredit {
    pub assessment: xiezhi_risk::CreditAssessment,
    pub monthly_income_minor: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restriction as builds before issue 14 stored it (keyed by its line).
    const LEGACY: &str = r#"{"credit_line_id":"cl_1","reason_code":"repeated_challenge_failures",
        "explanation":{"zh":"暂停","en":"paused"},"payment_id":"pay_1","challenge_id":"ch_1",
        "created_at_ms":1000,"until_ms":5000,"appeal_deadline_ms":9000,"lifted_at_ms":3000}"#;

    #[test]
    fn a_restriction_stored_before_ids_reads_with_its_key_codes_and_implied_history() {
        let mut r: Restriction = serde_json::from_str(LEGACY).expect("an old record still reads");
        r.upgrade("cl_1", Some("alice"));
        assert_eq!((r.id.as_str(), r.user_id.as_str(), r.scope), ("cl_1", "alice", RestrictionScope::ScanToPay));
        assert_eq!(r.reason_codes, ["repeated_challenge_failures"]);
        assert_eq!(r.imposed_by.kind, ImposerKind::Unrecorded);
        let kinds: Vec<_> = r.history.iter().map(|e| (e.kind, e.at_ms)).collect();
        assert_eq!(kinds, [(RestrictionEventKind::Imposed, 1000), (RestrictionEventKind::Lifted, 3000)]);
        assert!(!r.in_force(2000), "lifted");
        // Written again, it keeps `reason_code` for a build that reads only that.
        let again: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(again["reason_code"], "repeated_challenge_failures");
    }

    #[test]
    fn a_full_history_keeps_its_first_event_and_its_lift() {
        let mut r: Restriction = serde_json::from_str(LEGACY).unwrap();
        r.upgrade("cl_1", None);
        for at in 0..100 {
            r.record(RestrictionEvent::new(RestrictionEventKind::AppealFiled, 10_000 + at));
        }
        assert_eq!(r.history.len(), MAX_RESTRICTION_EVENTS);
        assert_eq!(r.history[0].kind, RestrictionEventKind::Imposed);
        assert_eq!(r.history.iter().filter(|e| e.kind == RestrictionEventKind::Lifted).count(), 1);
        assert_eq!(r.history.last().unwrap().at_ms, 10_099);
    }
}
