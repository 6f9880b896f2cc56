//! Exact amounts. Inside payrun an amount is a whole number of cents; text appears only at the
//! edges: parsed strictly from a payout file, formatted for Dwolla and for reports.
//!
//! Nothing here rounds. An amount that cannot be represented exactly is an error.

use std::fmt;

/// A positive or zero amount in US cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cents(i64);

/// Why a decimal string is not an acceptable payout amount. The `Display` text completes the
/// sentence "amount: "<text>" ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("is empty")]
    Empty,
    #[error("has a sign; amounts are written without + or -")]
    Sign,
    #[error("has a currency symbol; write the number only, such as 1234.56")]
    CurrencySymbol,
    #[error("has a thousands separator; write 1234.56, not 1,234.56")]
    ThousandsSeparator,
    #[error("is in exponent notation; write the number in full")]
    Exponent,
    #[error("has more than 2 decimal places")]
    TooManyDecimals,
    #[error("is not a decimal number such as 1234.56")]
    NotANumber,
    #[error("must be greater than 0.00")]
    Zero,
    #[error("is too large")]
    Overflow,
}

impl Cents {
    pub const ZERO: Cents = Cents(0);

    pub const fn new(cents: i64) -> Option<Cents> {
        if cents >= 0 { Some(Cents(cents)) } else { None }
    }

    pub fn get(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Cents) -> Option<Cents> {
        self.0.checked_add(other.0).map(Cents)
    }

    /// Parses a payout amount written in dollars: digits, optionally a point and one or two
    /// digits (`1234`, `1234.5`, `1234.56`). Surrounding ASCII white space is ignored. Anything
    /// else (signs, symbols, separators, exponents, a third decimal) is refused, never rounded.
    /// Zero is refused: a payout pays something.
    pub fn parse_payout_amount(text: &str) -> Result<Cents, AmountError> {
        let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        if text.starts_with(['+', '-']) {
            return Err(AmountError::Sign);
        }
        if text.contains(['$', '€', '£', '¥']) || text.to_ascii_uppercase().contains("USD") {
            return Err(AmountError::CurrencySymbol);
        }
        if text.contains([',', '_', '\'', ' ']) {
            return Err(AmountError::ThousandsSeparator);
        }
        if text.contains(['e', 'E'])
            && text
                .chars()
                .all(|c| c.is_ascii_digit() || ".eE+-".contains(c))
        {
            return Err(AmountError::Exponent);
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) {
            return Err(AmountError::NotANumber);
        }
        let fraction_cents = match fraction {
            None => 0,
            Some(fraction) if !all_digits(fraction) => return Err(AmountError::NotANumber),
            Some(fraction) if fraction.len() > 2 => return Err(AmountError::TooManyDecimals),
            Some(fraction) => {
                let value: i64 = fraction.parse().map_err(|_| AmountError::NotANumber)?;
                if fraction.len() == 1 {
                    value * 10
                } else {
                    value
                }
            }
        };
        let whole_dollars: i64 = whole.parse().map_err(|_| AmountError::Overflow)?;
        let cents = whole_dollars
            .checked_mul(100)
            .and_then(|c| c.checked_add(fraction_cents))
            .ok_or(AmountError::Overflow)?;
        if cents == 0 {
            return Err(AmountError::Zero);
        }
        Ok(Cents(cents))
    }
}

/// Dollars with exactly two decimals and no separators (`1234.56`): the form Dwolla's
/// `amount.value` takes and the form reports use.
impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_decimal(f, self.0)
    }
}

/// Writes a signed count of cents as a plain decimal (`-1234.56`) without allocating: every
/// cents-to-text conversion in payrun comes here.
pub fn write_decimal(out: &mut impl fmt::Write, cents: impl Into<i128>) -> fmt::Result {
    let cents: i128 = cents.into();
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    write!(out, "{sign}{}.{:02}", cents / 100, cents % 100)
}

/// A signed count of cents as a plain decimal (`1234.56`, `-0.05`): totals and differences in
/// CSV and JSON, and Dwolla's `amount.value`.
pub fn decimal(cents: impl Into<i128>) -> String {
    let mut out = String::new();
    let _ = write_decimal(&mut out, cents);
    out
}

/// `1234567.89` as `$1,234,567.89`, for people (HTML); CSV and JSON keep the plain decimal.
pub fn dollars(cents: i64) -> String {
    let plain = decimal(cents.unsigned_abs());
    let (whole, fraction) = plain.split_once('.').expect("a decimal has a point");
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}${grouped}.{fraction}")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn cents_print_as_plain_and_grouped_decimals() {
        assert_eq!(decimal(123456_i64), "1234.56");
        assert_eq!(decimal(-5_i64), "-0.05");
        assert_eq!(decimal(0_i64), "0.00");
        assert_eq!(decimal(u64::MAX), "184467440737095516.15");
        assert_eq!(dollars(123456789), "$1,234,567.89");
        assert_eq!(dollars(-100), "-$1.00");
        assert_eq!(dollars(99), "$0.99");
        assert_eq!(Cents::new(1).unwrap().to_string(), "0.01");
    }

    fn parse(text: &str) -> Result<i64, AmountError> {
        Cents::parse_payout_amount(text).map(Cents::get)
    }

    #[test]
    fn accepts_plain_decimal_dollars() {
        assert_eq!(parse("1234.56"), Ok(123_456));
        assert_eq!(parse("1234.5"), Ok(123_450));
        assert_eq!(parse("1234"), Ok(123_400));
        assert_eq!(parse("0.01"), Ok(1));
        assert_eq!(parse(" 12.00 "), Ok(1200));
        assert_eq!(parse("007.10"), Ok(710));
    }

    #[test]
    fn refuses_every_lossy_or_ambiguous_form() {
        assert_eq!(parse(""), Err(AmountError::Empty));
        assert_eq!(parse("   "), Err(AmountError::Empty));
        assert_eq!(parse("-5.00"), Err(AmountError::Sign));
        assert_eq!(parse("+5.00"), Err(AmountError::Sign));
        assert_eq!(parse("$5.00"), Err(AmountError::CurrencySymbol));
        assert_eq!(parse("5.00 USD"), Err(AmountError::CurrencySymbol));
        assert_eq!(parse("1,234.56"), Err(AmountError::ThousandsSeparator));
        assert_eq!(parse("1 234.56"), Err(AmountError::ThousandsSeparator));
        assert_eq!(parse("1e3"), Err(AmountError::Exponent));
        assert_eq!(parse("1.5E2"), Err(AmountError::Exponent));
        assert_eq!(parse("12.345"), Err(AmountError::TooManyDecimals));
        assert_eq!(parse("12.340"), Err(AmountError::TooManyDecimals));
        assert_eq!(parse("12."), Err(AmountError::NotANumber));
        assert_eq!(parse(".50"), Err(AmountError::NotANumber));
        assert_eq!(parse("12.3.4"), Err(AmountError::NotANumber));
        assert_eq!(parse("twelve"), Err(AmountError::NotANumber));
        assert_eq!(parse("0x10"), Err(AmountError::NotANumber));
        assert_eq!(parse("0"), Err(AmountError::Zero));
        assert_eq!(parse("0.00"), Err(AmountError::Zero));
        assert_eq!(parse("99999999999999999999"), Err(AmountError::Overflow));
        assert_eq!(parse("92233720368547758.07"), Ok(i64::MAX));
        assert_eq!(parse("92233720368547758.08"), Err(AmountError::Overflow));
    }

    #[test]
    fn formats_with_two_decimals() {
        assert_eq!(Cents(1).to_string(), "0.01");
        assert_eq!(Cents(123_450).to_string(), "1234.50");
        assert_eq!(Cents(0).to_string(), "0.00");
    }

    proptest! {
        #[test]
        fn formatting_then_parsing_gives_back_the_same_cents(cents in 1i64..=i64::MAX / 100) {
            let text = Cents(cents).to_string();
            prop_assert_eq!(parse(&text), Ok(cents));
        }

        #[test]
        fn any_accepted_text_means_exactly_its_digits(whole in 0u64..10_000_000, frac in 0u32..100, width in 0usize..=2) {
            let text = match width {
                0 => whole.to_string(),
                1 => format!("{whole}.{}", frac / 10),
                _ => format!("{whole}.{frac:02}"),
            };
            let expected = whole as i64 * 100 + match width { 0 => 0, 1 => (frac / 10) as i64 * 10, _ => frac as i64 };
            if expected == 0 {
                prop_assert_eq!(parse(&text), Err(AmountError::Zero));
            } else {
                prop_assert_eq!(parse(&text), Ok(expected));
            }
        }

        #[test]
        fn three_or_more_decimals_are_never_rounded(whole in 0u64..1_000_000, frac in "[0-9]{3,6}") {
            prop_assert_eq!(parse(&format!("{whole}.{frac}")), Err(AmountError::TooManyDecimals));
        }
    }
}
