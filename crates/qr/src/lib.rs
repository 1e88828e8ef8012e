//! EMV® merchant-presented QR codes (EMVCo QR Code Specification for Payment Systems,
//! Merchant-Presented Mode): decoding with exact error locations, encoding, and rendering.
//!
//! Structure and CRC are always strict. Content that real national schemes bend (no MCC,
//! over-long names, payload format "02", lower-case CRC hex, UTF-8 outside template 64, …)
//! is reported in [`MerchantPresentedQr::warnings`], or refused under [`DecodeOptions::strict`].

mod error;
mod render;
mod tlv;

pub use error::{QrError, QrErrorKind, QrWarning};
pub use render::{render_png, render_svg, RenderError};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tlv::{field_name, parse_sequence, write_object, Tlv};
use xiezhi_money::{Currency, MoneyError, Sign};

/// The longest payload accepted, in characters (EMVCo: at most 512).
pub const MAX_PAYLOAD_CHARS: usize = 512;

const CRC16_CCITT_FALSE: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) as used by EMV QR tag 63.
pub fn crc16(bytes: &[u8]) -> u16 {
    CRC16_CCITT_FALSE.checksum(bytes)
}

#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeOptions {
    /// Refuse content deviations instead of reporting them as warnings.
    pub strict: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PointOfInitiation {
    /// "11": the same code for every payment; the payer enters the amount.
    Static,
    /// "12": issued for one payment, usually with the amount.
    Dynamic,
}

impl PointOfInitiation {
    fn code(self) -> &'static str {
        match self {
            PointOfInitiation::Static => "11",
            PointOfInitiation::Dynamic => "12",
        }
    }
}

/// A merchant account information field (IDs 02–51) or an unreserved template (80–99).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountTemplate {
    pub id: String,
    /// Sub-field 00 of a template: who defined the rest (reverse domain name or AID).
    pub globally_unique_identifier: Option<String>,
    /// Sub-fields other than 00, by ID.
    pub fields: BTreeMap<String, String>,
    /// The raw value, for the primitive card-network IDs 02–25 or a template that did not
    /// parse as one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl AccountTemplate {
    /// A template with a globally unique identifier and sub-fields.
    pub fn template(id: &str, guid: &str, fields: &[(&str, &str)]) -> AccountTemplate {
        AccountTemplate {
            id: id.to_owned(),
            globally_unique_identifier: Some(guid.to_owned()),
            fields: fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            value: None,
        }
    }
}

/// Additional data field template (ID 62). Known sub-fields by name; the rest by ID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdditionalData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loyalty_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose_of_transaction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_consumer_data_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_tax_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_channel: Option<String>,
    /// Sub-fields 12–99 (RFU and payment-system specific templates), by ID.
    #[serde(flatten)]
    pub other: BTreeMap<String, String>,
}

const ADDITIONAL_DATA_NAMES: [&str; 11] = [
    "bill_number",
    "mobile_number",
    "store_label",
    "loyalty_number",
    "reference_label",
    "customer_label",
    "terminal_label",
    "purpose_of_transaction",
    "additional_consumer_data_request",
    "merchant_tax_id",
    "merchant_channel",
];

impl AdditionalData {
    fn slot(&mut self, id: u8) -> Option<&mut Option<String>> {
        Some(match id {
            1 => &mut self.bill_number,
            2 => &mut self.mobile_number,
            3 => &mut self.store_label,
            4 => &mut self.loyalty_number,
            5 => &mut self.reference_label,
            6 => &mut self.customer_label,
            7 => &mut self.terminal_label,
            8 => &mut self.purpose_of_transaction,
            9 => &mut self.additional_consumer_data_request,
            10 => &mut self.merchant_tax_id,
            11 => &mut self.merchant_channel,
            _ => return None,
        })
    }

    fn known(&self) -> [(&'static str, &Option<String>); 11] {
        [
            ("01", &self.bill_number),
            ("02", &self.mobile_number),
            ("03", &self.store_label),
            ("04", &self.loyalty_number),
            ("05", &self.reference_label),
            ("06", &self.customer_label),
            ("07", &self.terminal_label),
            ("08", &self.purpose_of_transaction),
            ("09", &self.additional_consumer_data_request),
            ("10", &self.merchant_tax_id),
            ("11", &self.merchant_channel),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.known().iter().all(|(_, v)| v.is_none()) && self.other.is_empty()
    }
}

/// Merchant information – language template (ID 64).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LanguageTemplate {
    pub language_preference: Option<String>,
    pub merchant_name: Option<String>,
    pub merchant_city: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, String>,
}

/// A decoded (or to-be-encoded) merchant-presented QR payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantPresentedQr {
    pub payload_format_indicator: String,
    pub point_of_initiation: Option<PointOfInitiation>,
    pub merchant_account_information: Vec<AccountTemplate>,
    pub merchant_category_code: Option<String>,
    /// ISO 4217 numeric code as in the payload, e.g. "156".
    pub transaction_currency: String,
    /// Decimal string as in the payload, e.g. "23.72"; null on a static code.
    pub transaction_amount: Option<String>,
    pub tip_or_convenience_indicator: Option<String>,
    pub convenience_fee_fixed: Option<String>,
    pub convenience_fee_percentage: Option<String>,
    pub country_code: Option<String>,
    pub merchant_name: Option<String>,
    pub merchant_city: Option<String>,
    pub postal_code: Option<String>,
    pub additional_data: AdditionalData,
    pub merchant_information_language: Option<LanguageTemplate>,
    /// IDs 65–79, reserved for future use by EMVCo.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reserved: BTreeMap<String, String>,
    /// IDs 80–99.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreserved_templates: Vec<AccountTemplate>,
    /// The four hex digits of tag 63 as they appear in the payload.
    pub crc: String,
    pub warnings: Vec<QrWarning>,
}

impl MerchantPresentedQr {
    /// The ISO 4217 currency, if the numeric code is one.
    pub fn currency(&self) -> Option<Currency> {
        Currency::from_code(&self.transaction_currency)
    }

    /// The merchant account template with this globally unique identifier
    /// (compared case-insensitively, as schemes publish them in either case).
    pub fn account_by_guid(&self, guid: &str) -> Option<&AccountTemplate> {
        self.merchant_account_information
            .iter()
            .find(|t| t.globally_unique_identifier.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(guid)))
    }

    /// Encodes the payload, computing a fresh CRC (upper-case hex). `crc` and `warnings`
    /// are ignored.
    pub fn encode(&self) -> Result<String, QrError> {
        let mut out = String::with_capacity(256);
        write_object(&mut out, "00", &self.payload_format_indicator)?;
        if let Some(poi) = self.point_of_initiation {
            write_object(&mut out, "01", poi.code())?;
        }
        if self.merchant_account_information.is_empty() {
            return Err(QrError::new(QrErrorKind::MissingMandatory, Some("02-51"), out.len()));
        }
        let mut accounts: Vec<&AccountTemplate> = self.merchant_account_information.iter().collect();
        accounts.sort_by(|a, b| a.id.cmp(&b.id));
        for account in accounts {
            write_template(&mut out, account)?;
        }
        let optional = |out: &mut String, id: &str, value: &Option<String>| match value {
            Some(value) => write_object(out, id, value),
            None => Ok(()),
        };
        optional(&mut out, "52", &self.merchant_category_code)?;
        write_object(&mut out, "53", &self.transaction_currency)?;
        optional(&mut out, "54", &self.transaction_amount)?;
        optional(&mut out, "55", &self.tip_or_convenience_indicator)?;
        optional(&mut out, "56", &self.convenience_fee_fixed)?;
        optional(&mut out, "57", &self.convenience_fee_percentage)?;
        optional(&mut out, "58", &self.country_code)?;
        optional(&mut out, "59", &self.merchant_name)?;
        optional(&mut out, "60", &self.merchant_city)?;
        optional(&mut out, "61", &self.postal_code)?;
        if !self.additional_data.is_empty() {
            let mut inner = String::new();
            for (id, value) in self.additional_data.known() {
                optional(&mut inner, id, value)?;
            }
            for (id, value) in &self.additional_data.other {
                write_object(&mut inner, id, value)?;
            }
            write_object(&mut out, "62", &inner)?;
        }
        if let Some(language) = &self.merchant_information_language {
            let mut inner = String::new();
            optional(&mut inner, "00", &language.language_preference)?;
            optional(&mut inner, "01", &language.merchant_name)?;
            optional(&mut inner, "02", &language.merchant_city)?;
            for (id, value) in &language.other {
                write_object(&mut inner, id, value)?;
            }
            write_object(&mut out, "64", &inner)?;
        }
        for (id, value) in &self.reserved {
            write_object(&mut out, id, value)?;
        }
        for template in &self.unreserved_templates {
            write_template(&mut out, template)?;
        }
        out.push_str("6304");
        let crc = crc16(out.as_bytes());
        out.push_str(&format!("{crc:04X}"));
        let length = out.chars().count();
        if length > MAX_PAYLOAD_CHARS {
            return Err(QrError::new(
                QrErrorKind::TooLong { length_bytes: out.len(), max_bytes: MAX_PAYLOAD_CHARS },
                None,
                0,
            ));
        }
        Ok(out)
    }
}

fn write_template(out: &mut String, template: &AccountTemplate) -> Result<(), QrError> {
    if let Some(value) = &template.value {
        return write_object(out, &template.id, value);
    }
    let mut inner = String::new();
    if let Some(guid) = &template.globally_unique_identifier {
        write_object(&mut inner, "00", guid)?;
    }
    for (id, value) in &template.fields {
        write_object(&mut inner, id, value)?;
    }
    write_object(out, &template.id, &inner)
}

/// Decodes a payload.
pub fn decode(payload: &str, options: DecodeOptions) -> Result<MerchantPresentedQr, QrError> {
    Decoder { options, warnings: Vec::new() }.decode(payload)
}

struct Decoder {
    options: DecodeOptions,
    warnings: Vec<QrWarning>,
}

impl Decoder {
    /// Records a content deviation, or refuses it in strict mode.
    fn warn(&mut self, code: &str, field: Option<&str>, offset: usize, message: String) -> Result<(), QrError> {
        if self.options.strict {
            return Err(QrError::new(
                QrErrorKind::SpecDeviation { warning_code: code.to_owned(), message },
                field,
                offset,
            ));
        }
        self.warnings.push(QrWarning { code: code.to_owned(), field_id: field.map(str::to_owned), offset, message });
        Ok(())
    }

    fn decode(mut self, payload: &str) -> Result<MerchantPresentedQr, QrError> {
        if payload.is_empty() {
            return Err(QrError::new(QrErrorKind::Empty, None, 0));
        }
        if payload.chars().count() > MAX_PAYLOAD_CHARS {
            return Err(QrError::new(
                QrErrorKind::TooLong { length_bytes: payload.len(), max_bytes: MAX_PAYLOAD_CHARS },
                None,
                MAX_PAYLOAD_CHARS,
            ));
        }
        let objects = parse_sequence(payload, 0, None)?;
        let first = objects.first().expect("non-empty payload has one object");
        if first.id != "00" {
            let at = objects.iter().find(|o| o.id == "00").map_or(0, |o| o.offset);
            return Err(QrError::new(QrErrorKind::PayloadFormatNotFirst, Some("00"), at));
        }
        let last = objects.last().expect("non-empty");
        if last.id != "63" {
            return match objects.iter().find(|o| o.id == "63") {
                Some(crc) => Err(QrError::new(QrErrorKind::CrcNotLast, Some("63"), crc.offset)),
                None => Err(QrError::new(QrErrorKind::MissingMandatory, Some("63"), payload.len())),
            };
        }
        self.check_crc(payload, last)?;
        self.fields(payload, &objects)
    }

    fn check_crc(&mut self, payload: &str, crc: &Tlv<'_>) -> Result<(), QrError> {
        let length = crc.value.chars().count();
        if length != 4 {
            return Err(QrError::new(QrErrorKind::WrongLength { length, expected: 4 }, Some("63"), crc.offset));
        }
        if !crc.value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(QrError::new(
                QrErrorKind::MalformedCrc { found: crc.value.to_owned() },
                Some("63"),
                crc.value_offset,
            ));
        }
        let computed = format!("{:04X}", crc16(&payload.as_bytes()[..crc.value_offset]));
        if !computed.eq_ignore_ascii_case(crc.value) {
            return Err(QrError::new(
                QrErrorKind::BadCrc { found: crc.value.to_owned(), computed },
                Some("63"),
                crc.value_offset,
            ));
        }
        if computed != crc.value {
            self.warn(
                "lowercase_crc",
                Some("63"),
                crc.value_offset,
                format!("CRC `{}` is in lower-case hex", crc.value),
            )?;
        }
        Ok(())
    }

    fn fields(mut self, payload: &str, objects: &[Tlv<'_>]) -> Result<MerchantPresentedQr, QrError> {
        let find = |id: &str| objects.iter().find(|o| o.id == id).copied();

        let format = find("00").expect("checked first");
        expect_length(&format, 2)?;
        if format.value != "01" {
            self.warn(
                "payload_format_indicator_unexpected",
                Some("00"),
                format.value_offset,
                format!("payload format indicator is `{}`, expected `01`", format.value),
            )?;
        }

        let point_of_initiation = match find("01") {
            None => None,
            Some(poi) => {
                expect_length(&poi, 2)?;
                match poi.value {
                    "11" => Some(PointOfInitiation::Static),
                    "12" => Some(PointOfInitiation::Dynamic),
                    other => {
                        self.warn(
                            "point_of_initiation_unexpected",
                            Some("01"),
                            poi.value_offset,
                            format!("point of initiation is `{other}`, expected `11` or `12`"),
                        )?;
                        None
                    }
                }
            }
        };

        let mut merchant_account_information = Vec::new();
        let mut unreserved_templates = Vec::new();
        let mut reserved = BTreeMap::new();
        for object in objects {
            let id: u8 = object.id.parse().expect("IDs are two digits");
            match id {
                2..=25 => merchant_account_information.push(AccountTemplate {
                    id: object.id.to_owned(),
                    globally_unique_identifier: None,
                    fields: BTreeMap::new(),
                    value: Some(object.value.to_owned()),
                }),
                26..=51 => merchant_account_information.push(self.account_template(object)?),
                65..=79 => {
                    self.warn(
                        "reserved_field_present",
                        Some(object.id),
                        object.offset,
                        format!("field {} is reserved for future use by EMVCo", object.id),
                    )?;
                    reserved.insert(object.id.to_owned(), object.value.to_owned());
                }
                80..=99 => unreserved_templates.push(self.account_template(object)?),
                _ => {}
            }
            let is_template = matches!(id, 26..=51 | 62 | 64 | 80..=99);
            if !is_template && !object.value.is_ascii() {
                self.non_ascii(object.id, object.value_offset)?;
            }
        }
        if merchant_account_information.is_empty() {
            return Err(QrError::new(QrErrorKind::MissingMandatory, Some("02-51"), 0));
        }

        let merchant_category_code = match find("52") {
            None => {
                self.warn(
                    "missing_merchant_category_code",
                    Some("52"),
                    payload.len(),
                    "no merchant category code (ID 52)".into(),
                )?;
                None
            }
            Some(mcc) => {
                if mcc.value.len() != 4 || !mcc.value.bytes().all(|b| b.is_ascii_digit()) {
                    self.warn(
                        "invalid_merchant_category_code",
                        Some("52"),
                        mcc.value_offset,
                        format!("merchant category code `{}` is not four digits", mcc.value),
                    )?;
                }
                Some(mcc.value.to_owned())
            }
        };

        let currency_field =
            find("53").ok_or_else(|| QrError::new(QrErrorKind::MissingMandatory, Some("53"), payload.len()))?;
        expect_length(&currency_field, 3)?;
        if !currency_field.value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(QrError::new(
                QrErrorKind::InvalidValue {
                    value: currency_field.value.to_owned(),
                    reason: "transaction currency must be an ISO 4217 numeric code".into(),
                },
                Some("53"),
                currency_field.value_offset,
            ));
        }
        let currency = Currency::from_code(currency_field.value);
        if currency.is_none() {
            self.warn(
                "unknown_currency",
                Some("53"),
                currency_field.value_offset,
                format!("`{}` is not an ISO 4217 currency", currency_field.value),
            )?;
        }

        let transaction_amount = match find("54") {
            None => None,
            Some(amount) => Some(self.amount(&amount, currency, 13)?),
        };
        let tip = find("55");
        if let Some(tip) = tip {
            expect_length(&tip, 2)?;
            let needed = match tip.value {
                "01" => None,
                "02" => Some("56"),
                "03" => Some("57"),
                other => {
                    self.warn(
                        "tip_indicator_unexpected",
                        Some("55"),
                        tip.value_offset,
                        format!("tip or convenience indicator `{other}` is not 01, 02 or 03"),
                    )?;
                    None
                }
            };
            if let Some(needed) = needed {
                if find(needed).is_none() {
                    self.warn(
                        "missing_convenience_fee",
                        Some(needed),
                        tip.value_offset,
                        format!("indicator `{}` requires field {needed}", tip.value),
                    )?;
                }
            }
        }
        let convenience_fee_fixed = match find("56") {
            None => None,
            Some(fee) => Some(self.amount(&fee, currency, 13)?),
        };
        let convenience_fee_percentage = match find("57") {
            None => None,
            Some(fee) => {
                max_length_error(&fee, 5)?;
                if !is_plain_decimal(fee.value) {
                    return Err(QrError::new(
                        QrErrorKind::InvalidAmount { value: fee.value.to_owned() },
                        Some("57"),
                        fee.value_offset,
                    ));
                }
                Some(fee.value.to_owned())
            }
        };

        let country_code = self.text_field(find("58"), "58", Some(2), payload.len(), "missing_country_code")?;
        if let Some(country) = &country_code {
            if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
                let offset = find("58").map_or(0, |f| f.value_offset);
                self.warn(
                    "invalid_country_code",
                    Some("58"),
                    offset,
                    format!("country code `{country}` is not two letters"),
                )?;
            }
        }
        let merchant_name = self.text_field(find("59"), "59", Some(25), payload.len(), "missing_merchant_name")?;
        let merchant_city = self.text_field(find("60"), "60", Some(15), payload.len(), "missing_merchant_city")?;
        let postal_code = match find("61") {
            None => None,
            Some(postal) => {
                self.long_warning(&postal, "61", 10)?;
                Some(postal.value.to_owned())
            }
        };
        let additional_data = match find("62") {
            None => AdditionalData::default(),
            Some(field) => self.additional_data(&field)?,
        };
        let merchant_information_language = match find("64") {
            None => None,
            Some(field) => Some(self.language(&field)?),
        };
        let crc = find("63").expect("checked last").value.to_owned();

        Ok(MerchantPresentedQr {
            payload_format_indicator: format.value.to_owned(),
            point_of_initiation,
            merchant_account_information,
            merchant_category_code,
            transaction_currency: currency_field.value.to_owned(),
            transaction_amount,
            tip_or_convenience_indicator: tip.map(|t| t.value.to_owned()),
            convenience_fee_fixed,
            convenience_fee_percentage,
            country_code,
            merchant_name,
            merchant_city,
            postal_code,
            additional_data,
            merchant_information_language,
            reserved,
            unreserved_templates,
            crc,
            warnings: self.warnings,
        })
    }

    fn non_ascii(&mut self, field: &str, offset: usize) -> Result<(), QrError> {
        self.warn(
            "non_ascii_characters",
            Some(field),
            offset,
            format!("field {field} contains characters outside ASCII (lengths counted in characters)"),
        )
    }

    fn long_warning(&mut self, field: &Tlv<'_>, name: &str, max: usize) -> Result<(), QrError> {
        let length = field.value.chars().count();
        if length > max {
            self.warn(
                &format!("field_{name}_too_long"),
                Some(name),
                field.value_offset,
                format!("field {name} is {length} characters; the specification allows {max}"),
            )?;
        }
        Ok(())
    }

    fn text_field(
        &mut self,
        field: Option<Tlv<'_>>,
        name: &str,
        max: Option<usize>,
        end: usize,
        missing_code: &str,
    ) -> Result<Option<String>, QrError> {
        match field {
            None => {
                self.warn(missing_code, Some(name), end, format!("mandatory field {name} is missing"))?;
                Ok(None)
            }
            Some(field) => {
                if let Some(max) = max {
                    self.long_warning(&field, name, max)?;
                }
                Ok(Some(field.value.to_owned()))
            }
        }
    }

    fn amount(&mut self, field: &Tlv<'_>, currency: Option<Currency>, max: usize) -> Result<String, QrError> {
        max_length_error(field, max)?;
        let invalid = || {
            QrError::new(
                QrErrorKind::InvalidAmount { value: field.value.to_owned() },
                Some(field.id),
                field.value_offset,
            )
        };
        if !is_plain_decimal(field.value) {
            return Err(invalid());
        }
        if let Some(currency) = currency {
            match xiezhi_money::parse_minor(field.value.trim_end_matches('.'), currency, Sign::Any) {
                Ok(_) => {}
                Err(MoneyError::TooManyDecimals { max, .. }) => self.warn(
                    "amount_precision_exceeds_currency",
                    Some(field.id),
                    field.value_offset,
                    format!("amount `{}` has more decimals than the {max} of {currency}", field.value),
                )?,
                Err(_) => return Err(invalid()),
            }
        }
        if field.value.ends_with('.') {
            self.warn(
                "amount_trailing_decimal_mark",
                Some(field.id),
                field.value_offset,
                format!("amount `{}` ends with a decimal mark", field.value),
            )?;
        }
        Ok(field.value.to_owned())
    }

    fn account_template(&mut self, object: &Tlv<'_>) -> Result<AccountTemplate, QrError> {
        let parsed = match parse_sequence(object.value, object.value_offset, Some(object.id)) {
            Ok(parsed) => parsed,
            Err(err) => {
                // Some schemes put a bare identifier in 26–51; keep it rather than refuse the
                // whole code, but say so.
                self.warn(
                    "merchant_account_not_template",
                    Some(object.id),
                    err.offset,
                    format!("field {} is not a valid template: {}", object.id, err.kind),
                )?;
                return Ok(AccountTemplate {
                    id: object.id.to_owned(),
                    globally_unique_identifier: None,
                    fields: BTreeMap::new(),
                    value: Some(object.value.to_owned()),
                });
            }
        };
        let mut template = AccountTemplate {
            id: object.id.to_owned(),
            globally_unique_identifier: None,
            fields: BTreeMap::new(),
            value: None,
        };
        for sub in &parsed {
            if !sub.value.is_ascii() {
                self.non_ascii(&field_name(Some(object.id), Some(sub.id)).unwrap_or_default(), sub.value_offset)?;
            }
            if sub.id == "00" {
                let length = sub.value.chars().count();
                if length > 32 {
                    let name = format!("{}.00", object.id);
                    self.warn(
                        "guid_too_long",
                        Some(&name),
                        sub.value_offset,
                        format!("globally unique identifier is {length} characters; at most 32 allowed"),
                    )?;
                }
                template.globally_unique_identifier = Some(sub.value.to_owned());
            } else {
                template.fields.insert(sub.id.to_owned(), sub.value.to_owned());
            }
        }
        if template.globally_unique_identifier.is_none() {
            self.warn(
                "missing_globally_unique_identifier",
                Some(object.id),
                object.value_offset,
                format!("template {} has no globally unique identifier (sub-field 00)", object.id),
            )?;
        }
        Ok(template)
    }

    fn additional_data(&mut self, field: &Tlv<'_>) -> Result<AdditionalData, QrError> {
        let parsed = parse_sequence(field.value, field.value_offset, Some("62"))?;
        let mut data = AdditionalData::default();
        for sub in &parsed {
            let name = field_name(Some("62"), Some(sub.id)).expect("named");
            if !sub.value.is_ascii() {
                self.non_ascii(&name, sub.value_offset)?;
            }
            let id: u8 = sub.id.parse().expect("two digits");
            let limit = if (1..=8).contains(&id) {
                Some(25)
            } else if id == 9 {
                Some(3)
            } else {
                None
            };
            if let Some(limit) = limit {
                let length = sub.value.chars().count();
                if length > limit {
                    let label = ADDITIONAL_DATA_NAMES[usize::from(id) - 1];
                    self.warn(
                        "additional_data_too_long",
                        Some(&name),
                        sub.value_offset,
                        format!("{label} is {length} characters; the specification allows {limit}"),
                    )?;
                }
            }
            match data.slot(id) {
                Some(slot) => *slot = Some(sub.value.to_owned()),
                None => {
                    data.other.insert(sub.id.to_owned(), sub.value.to_owned());
                }
            }
        }
        Ok(data)
    }

    fn language(&mut self, field: &Tlv<'_>) -> Result<LanguageTemplate, QrError> {
        let parsed = parse_sequence(field.value, field.value_offset, Some("64"))?;
        let mut language = LanguageTemplate::default();
        for sub in &parsed {
            match sub.id {
                "00" => language.language_preference = Some(sub.value.to_owned()),
                "01" => language.merchant_name = Some(sub.value.to_owned()),
                "02" => language.merchant_city = Some(sub.value.to_owned()),
                other => {
                    language.other.insert(other.to_owned(), sub.value.to_owned());
                }
            }
        }
        if language.language_preference.is_none() || language.merchant_name.is_none() {
            self.warn(
                "incomplete_language_template",
                Some("64"),
                field.value_offset,
                "template 64 needs a language preference (00) and a merchant name (01)".into(),
            )?;
        }
        Ok(language)
    }
}

/// Digits with an optional `.` and fraction digits; a trailing `.` is tolerated (with a
/// warning) because some encoders emit it.
fn is_plain_decimal(value: &str) -> bool {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()) && fraction.bytes().all(|b| b.is_ascii_digit())
}

fn expect_length(field: &Tlv<'_>, expected: usize) -> Result<(), QrError> {
    let length = field.value.chars().count();
    if length != expected {
        return Err(QrError::new(QrErrorKind::WrongLength { length, expected }, Some(field.id), field.offset));
    }
    Ok(())
}

fn max_length_error(field: &Tlv<'_>, max: usize) -> Result<(), QrError> {
    let length = field.value.chars().count();
    if length > max {
        return Err(QrError::new(QrErrorKind::FieldTooLong { length, max }, Some(field.id), field.offset));
    }
    Ok(())
}
