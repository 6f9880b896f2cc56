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

pub fn failure_text(code: &str) -> FailureText {
    let known: Option<(&str, &str)> = match code {
        GCA_051 => Some((
            "Invalid combination of ACH company ID and funding source",
            "The requested funding source and treasury account combination is invalid. Check funding source and treasury account for accuracy and re-add if necessary",
        )),
        "R01" => Some((
            "Insufficient Funds",
            "Available balance is not sufficient to cover the dollar amount of the debit entry.",
        )),
        "R02" => Some((
            "Bank Account Closed",
            "A previously active account has been closed by the customer or the bank.",
        )),
        "R03" => Some((
            "No Account/Unable to Locate Account",
            "The account number does not correspond to the individual identified in the entry or a valid account.",
        )),
        "R04" => Some((
            "Invalid Bank Account Number Structure",
            "The account number fails the receiving bank's check digit or format rules.",
        )),
        "R05" => Some((
            "Unauthorized Debit to Consumer Account Using Corporate SEC Code",
            "A consumer account was debited with a corporate entry without the consumer's authorization.",
        )),
        "R06" => Some((
            "Returned per ODFI's Request",
            "The originating bank asked the receiving bank to return the entry.",
        )),
        "R07" => Some((
            "Authorization Revoked by Customer",
            "The account holder revoked the authorization given to the originator.",
        )),
        "R08" => Some((
            "Payment Stopped",
            "The account holder placed a stop payment on this entry.",
        )),
        "R09" => Some((
            "Uncollected Funds",
            "The balance is sufficient but includes funds not yet collected.",
        )),
        "R10" => Some((
            "Customer Advises Originator is Not Known / Not Authorized",
            "The account holder says the originator is unknown or not authorized to debit the account.",
        )),
        "R11" => Some((
            "Customer Advises Entry Not in Accordance with the Terms of the Authorization",
            "The account holder says the entry does not match the terms they authorized.",
        )),
        "R12" => Some((
            "Branch Sold to Another DFI",
            "The account is at a branch that was sold to another bank.",
        )),
        "R13" => Some((
            "Invalid ACH Routing Number",
            "The routing number is not a valid ACH participant.",
        )),
        "R14" => Some((
            "Representative Payee Deceased or Unable to Continue in That Capacity",
            "The representative payee has died or can no longer act for the beneficiary.",
        )),
        "R15" => Some((
            "Beneficiary or Account Holder Deceased",
            "The beneficiary or account holder has died.",
        )),
        "R16" => Some((
            "Account Frozen/Entry Returned per OFAC Instruction",
            "The account is frozen, or the entry was returned on OFAC instruction.",
        )),
        "R17" => Some((
            "File Record Edit Criteria / Questionable Circumstances",
            "The receiving bank could not process the entry as formatted or found it questionable.",
        )),
        "R20" => Some((
            "Non-Transaction Account",
            "The account does not allow the kind of transaction requested.",
        )),
        "R22" => Some((
            "Invalid Individual ID Number",
            "The individual identification number in the entry is not valid.",
        )),
        "R23" => Some((
            "Credit Entry Refused by Receiver",
            "The receiver refused the credit entry.",
        )),
        "R29" => Some((
            "Corporate Customer Advises Not Authorized",
            "The corporate account holder says the entry was not authorized.",
        )),
        "R31" => Some((
            "Permissible Return (CCD and CTX only)",
            "The receiving bank agreed to accept a late return of a business entry.",
        )),
        "R37" => Some((
            "Source Document Presented for Payment",
            "The source document was also presented for payment.",
        )),
        "R38" => Some((
            "Stop Payment on Source Document",
            "A stop payment was placed on the source document.",
        )),
        "R51" => Some((
            "Item Related to RCK Entry is Ineligible or RCK Entry is Improper",
            "The re-presented check entry is ineligible or improper.",
        )),
        _ => None,
    };
    match known {
        Some((description, explanation)) => FailureText {
            description: description.to_string(),
            explanation: explanation.to_string(),
        },
        None => FailureText {
            description: format!("ACH return {code}"),
            explanation: format!("The receiving bank returned the entry with return code {code}."),
        },
    }
}
