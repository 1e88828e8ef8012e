//! The TLV layer: two-digit ID, two-digit length, value. Lengths count characters, not bytes,
//! so UTF-8 text in templates 62 and 64 parses the way real encoders wrote it; offsets in
//! errors are byte offsets into the whole payload.

use crate::error::{QrError, QrErrorKind};

/// One data object inside a payload or template.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub id: &'a str,
    pub value: &'a str,
    /// Byte offset of the ID in the whole payload.
    pub offset: usize,
    /// Byte offset of the value in the whole payload.
    pub value_offset: usize,
}

/// Parses a sequence of data objects. `base_offset` is where `text` starts in the payload;
/// `parent` is the enclosing field's ID, used to name nested fields as `"62.05"`.
pub(crate) fn parse_sequence<'a>(
    text: &'a str,
    base_offset: usize,
    parent: Option<&str>,
) -> Result<Vec<Tlv<'a>>, QrError> {
    let mut objects: Vec<Tlv<'a>> = Vec::new();
    let mut position = 0usize;
    while position < text.len() {
        let offset = base_offset + position;
        let header = match text.get(position..position + 4) {
            Some(header) if header.is_ascii() => header,
            _ => {
                let remaining = text[position..].chars().count();
                if remaining >= 4 {
                    // A non-ASCII character sits where the header's digits should be.
                    let id: String = text[position..].chars().take(2).collect();
                    if id.bytes().all(|b| b.is_ascii_digit()) {
                        let length: String = text[position + 2..].chars().take(2).collect();
                        return Err(QrError::new(
                            QrErrorKind::NonNumericLength { length },
                            field_name(parent, Some(&id)).as_deref(),
                            offset + 2,
                        ));
                    }
                    return Err(QrError::new(
                        QrErrorKind::NonNumericId { id },
                        field_name(parent, None).as_deref(),
                        offset,
                    ));
                }
                return Err(QrError::new(
                    QrErrorKind::TruncatedTlv { remaining },
                    field_name(parent, None).as_deref(),
                    offset,
                ));
            }
        };
        let (id, length_text) = header.split_at(2);
        if !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(QrError::new(
                QrErrorKind::NonNumericId { id: id.to_owned() },
                field_name(parent, None).as_deref(),
                offset,
            ));
        }
        let name = field_name(parent, Some(id));
        if !length_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(QrError::new(
                QrErrorKind::NonNumericLength { length: length_text.to_owned() },
                name.as_deref(),
                offset + 2,
            ));
        }
        let declared: usize = length_text.parse().expect("two ASCII digits");
        let value_start = position + 4;
        let rest = &text[value_start..];
        let value_end = match rest.char_indices().nth(declared) {
            Some((end, _)) => value_start + end,
            None => {
                let available = rest.chars().count();
                if available < declared {
                    return Err(QrError::new(
                        QrErrorKind::LengthPastEnd { declared, available },
                        name.as_deref(),
                        offset + 2,
                    ));
                }
                text.len()
            }
        };
        if objects.iter().any(|o| o.id == id) {
            return Err(QrError::new(QrErrorKind::DuplicateId, name.as_deref(), offset));
        }
        objects.push(Tlv { id, value: &text[value_start..value_end], offset, value_offset: base_offset + value_start });
        position = value_end;
    }
    Ok(objects)
}

/// `"62"` at the top level, `"62.05"` inside template 62.
pub(crate) fn field_name(parent: Option<&str>, id: Option<&str>) -> Option<String> {
    match (parent, id) {
        (Some(parent), Some(id)) => Some(format!("{parent}.{id}")),
        (None, Some(id)) => Some(id.to_owned()),
        (Some(parent), None) => Some(parent.to_owned()),
        (None, None) => None,
    }
}

/// Appends one data object, with its length counted in characters.
pub(crate) fn write_object(out: &mut String, id: &str, value: &str) -> Result<(), QrError> {
    debug_assert!(id.len() == 2 && id.bytes().all(|b| b.is_ascii_digit()));
    let length = value.chars().count();
    if length > 99 {
        return Err(QrError::new(QrErrorKind::FieldTooLong { length, max: 99 }, Some(id), out.len()));
    }
    out.push_str(id);
    out.push_str(&format!("{length:02}"));
    out.push_str(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_lengths_in_characters() {
        let objects = parse_sequence("0002ZH0104最佳运输0202北京", 10, Some("64")).unwrap();
        assert_eq!(objects.len(), 3);
        assert_eq!(objects[1].value, "最佳运输");
        assert_eq!(objects[1].value_offset, 10 + 10);
        assert_eq!(objects[2].offset, 10 + 10 + 12);
    }

    #[test]
    fn names_structural_defects() {
        let err = parse_sequence("0002010", 0, None).unwrap_err();
        assert_eq!(err.kind, QrErrorKind::TruncatedTlv { remaining: 1 });
        assert_eq!(err.offset, 6);
        let err = parse_sequence("00020101X5", 0, None).unwrap_err();
        assert!(matches!(err.kind, QrErrorKind::NonNumericLength { .. }));
        assert_eq!((err.field_id.as_deref(), err.offset), (Some("01"), 8));
        let err = parse_sequence("000201010912", 0, None).unwrap_err();
        assert_eq!(err.kind, QrErrorKind::LengthPastEnd { declared: 9, available: 2 });
        let err = parse_sequence("00020100020152", 0, None).unwrap_err();
        assert_eq!(err.kind, QrErrorKind::DuplicateId);
        assert_eq!(err.offset, 6);
        let err = parse_sequence("0A0201", 0, Some("62")).unwrap_err();
        assert_eq!(err.field_id.as_deref(), Some("62"));
        let err = parse_sequence("00北京01", 0, None).unwrap_err();
        assert!(matches!(err.kind, QrErrorKind::NonNumericLength { .. }), "{err}");
        assert_eq!((err.field_id.as_deref(), err.offset), (Some("00"), 2));
        let err = parse_sequence("北京0102", 0, None).unwrap_err();
        assert!(matches!(err.kind, QrErrorKind::NonNumericId { .. }), "{err}");
    }
}
