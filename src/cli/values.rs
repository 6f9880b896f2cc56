//! The library's choice enums as command-line values. The library types stay free of clap;
//! these mirror them variant for variant (same names, same help) and convert into them.

use clap::ValueEnum;

use crate::report::Format;
use crate::telemetry::LogFormat;
use crate::tracking::ListMode;

/// `payrun report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// One row per payout, for spreadsheets.
    Csv,
    /// The summary: per batch and overall, count and total per state, and the tie-out.
    Json,
    /// One self-contained page: summary, chart, exceptions with reasons and actions.
    Html,
}

impl From<FormatArg> for Format {
    fn from(value: FormatArg) -> Format {
        match value {
            FormatArg::Csv => Format::Csv,
            FormatArg::Json => Format::Json,
            FormatArg::Html => Format::Html,
        }
    }
}

/// `payrun track --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListModeArg {
    /// Walk the account's transfer list when that needs fewer requests than one GET each.
    Auto,
    /// Always walk the list (then GET whatever it did not show).
    List,
    /// Always GET each due transfer.
    Get,
}

impl From<ListModeArg> for ListMode {
    fn from(value: ListModeArg) -> ListMode {
        match value {
            ListModeArg::Auto => ListMode::Auto,
            ListModeArg::List => ListMode::List,
            ListModeArg::Get => ListMode::Get,
        }
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(value: LogFormatArg) -> LogFormat {
        match value {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line offers exactly the library's choices, under the same names.
    #[test]
    fn every_library_choice_has_its_value() {
        let names = |values: &[String]| values.join(",");
        let format: Vec<String> = FormatArg::value_variants()
            .iter()
            .map(|v| Format::from(*v).extension().to_string())
            .collect();
        assert_eq!(names(&format), "csv,json,html");
        assert_eq!(Format::ALL.len(), FormatArg::value_variants().len());
        let modes: Vec<ListMode> = ListModeArg::value_variants()
            .iter()
            .map(|v| (*v).into())
            .collect();
        assert_eq!(modes, [ListMode::Auto, ListMode::List, ListMode::Get]);
        let logs: Vec<LogFormat> = LogFormatArg::value_variants()
            .iter()
            .map(|v| (*v).into())
            .collect();
        assert_eq!(logs, [LogFormat::Text, LogFormat::Json]);
    }
}
