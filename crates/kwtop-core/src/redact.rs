//! Redaction of command lines in exports: `[export] cmdline = "full" | "redacted" | "name"`.
//!
//! Command lines often hold secrets (`--token=…`, `PASSWORD=…`, `https://user:pass@host`). In
//! `redacted` mode (the default) the *values* of arguments whose *names* match a configured pattern are
//! replaced by `***`, as are bearer/basic tokens and the password part of URLs. Patterns are matched
//! case-insensitively as substrings of an argument's name: the part before `=` (`PASSWORD=x`,
//! `--token=x`), or an option `--name`/`-name` whose value is the next argument. Pure string code:
//! no I/O. It errs on the side of hiding too much (`--passes 3` loses its `3`).

use serde::{Deserialize, Serialize};

/// What exports show of a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CmdlineMode {
    /// The command line as read from `/proc` (sanitized, but secrets included).
    Full,
    /// Values of secret-looking arguments replaced by `***` (default).
    #[default]
    Redacted,
    /// Only the command name; no arguments at all.
    Name,
}

impl CmdlineMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CmdlineMode::Full => "full",
            CmdlineMode::Redacted => "redacted",
            CmdlineMode::Name => "name",
        }
    }
}

/// The replacement text for a hidden value.
pub const MASK: &str = "***";

/// Default patterns: names of arguments and environment variables whose values are secrets.
pub fn default_patterns() -> Vec<String> {
    [
        "token",
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "api_key",
        "api-key",
        "apikey",
        "access_key",
        "access-key",
        "private_key",
        "private-key",
        "credential",
        "authorization",
        "auth_token",
        "aws_secret_access_key",
        "session_key",
        "cookie",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect()
}

/// How command lines are shown, with the patterns used in `redacted` mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redactor {
    pub mode: CmdlineMode,
    /// Lower-cased patterns.
    patterns: Vec<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new(CmdlineMode::Redacted, &default_patterns())
    }
}

impl Redactor {
    pub fn new(mode: CmdlineMode, patterns: &[String]) -> Self {
        Redactor {
            mode,
            patterns: patterns
                .iter()
                .map(|p| p.trim().to_lowercase())
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    /// The command line to export for a process whose command name is `comm`.
    pub fn cmdline(&self, comm: &str, cmdline: &str) -> String {
        match self.mode {
            CmdlineMode::Full => cmdline.to_string(),
            CmdlineMode::Name => comm.to_string(),
            CmdlineMode::Redacted => self.redact(cmdline),
        }
    }

    /// An argument vector (e.g. `kwtop run`'s command) in the chosen mode, joined with spaces.
    pub fn argv(&self, argv: &[String]) -> String {
        let joined = argv.join(" ");
        let name = argv
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
            .unwrap_or_default();
        self.cmdline(&name, &joined)
    }

    fn name_matches(&self, name: &str) -> bool {
        let n = name.trim_start_matches('-').to_lowercase();
        !n.is_empty() && self.patterns.iter().any(|p| n.contains(p.as_str()))
    }

    /// Redact secret values in a space-separated command line.
    pub fn redact(&self, cmdline: &str) -> String {
        let tokens: Vec<&str> = cmdline.split(' ').collect();
        let mut out: Vec<String> = Vec::with_capacity(tokens.len());
        // The next non-empty token is a secret value.
        let mut hide_next = false;
        for tok in tokens {
            if tok.is_empty() {
                out.push(String::new());
                continue;
            }
            if hide_next {
                hide_next = false;
                // `Authorization: Bearer xyz`: keep the scheme word, hide what follows it.
                if is_auth_scheme(tok) {
                    out.push(tok.to_string());
                    hide_next = true;
                } else {
                    out.push(MASK.to_string());
                }
                continue;
            }
            if is_auth_scheme(tok) {
                out.push(tok.to_string());
                hide_next = true;
                continue;
            }
            if let Some((name, value)) = tok.split_once('=') {
                if self.name_matches(name) && !value.is_empty() {
                    out.push(format!("{name}={MASK}"));
                } else {
                    out.push(format!("{name}={}", redact_url(value)));
                }
                continue;
            }
            if let Some(name) = tok.strip_suffix(':')
                && self.name_matches(name)
            {
                // A header written as one argument: `-H "X-Api-Key: abc"` arrives as two tokens.
                out.push(tok.to_string());
                hide_next = true;
                continue;
            }
            if tok.starts_with('-') && tok.len() > 1 && self.name_matches(tok) {
                out.push(tok.to_string());
                hide_next = true;
                continue;
            }
            out.push(redact_url(tok));
        }
        out.join(" ")
    }
}

fn is_auth_scheme(tok: &str) -> bool {
    let t = tok.trim_start_matches(['"', '\'']);
    t.eq_ignore_ascii_case("bearer") || t.eq_ignore_ascii_case("basic") || t.eq_ignore_ascii_case("token")
}

/// `scheme://user:pass@host/…` → `scheme://user:***@host/…`; anything else unchanged.
fn redact_url(tok: &str) -> String {
    let Some(start) = tok.find("://") else {
        return tok.to_string();
    };
    let auth_start = start + 3;
    let rest = &tok[auth_start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let Some(at) = authority.rfind('@') else {
        return tok.to_string();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return tok.to_string();
    };
    format!(
        "{}{}:{MASK}{}",
        &tok[..auth_start],
        &userinfo[..colon],
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        Redactor::default().redact(s)
    }

    #[test]
    fn option_with_equals() {
        assert_eq!(r("curl --token=abc123 x"), "curl --token=*** x");
        assert_eq!(r("app --api-key=K --verbose"), "app --api-key=*** --verbose");
    }

    #[test]
    fn option_with_separate_value() {
        assert_eq!(r("mysql --password hunter2 db"), "mysql --password *** db");
        assert_eq!(r("tool -secret s3 -v"), "tool -secret *** -v");
    }

    #[test]
    fn environment_style_assignments() {
        assert_eq!(
            r("env PASSWORD=hunter2 API_KEY=k1 run"),
            "env PASSWORD=*** API_KEY=*** run"
        );
        assert_eq!(
            r("AWS_SECRET_ACCESS_KEY=wJalr aws s3 ls"),
            "AWS_SECRET_ACCESS_KEY=*** aws s3 ls"
        );
        assert_eq!(r("HOME=/root ls"), "HOME=/root ls");
    }

    #[test]
    fn bearer_tokens_and_headers() {
        assert_eq!(
            r("curl -H Authorization: Bearer eyJhbGci url"),
            "curl -H Authorization: Bearer *** url"
        );
        assert_eq!(r("curl -H X-Api-Key: abc url"), "curl -H X-Api-Key: *** url");
        assert_eq!(r("x bearer t0k3n"), "x bearer ***");
    }

    #[test]
    fn urls_with_credentials() {
        assert_eq!(
            r("git clone https://bob:ghp_x@github.com/a/b.git"),
            "git clone https://bob:***@github.com/a/b.git"
        );
        assert_eq!(
            r("psql postgres://u:p@db:5432/x"),
            "psql postgres://u:***@db:5432/x"
        );
        assert_eq!(r("--db=postgres://u:p@h/x"), "--db=postgres://u:***@h/x");
        assert_eq!(r("wget https://example.com/a@b"), "wget https://example.com/a@b");
        assert_eq!(r("ssh://user@host"), "ssh://user@host");
    }

    #[test]
    fn harmless_arguments_survive_and_spacing_is_kept() {
        let s = "python train.py --epochs 3  --lr=0.1";
        assert_eq!(r(s), s);
        assert_eq!(r(""), "");
    }

    #[test]
    fn secret_flag_at_end_hides_nothing_more() {
        assert_eq!(r("tool --password"), "tool --password");
    }

    #[test]
    fn modes() {
        let pats = default_patterns();
        let full = Redactor::new(CmdlineMode::Full, &pats);
        let name = Redactor::new(CmdlineMode::Name, &pats);
        assert_eq!(full.cmdline("curl", "curl --token=x"), "curl --token=x");
        assert_eq!(name.cmdline("curl", "curl --token=x"), "curl");
        assert_eq!(name.argv(&["/usr/bin/curl".into(), "--token=x".into()]), "curl");
    }

    #[test]
    fn custom_patterns_replace_the_defaults() {
        let red = Redactor::new(CmdlineMode::Redacted, &["License".into()]);
        assert_eq!(
            red.redact("app --license L1 --token=t"),
            "app --license *** --token=t"
        );
    }
}
