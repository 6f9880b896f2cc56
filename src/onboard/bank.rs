//! Bank account fields, checked before anything is sent to Dwolla: the routing number's ABA
//! checksum and the account number's format. An account number is personal data: it prints as
//! its last four digits only, in `Debug`, `Display` and every error.

use std::fmt;
use std::str::FromStr;

use crate::dwolla::wire::BankAccountType;

/// A nine-digit ABA routing number with a valid checksum and a Federal Reserve prefix Dwolla
/// accepts (01-12, or 21-32 for thrift institutions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingNumber(String);

impl RoutingNumber {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RoutingNumber {
    type Err = String;

    /// The error names what is wrong; routing numbers are public, so it may quote the value.
    fn from_str(text: &str) -> Result<RoutingNumber, String> {
        let text = text.trim();
        let bytes = text.as_bytes();
        if bytes.len() != 9 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(format!("{text:?} is not 9 digits"));
        }
        let d: Vec<u32> = bytes.iter().map(|b| u32::from(b - b'0')).collect();
        let prefix = d[0] * 10 + d[1];
        if !((1..=12).contains(&prefix) || (21..=32).contains(&prefix)) {
            return Err(format!(
                "{text:?} starts with {prefix:02}; US bank routing numbers start with 01-12 or 21-32"
            ));
        }
        let sum = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8]);
        if !sum.is_multiple_of(10) {
            return Err(format!(
                "{text:?} fails the ABA checksum (a digit is wrong or two are swapped)"
            ));
        }
        Ok(RoutingNumber(text.to_owned()))
    }
}

/// A bank account number: 4 to 17 digits. Never printed in full.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountNumber(String);

impl AccountNumber {
    /// The full number, for the request body to Dwolla only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The last four digits, the only part payrun keeps or shows.
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
}

impl FromStr for AccountNumber {
    type Err = String;

    /// The error never quotes the value, which may be a real account number with a typo.
    fn from_str(text: &str) -> Result<AccountNumber, String> {
        let text = text.trim();
        let n_chars = text.chars().count();
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "must be 4 to 17 digits; it has {n_chars} characters, not all digits (value not shown)"
            ));
        }
        if !(4..=17).contains(&n_chars) {
            return Err(format!(
                "must be 4 to 17 digits; it has {n_chars} (value not shown)"
            ));
        }
        Ok(AccountNumber(text.to_owned()))
    }
}

impl fmt::Debug for AccountNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountNumber(…{})", self.last4())
    }
}

impl fmt::Display for AccountNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "…{}", self.last4())
    }
}

/// `checking` or `savings`, case-insensitive.
pub fn parse_account_type(text: &str) -> Result<BankAccountType, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "checking" => Ok(BankAccountType::Checking),
        "savings" => Ok(BankAccountType::Savings),
        _ => Err(format!("{:?} is not checking or savings", text.trim())),
    }
}

pub fn account_type_str(kind: BankAccountType) -> &'static str {
    match kind {
        BankAccountType::Checking => "checking",
        BankAccountType::Savings => "savings",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_numbers_need_nine_digits_a_valid_prefix_and_the_checksum() {
        assert!("222222226".parse::<RoutingNumber>().is_ok());
        assert!("021000021".parse::<RoutingNumber>().is_ok());
        assert!("011000015".parse::<RoutingNumber>().is_ok());
        let swapped = "222222262".parse::<RoutingNumber>().unwrap_err();
        assert!(swapped.contains("checksum"), "{swapped}");
        assert!(
            "22222222"
                .parse::<RoutingNumber>()
                .unwrap_err()
                .contains("9 digits")
        );
        assert!(
            "50000000x"
                .parse::<RoutingNumber>()
                .unwrap_err()
                .contains("9 digits")
        );
        // 990000009 passes the checksum but has no valid prefix.
        assert!(
            "990000009"
                .parse::<RoutingNumber>()
                .unwrap_err()
                .contains("01-12")
        );
    }

    #[test]
    fn account_numbers_are_digits_and_never_printed_in_full() {
        let number: AccountNumber = "123456789012".parse().unwrap();
        assert_eq!(number.last4(), "9012");
        assert_eq!(format!("{number}"), "…9012");
        assert!(!format!("{number:?}").contains("12345678"));
        let short = "123".parse::<AccountNumber>().unwrap_err();
        assert!(short.contains("it has 3"), "{short}");
        let long = "123456789012345678".parse::<AccountNumber>().unwrap_err();
        assert!(!long.contains("123456789"), "{long}");
        let letters = "12-34-5678".parse::<AccountNumber>().unwrap_err();
        assert!(!letters.contains("5678"), "{letters}");
    }
}
