//! Requests, stored records and the views returned to clients. Amounts travel as decimal
//! strings in the currency's major unit ("12.30"); inside they are `i64` minor units.

use serde::{Deserialize, Serialize};
use xiezhi_money::{format_minor, Currency};

/// The most refunds one payment may have (each partial refund is one entry).
pub const MAX_REFUNDS_PER_PAYMENT: usize = 100;
/// Longest accepted free-text field (names, ids, device ids) in characters.
pub const MAX_TEXT_CHARS: usize = 128;

pub fn timestamp(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_else(|_| ms.to_string())
}

pub fn decimal(amount_minor: i64, currency: Currency) -> String {
    format_minor(amount_minor, currency.minor_unit_exponent())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerAccount {
    /// Globally unique identifier of a partner scheme admitted by configuration.
    pub globally_unique_identifier: String,
    /// The merchant's identifier within that scheme.
    pub merchant_ref: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMerchant {
    pub name: String,
    pub city: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// ISO 18245 merchant category code, four digits.
    pub mcc: String,
    pub currency: String,
    #[serde(default)]
    pub partner_accounts: Vec<PartnerAccount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCreditLine {
    pub user_id: String,
    pub currency: String,
    pub limit: String,
}

/// Where the payment came from, as the client reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
#[serde(deny_unknown_fields)]
pub struct NewPayment {
    pub credit_line_id: String,
    pub qr_payload: String,
    /// Required when the QR code is static; must match when it is dynamic.
    #[serde(default)]
    pub amount: Option<String>,
    /// Only where the QR code prompts for a tip (indicator 01).
    #[serde(default)]
    pub tip: Option<String>,
    #[serde(default)]
    pub context: PaymentContext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Approve,
    Decline,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    pub reason_codes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Authorized,
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
pub struct CreditLineView {
    pub id: String,
    pub user_id: String,
    pub currency: String,
    pub limit: String,
    pub available: String,
    pub held: String,
    pub receivable: String,
    pub credit_balance: String,
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
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundView {
    pub id: String,
    pub amount: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
pub struct RepaymentView {
    pub id: String,
    pub amount: String,
    pub credit_line: CreditLineView,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}
