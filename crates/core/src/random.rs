//! Randomness that guards something (ids a caller must not guess, one-time codes) comes
//! from the operating system's generator, never from a seeded or fast generator whose
//! next output can be inferred from earlier ones.

pub(crate) fn os_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random generator is available");
    bytes
}

/// A one-time code of six decimal digits, every code equally likely: draws above the
/// largest multiple of a million below 2^32 are drawn again, so no code is favoured.
pub(crate) fn one_time_code() -> String {
    const CODES: u32 = 1_000_000;
    const ZONE: u32 = u32::MAX - u32::MAX % CODES;
    loop {
        let draw = u32::from_le_bytes(os_bytes());
        if draw < ZONE {
            return format!("{:06}", draw % CODES);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_spread() {
        let codes: Vec<String> = (0..2_000).map(|_| one_time_code()).collect();
        assert!(codes.iter().all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())));
        let distinct: std::collections::HashSet<&String> = codes.iter().collect();
        assert!(distinct.len() > 1_990, "{} distinct codes of 2,000", distinct.len());
        let low = codes.iter().filter(|c| c.as_str() < "500000").count();
        assert!((850..=1_150).contains(&low), "{low} of 2,000 in the lower half");
        assert_ne!(os_bytes::<10>(), os_bytes::<10>());
    }
}
