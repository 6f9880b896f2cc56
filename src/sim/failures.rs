//! `failureReason{code, description, explanation}` texts. Descriptions are Dwolla's, from the
//! notes' section 6 table; the R01 and R03 explanations and the whole GCA-051 entry are Dwolla's
//! wording as the notes quote it. Dwolla publishes no explanation for the other codes, so those
//! are plain restatements written for the simulator.

/// The Connect-specific failure of a source funding source whose treasury link does not match.
pub const GCA_051: &str = "GCA-051";

/// What `9.99` fails with. Dwolla's sandbox table says only "failed", with no code, so the
/// simulator picks R01, the most common ACH failure.
pub const SENTINEL_FAILURE_CODE: &str = "R01";

pub struct FailureText {
    pub description: String,
    pub explanation: String,
}

/// (code, description, explanation) for every code the simulator describes itself.
const KNOWN: &[(&str, &str, &str)] = &[
    (
        GCA_051,
        "Invalid combination of ACH company ID and funding source",
        "The requested funding source and treasury account combination is invalid. Check funding source and treasury account for accuracy and re-add if necessary",
    ),
    (
        "R01",
        "Insufficient Funds",
        "Available balance is not sufficient to cover the dollar amount of the debit entry.",
    ),
    (
        "R02",
        "Bank Account Closed",
        "A previously active account has been closed by the customer or the bank.",
    ),
    (
        "R03",
        "No Account/Unable to Locate Account",
        "The account number does not correspond to the individual identified in the entry or a valid account.",
    ),
    (
        "R04",
        "Invalid Bank Account Number Structure",
        "The account number fails the receiving bank's check digit or format rules.",
    ),
    (
        "R05",
        "Unauthorized Debit to Consumer Account Using Corporate SEC Code",
        "A consumer account was debited with a corporate entry without the consumer's authorization.",
    ),
    (
        "R06",
        "Returned per ODFI's Request",
        "The originating bank asked the receiving bank to return the entry.",
    ),
    (
        "R07",
        "Authorization Revoked by Customer",
        "The account holder revoked the authorization given to the originator.",
    ),
    (
        "R08",
        "Payment Stopped",
        "The account holder placed a stop payment on this entry.",
    ),
    (
        "R09",
        "Uncollected Funds",
        "The balance is sufficient but includes funds not yet collected.",
    ),
    (
        "R10",
        "Customer Advises Originator is Not Known / Not Authorized",
        "The account holder says the originator is unknown or not authorized to debit the account.",
    ),
    (
        "R11",
        "Customer Advises Entry Not in Accordance with the Terms of the Authorization",
        "The account holder says the entry does not match the terms they authorized.",
    ),
    (
        "R12",
        "Branch Sold to Another DFI",
        "The account is at a branch that was sold to another bank.",
    ),
    (
        "R13",
        "Invalid ACH Routing Number",
        "The routing number is not a valid ACH participant.",
    ),
    (
        "R14",
        "Representative Payee Deceased or Unable to Continue in That Capacity",
        "The representative payee has died or can no longer act for the beneficiary.",
    ),
    (
        "R15",
        "Beneficiary or Account Holder Deceased",
        "The beneficiary or account holder has died.",
    ),
    (
        "R16",
        "Account Frozen/Entry Returned per OFAC Instruction",
        "The account is frozen, or the entry was returned on OFAC instruction.",
    ),
    (
        "R17",
        "File Record Edit Criteria / Questionable Circumstances",
        "The receiving bank could not process the entry as formatted or found it questionable.",
    ),
    (
        "R20",
        "Non-Transaction Account",
        "The account does not allow the kind of transaction requested.",
    ),
    (
        "R22",
        "Invalid Individual ID Number",
        "The individual identification number in the entry is not valid.",
    ),
    (
        "R23",
        "Credit Entry Refused by Receiver",
        "The receiver refused the credit entry.",
    ),
    (
        "R29",
        "Corporate Customer Advises Not Authorized",
        "The corporate account holder says the entry was not authorized.",
    ),
    (
        "R31",
        "Permissible Return (CCD and CTX only)",
        "The receiving bank agreed to accept a late return of a business entry.",
    ),
    (
        "R37",
        "Source Document Presented for Payment",
        "The source document was also presented for payment.",
    ),
    (
        "R38",
        "Stop Payment on Source Document",
        "A stop payment was placed on the source document.",
    ),
    (
        "R51",
        "Item Related to RCK Entry is Ineligible or RCK Entry is Improper",
        "The re-presented check entry is ineligible or improper.",
    ),
];

pub fn failure_text(code: &str) -> FailureText {
    match KNOWN.iter().find(|(known, _, _)| *known == code) {
        Some((_, description, explanation)) => FailureText {
            description: description.to_string(),
            explanation: explanation.to_string(),
        },
        None => FailureText {
            description: format!("ACH return {code}"),
            explanation: format!("The receiving bank returned the entry with return code {code}."),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_have_their_text_and_others_a_plain_one() {
        assert_eq!(failure_text("R02").description, "Bank Account Closed");
        assert!(
            failure_text(GCA_051)
                .explanation
                .starts_with("The requested")
        );
        assert_eq!(failure_text("R99").description, "ACH return R99");
        for (i, (code, _, _)) in KNOWN.iter().enumerate() {
            assert!(
                KNOWN[i + 1..].iter().all(|(other, _, _)| other != code),
                "{code} listed twice"
            );
        }
    }
}
