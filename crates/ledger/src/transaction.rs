use serde::{Deserialize, Serialize};
use xiezhi_money::Currency;

/// Accounts that belong to one credit line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineAccount {
    /// Contra account of the granted limit: balance is −limit.
    Limit,
    Available,
    Held,
    /// Capacity used by captured spending not yet repaid or refunded.
    Drawn,
    /// What the user owes (money book).
    Receivable,
    /// What the platform owes the user, e.g. after a refund of already-repaid spending
    /// (money book, credit-normal: balance ≤ 0).
    CreditBalance,
}

/// Platform accounts, one set per currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformAccount {
    /// Owed to merchants for captured payments (credit-normal).
    MerchantSettlementPayable,
    /// Cash received from users' repayments.
    RepaymentsReceived,
    /// Fees earned (credit-normal).
    FeeIncome,
    /// Money set aside to compensate wrongly harmed users: what the fund can still pay
    /// (credit-normal, like a user's credit balance: balance ≤ 0, never above zero).
    CompensationFund,
    /// The platform's own money paid into the compensation fund: the contra account of every
    /// deposit (debit-normal: the total the platform has put in). Users' money never is.
    PlatformOwnFunds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Book {
    Credit,
    Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "owner", rename_all = "snake_case")]
pub enum Account {
    Line { credit_line_id: String, account: LineAccount },
    Platform { currency: Currency, account: PlatformAccount },
}

impl Account {
    pub fn book(&self) -> Book {
        match self {
            Account::Line { account, .. } => match account {
                LineAccount::Limit | LineAccount::Available | LineAccount::Held | LineAccount::Drawn => Book::Credit,
                LineAccount::Receivable | LineAccount::CreditBalance => Book::Money,
            },
            Account::Platform { .. } => Book::Money,
        }
    }

    /// A stable textual name, e.g. `line:cl_1:available` or `platform:CNY:fee_income`.
    pub fn name(&self) -> String {
        match self {
            Account::Line { credit_line_id, account } => format!("line:{credit_line_id}:{}", account.as_str()),
            Account::Platform { currency, account } => {
                format!("platform:{currency}:{}", account.as_str())
            }
        }
    }
}

impl LineAccount {
    pub fn as_str(self) -> &'static str {
        match self {
            LineAccount::Limit => "limit",
            LineAccount::Available => "available",
            LineAccount::Held => "held",
            LineAccount::Drawn => "drawn",
            LineAccount::Receivable => "receivable",
            LineAccount::CreditBalance => "credit_balance",
        }
    }
}

impl PlatformAccount {
    pub fn as_str(self) -> &'static str {
        match self {
            PlatformAccount::MerchantSettlementPayable => "merchant_settlement_payable",
            PlatformAccount::RepaymentsReceived => "repayments_received",
            PlatformAccount::FeeIncome => "fee_income",
            PlatformAccount::CompensationFund => "compensation_fund",
            PlatformAccount::PlatformOwnFunds => "platform_own_funds",
        }
    }
}

/// One leg of a transaction: a signed amount (debit positive, credit negative).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    pub account: Account,
    pub amount_minor: i64,
}

/// What a transaction did, with everything needed to re-execute it on replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Operation {
    OpenLine {
        credit_line_id: String,
        user_id: String,
        currency: Currency,
        limit_minor: i64,
    },
    Authorize {
        hold_id: String,
        credit_line_id: String,
        amount_minor: i64,
        expires_at_ms: i64,
    },
    Capture {
        hold_id: String,
        amount_minor: i64,
    },
    Void {
        hold_id: String,
    },
    Expire {
        hold_id: String,
    },
    Refund {
        hold_id: String,
        amount_minor: i64,
    },
    Repay {
        credit_line_id: String,
        amount_minor: i64,
    },
    /// The platform pays its own money into the compensation fund of `currency`.
    FundDeposit {
        currency: Currency,
        amount_minor: i64,
        reference: String,
    },
    /// The fund compensates a user harmed by a wrongful decision (the overturned appeal
    /// `appeal_id`): credited to their line as credit balance.
    CompensationPayout {
        appeal_id: String,
        credit_line_id: String,
        amount_minor: i64,
    },
}

impl Operation {
    /// The hold an operation acts on, if any.
    pub fn hold_id(&self) -> Option<&str> {
        match self {
            Operation::Authorize { hold_id, .. }
            | Operation::Capture { hold_id, .. }
            | Operation::Void { hold_id }
            | Operation::Expire { hold_id }
            | Operation::Refund { hold_id, .. } => Some(hold_id),
            Operation::OpenLine { .. }
            | Operation::Repay { .. }
            | Operation::FundDeposit { .. }
            | Operation::CompensationPayout { .. } => None,
        }
    }
}

/// A balanced set of postings, numbered in journal order from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub id: u64,
    pub at_ms: i64,
    pub currency: Currency,
    pub operation: Operation,
    pub postings: Vec<Posting>,
}

impl Transaction {
    /// Sum of postings in `book`; zero for every book of a valid transaction.
    pub fn book_sum(&self, book: Book) -> i128 {
        self.postings.iter().filter(|p| p.account.book() == book).map(|p| i128::from(p.amount_minor)).sum()
    }

    pub fn is_balanced(&self) -> bool {
        self.book_sum(Book::Credit) == 0 && self.book_sum(Book::Money) == 0
    }
}
