//! The timestamped card transactions: velocity features from each card's and each store's
//! earlier transactions only (never a later one, never a label), rows in time order.

use crate::{headers, read_text, Builder, DataError, DatasetSpec, Loaded};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use xiezhi_models::table::{Column, Table};

const DAY_S: i64 = 86_400;
/// Most recent transactions remembered per card or store for the 24-hour windows.
const MAX_WINDOW: usize = 256;

struct Txn {
    id: u64,
    card: String,
    store: String,
    at_s: i64,
    amount: f64,
    fraud: bool,
    currency: String,
    customer_present: String,
    provider: String,
    region: String,
    country: String,
    expiry_months: f64,
    lat: f64,
    lng: f64,
}

#[derive(Default)]
struct History {
    count: u64,
    sum: f64,
    last_at_s: Option<i64>,
    last_store: Option<String>,
    stores: Vec<String>,
    window: VecDeque<(i64, f64)>,
}

impl History {
    fn in_last_day(&mut self, now_s: i64) -> (f64, f64) {
        while self.window.front().is_some_and(|(t, _)| now_s - t > DAY_S) {
            self.window.pop_front();
        }
        (self.window.len() as f64, self.window.iter().map(|(_, a)| a).sum())
    }

    fn remember(&mut self, t: &Txn) {
        self.count += 1;
        self.sum += t.amount;
        self.last_at_s = Some(t.at_s);
        self.last_store = Some(t.store.clone());
        if !self.stores.contains(&t.store) && self.stores.len() < 64 {
            self.stores.push(t.store.clone());
        }
        if self.window.len() >= MAX_WINDOW {
            self.window.pop_front();
        }
        self.window.push_back((t.at_s, t.amount));
    }
}

fn parse_time(text: &str) -> Option<i64> {
    let dt: jiff::civil::DateTime = text.trim().replacen(' ', "T", 1).parse().ok()?;
    Some(dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp().as_second())
}

/// Months from the transaction to a card expiry written `MM/YY`.
fn months_to_expiry(expiry: &str, at_s: i64) -> f64 {
    let mut parts = expiry.trim().split('/');
    let (Some(m), Some(y)) = (parts.next(), parts.next()) else { return f64::NAN };
    let (Ok(m), Ok(y)) = (m.parse::<i64>(), y.parse::<i64>()) else { return f64::NAN };
    let Ok(ts) = jiff::Timestamp::from_second(at_s) else { return f64::NAN };
    let date = ts.to_zoned(jiff::tz::TimeZone::UTC).date();
    ((2000 + y) * 12 + m - (i64::from(date.year()) * 12 + i64::from(date.month()))) as f64
}

pub(crate) fn load(spec: &DatasetSpec, time_column: &str, data_dir: &Path) -> Result<Loaded, DataError> {
    let path = data_dir.join(spec.file);
    let shown = path.display().to_string();
    let (text, sha256) = read_text(&path)?;
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_slice());
    let headers = headers(&mut reader, &path)?;
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DataError::Read { path: shown.clone(), message: format!("no column `{name}`") })
    };
    let (id, card, store, at, amount, fraud) =
        (col("id")?, col("card_id")?, col("store_id")?, col(time_column)?, col("amount")?, col(spec.target)?);
    let (currency, present, expiry, provider) =
        (col("currency")?, col("customer_present")?, col("expiration_date")?, col("provider")?);
    let (lat, lng, region, country) = (col("lat")?, col("lng")?, col("region")?, col("country")?);
    let mut txns = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let r = record.map_err(|e| DataError::Row { path: shown.clone(), row, message: e.to_string() })?;
        let bad = |m: &str| DataError::Row { path: shown.clone(), row, message: m.to_owned() };
        let label = r[fraud].trim();
        if label.is_empty() {
            continue;
        }
        let at_s = parse_time(&r[at]).ok_or_else(|| bad("unreadable datetime"))?;
        let number = |i: usize| r[i].trim().parse::<f64>().unwrap_or(f64::NAN);
        txns.push(Txn {
            id: r[id].trim().parse().map_err(|_| bad("unreadable id"))?,
            card: r[card].trim().to_owned(),
            store: r[store].trim().to_owned(),
            at_s,
            amount: number(amount),
            fraud: spec.positive.contains(&label),
            currency: r[currency].trim().to_owned(),
            customer_present: r[present].trim().to_owned(),
            provider: r[provider].trim().to_owned(),
            region: r[region].trim().to_owned(),
            country: r[country].trim().to_owned(),
            expiry_months: months_to_expiry(&r[expiry], at_s),
            lat: number(lat),
            lng: number(lng),
        });
    }
    // The split is defined on time order, ties by id.
    txns.sort_by_key(|t| (t.at_s, t.id));
    let numeric_names = [
        "amount",
        "hour_of_day",
        "day_of_week",
        "months_to_expiry",
        "lat",
        "lng",
        "card_payments_before",
        "card_payments_24h",
        "card_amount_24h",
        "card_seconds_since_last",
        "card_amount_vs_mean",
        "card_distinct_stores_before",
        "card_same_store_as_last",
        "store_payments_before",
        "store_payments_24h",
        "store_amount_vs_mean",
    ];
    let mut numeric: Vec<Vec<f64>> = vec![Vec::with_capacity(txns.len()); numeric_names.len()];
    let categorical_names = ["currency", "customer_present", "provider", "region", "country"];
    let mut builders: Vec<Builder> = categorical_names.iter().map(|_| Builder::default()).collect();
    let mut cards: HashMap<String, History> = HashMap::new();
    let mut stores: HashMap<String, History> = HashMap::new();
    for t in &txns {
        let c = cards.entry(t.card.clone()).or_default();
        let (c24, csum24) = c.in_last_day(t.at_s);
        let card_values = [
            c.count as f64,
            c24,
            csum24,
            c.last_at_s.map_or(f64::NAN, |l| (t.at_s - l) as f64),
            if c.count > 0 { t.amount / (c.sum / c.count as f64).max(1.0) } else { f64::NAN },
            c.stores.len() as f64,
            c.last_store.as_ref().map_or(f64::NAN, |s| f64::from(u8::from(*s == t.store))),
        ];
        c.remember(t);
        let s = stores.entry(t.store.clone()).or_default();
        let (s24, _) = s.in_last_day(t.at_s);
        let store_values =
            [s.count as f64, s24, if s.count > 0 { t.amount / (s.sum / s.count as f64).max(1.0) } else { f64::NAN }];
        s.remember(t);
        let seconds_of_day = t.at_s.rem_euclid(DAY_S);
        let day_of_week = ((t.at_s.div_euclid(DAY_S) + 4).rem_euclid(7)) as f64;
        let row = [
            [t.amount, (seconds_of_day / 3600) as f64, day_of_week, t.expiry_months, t.lat, t.lng].as_slice(),
            card_values.as_slice(),
            store_values.as_slice(),
        ]
        .concat();
        for (column, value) in numeric.iter_mut().zip(row) {
            column.push(value);
        }
        for (b, v) in builders.iter_mut().zip([&t.currency, &t.customer_present, &t.provider, &t.region, &t.country]) {
            b.push(v);
        }
    }
    let mut names: Vec<String> = numeric_names.iter().map(|n| (*n).to_owned()).collect();
    let mut columns: Vec<Column> = numeric.into_iter().map(Column::Numeric).collect();
    names.extend(categorical_names.iter().map(|n| (*n).to_owned()));
    columns.extend(builders.into_iter().map(|b| b.finish(true)));
    Ok(Loaded {
        table: Table {
            names,
            columns,
            target: txns.iter().map(|t| t.fraud).collect(),
            row_index: (0..txns.len()).collect(),
        },
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_and_time_parse() {
        let at = parse_time("2019-01-01 00:12:26").unwrap();
        assert_eq!(at, 1_546_301_546);
        assert_eq!(months_to_expiry("08/24", at), (2024 * 12 + 8 - (2019 * 12 + 1)) as f64);
        assert!(months_to_expiry("junk", at).is_nan());
    }
}
