//! Manual pages generated from the command line's clap definition (`clap_mangen`), so they
//! never disagree with `--help`: `router-agent.8` and `router-agent-<subcommand>.8`. Written
//! by the hidden `router-agent manpages DIR` (`cargo xtask deb` packs them).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Section 8: system administration commands (a daemon run by root).
pub const SECTION: &str = "8";

/// Writes one page for `command` and one for each visible subcommand into `dir`; returns
/// the files written.
pub fn write(command: clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = command.get_name().to_owned();
    let mut written = vec![write_page(command.clone(), &name, dir)?];
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        let page = format!("{name}-{}", sub.get_name());
        // The SYNOPSIS shows what is typed: `router-agent run ...`.
        let sub = sub.clone().bin_name(format!("{name} {}", sub.get_name()));
        written.push(write_page(sub, &page, dir)?);
    }
    Ok(written)
}

fn write_page(command: clap::Command, page: &str, dir: &Path) -> Result<PathBuf> {
    let version = env!("CARGO_PKG_VERSION");
    // The page's NAME line is the command's name: `router-agent-run`, as man(1) looks it up.
    // clap takes a 'static name (without its `string` feature); a few short strings leaked
    // once by a command that then exits.
    let command = command.name(&*Box::leak(page.to_owned().into_boxed_str()));
    let man = clap_mangen::Man::new(command)
        .section(SECTION)
        .manual("hostrouter")
        .source(format!("hostrouter {version}"));
    let mut roff = Vec::new();
    man.render(&mut roff)?;
    let path = dir.join(format!("{page}.{SECTION}"));
    std::fs::write(&path, roff).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
