//! Config errors that name the file, line, key and the bad value, and say what to change.

use std::fmt;
use std::path::Path;

/// A config file that cannot be used. `main` prints it and exits with code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File path, or `<built-in>` / `<input>`.
    pub file: String,
    /// 1-based line and column, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted key, e.g. `sampling.interval`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config error in {}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        if let Some(k) = &self.key {
            write!(f, ": key '{k}'")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

fn file_name(path: Option<&Path>) -> String {
    path.map_or_else(|| "<input>".to_string(), |p| p.display().to_string())
}

/// 1-based (line, column) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The `[section]` in force at a byte offset.
fn section_at(text: &str, offset: usize) -> Option<String> {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    before.lines().rev().find_map(|l| {
        let t = l.trim();
        (t.starts_with('[') && t.ends_with(']'))
            .then(|| t.trim_matches(|c| c == '[' || c == ']').trim().to_string())
    })
}

impl ConfigError {
    pub fn io(path: &Path, e: &std::io::Error) -> Self {
        ConfigError {
            file: path.display().to_string(),
            line: None,
            column: None,
            key: None,
            message: format!("cannot read the file: {e}"),
        }
    }

    /// From a TOML syntax or type error, locating the key from the error's span.
    pub fn from_toml(path: Option<&Path>, text: &str, e: &toml::de::Error) -> Self {
        let message = e.message().trim().to_string();
        let Some(span) = e.span() else {
            return ConfigError {
                file: file_name(path),
                line: None,
                column: None,
                key: None,
                message,
            };
        };
        let (line, column) = line_col(text, span.start);
        let line_text = text.lines().nth(line - 1).unwrap_or("").trim();
        let snippet = text.get(span.clone()).unwrap_or("").trim();
        let section = section_at(text, span.start);
        let key = if line_text.starts_with('[') {
            Some(
                line_text
                    .trim_matches(|c| c == '[' || c == ']')
                    .trim()
                    .to_string(),
            )
        } else {
            line_text.split_once('=').map(|(k, _)| {
                let k = k.trim().trim_matches('"');
                match &section {
                    Some(s) if !line_text.starts_with('[') => format!("{s}.{k}"),
                    _ => k.to_string(),
                }
            })
        };
        let message = if !snippet.is_empty() && !snippet.contains('\n') && line_text.contains('=') {
            let value = line_text.split_once('=').map_or(snippet, |(_, v)| v.trim());
            format!("{message} (value {value})")
        } else {
            message
        };
        ConfigError {
            file: file_name(path),
            line: Some(line),
            column: Some(column),
            key,
            message,
        }
    }

    /// A value that parsed but is out of range; finds its line by searching the text.
    pub fn invalid(
        path: Option<&Path>,
        text: &str,
        section: &str,
        key: &str,
        value: String,
        why: &str,
    ) -> Self {
        let (line, column) = locate(text, section, key).map_or((None, None), |(l, c)| (Some(l), Some(c)));
        ConfigError {
            file: path.map_or_else(|| "<built-in defaults>".to_string(), |p| p.display().to_string()),
            line,
            column,
            key: Some(format!("{section}.{key}")),
            message: format!("invalid value '{value}': {why}"),
        }
    }
}

/// Line and column of `key = …` inside `[section]`.
fn locate(text: &str, section: &str, key: &str) -> Option<(usize, usize)> {
    let mut in_section = false;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            in_section = t.trim_matches(|c| c == '[' || c == ']').trim() == section;
            continue;
        }
        if in_section
            && let Some((k, _)) = t.split_once('=')
            && k.trim().trim_matches('"') == key
        {
            return Some((i + 1, l.len() - l.trim_start().len() + 1));
        }
    }
    None
}
