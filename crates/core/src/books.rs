//! The payment records against the ledger: the ledger is the truth for money, and a record
//! that says otherwise is never acted on. The writer checks each payment it moves money
//! for; `xiezhi store check` checks them all ([`check_store`]).

use crate::error::CoreError;
use crate::model::{Payment, PaymentStatus};
use xiezhi_ledger::{Hold, HoldStatus};

/// Whether a payment's record says what the ledger says of its hold. `hold` is `None` when
/// the ledger has no such hold in memory: never for an authorized payment (pending holds
/// stay resident), allowed for a voided or expired one (settled holds are evicted), and for
/// a captured one only before it was restored from the journal.
pub fn agrees_with_hold(payment: &Payment, hold: Option<&Hold>) -> Result<(), String> {
    use PaymentStatus as P;
    let agrees = match (payment.status, hold) {
        (P::Declined | P::ChallengeRequired, None) => true,
        (P::Authorized, Some(h)) => h.status == HoldStatus::Pending && h.amount_minor == payment.amount_minor,
        (P::Captured | P::PartiallyRefunded | P::Refunded, Some(h)) => {
            h.status == HoldStatus::Captured
                && h.captured_minor == payment.captured_minor
                && h.refunded_minor == payment.refunded_minor
                && (payment.status == P::Refunded) == (h.refunded_minor == h.captured_minor)
                && (payment.status == P::Captured) == (h.refunded_minor == 0)
        }
        (P::Voided, h) => h.is_none_or(|h| h.status == HoldStatus::Voided),
        (P::Expired, h) => h.is_none_or(|h| h.status == HoldStatus::Expired),
        _ => false,
    };
    if agrees {
        return Ok(());
    }
    let ledger = match hold {
        Some(h) => format!(
            "the ledger's hold is {:?} with {} held, {} captured, {} refunded",
            h.status, h.amount_minor, h.captured_minor, h.refunded_minor
        ),
        None => "the ledger has no hold for it".to_owned(),
    };
    Err(format!(
        "the record says {} with {} captured and {} refunded; {ledger}",
        payment.status.as_str(),
        payment.captured_minor,
        payment.refunded_minor
    ))
}

/// [`agrees_with_hold`] as the writer's refusal: the request changes nothing.
pub(crate) fn check_agrees(payment: &Payment, hold: Option<&Hold>) -> Result<(), CoreError> {
    agrees_with_hold(payment, hold).map_err(|detail| {
        tracing::error!(payment_id = %payment.id, %detail, "a payment record disagrees with the ledger");
        metrics::counter!("xiezhi_books_disagreements_total").increment(1);
        CoreError::BooksDisagree { id: payment.id.clone(), detail }
    })
}
