//! The payout file format, as pure functions: which columns a header names, and whether one row
//! is a valid payout. No I/O; the file-level driver in `ingest` owns reading and the ledger.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use csv::ByteRecord;

use crate::money::{AmountError, Cents};

/// Dwolla allows ten metadata pairs per transfer; payrun keeps two for itself.
pub const MAX_METADATA_COLUMNS: usize = 8;
/// The metadata keys payrun sets on every transfer.
pub const RESERVED_METADATA_KEYS: [&str; 2] = ["payrun_batch", "payrun_reference"];
/// Dwolla: metadata keys and values are shorter than 255 characters.
const MAX_METADATA_LEN: usize = 254;
const MAX_REFERENCE_LEN: usize = 254;
const MAX_TEXT_LEN: usize = 255;
/// The most columns a valid header can have: each named column once, and the metadata ones.
const MAX_COLUMNS: usize = 9 + MAX_METADATA_COLUMNS;

/// A column a payout file may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Reference,
    Amount,
    FundingSource,
    /// A reference from the payee directory (`payrun payees import`), instead of
    /// `funding_source`.
    Payee,
    Currency,
    Name,
    Email,
    Memo,
    /// The payroll's pay date (YYYY-MM-DD): one date for the whole file, on every row.
    PayDate,
    Metadata(String),
}

impl Column {
    pub fn name(&self) -> String {
        match self {
            Column::Reference => "reference".into(),
            Column::Amount => "amount".into(),
            Column::FundingSource => "funding_source".into(),
            Column::Payee => "payee".into(),
            Column::Currency => "currency".into(),
            Column::Name => "name".into(),
            Column::Email => "email".into(),
            Column::Memo => "memo".into(),
            Column::PayDate => "pay_date".into(),
            Column::Metadata(key) => format!("metadata.{key}"),
        }
    }
}

/// A problem with one field (or with the row as a whole when `column` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(column) => write!(f, "{column}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn field_error(column: &Column, message: impl Into<String>) -> FieldError {
    FieldError {
        column: Some(column.name()),
        message: message.into(),
    }
}

/// Where each known column sits in the file's rows.
#[derive(Debug, Clone)]
pub struct Layout {
    pub columns: Vec<Column>,
    reference: usize,
    amount: usize,
    destination: Destination,
}

/// A file names its destinations in exactly one way, for all of its rows.
#[derive(Debug, Clone)]
enum Destination {
    FundingSource(usize),
    /// The payee directory's reference -> funding source id, loaded once per file by the
    /// caller ([`Layout::set_payee_funding_sources`]).
    Payee {
        column: usize,
        funding_sources: HashMap<String, String>,
    },
}

/// Reads the header row. Names are matched case-insensitively after trimming; a UTF-8 BOM on
/// the first name is dropped. Unknown, repeated and missing columns are all reported.
pub fn parse_header(fields: &[&[u8]]) -> Result<Layout, Vec<FieldError>> {
    let mut errors = Vec::new();
    let columns = header_columns(fields, &mut errors);
    check_metadata_count(&columns, &mut errors);
    let reference = required_position(&columns, &Column::Reference, &mut errors);
    let amount = required_position(&columns, &Column::Amount, &mut errors);
    let destination = header_destination(&columns, &mut errors);
    if errors.is_empty() {
        Ok(Layout {
            columns,
            reference,
            amount,
            destination,
        })
    } else {
        Err(errors)
    }
}

/// The header's columns in file order, with a problem for each name that is not one.
fn header_columns(fields: &[&[u8]], errors: &mut Vec<FieldError>) -> Vec<Column> {
    let mut columns = Vec::with_capacity(fields.len());
    for (index, raw) in fields.iter().enumerate() {
        let raw = if index == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        let Ok(text) = std::str::from_utf8(raw) else {
            errors.push(FieldError {
                column: None,
                message: format!("header field {} is not valid UTF-8", index + 1),
            });
            continue;
        };
        match column_from_name(text.trim()) {
            Ok(column) => {
                if columns.contains(&column) {
                    errors.push(FieldError {
                        column: None,
                        message: format!("column {:?} appears twice", column.name()),
                    });
                }
                columns.push(column);
            }
            Err(message) => errors.push(FieldError {
                column: None,
                message,
            }),
        }
    }
    columns
}

fn check_metadata_count(columns: &[Column], errors: &mut Vec<FieldError>) {
    let n_metadata = columns
        .iter()
        .filter(|c| matches!(c, Column::Metadata(_)))
        .count();
    if n_metadata > MAX_METADATA_COLUMNS {
        errors.push(FieldError {
            column: None,
            message: format!(
                "{n_metadata} metadata columns; at most {MAX_METADATA_COLUMNS} (Dwolla allows 10 and payrun uses 2)"
            ),
        });
    }
}

/// Where `wanted` sits, or a problem (and a placeholder 0, never used) when it is missing.
fn required_position(columns: &[Column], wanted: &Column, errors: &mut Vec<FieldError>) -> usize {
    let found = columns.iter().position(|c| c == wanted);
    if found.is_none() {
        errors.push(FieldError {
            column: None,
            message: format!("required column {:?} is missing", wanted.name()),
        });
    }
    found.unwrap_or(0)
}

/// How the file names destinations: by `funding_source` or by `payee`, exactly one of them.
fn header_destination(columns: &[Column], errors: &mut Vec<FieldError>) -> Destination {
    let funding_source = columns.iter().position(|c| *c == Column::FundingSource);
    let payee = columns.iter().position(|c| *c == Column::Payee);
    match (funding_source, payee) {
        (Some(column), None) => Destination::FundingSource(column),
        (None, Some(column)) => Destination::Payee {
            column,
            funding_sources: HashMap::new(),
        },
        (Some(_), Some(_)) => {
            errors.push(FieldError {
                column: None,
                message:
                    "a file names its destinations in \"funding_source\" or in \"payee\", not both"
                        .to_string(),
            });
            Destination::FundingSource(0)
        }
        (None, None) => {
            errors.push(FieldError {
                column: None,
                message: "required column \"funding_source\" is missing (or name payees in a \"payee\" column)".to_string(),
            });
            Destination::FundingSource(0)
        }
    }
}

fn column_from_name(name: &str) -> Result<Column, String> {
    let lower = name.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "reference" => Column::Reference,
        "amount" => Column::Amount,
        "funding_source" => Column::FundingSource,
        "payee" => Column::Payee,
        "currency" => Column::Currency,
        "name" => Column::Name,
        "email" => Column::Email,
        "memo" => Column::Memo,
        "pay_date" => Column::PayDate,
        "" => return Err("a column has an empty name".to_string()),
        _ => {
            if lower.starts_with("metadata.") {
                let key = name["metadata.".len()..].trim();
                if key.is_empty() {
                    return Err(format!("column {name:?} names no metadata key"));
                }
                if key.chars().count() > MAX_METADATA_LEN {
                    return Err(format!(
                        "metadata key in {name:?} is longer than {MAX_METADATA_LEN} characters"
                    ));
                }
                if RESERVED_METADATA_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
                    return Err(format!("metadata key {key:?} is reserved for payrun"));
                }
                Column::Metadata(key.to_string())
            } else {
                return Err(format!(
                    "unknown column {name:?}; the columns are reference, amount, funding_source or payee, currency, name, email, memo, pay_date and metadata.<key>"
                ));
            }
        }
    })
}

/// Per-file settings that decide validity.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest amount a single payout may have.
    pub max_amount: Cents,
}

/// One valid payout row, borrowing the record's text: validating a row allocates nothing
/// unless a funding source id needs lower-casing.
#[derive(Debug)]
pub struct ValidRow<'r> {
    pub reference: &'r str,
    pub amount: Cents,
    /// The funding source's UUID in lower case.
    pub destination: Cow<'r, str>,
    pub name: Option<&'r str>,
    pub email: Option<&'r str>,
    pub memo: Option<&'r str>,
    pub metadata: MetadataPairs<'r>,
    /// The `pay_date` column's date, when the file has one.
    pub pay_date: Option<time::Date>,
}

/// The non-empty `metadata.<key>` fields of a row, in column order.
#[derive(Debug, Default)]
pub struct MetadataPairs<'r> {
    pairs: [(&'r str, &'r str); MAX_METADATA_COLUMNS],
    len: usize,
}

impl<'r> MetadataPairs<'r> {
    pub fn as_slice(&self) -> &[(&'r str, &'r str)] {
        &self.pairs[..self.len]
    }

    /// Layouts have at most [`MAX_METADATA_COLUMNS`] metadata columns, so this always has room.
    fn push(&mut self, pair: (&'r str, &'r str)) {
        if let Some(slot) = self.pairs.get_mut(self.len) {
            *slot = pair;
            self.len += 1;
        }
    }
}

impl Layout {
    /// Whether the file names its pay date in a `pay_date` column.
    pub fn has_pay_date(&self) -> bool {
        self.columns.contains(&Column::PayDate)
    }

    /// Whether rows name payees, so that the caller must load the payee directory.
    pub fn names_payees(&self) -> bool {
        matches!(self.destination, Destination::Payee { .. })
    }

    /// The payee directory (reference -> funding source id) that `payee` fields are resolved
    /// against; a reference missing from it is an error at its line.
    pub fn set_payee_funding_sources(&mut self, map: HashMap<String, String>) {
        if let Destination::Payee {
            funding_sources, ..
        } = &mut self.destination
        {
            *funding_sources = map;
        }
    }

    /// The reference field of a row, for duplicate checks, if it is present and readable.
    pub fn reference<'r>(&self, record: &'r ByteRecord) -> Option<&'r str> {
        let text = std::str::from_utf8(record.get(self.reference)?)
            .ok()?
            .trim();
        (!text.is_empty()).then_some(text)
    }

    /// Checks every field of one row and returns all of its problems, not just the first.
    pub fn validate<'r>(
        &'r self,
        record: &'r ByteRecord,
        limits: Limits,
    ) -> Result<ValidRow<'r>, Vec<FieldError>> {
        if let Some(error) = self.field_count_error(record) {
            return Err(vec![error]);
        }
        let mut errors = Vec::new();
        let mut texts = [""; MAX_COLUMNS];
        self.field_texts(record, &mut texts, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let reference = texts[self.reference];
        check_reference(reference, &mut errors);
        let amount = parse_amount(texts[self.amount], limits, &mut errors);
        let destination = self.destination(&texts, &mut errors);
        let optional = self.optional_fields(&texts, &mut errors);
        match (errors.is_empty(), amount, destination) {
            (true, Some(amount), Some(destination)) => Ok(ValidRow {
                reference,
                amount,
                destination,
                name: optional.name,
                email: optional.email,
                memo: optional.memo,
                metadata: optional.metadata,
                pay_date: optional.pay_date,
            }),
            _ => Err(errors),
        }
    }

    /// The problem with a row whose field count does not match the header's.
    #[inline]
    fn field_count_error(&self, record: &ByteRecord) -> Option<FieldError> {
        if record.len() == self.columns.len() && record.len() <= MAX_COLUMNS {
            return None;
        }
        let blank = record.len() == 1 && record[0].iter().all(u8::is_ascii_whitespace);
        let message = if blank {
            "the row is blank".to_string()
        } else {
            format!(
                "the row has {} fields, the header has {}",
                record.len(),
                self.columns.len()
            )
        };
        Some(FieldError {
            column: None,
            message,
        })
    }

    /// Fills `texts` with each field's trimmed text, or reports the fields that are not UTF-8.
    /// The record must have one field per column (and so at most [`MAX_COLUMNS`]).
    #[inline]
    fn field_texts<'r>(
        &self,
        record: &'r ByteRecord,
        texts: &mut [&'r str; MAX_COLUMNS],
        errors: &mut Vec<FieldError>,
    ) {
        // One UTF-8 check over the whole record instead of one per field; a field is then
        // valid exactly when it starts and ends on character boundaries, which `str::get`
        // checks. Only a record with a problem is checked field by field, to name the column.
        let whole = std::str::from_utf8(record.as_slice()).ok();
        for (index, column) in self.columns.iter().enumerate() {
            let text = whole
                .zip(record.range(index))
                .and_then(|(whole, range)| whole.get(range))
                .or_else(|| std::str::from_utf8(&record[index]).ok());
            match text {
                Some(text) => texts[index] = text.trim(),
                None => errors.push(field_error(
                    column,
                    "is not valid UTF-8 text (save the file as UTF-8)",
                )),
            }
        }
    }

    /// The row's funding source id, from its `funding_source` field or its payee's entry in
    /// the payee directory.
    #[inline]
    fn destination<'r>(
        &'r self,
        texts: &[&'r str; MAX_COLUMNS],
        errors: &mut Vec<FieldError>,
    ) -> Option<Cow<'r, str>> {
        match &self.destination {
            Destination::FundingSource(column) => funding_source(texts[*column], errors),
            Destination::Payee {
                column,
                funding_sources,
            } => payee_funding_source(texts[*column], funding_sources, errors),
        }
    }

    /// The columns a payout may leave out, checked in column order.
    #[inline]
    fn optional_fields<'r>(
        &'r self,
        texts: &[&'r str; MAX_COLUMNS],
        errors: &mut Vec<FieldError>,
    ) -> OptionalFields<'r> {
        let mut fields = OptionalFields::default();
        for (column, text) in self.columns.iter().zip(texts) {
            fields.check(column, text, errors);
        }
        fields
    }
}

/// A row's optional fields, as far as they are present and valid.
#[derive(Default)]
struct OptionalFields<'r> {
    name: Option<&'r str>,
    email: Option<&'r str>,
    memo: Option<&'r str>,
    metadata: MetadataPairs<'r>,
    pay_date: Option<time::Date>,
}

impl<'r> OptionalFields<'r> {
    /// Keeps `text` as `column`'s value, or reports why it cannot be; required columns are
    /// checked elsewhere and ignored here.
    #[inline]
    fn check(&mut self, column: &'r Column, text: &'r str, errors: &mut Vec<FieldError>) {
        let optional = (!text.is_empty()).then_some(text);
        match column {
            Column::Currency => {
                if !text.is_empty() && !text.eq_ignore_ascii_case("USD") {
                    errors.push(field_error(
                        column,
                        format!("{text:?} is not supported; payrun pays USD only"),
                    ));
                }
            }
            Column::Name | Column::Memo if longer_than(text, MAX_TEXT_LEN) => {
                errors.push(field_error(
                    column,
                    format!("is longer than {MAX_TEXT_LEN} characters"),
                ));
            }
            Column::Name => self.name = optional,
            Column::Memo => self.memo = optional,
            Column::Email => {
                if let Some(text) = optional {
                    if looks_like_email(text) {
                        self.email = Some(text);
                    } else {
                        errors.push(field_error(
                            column,
                            format!("{text:?} is not an email address"),
                        ));
                    }
                }
            }
            Column::Metadata(key) => {
                if longer_than(text, MAX_METADATA_LEN) {
                    errors.push(field_error(
                        column,
                        format!("is longer than {MAX_METADATA_LEN} characters"),
                    ));
                } else if let Some(text) = optional {
                    self.metadata.push((key.as_str(), text));
                }
            }
            Column::PayDate if text.is_empty() => errors.push(field_error(
                column,
                "is empty; a file with a pay_date column names its pay date on every row",
            )),
            Column::PayDate => match crate::payday::parse_date(text) {
                Ok(date) => self.pay_date = Some(date),
                Err(message) => errors.push(field_error(column, message)),
            },
            Column::Reference | Column::Amount | Column::FundingSource | Column::Payee => {}
        }
    }
}

#[inline]
fn check_reference(reference: &str, errors: &mut Vec<FieldError>) {
    if reference.is_empty() {
        errors.push(field_error(
            &Column::Reference,
            "is empty; every payout needs a reference",
        ));
    } else if longer_than(reference, MAX_REFERENCE_LEN) {
        errors.push(field_error(
            &Column::Reference,
            format!("is longer than {MAX_REFERENCE_LEN} characters"),
        ));
    } else if reference.chars().any(char::is_control) {
        errors.push(field_error(
            &Column::Reference,
            "contains a control character",
        ));
    }
}

#[inline]
fn parse_amount(amount_text: &str, limits: Limits, errors: &mut Vec<FieldError>) -> Option<Cents> {
    match Cents::parse_payout_amount(amount_text) {
        Ok(amount) if amount > limits.max_amount => {
            errors.push(field_error(
                &Column::Amount,
                format!(
                    "{amount_text:?} is above the per-payout maximum of {}",
                    limits.max_amount
                ),
            ));
            None
        }
        Ok(amount) => Some(amount),
        Err(AmountError::Empty) => {
            errors.push(field_error(
                &Column::Amount,
                "is empty; every payout needs an amount",
            ));
            None
        }
        Err(err) => {
            errors.push(field_error(
                &Column::Amount,
                format!("{amount_text:?} {err}"),
            ));
            None
        }
    }
}

/// A `funding_source` field's id in lower case.
#[inline]
fn funding_source<'r>(text: &'r str, errors: &mut Vec<FieldError>) -> Option<Cow<'r, str>> {
    if text.is_empty() {
        errors.push(field_error(
            &Column::FundingSource,
            "is empty; every payout needs a destination",
        ));
        return None;
    }
    let id = funding_source_id(text);
    if id.is_none() {
        errors.push(field_error(
            &Column::FundingSource,
            format!(
                "{text:?} is not a Dwolla funding source id (a UUID) or URL (.../funding-sources/<id>)"
            ),
        ));
    }
    id
}

/// A `payee` field's funding source, from the payee directory.
#[inline]
fn payee_funding_source<'r>(
    payee: &str,
    funding_sources: &'r HashMap<String, String>,
    errors: &mut Vec<FieldError>,
) -> Option<Cow<'r, str>> {
    if payee.is_empty() {
        errors.push(field_error(
            &Column::Payee,
            "is empty; every payout needs a destination",
        ));
        None
    } else if let Some(id) = funding_sources.get(payee) {
        Some(Cow::Borrowed(id.as_str()))
    } else {
        errors.push(field_error(
            &Column::Payee,
            format!(
                "{payee:?} is not in the payee directory, or has no funding source there (its import did not finish, or the funding source was removed); see `payrun payees list`"
            ),
        ));
        None
    }
}

/// Whether `text` has more than `max` characters, without counting them when its length in
/// bytes (never less than its characters) already says no.
fn longer_than(text: &str, max: usize) -> bool {
    text.len() > max && text.chars().count() > max
}

/// Accepts a bare UUID or a URL whose path ends in `/funding-sources/<uuid>`, and returns the
/// UUID in lower case. The host is not kept: payrun sends to the API it is configured for.
pub fn funding_source_id(text: &str) -> Option<Cow<'_, str>> {
    let id = if text.contains('/') {
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))?;
        let (_host, path) = rest.split_once('/')?;
        path.trim_end_matches('/')
            .strip_prefix("funding-sources/")?
    } else {
        text
    };
    if !is_uuid(id) {
        None
    } else if id.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(id.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(id))
    }
}

fn is_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

pub fn looks_like_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_amount: match Cents::new(1_000_000) {
            Some(c) => c,
            None => panic!(),
        },
    };
    const FS: &str = "fd000000-0000-4000-8000-000000000001";

    fn header(names: &[&str]) -> Result<Layout, Vec<FieldError>> {
        let fields: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
        parse_header(&fields)
    }

    /// The outcome of validating one row, with everything it borrows turned into owned text.
    #[derive(Debug)]
    struct Row {
        amount: Cents,
        destination: String,
        metadata: Vec<(String, String)>,
    }

    fn row(layout: &Layout, fields: &[&str]) -> Result<Row, Vec<String>> {
        let record = ByteRecord::from(fields.to_vec());
        layout
            .validate(&record, LIMITS)
            .map(|valid| Row {
                amount: valid.amount,
                destination: valid.destination.into_owned(),
                metadata: valid
                    .metadata
                    .as_slice()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
            .map_err(|errors| errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn header_names_are_trimmed_case_insensitive_and_in_any_order() {
        let layout = header(&[
            "\u{feff} Amount",
            "FUNDING_SOURCE ",
            "Reference",
            "Metadata.Dept",
        ])
        .unwrap();
        assert_eq!(layout.columns[0], Column::Amount);
        assert_eq!(layout.columns[3], Column::Metadata("Dept".into()));
        let valid = row(&layout, &["12.50", &FS.to_uppercase(), "EMP-1", "ops"]).unwrap();
        assert_eq!(valid.amount.get(), 1250);
        assert_eq!(valid.destination, FS, "ids are kept in lower case");
        assert_eq!(valid.metadata, [("Dept".to_string(), "ops".to_string())]);
    }

    #[test]
    fn header_problems_are_all_reported() {
        let errors =
            header(&["reference", "amout", "reference", "metadata.payrun_batch"]).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|e| e.contains("unknown column \"amout\"")),
            "{text:?}"
        );
        assert!(text.iter().any(|e| e.contains("appears twice")), "{text:?}");
        assert!(
            text.iter().any(|e| e.contains("reserved for payrun")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|e| e.contains("\"amount\" is missing")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.contains("\"funding_source\" is missing")),
            "{text:?}"
        );
    }

    #[test]
    fn too_many_metadata_columns_are_refused() {
        let mut names = vec![
            "reference".to_string(),
            "amount".into(),
            "funding_source".into(),
        ];
        names.extend((0..9).map(|i| format!("metadata.k{i}")));
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let errors = header(&names).unwrap_err();
        assert!(errors[0].message.contains("at most 8"), "{errors:?}");
    }

    #[test]
    fn every_field_error_of_a_row_is_reported_with_its_column() {
        let layout =
            header(&["reference", "amount", "funding_source", "currency", "email"]).unwrap();
        let errors = row(&layout, &["", "12.345", "not-a-source", "EUR", "nobody"]).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "reference: is empty; every payout needs a reference",
                "amount: \"12.345\" has more than 2 decimal places",
                "funding_source: \"not-a-source\" is not a Dwolla funding source id (a UUID) or URL (.../funding-sources/<id>)",
                "currency: \"EUR\" is not supported; payrun pays USD only",
                "email: \"nobody\" is not an email address",
            ]
        );
    }

    #[test]
    fn amounts_above_the_maximum_and_wrong_field_counts_are_refused() {
        let layout = header(&["reference", "amount", "funding_source"]).unwrap();
        assert_eq!(
            row(&layout, &["A", "10000.01", FS]).unwrap_err(),
            vec!["amount: \"10000.01\" is above the per-payout maximum of 10000.00"]
        );
        assert!(row(&layout, &["A", "10000.00", FS]).is_ok());
        assert_eq!(
            row(&layout, &["A", "1.00"]).unwrap_err(),
            vec!["the row has 2 fields, the header has 3"]
        );
    }

    #[test]
    fn funding_sources_may_be_ids_or_urls() {
        let upper = FS.to_uppercase();
        assert_eq!(funding_source_id(&upper).as_deref(), Some(FS));
        let url = format!("https://api-sandbox.dwolla.com/funding-sources/{FS}");
        assert_eq!(funding_source_id(&url).as_deref(), Some(FS));
        assert_eq!(
            funding_source_id(&format!("http://127.0.0.1:8080/funding-sources/{FS}/")).as_deref(),
            Some(FS)
        );
        assert_eq!(
            funding_source_id(&format!("https://api.dwolla.com/transfers/{FS}")),
            None
        );
        assert_eq!(
            funding_source_id("fd000000-0000-4000-8000-00000000000"),
            None
        );
        assert_eq!(
            funding_source_id("fd000000x0000-4000-8000-000000000001"),
            None
        );
    }

    /// The record's bytes as a whole are valid UTF-8 ("é" is C3 A9), but the field boundary
    /// splits the character: both fields are invalid.
    #[test]
    fn a_character_split_between_fields_is_invalid_in_both() {
        let layout = header(&["reference", "amount", "funding_source", "name", "memo"]).unwrap();
        let fields: Vec<&[u8]> = vec![b"A", b"1.00", FS.as_bytes(), b"Jos\xc3", b"\xa9"];
        let errors = layout
            .validate(&ByteRecord::from(fields), LIMITS)
            .unwrap_err();
        let columns: Vec<_> = errors.iter().map(|e| e.column.as_deref()).collect();
        assert_eq!(columns, [Some("name"), Some("memo")]);
    }

    #[test]
    fn lengths_are_counted_in_characters() {
        let layout = header(&["reference", "amount", "funding_source", "name"]).unwrap();
        let longest = "é".repeat(MAX_TEXT_LEN);
        assert!(row(&layout, &["A", "1.00", FS, &longest]).is_ok());
        let errors = row(&layout, &["A", "1.00", FS, &format!("{longest}é")]).unwrap_err();
        assert_eq!(errors, ["name: is longer than 255 characters"]);
    }

    #[test]
    fn non_utf8_fields_name_their_column() {
        let layout = header(&["reference", "amount", "funding_source", "name"]).unwrap();
        let fields: Vec<&[u8]> = vec![b"A", b"1.00", FS.as_bytes(), b"Jos\xe9"];
        let errors = layout
            .validate(&ByteRecord::from(fields), LIMITS)
            .unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "name: is not valid UTF-8 text (save the file as UTF-8)"
        );
    }
}
