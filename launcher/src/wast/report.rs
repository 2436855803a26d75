//! What running a script produced: counts, failures and notes.

use std::fmt;

/// One directive that did not do what the script expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The script's name as given to the runner (usually its path).
    pub file: String,
    /// 1-based line of the directive.
    pub line: usize,
    /// 1-based column of the directive.
    pub column: usize,
    /// The directive's keyword, e.g. `assert_return`.
    pub directive: &'static str,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.directive, self.message
        )
    }
}

/// A remark about a directive that passed, shown in verbose mode: for the negative assertions
/// (`assert_invalid`, `assert_malformed`, `assert_unlinkable`, ...) the message the script
/// expected and the one the engine gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// 1-based line of the directive.
    pub line: usize,
    /// The directive's keyword.
    pub directive: &'static str,
    /// The remark.
    pub message: String,
}

/// The outcome of one script: every directive counts once, as passed or failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReport {
    /// The script's name as given to the runner.
    pub file: String,
    /// Directives that did what the script expected.
    pub passed: usize,
    /// Directives that did not, in script order.
    pub failures: Vec<Failure>,
    /// Verbose-mode remarks, in script order (empty unless the runner is verbose).
    pub notes: Vec<Note>,
}

impl FileReport {
    /// An empty report for the script `file`.
    pub fn new(file: impl Into<String>) -> Self {
        FileReport {
            file: file.into(),
            ..Default::default()
        }
    }

    /// How many directives failed.
    pub fn failed(&self) -> usize {
        self.failures.len()
    }

    /// How many directives were counted.
    pub fn total(&self) -> usize {
        self.passed + self.failed()
    }

    /// Whether every directive passed.
    pub fn is_success(&self) -> bool {
        self.failures.is_empty()
    }

    pub(crate) fn fail(
        &mut self,
        (line, column): (usize, usize),
        directive: &'static str,
        message: impl Into<String>,
    ) {
        self.failures.push(Failure {
            file: self.file.clone(),
            line,
            column,
            directive,
            message: message.into(),
        });
    }
}

/// Totals over several scripts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Directives that passed.
    pub passed: usize,
    /// Directives that failed.
    pub failed: usize,
}

impl Totals {
    /// Adds one script's counts.
    pub fn add(&mut self, report: &FileReport) {
        self.passed += report.passed;
        self.failed += report.failed();
    }
}

impl fmt::Display for Totals {
    /// The closing line of a run: `N passed, N failed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_display() {
        let mut r = FileReport::new("a.wast");
        r.passed = 3;
        r.fail((4, 2), "assert_return", "expected i32:1, got i32:2");
        assert_eq!(r.failed(), 1);
        assert_eq!(r.total(), 4);
        assert!(!r.is_success());
        assert_eq!(
            r.failures[0].to_string(),
            "a.wast:4:2: assert_return: expected i32:1, got i32:2"
        );
        let mut t = Totals::default();
        t.add(&r);
        t.add(&r);
        assert_eq!(t.to_string(), "6 passed, 2 failed");
    }
}
