//! `kwtop completions SHELL` and `kwtop man`: generated from the clap definitions, printed to stdout.
//! Neither reads the config, so a broken config file does not stand in the way of installing them.

use clap::CommandFactory;

use super::{Cli, CliError, emit};

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kwtop", &mut out);
    emit(&String::from_utf8_lossy(&out))
}

/// The man page (section 1) as roff.
pub fn man() -> Result<(), CliError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| CliError::Runtime(format!("cannot render the man page: {e}")))?;
    emit(&String::from_utf8_lossy(&out))
}
