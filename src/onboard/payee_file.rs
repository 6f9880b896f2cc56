//! The payee file format, checked whole before anything is sent to Dwolla.
//!
//! A CSV file (UTF-8, header row, names matched case-insensitively in any order):
//!
//! | column | |
//! |---|---|
//! | `reference` | required: your id for the payee; payout files name it in their `payee` column |
//! | `business_name` | a business payee, or |
//! | `first_name`, `last_name` | a person (each row is one or the other) |
//! | `email` | required; Dwolla allows one external party per email |
//! | `routing_number` | required: 9 digits, ABA checksum |
//! | `account_number` | required: 4 to 17 digits; payrun keeps only the last four |
//! | `account_type` | required: `checking` or `savings` |
//! | `account_name` | optional: the funding source's name at Dwolla (at most 50 characters) |
//!
//! Problems are reported like a compiler's, `payees.csv:7: routing_number: ...`, and never quote
//! an account number.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::dwolla::wire::BankAccountType;
use crate::ingest::FileError;
use crate::ingest::row::{FieldError, looks_like_email};

use super::bank::{AccountNumber, RoutingNumber, account_type_str, parse_account_type};

const MAX_REFERENCE_LEN: usize = 254;
const MAX_NAME_LEN: usize = 255;
const MAX_ACCOUNT_NAME_LEN: usize = 50;

/// One valid payee row.
#[derive(Debug, Clone)]
pub struct PayeeRow {
    pub line: u64,
    pub reference: String,
    pub who: Who,
    pub email: String,
    pub routing_number: RoutingNumber,
    pub account_number: AccountNumber,
    pub account_type: BankAccountType,
    /// The funding source's name at Dwolla.
    pub account_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Business(String),
    Person {
        first_name: String,
        last_name: String,
    },
}

impl Who {
    pub fn display_name(&self) -> String {
        match self {
            Who::Business(name) => name.clone(),
            Who::Person {
                first_name,
                last_name,
            } => format!("{first_name} {last_name}"),
        }
    }
}

/// What reading a payee file found.
#[derive(Debug)]
pub enum PayeeFile {
    Valid(Vec<PayeeRow>),
    Invalid(Vec<FileError>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Column {
    Reference,
    BusinessName,
    FirstName,
    LastName,
    Email,
    RoutingNumber,
    AccountNumber,
    AccountType,
    AccountName,
}

const COLUMNS: [(&str, Column); 9] = [
    ("reference", Column::Reference),
    ("business_name", Column::BusinessName),
    ("first_name", Column::FirstName),
    ("last_name", Column::LastName),
    ("email", Column::Email),
    ("routing_number", Column::RoutingNumber),
    ("account_number", Column::AccountNumber),
    ("account_type", Column::AccountType),
    ("account_name", Column::AccountName),
];

impl Column {
    fn name(self) -> &'static str {
        COLUMNS
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("?", |(n, _)| n)
    }
}

fn field_error(column: Column, message: impl Into<String>) -> FieldError {
    FieldError {
        column: Some(column.name().to_string()),
        message: message.into(),
    }
}

fn row_error(message: impl Into<String>) -> FieldError {
    FieldError {
        column: None,
        message: message.into(),
    }
}

/// Reads and checks a whole payee file. `Err` only when the file cannot be read.
pub fn read_payee_file(path: &Path) -> std::io::Result<PayeeFile> {
    let display_name = crate::names::shown(path);
    let file = File::open(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::new(file));
    let mut errors = Vec::new();
    let push = |errors: &mut Vec<FileError>, line: u64, problem: FieldError| {
        errors.push(FileError {
            file: display_name.clone(),
            line,
            problem,
        })
    };
    let mut record = csv::ByteRecord::new();
    let mut header: Option<Vec<Column>> = None;
    let mut rows = Vec::new();
    let mut seen = Seen::default();
    while reader
        .read_byte_record(&mut record)
        .map_err(std::io::Error::other)?
    {
        let line = record.position().map_or(0, |p| p.line());
        let Some(columns) = &header else {
            match parse_header(&record) {
                Ok(columns) => header = Some(columns),
                Err(problems) => {
                    for problem in problems {
                        push(&mut errors, line, problem);
                    }
                    return Ok(PayeeFile::Invalid(errors));
                }
            }
            continue;
        };
        match parse_row(columns, &record, line).and_then(|row| seen.first_use(row)) {
            Ok(row) => {
                seen.record(&row, line);
                rows.push(row);
            }
            Err(problems) => {
                for problem in problems {
                    push(&mut errors, line, problem);
                }
            }
        }
    }
    if header.is_none() {
        push(&mut errors, 1, row_error("the file is empty"));
    } else if rows.is_empty() && errors.is_empty() {
        push(
            &mut errors,
            1,
            row_error("the file has a header but no payee rows"),
        );
    }
    Ok(if errors.is_empty() {
        PayeeFile::Valid(rows)
    } else {
        PayeeFile::Invalid(errors)
    })
}

/// The first line of each reference and (case-insensitive) email so far.
#[derive(Default)]
struct Seen {
    reference: HashMap<String, u64>,
    email: HashMap<String, u64>,
}

impl Seen {
    /// The row, unless an earlier row has its reference or email: one error for each.
    fn first_use(&self, row: PayeeRow) -> Result<PayeeRow, Vec<FieldError>> {
        let mut problems = Vec::new();
        if let Some(first) = self.reference.get(&row.reference) {
            problems.push(field_error(
                Column::Reference,
                format!("{:?} is already used on line {first}", row.reference),
            ));
        }
        if let Some(first) = self.email.get(&row.email.to_ascii_lowercase()) {
            problems.push(field_error(
                Column::Email,
                format!(
                    "{:?} is already used on line {first}; Dwolla allows one external party per email",
                    row.email
                ),
            ));
        }
        if problems.is_empty() {
            Ok(row)
        } else {
            Err(problems)
        }
    }

    fn record(&mut self, row: &PayeeRow, line: u64) {
        self.reference.insert(row.reference.clone(), line);
        self.email.insert(row.email.to_ascii_lowercase(), line);
    }
}

fn parse_header(record: &csv::ByteRecord) -> Result<Vec<Column>, Vec<FieldError>> {
    let mut columns = Vec::new();
    let mut errors = Vec::new();
    for (index, raw) in record.iter().enumerate() {
        let raw = if index == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        let Ok(text) = std::str::from_utf8(raw) else {
            errors.push(row_error(format!(
                "header field {} is not valid UTF-8",
                index + 1
            )));
            continue;
        };
        let name = text.trim().to_ascii_lowercase();
        match COLUMNS.iter().find(|(n, _)| *n == name) {
            Some((_, column)) => {
                if columns.contains(column) {
                    errors.push(row_error(format!("column {name:?} appears twice")));
                }
                columns.push(*column);
            }
            None => errors.push(row_error(format!(
                "unknown column {:?}; the columns are {}",
                text.trim(),
                COLUMNS.map(|(n, _)| n).join(", ")
            ))),
        }
    }
    for required in [
        Column::Reference,
        Column::Email,
        Column::RoutingNumber,
        Column::AccountNumber,
        Column::AccountType,
    ] {
        if !columns.contains(&required) {
            errors.push(row_error(format!(
                "required column {:?} is missing",
                required.name()
            )));
        }
    }
    let has_person = columns.contains(&Column::FirstName) && columns.contains(&Column::LastName);
    if !columns.contains(&Column::BusinessName) && !has_person {
        errors.push(row_error(
            "the file needs a \"business_name\" column, or \"first_name\" and \"last_name\" columns",
        ));
    } else if columns.contains(&Column::FirstName) != columns.contains(&Column::LastName) {
        errors.push(row_error(
            "\"first_name\" and \"last_name\" go together; the file has only one of them",
        ));
    }
    if errors.is_empty() {
        Ok(columns)
    } else {
        Err(errors)
    }
}

fn parse_row(
    columns: &[Column],
    record: &csv::ByteRecord,
    line: u64,
) -> Result<PayeeRow, Vec<FieldError>> {
    let text = row_fields(columns, record)?;
    let get = |column: Column| text.get(&column).copied().unwrap_or("");
    let mut errors = Vec::new();
    let reference = get(Column::Reference);
    check_reference(reference, &mut errors);
    let who = who(&get, &mut errors);
    let email = get(Column::Email);
    check_email(email, &mut errors);
    let routing_number = parsed(&get, Column::RoutingNumber, str::parse, &mut errors);
    let account_number = parsed(&get, Column::AccountNumber, str::parse, &mut errors);
    let account_type = parsed(&get, Column::AccountType, parse_account_type, &mut errors);
    let account_name = get(Column::AccountName);
    if account_name.chars().count() > MAX_ACCOUNT_NAME_LEN {
        errors.push(field_error(
            Column::AccountName,
            format!("is longer than {MAX_ACCOUNT_NAME_LEN} characters (Dwolla's limit)"),
        ));
    }
    match (who, routing_number, account_number, account_type) {
        (Some(who), Some(routing_number), Some(account_number), Some(account_type))
            if errors.is_empty() =>
        {
            let account_name = if account_name.is_empty() {
                default_account_name(account_type, &account_number)
            } else {
                account_name.to_string()
            };
            Ok(PayeeRow {
                line,
                reference: reference.to_string(),
                who,
                email: email.to_string(),
                routing_number,
                account_number,
                account_type,
                account_name,
            })
        }
        _ => Err(errors),
    }
}

/// The row's fields by column, trimmed: the row must have the header's shape and be UTF-8.
fn row_fields<'r>(
    columns: &[Column],
    record: &'r csv::ByteRecord,
) -> Result<HashMap<Column, &'r str>, Vec<FieldError>> {
    if record.len() != columns.len() {
        let blank = record.len() == 1 && record[0].iter().all(u8::is_ascii_whitespace);
        return Err(vec![row_error(if blank {
            "the row is blank".to_string()
        } else {
            format!(
                "the row has {} fields, the header has {}",
                record.len(),
                columns.len()
            )
        })]);
    }
    let mut errors = Vec::new();
    let mut text: HashMap<Column, &str> = HashMap::new();
    for (column, raw) in columns.iter().zip(record.iter()) {
        match std::str::from_utf8(raw) {
            Ok(value) => {
                text.insert(*column, value.trim());
            }
            Err(_) => errors.push(field_error(
                *column,
                "is not valid UTF-8 text (save the file as UTF-8)",
            )),
        }
    }
    if errors.is_empty() {
        Ok(text)
    } else {
        Err(errors)
    }
}

fn check_reference(reference: &str, errors: &mut Vec<FieldError>) {
    if reference.is_empty() {
        errors.push(field_error(
            Column::Reference,
            "is empty; every payee needs a reference",
        ));
    } else if reference.chars().count() > MAX_REFERENCE_LEN {
        errors.push(field_error(
            Column::Reference,
            format!("is longer than {MAX_REFERENCE_LEN} characters"),
        ));
    } else if reference.chars().any(char::is_control) {
        errors.push(field_error(
            Column::Reference,
            "contains a control character",
        ));
    }
}

/// A business (business_name alone) or a person (first_name and last_name), each name within
/// Dwolla's length.
fn who<'a>(get: &impl Fn(Column) -> &'a str, errors: &mut Vec<FieldError>) -> Option<Who> {
    for column in [Column::BusinessName, Column::FirstName, Column::LastName] {
        if get(column).chars().count() > MAX_NAME_LEN {
            errors.push(field_error(
                column,
                format!("is longer than {MAX_NAME_LEN} characters"),
            ));
        }
    }
    let business = get(Column::BusinessName);
    let (first, last) = (get(Column::FirstName), get(Column::LastName));
    let problem = match (business.is_empty(), first.is_empty(), last.is_empty()) {
        (false, true, true) => return Some(Who::Business(business.to_string())),
        (true, false, false) => {
            return Some(Who::Person {
                first_name: first.to_string(),
                last_name: last.to_string(),
            });
        }
        (false, _, _) => field_error(
            Column::BusinessName,
            "a payee is a business (business_name) or a person (first_name and last_name), not both",
        ),
        (true, true, true) => {
            row_error("the payee has no name: give business_name, or first_name and last_name")
        }
        (true, true, false) => field_error(Column::FirstName, "is empty, but last_name is given"),
        (true, false, true) => field_error(Column::LastName, "is empty, but first_name is given"),
    };
    errors.push(problem);
    None
}

fn check_email(email: &str, errors: &mut Vec<FieldError>) {
    if email.is_empty() {
        errors.push(field_error(
            Column::Email,
            "is empty; Dwolla needs an email for every payee",
        ));
    } else if !looks_like_email(email) || email.len() > 254 {
        errors.push(field_error(
            Column::Email,
            format!("{email:?} is not an email address"),
        ));
    }
}

/// `column`'s text parsed by `parse`, its error recorded against the column.
fn parsed<'a, T, E: Into<String>>(
    get: &impl Fn(Column) -> &'a str,
    column: Column,
    parse: impl Fn(&'a str) -> Result<T, E>,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    match parse(get(column)) {
        Ok(value) => Some(value),
        Err(message) => {
            errors.push(field_error(column, message));
            None
        }
    }
}

/// "Checking ending 6789".
fn default_account_name(kind: BankAccountType, number: &AccountNumber) -> String {
    let kind = account_type_str(kind);
    let mut capitalized = kind.to_string();
    capitalized[..1].make_ascii_uppercase();
    format!("{capitalized} ending {}", number.last4())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(contents: &str) -> PayeeFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payees.csv");
        std::fs::write(&path, contents).unwrap();
        read_payee_file(&path).unwrap()
    }

    fn problems(file: PayeeFile) -> Vec<String> {
        match file {
            PayeeFile::Invalid(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.line, e.problem))
                .collect(),
            PayeeFile::Valid(rows) => panic!("expected problems, got {} rows", rows.len()),
        }
    }

    #[test]
    fn businesses_and_people_mix_in_one_file() {
        let file = read(
            "Reference,business_name,first_name,last_name,email,routing_number,account_number,account_type\n\
             V-1,Acme LLC,,,ap@acme.example.com,222222226,123456789,checking\n\
             V-2,,Ada,Lovelace,ada@example.com,021000021,00001234,Savings\n",
        );
        let PayeeFile::Valid(rows) = file else {
            panic!("{file:?}")
        };
        assert_eq!(rows[0].who, Who::Business("Acme LLC".into()));
        assert_eq!(rows[0].account_name, "Checking ending 6789");
        assert_eq!(rows[1].line, 3);
        assert_eq!(rows[1].account_type, BankAccountType::Savings);
        assert_eq!(rows[1].account_number.last4(), "1234");
    }

    #[test]
    fn every_problem_is_reported_by_line_and_no_account_number_is_quoted() {
        let errors = problems(read(
            "reference,business_name,first_name,last_name,email,routing_number,account_number,account_type\n\
             V-1,Acme,Ada,,nobody,222222262,12345678901234567890,cheque\n\
             V-2,,Ada,Lovelace,ada@example.com,222222226,987654321,checking\n\
             V-2,Other,,,ada@EXAMPLE.com,222222226,987654322,checking\n",
        ));
        assert_eq!(
            errors,
            vec![
                "2: business_name: a payee is a business (business_name) or a person (first_name and last_name), not both",
                "2: email: \"nobody\" is not an email address",
                "2: routing_number: \"222222262\" fails the ABA checksum (a digit is wrong or two are swapped)",
                "2: account_number: must be 4 to 17 digits; it has 20 (value not shown)",
                "2: account_type: \"cheque\" is not checking or savings",
                "4: reference: \"V-2\" is already used on line 3",
                "4: email: \"ada@EXAMPLE.com\" is already used on line 3; Dwolla allows one external party per email",
            ]
        );
        assert!(!errors.iter().any(|e| e.contains("1234567890")));
    }

    #[test]
    fn the_header_needs_names_and_bank_columns() {
        let errors = problems(read("reference,first_name,email,routing,account_type\n"));
        assert_eq!(
            errors,
            vec![
                "1: unknown column \"routing\"; the columns are reference, business_name, first_name, last_name, email, routing_number, account_number, account_type, account_name",
                "1: required column \"routing_number\" is missing",
                "1: required column \"account_number\" is missing",
                "1: the file needs a \"business_name\" column, or \"first_name\" and \"last_name\" columns",
            ]
        );
        assert_eq!(problems(read("")), vec!["1: the file is empty"]);
    }
}
