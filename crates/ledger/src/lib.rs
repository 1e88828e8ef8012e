//! The credit-line ledger: double-entry, pure domain, no I/O.
//!
//! Every operation produces one [`Transaction`] whose postings sum to zero in each of two
//! books, and balances change only by applying postings, so the balances are always the sum
//! of the journal:
//!
//! - the **credit book** (memo accounts) tracks capacity: `limit` (contra, −L), `available`,
//!   `held` and `drawn`, with `limit + available + held + drawn = 0` for every line;
//! - the **money book** tracks what is owed: the line's `receivable` (the user owes us) and
//!   `credit_balance` (we owe the user, after a refund of repaid spending), and the platform's
//!   `merchant_settlement_payable`, `repayments_received`, `fee_income`, `compensation_fund`
//!   and `platform_own_funds` (the contra of deposits into the fund).
//!
//! The compensation fund (per currency) is filled by `fund_deposit` (`platform_own_funds →
//! compensation_fund`) and drawn by `compensation_payout` (`compensation_fund → the line's
//! credit_balance`), which names its appeal; it never goes below zero: a payout larger than
//! the fund is refused ([`LedgerError::FundInsufficient`]).
//!
//! A hold is a pending transfer (TigerBeetle's two-phase transfer): `authorize` moves
//! `available → held`; `capture` posts part or all of it (`held → drawn`, with
//! `receivable ↔ merchant_settlement_payable` in the money book) and releases the rest;
//! `void` and `expire` release it all.

mod ledger;
mod sharded;
mod transaction;

pub use ledger::{CreditLine, Hold, HoldStatus, Ledger, LedgerError, MAX_HOLD_TTL_MS};
pub use transaction::{Account, Book, LineAccount, Operation, PlatformAccount, Posting, Transaction};
