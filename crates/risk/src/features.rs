//! The documented feature set: every value a rule, a policy or a scorer may read. Rules are
//! compiled against this table, so a rule naming a feature that is not here, or using one
//! at the wrong type, is refused when it is loaded rather than when it runs.
//!
//! Amounts are integers in minor units; ratios are integer percentages; the fraud score is
//! per mille (0–1000). There are no floating-point features.

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureType {
    Int,
    Bool,
    String,
}

/// What part of the picture a feature describes. The environment class matters to the
/// combiner: a signal from network features alone never declines on a trusted device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureClass {
    /// What is being paid: amount, merchant category, currency.
    Payment,
    Profile,
    Velocity,
    Device,
    /// IP address and mobile network.
    Environment,
    Merchant,
    Credit,
    Score,
}

macro_rules! features {
    ($( $variant:ident => $name:literal, $ty:ident, $class:ident, $doc:literal; )*) => {
        /// One feature of the documented set. `Feature::ALL` lists them in vector order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Feature { $( #[doc = $doc] $variant, )* }

        impl Feature {
            pub const ALL: &'static [Feature] = &[ $( Feature::$variant, )* ];
            pub const COUNT: usize = Feature::ALL.len();

            pub fn name(self) -> &'static str {
                match self { $( Feature::$variant => $name, )* }
            }
            pub fn feature_type(self) -> FeatureType {
                match self { $( Feature::$variant => FeatureType::$ty, )* }
            }
            pub fn class(self) -> FeatureClass {
                match self { $( Feature::$variant => FeatureClass::$class, )* }
            }
            pub fn doc(self) -> &'static str {
                match self { $( Feature::$variant => $doc, )* }
            }
            pub fn from_name(name: &str) -> Option<Feature> {
                match name { $( $name => Some(Feature::$variant), )* _ => None }
            }
        }
    };
}

features! {
    AmountMinor => "amount_minor", Int, Payment, "Payment amount in minor units, tip and fee included.";
    Currency => "currency", String, Payment, "ISO 4217 alphabetic code of the payment.";
    Mcc => "mcc", String, Payment, "Merchant category code (ISO 18245), four digits.";
    MerchantCountry => "merchant_country", String, Payment, "ISO 3166-1 alpha-2 country of the merchant.";
    AmountIsRound => "amount_is_round", Bool, Payment, "The amount is a whole multiple of 100 major units (100.00, 500.00, …).";
    AmountIsTiny => "amount_is_tiny", Bool, Payment, "The amount is at or under the policy's tiny-payment threshold (card-testing size).";
    UserAgeYears => "user_age_years", Int, Profile, "The user's age in whole years; -1 when unknown.";
    KycLevel => "kyc_level", Int, Profile, "Identity verification level: 0 none, 1 phone, 2 ID document, 3 ID plus face match.";
    UserRegion => "user_region", String, Profile, "The user's registered region (ISO 3166-2, e.g. CN-SH); empty when unknown.";
    LineAgeDays => "line_age_days", Int, Profile, "Whole days since the credit line was opened.";
    UserPaymentsTotal => "user_payments_total", Int, Profile, "Approved payments of this user, ever (as remembered by the engine).";
    UserAvgAmountMinor => "user_avg_amount_minor", Int, Profile, "Mean approved amount of this user; 0 without history.";
    UserMaxAmountMinor => "user_max_amount_minor", Int, Profile, "Largest approved amount of this user; 0 without history.";
    AmountVsUserAvgPct => "amount_vs_user_avg_pct", Int, Profile, "Amount as a percentage of the user's mean; 0 without history.";
    UserCount1m => "user_count_1m", Int, Velocity, "The user's payment attempts in the last minute, retries not counted.";
    UserCount1h => "user_count_1h", Int, Velocity, "The user's payment attempts in the last hour, retries not counted.";
    UserCount24h => "user_count_24h", Int, Velocity, "The user's payment attempts in the last 24 hours, retries not counted.";
    UserSum1hMinor => "user_sum_1h_minor", Int, Velocity, "Sum of the user's approved amounts in the last hour.";
    UserSum24hMinor => "user_sum_24h_minor", Int, Velocity, "Sum of the user's approved amounts in the last 24 hours.";
    UserSumTodayMinor => "user_sum_today_minor", Int, Velocity, "Sum of the user's approved amounts since local midnight (policy time zone).";
    UserTinyCount1h => "user_tiny_count_1h", Int, Velocity, "The user's tiny payment attempts in the last hour.";
    UserDistinctMerchants1h => "user_distinct_merchants_1h", Int, Velocity, "Distinct merchants the user tried to pay in the last hour.";
    UserDistinctMerchants24h => "user_distinct_merchants_24h", Int, Velocity, "Distinct merchants the user tried to pay in the last 24 hours.";
    UserSameMerchantCount10m => "user_same_merchant_count_10m", Int, Velocity, "The user's attempts at this same merchant in the last 10 minutes.";
    UserDeclines24h => "user_declines_24h", Int, Velocity, "The user's declined or stepped-up attempts in the last 24 hours.";
    UserFailedChallenges24h => "user_failed_challenges_24h", Int, Velocity, "Challenges the user failed in the last 24 hours.";
    IsRetry => "is_retry", Bool, Velocity, "Same user, merchant and amount as an attempt a few seconds ago: a client retry, not a new purchase.";
    DevicePresent => "device_present", Bool, Device, "The client reported a device id.";
    DeviceFirstSeen => "device_first_seen", Bool, Device, "The device has never been used by this user before.";
    DeviceTrusted => "device_trusted", Bool, Device, "The device is trusted for this user (enough approved payments above the tiny amount on it, or a passed challenge).";
    DeviceCount1h => "device_count_1h", Int, Device, "Payment attempts from this device in the last hour, any user.";
    DeviceDistinctUsers24h => "device_distinct_users_24h", Int, Device, "Distinct users on this device in the last 24 hours.";
    IpPresent => "ip_present", Bool, Environment, "The client reported an IP address.";
    IpFirstSeen => "ip_first_seen", Bool, Environment, "The IP's network (/24 or /48) is not among this user's recent networks.";
    NetworkChanged => "network_changed", Bool, Environment, "The network type (wifi, 4g, …) differs from the user's previous payment.";
    IpCount1h => "ip_count_1h", Int, Environment, "Payment attempts from this IP network in the last hour, any user.";
    IpDistinctUsers24h => "ip_distinct_users_24h", Int, Environment, "Distinct users on this IP network in the last 24 hours.";
    MerchantCount1h => "merchant_count_1h", Int, Merchant, "Payment attempts at this merchant in the last hour.";
    MerchantDistinctUsers24h => "merchant_distinct_users_24h", Int, Merchant, "Distinct payers at this merchant in the last 24 hours (estimate).";
    MerchantNewUserPct24h => "merchant_new_user_pct_24h", Int, Merchant, "Share of the merchant's last-24-hour payments made by users with lines under 30 days old, in %.";
    MerchantRoundAmountPct24h => "merchant_round_amount_pct_24h", Int, Merchant, "Share of the merchant's last-24-hour payments with round amounts, in %.";
    MerchantPayments24h => "merchant_payments_24h", Int, Merchant, "Payment attempts at this merchant in the last 24 hours.";
    MerchantAgeDays => "merchant_age_days", Int, Merchant, "Whole days since the merchant was registered.";
    MerchantFirstVisit => "merchant_first_visit", Bool, Merchant, "The user has not paid this merchant before (among their recent merchants).";
    AvailableMinor => "available_minor", Int, Credit, "Available credit on the line before this payment.";
    LimitMinor => "limit_minor", Int, Credit, "The line's credit limit.";
    UtilizationAfterPct => "utilization_after_pct", Int, Credit, "Share of the limit in use if this payment is approved, in %.";
    UserAllowListed => "user_allow_listed", Bool, Profile, "The user is on the allow list.";
    FraudScore => "fraud_score", Int, Score, "Fraud score from the active scorer, per mille (0 = surely honest, 1000 = surely fraud).";
    UserRefunds24h => "user_refunds_24h", Int, Velocity, "Refunds the line received in the last 24 hours, from any merchant.";
    UserRefundsFromMerchant7d => "user_refunds_from_merchant_7d", Int, Velocity, "Refunds the line received from this same merchant in the last 7 days: paying again where the last payment was refunded, the cycle a refund mule runs.";
    MerchantRefundPct24h => "merchant_refund_pct_24h", Int, Merchant, "The merchant's refunds in the last 24 hours as a share of its approved sales in that time, in % (over 100 when it refunds more than it sells; 10000 with refunds and no sales).";
    MerchantRefundPct7d => "merchant_refund_pct_7d", Int, Merchant, "The merchant's refunds over the last seven days as a share of its approved sales in that time, in % (whole UTC days, today included; 10000 with refunds and no sales).";
    MerchantFirstTimePayerPct24h => "merchant_first_time_payer_pct_24h", Int, Merchant, "Share of the merchant's last-24-hour payment attempts made by payers who had not paid it before (among their recent merchants), in %. An established shop lives on regulars.";
    MerchantPayments7d => "merchant_payments_7d", Int, Merchant, "Payment attempts at this merchant over the last seven days (whole UTC days, today included): its usual volume, against which `merchant_count_1h` shows a burst.";
    CreditBand => "credit_band", String, Credit, "The line's credit band, set by the credit scorecard when the line was opened on an application (the names of the policy's `credit_limits` bands, e.g. A to E); empty for a line opened with a fixed limit.";
    EngineMemoryDays => "engine_memory_days", Int, Velocity, "Whole days since the earliest payment attempt the engine remembers (recorded live or rebuilt from the store at start-up), at most 30. Under 7 no merchant's week is known yet, so a quiet `merchant_payments_7d` cannot tell a dormant account from a shop the service has not watched for a week.";
}

impl Serialize for Feature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// A feature's value. Strings are short codes (currency, MCC, region), so they are owned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Bool(bool),
    String(String),
}

/// One payment's features, indexed by [`Feature`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureVector {
    values: Vec<Value>,
}

impl Default for FeatureVector {
    fn default() -> FeatureVector {
        FeatureVector::new()
    }
}

impl FeatureVector {
    pub fn new() -> FeatureVector {
        let values = Feature::ALL
            .iter()
            .map(|f| match f.feature_type() {
                FeatureType::Int => Value::Int(0),
                FeatureType::Bool => Value::Bool(false),
                FeatureType::String => Value::String(String::new()),
            })
            .collect();
        FeatureVector { values }
    }

    pub fn set_int(&mut self, feature: Feature, value: i64) {
        debug_assert_eq!(feature.feature_type(), FeatureType::Int, "{}", feature.name());
        self.values[feature as usize] = Value::Int(value);
    }

    pub fn set_bool(&mut self, feature: Feature, value: bool) {
        debug_assert_eq!(feature.feature_type(), FeatureType::Bool, "{}", feature.name());
        self.values[feature as usize] = Value::Bool(value);
    }

    pub fn set_string(&mut self, feature: Feature, value: &str) {
        debug_assert_eq!(feature.feature_type(), FeatureType::String, "{}", feature.name());
        match &mut self.values[feature as usize] {
            Value::String(s) => {
                s.clear();
                s.push_str(value);
            }
            other => *other = Value::String(value.to_owned()),
        }
    }

    pub fn int(&self, feature: Feature) -> i64 {
        match &self.values[feature as usize] {
            Value::Int(v) => *v,
            _ => 0,
        }
    }

    pub fn bool(&self, feature: Feature) -> bool {
        matches!(&self.values[feature as usize], Value::Bool(true))
    }

    pub fn string(&self, feature: Feature) -> &str {
        match &self.values[feature as usize] {
            Value::String(s) => s,
            _ => "",
        }
    }

    pub fn get(&self, feature: Feature) -> &Value {
        &self.values[feature as usize]
    }

    /// The vector as a name → value map, for decision records.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        Feature::ALL
            .iter()
            .map(|f| (f.name().to_owned(), serde_json::to_value(&self.values[*f as usize]).expect("values serialise")))
            .collect()
    }

    /// Rebuilds a vector from a decision record's map, for replay. Missing names keep their
    /// zero value; unknown names are ignored (a newer record read by an older build).
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> FeatureVector {
        let mut vector = FeatureVector::new();
        for feature in Feature::ALL {
            match (map.get(feature.name()), feature.feature_type()) {
                (Some(serde_json::Value::Number(n)), FeatureType::Int) => {
                    vector.set_int(*feature, n.as_i64().unwrap_or(0))
                }
                (Some(serde_json::Value::Bool(b)), FeatureType::Bool) => vector.set_bool(*feature, *b),
                (Some(serde_json::Value::String(s)), FeatureType::String) => vector.set_string(*feature, s),
                _ => {}
            }
        }
        vector
    }
}

/// Stored as an array of values in the order of [`Feature::ALL`] (a decision record is written
/// for every payment, and names would triple its size); read back from that array or from a
/// name → value map, which is what the API shows ([`FeatureVector::to_map`]). The order of
/// `Feature::ALL` is therefore part of the stored format: features are only ever appended.
impl Serialize for FeatureVector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.values.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for FeatureVector {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<FeatureVector, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Values(Vec<Value>),
            Named(serde_json::Map<String, serde_json::Value>),
        }
        Ok(match Stored::deserialize(deserializer)? {
            Stored::Named(map) => FeatureVector::from_map(&map),
            Stored::Values(values) => {
                let mut vector = FeatureVector::new();
                // A record from an older build has fewer values; the rest keep their zero.
                for (feature, value) in Feature::ALL.iter().zip(values) {
                    let fits = matches!(
                        (&value, feature.feature_type()),
                        (Value::Int(_), FeatureType::Int)
                            | (Value::Bool(_), FeatureType::Bool)
                            | (Value::String(_), FeatureType::String)
                    );
                    if fits {
                        vector.values[*feature as usize] = value;
                    }
                }
                vector
            }
        })
    }
}

impl std::ops::Index<&str> for FeatureVector {
    type Output = Value;
    /// The value of a feature by name; panics on an unknown name (tests and tools).
    fn index(&self, name: &str) -> &Value {
        let feature = Feature::from_name(name).unwrap_or_else(|| panic!("unknown feature `{name}`"));
        &self.values[feature as usize]
    }
}

/// The feature table as documentation (`GET /v1/rules/features`).
pub fn catalogue() -> Vec<serde_json::Value> {
    Feature::ALL
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name(),
                "type": f.feature_type(),
                "class": f.class(),
                "description": f.doc(),
            })
        })
        .collect()
}
