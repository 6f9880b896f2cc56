//! How file names are shown in output and logs. A name is the one piece of text a person
//! printing it does not choose: a newline or an escape sequence inside it could split a log
//! line in two or forge one. Every control character is therefore escaped (`\n`, `\t`,
//! `\u{1b}`), and bytes that are not UTF-8 are shown as U+FFFD. Counted nouns ("1 problem")
//! live here too: the other half of printing what a person reads.

use std::fmt::Write;
use std::path::Path;

/// A path as payrun prints it.
pub fn shown(path: &Path) -> String {
    escape(&path.to_string_lossy())
}

/// Any text taken from a file name, escaped the same way.
pub fn escape(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// "1 problem", "3 problems": a count as a person writes it.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape("payroll.csv"), "payroll.csv");
        assert_eq!(escape("a\nb.csv"), "a\\nb.csv");
        assert_eq!(escape("a\r\tb\u{1b}[31m"), "a\\r\\tb\\u{1b}[31m");
        assert_eq!(escape("Zoë \\ ok"), "Zoë \\ ok");
        assert_eq!(shown(Path::new("/in/x\u{7f}.csv")), "/in/x\\u{7f}.csv");
    }
}
