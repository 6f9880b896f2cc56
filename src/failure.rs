//! What a failure or return code means for the next payment to the same payee: the table that
//! tracking records and reports print as the action for a person. Pure; codes are opaque
//! strings from Dwolla (ACH return codes such as `R01`, or Connect codes such as `GCA-051`).
//!
//! Source: Dwolla's "most common" return-code table (dwolla-api-notes.md section 6). Dwolla
//! removes the bank for every code except R01, R09 and R20 (its table also keeps R22).

/// What to do before paying this payee again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Advice {
    /// The funds or timing were the problem; the same bank details may work later.
    RetryMaySucceed,
    /// The bank account is closed, unknown or invalid: get new bank details first.
    FixBankDetails,
    /// Authorization, fraud, death or legal holds: do not retry; a person must investigate.
    Investigate,
    /// payrun's own set-up (source funding source, treasury account) is wrong.
    FixPayrunSetup,
    /// A code payrun does not know: look it up before acting.
    Unknown,
}

impl Advice {
    /// Stored in the ledger and printed in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Advice::RetryMaySucceed => "retry_may_succeed",
            Advice::FixBankDetails => "fix_bank_details",
            Advice::Investigate => "investigate",
            Advice::FixPayrunSetup => "fix_payrun_setup",
            Advice::Unknown => "unknown",
        }
    }

    /// One sentence for finance staff.
    pub fn action(self) -> &'static str {
        match self {
            Advice::RetryMaySucceed => {
                "Pay again later with the same bank details; the payee's bank may accept it then."
            }
            Advice::FixBankDetails => "Get corrected bank details from the payee, then pay again.",
            Advice::Investigate => {
                "Do not pay again; contact the payee or their bank to resolve the return."
            }
            Advice::FixPayrunSetup => {
                "Check payrun's source funding source and treasury account with Dwolla, then pay again."
            }
            Advice::Unknown => "Look up the failure code with Dwolla before paying again.",
        }
    }
}

/// The advice for a failure code.
pub fn advice(code: &str) -> Advice {
    match code.trim().to_ascii_uppercase().as_str() {
        // Insufficient or uncollected funds: Dwolla keeps the bank; a later try may work.
        "R01" | "R09" => Advice::RetryMaySucceed,
        // Closed, missing or malformed account; branch sold; invalid routing; not a
        // transaction account; refused credit: the details must change.
        "R02" | "R03" | "R04" | "R12" | "R13" | "R20" | "R23" => Advice::FixBankDetails,
        // Stopped payments, revoked or disputed authorization, deceased, frozen, fraud.
        "R05" | "R06" | "R07" | "R08" | "R10" | "R11" | "R14" | "R15" | "R16" | "R17" | "R22"
        | "R29" | "R31" | "R37" | "R38" | "R51" => Advice::Investigate,
        code if code.starts_with("GCA-") => Advice::FixPayrunSetup,
        _ => Advice::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insufficient_funds_may_succeed_later_but_a_closed_account_must_be_fixed() {
        assert_eq!(advice("R01"), Advice::RetryMaySucceed);
        assert_eq!(advice("r09"), Advice::RetryMaySucceed);
        for code in ["R02", "R03", "R04"] {
            assert_eq!(advice(code), Advice::FixBankDetails, "{code}");
        }
        assert_eq!(advice("R10"), Advice::Investigate);
        assert_eq!(advice("GCA-051"), Advice::FixPayrunSetup);
        assert_eq!(advice("X99"), Advice::Unknown);
    }

    #[test]
    fn every_advice_has_a_distinct_stored_name_and_an_action() {
        let all = [
            Advice::RetryMaySucceed,
            Advice::FixBankDetails,
            Advice::Investigate,
            Advice::FixPayrunSetup,
            Advice::Unknown,
        ];
        let names: std::collections::HashSet<_> = all.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), all.len());
        assert!(all.iter().all(|a| a.action().ends_with('.')));
    }
}
