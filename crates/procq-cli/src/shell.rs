//! `completions` and `man`: the command line described for shells
//! (clap_complete) and for `man` (clap_mangen), generated from the same
//! clap definition as `--help`, so they cannot drift from it.

use std::io::Write;

use clap::CommandFactory;

use crate::failure::Failure;

/// The shells `procq completions` writes scripts for.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Shell {
    Bash,
    Zsh,
    Fish,
}

pub(crate) fn completions<C: CommandFactory>(shell: Shell) -> Result<(), Failure> {
    let mut cmd = C::command();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(generator, &mut cmd, "procq", &mut out);
    write_stdout(&out)
}

pub(crate) fn man<C: CommandFactory>() -> Result<(), Failure> {
    // One page: name, synopsis, the description with the exit codes and
    // URL form, options, and the subcommands with what each does.
    let mut out = Vec::new();
    clap_mangen::Man::new(C::command()).render(&mut out)?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
