use serde::{Deserialize, Serialize};

/// A structural or content defect in a payload. Every error names the field ID (where one
/// applies, as `"62.05"` for a sub-field) and the byte offset of the defect in the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (field {field}, byte offset {offset})", field = .field_id.as_deref().unwrap_or("-"))]
pub struct QrError {
    pub kind: QrErrorKind,
    pub field_id: Option<String>,
    pub offset: usize,
}

impl QrError {
    pub(crate) fn new(kind: QrErrorKind, field_id: Option<&str>, offset: usize) -> QrError {
        QrError { kind, field_id: field_id.map(str::to_owned), offset }
    }

    /// A stable machine-readable name for the defect, e.g. `bad_crc`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrErrorKind {
    #[error("payload is empty")]
    Empty,
    #[error("payload of {length_bytes} bytes is longer than the {max_bytes} an EMV QR code can hold")]
    TooLong { length_bytes: usize, max_bytes: usize },
    #[error("truncated TLV: {remaining} characters left where an ID and a length (4 characters) were expected")]
    TruncatedTlv { remaining: usize },
    #[error("field ID `{id}` is not two digits")]
    NonNumericId { id: String },
    #[error("length `{length}` is not two digits")]
    NonNumericLength { length: String },
    #[error("declared length {declared} runs past the end: only {available} characters remain")]
    LengthPastEnd { declared: usize, available: usize },
    #[error("field appears more than once")]
    DuplicateId,
    #[error("payload format indicator (ID 00) must be the first field")]
    PayloadFormatNotFirst,
    #[error("CRC (ID 63) must be the last field")]
    CrcNotLast,
    #[error("CRC field must be 4 hexadecimal characters, found `{found}`")]
    MalformedCrc { found: String },
    #[error("bad CRC: payload says {found}, computed {computed}")]
    BadCrc { found: String, computed: String },
    #[error("mandatory field is missing")]
    MissingMandatory,
    #[error("amount `{value}` is not a valid decimal amount")]
    InvalidAmount { value: String },
    #[error("field is {length} characters long; the specification allows at most {max}")]
    FieldTooLong { length: usize, max: usize },
    #[error("field is {length} characters long; the specification requires exactly {expected}")]
    WrongLength { length: usize, expected: usize },
    #[error("value `{value}` is not valid here: {reason}")]
    InvalidValue { value: String, reason: String },
    #[error("strict mode: {message}")]
    SpecDeviation { warning_code: String, message: String },
}

impl QrErrorKind {
    pub fn code(&self) -> &'static str {
        match self {
            QrErrorKind::Empty => "empty",
            QrErrorKind::TooLong { .. } => "too_long",
            QrErrorKind::TruncatedTlv { .. } => "truncated_tlv",
            QrErrorKind::NonNumericId { .. } => "non_numeric_id",
            QrErrorKind::NonNumericLength { .. } => "non_numeric_length",
            QrErrorKind::LengthPastEnd { .. } => "length_past_end",
            QrErrorKind::DuplicateId => "duplicate_id",
            QrErrorKind::PayloadFormatNotFirst => "payload_format_not_first",
            QrErrorKind::CrcNotLast => "crc_not_last",
            QrErrorKind::MalformedCrc { .. } => "malformed_crc",
            QrErrorKind::BadCrc { .. } => "bad_crc",
            QrErrorKind::MissingMandatory => "missing_mandatory_field",
            QrErrorKind::InvalidAmount { .. } => "invalid_amount",
            QrErrorKind::FieldTooLong { .. } => "field_too_long",
            QrErrorKind::WrongLength { .. } => "wrong_length",
            QrErrorKind::InvalidValue { .. } => "invalid_value",
            QrErrorKind::SpecDeviation { .. } => "spec_deviation",
        }
    }
}

/// A content deviation from the specification that real payloads commonly show. Reported
/// by default, an error under strict decoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QrWarning {
    pub code: String,
    pub field_id: Option<String>,
    pub offset: usize,
    pub message: String,
}
