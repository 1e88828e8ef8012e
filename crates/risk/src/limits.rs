//! Credit limits by policy: an initial limit from the applicant's score band and declared
//! income, and re-scoring proposals for existing lines (applied, with notice, by the credit
//! lifecycle; here they are only proposed). Pure: a proposal is a function of the policy,
//! the score and the income.

use serde::{Deserialize, Serialize};
use xiezhi_money::{parse_minor, Currency, Sign};

/// One score band: applicants scoring at least `min_score` get up to `income_multiple_pct`
/// of their monthly income, and never more than `max_limit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitBand {
    pub name: String,
    pub min_score: i64,
    pub income_multiple_pct: i64,
    /// Decimal in the policy's currency, e.g. "50000.00".
    pub max_limit: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditLimitPolicy {
    pub currency: String,
    /// Highest band first.
    pub bands: Vec<LimitBand>,
    /// A re-score proposes a change only when the new limit differs by at least this share
    /// of the current one, so limits do not churn with every small score move.
    pub rescore_min_change_pct: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitChange {
    Open,
    Increase,
    Decrease,
    Keep,
    /// The score is below every band: no credit line (a decline with reasons).
    Decline,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitProposal {
    pub change: LimitChange,
    pub band: Option<String>,
    pub limit_minor: i64,
    pub current_limit_minor: Option<i64>,
    /// What bounded the limit: `income` or `band_max`.
    pub bounded_by: Option<String>,
}

#[derive(Debug, Clone)]
struct Band {
    name: String,
    min_score: i64,
    income_multiple_pct: i64,
    max_minor: i64,
}

/// The compiled policy.
#[derive(Debug, Clone)]
pub struct CreditLimits {
    pub currency: Currency,
    bands: Vec<Band>,
    min_change_pct: i64,
}

impl CreditLimits {
    pub fn compile(policy: &CreditLimitPolicy) -> Result<CreditLimits, String> {
        let currency = Currency::from_alpha(&policy.currency)
            .ok_or_else(|| format!("credit_limits: unknown currency `{}`", policy.currency))?;
        if policy.bands.is_empty() || policy.bands.len() > 32 {
            return Err("credit_limits: 1 to 32 bands".into());
        }
        let mut bands = Vec::with_capacity(policy.bands.len());
        for b in &policy.bands {
            // A band's name is what a line's `credit_band` feature holds and rules compare.
            if b.name.is_empty()
                || b.name.len() > 16
                || !b.name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            {
                return Err(format!("credit_limits: band name `{}` is 1 to 16 letters, digits, - or _", b.name));
            }
            if policy.bands.iter().filter(|o| o.name == b.name).count() > 1 {
                return Err(format!("credit_limits: band `{}` is named twice", b.name));
            }
            let max_minor = parse_minor(&b.max_limit, currency, Sign::Positive)
                .map_err(|e| format!("credit_limits: band `{}` max_limit: {e}", b.name))?;
            if !(1..=10_000).contains(&b.income_multiple_pct) {
                return Err(format!("credit_limits: band `{}` income_multiple_pct is 1..10000", b.name));
            }
            bands.push(Band {
                name: b.name.clone(),
                min_score: b.min_score,
                income_multiple_pct: b.income_multiple_pct,
                max_minor,
            });
        }
        if bands.windows(2).any(|w| w[0].min_score <= w[1].min_score) {
            return Err("credit_limits: bands are listed highest min_score first, strictly".into());
        }
        if !(0..=100).contains(&policy.rescore_min_change_pct) {
            return Err("credit_limits: rescore_min_change_pct is 0..100".into());
        }
        Ok(CreditLimits { currency, bands, min_change_pct: policy.rescore_min_change_pct })
    }

    /// The limit for `score` and a declared monthly income, and, with `current_limit_minor`,
    /// whether an existing line should change.
    pub fn propose(&self, score: i64, monthly_income_minor: i64, current_limit_minor: Option<i64>) -> LimitProposal {
        assert!(monthly_income_minor >= 0, "income is not negative");
        let Some(band) = self.bands.iter().find(|b| score >= b.min_score) else {
            let change = if current_limit_minor.is_some() { LimitChange::Decrease } else { LimitChange::Decline };
            return LimitProposal { change, band: None, limit_minor: 0, current_limit_minor, bounded_by: None };
        };
        let by_income = (i128::from(monthly_income_minor) * i128::from(band.income_multiple_pct) / 100)
            .min(i128::from(i64::MAX)) as i64;
        let (limit_minor, bounded_by) =
            if by_income <= band.max_minor { (by_income, "income") } else { (band.max_minor, "band_max") };
        let change = match current_limit_minor {
            None if limit_minor > 0 => LimitChange::Open,
            None => LimitChange::Decline,
            Some(current) => {
                let diff = (limit_minor - current).abs();
                let material = i128::from(diff) * 100 >= i128::from(current) * i128::from(self.min_change_pct);
                if !material || diff == 0 {
                    LimitChange::Keep
                } else if limit_minor > current {
                    LimitChange::Increase
                } else {
                    LimitChange::Decrease
                }
            }
        };
        LimitProposal {
            change,
            band: Some(band.name.clone()),
            limit_minor,
            current_limit_minor,
            bounded_by: Some(bounded_by.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> CreditLimits {
        let policy: CreditLimitPolicy = serde_json::from_str(
            r#"{"currency": "CNY", "rescore_min_change_pct": 10, "bands": [
                {"name": "A", "min_score": 680, "income_multiple_pct": 300, "max_limit": "50000.00"},
                {"name": "B", "min_score": 620, "income_multiple_pct": 150, "max_limit": "20000.00"},
                {"name": "C", "min_score": 560, "income_multiple_pct": 50, "max_limit": "5000.00"}]}"#,
        )
        .unwrap();
        CreditLimits::compile(&policy).unwrap()
    }

    #[test]
    fn bands_and_income_set_the_limit() {
        let l = limits();
        let p = l.propose(700, 1_000_000, None);
        assert_eq!((p.change, p.band.as_deref(), p.limit_minor), (LimitChange::Open, Some("A"), 3_000_000));
        assert_eq!(p.bounded_by.as_deref(), Some("income"));
        let p = l.propose(700, 5_000_000, None);
        assert_eq!((p.limit_minor, p.bounded_by.as_deref()), (5_000_000, Some("band_max")));
        let p = l.propose(600, 1_000_000, None);
        assert_eq!((p.band.as_deref(), p.limit_minor), (Some("C"), 500_000));
        assert_eq!(l.propose(500, 1_000_000, None).change, LimitChange::Decline);
    }

    #[test]
    fn rescoring_proposes_only_material_changes() {
        let l = limits();
        assert_eq!(l.propose(700, 1_000_000, Some(2_900_000)).change, LimitChange::Keep, "3 % is noise");
        assert_eq!(l.propose(700, 1_000_000, Some(2_000_000)).change, LimitChange::Increase);
        let down = l.propose(600, 1_000_000, Some(3_000_000));
        assert_eq!((down.change, down.limit_minor), (LimitChange::Decrease, 500_000));
        assert_eq!(l.propose(400, 1_000_000, Some(3_000_000)).change, LimitChange::Decrease);
    }

    #[test]
    fn bad_policies_are_named() {
        let bad = CreditLimitPolicy {
            currency: "CNY".into(),
            rescore_min_change_pct: 10,
            bands: vec![
                LimitBand { name: "low".into(), min_score: 500, income_multiple_pct: 50, max_limit: "1000.00".into() },
                LimitBand { name: "high".into(), min_score: 700, income_multiple_pct: 50, max_limit: "9000.00".into() },
            ],
        };
        assert!(CreditLimits::compile(&bad).unwrap_err().contains("highest min_score first"));
    }
}
