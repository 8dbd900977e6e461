//! `cargo xtask deb [--install-test]`: the Debian package `hostrouter`, assembled from the
//! release build and `dist/` and built with dpkg-deb (no cargo-deb: compiling it would cost
//! CI minutes it does not have). Written to `target/debian/hostrouter_<version>_<arch>.deb`:
//!
//! ```text
//!   /usr/bin/router-agent                              stripped
//!   /lib/systemd/system/router-agent.service           dist/router-agent.service
//!   /etc/hostrouter/router.toml                        dist/router.toml, a conffile
//!   /usr/share/man/man8/router-agent{,-<sub>}.8.gz     `router-agent manpages` (clap_mangen)
//!   /usr/share/doc/hostrouter/{copyright,changelog.gz} dist/debian/
//!   maintainer scripts                                 dist/debian/{postinst,prerm,postrm}
//! ```
//!
//! `--install-test` then installs it with `apt-get install ./...deb`, runs the installed
//! `router-agent --version` and `check` on the shipped configuration, and purges it.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, bail, ensure};

const PACKAGE: &str = "hostrouter";
const CONFFILE: &str = "/etc/hostrouter/router.toml";

#[derive(clap::Args)]
pub struct DebArgs {
    /// Then install the package (apt-get), run it, and purge it. Refused if hostrouter is
    /// already installed.
    #[arg(long)]
    install_test: bool,
}

pub fn run(args: DebArgs) -> Result<()> {
    let started = Instant::now();
    // The same build as the README's and the benches' (`--workspace`: one feature set, so CI
    // links the binary instead of compiling the agent again).
    crate::cargo(&["build", "--release", "--workspace"])?;
    let workspace = workspace_root();
    let deb = build(&workspace)?;
    println!(
        "{} ({} KiB) in {:.1} s",
        deb.display(),
        fs::metadata(&deb)?.len() / 1024,
        started.elapsed().as_secs_f64()
    );
    if args.install_test {
        install_test(&deb)?;
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_owned()
}

/// Stages the package's tree and builds the .deb; returns its path.
pub fn build(workspace: &Path) -> Result<PathBuf> {
    let dist = workspace.join("dist");
    let built = workspace.join("target/release/router-agent");
    let version = version(&built)?;
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?;
    let out_dir = workspace.join("target/debian");
    let stage = out_dir.join(format!("{PACKAGE}_{version}_{arch}"));
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))?;
    }

    let binary = stage.join("usr/bin/router-agent");
    install(&built, &binary, 0o755)?;
    // The release profile keeps debug info (93 MB); a package ships without it.
    run_checked(Command::new("strip").arg("--strip-unneeded").arg(&binary))?;
    install(
        &dist.join("router-agent.service"),
        &stage.join("lib/systemd/system/router-agent.service"),
        0o644,
    )?;
    install(
        &dist.join("router.toml"),
        &stage.join(CONFFILE.trim_start_matches('/')),
        0o644,
    )?;
    let man_dir = stage.join("usr/share/man/man8");
    let pages = out_dir.join("man");
    let _ = fs::remove_dir_all(&pages);
    output(Command::new(&binary).arg("manpages").arg(&pages))?;
    for page in fs::read_dir(&pages)? {
        let page = page?.path();
        install(&page, &man_dir.join(page.file_name().unwrap()), 0o644)?;
    }
    let doc = stage.join(format!("usr/share/doc/{PACKAGE}"));
    install(
        &dist.join("debian/copyright"),
        &doc.join("copyright"),
        0o644,
    )?;
    install(
        &dist.join("debian/changelog"),
        &doc.join("changelog"),
        0o644,
    )?;
    // Policy: man pages and changelogs compressed with gzip -9, -n for reproducible output.
    let mut compressed = Command::new("gzip");
    compressed
        .args(["-9n", "--force"])
        .arg(doc.join("changelog"));
    for page in fs::read_dir(&man_dir)? {
        compressed.arg(page?.path());
    }
    run_checked(&mut compressed)?;

    let control_dir = stage.join("DEBIAN");
    for script in ["postinst", "prerm", "postrm"] {
        install(
            &dist.join("debian").join(script),
            &control_dir.join(script),
            0o755,
        )?;
    }
    fs::write(control_dir.join("conffiles"), format!("{CONFFILE}\n"))?;
    let control = format!(
        "Package: {PACKAGE}\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: hostrouter maintainers <maintainers@example.invalid>\n\
         Installed-Size: {size}\n\
         Depends: {depends}\n\
         Section: net\n\
         Priority: optional\n\
         Homepage: https://example.invalid/hostrouter\n\
         Description: host router with an XDP fast path and a BGP speaker\n \
         router-agent programs an XDP fast path from its FIB (static routes, the\n \
         kernel's routes, BGP), mirrors its routes into the kernel and keeps\n \
         forwarding across restarts and upgrades (BGP graceful restart).\n",
        size = installed_size_kib(&stage)?,
        depends = shared_library_depends(&binary)?,
    );
    fs::write(control_dir.join("control"), control)?;

    let deb = out_dir.join(format!("{PACKAGE}_{version}_{arch}.deb"));
    run_checked(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&stage)
            .arg(&deb),
    )?;
    Ok(deb)
}

/// `router-agent 0.1.0` -> `0.1.0`: the version the binary reports is the package's.
fn version(binary: &Path) -> Result<String> {
    let text = output(Command::new(binary).arg("--version"))?;
    text.strip_prefix("router-agent ")
        .map(str::to_owned)
        .with_context(|| format!("unexpected `router-agent --version`: {text:?}"))
}

/// Copies `from` to `to` (parents created) with `mode`.
fn install(from: &Path, to: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(to.parent().expect("a file in a directory"))?;
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn installed_size_kib(stage: &Path) -> Result<u64> {
    fn walk(dir: &Path) -> Result<u64> {
        let mut bytes = 0;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            bytes += if meta.is_dir() {
                walk(&entry.path())?
            } else {
                meta.len()
            };
        }
        Ok(bytes)
    }
    Ok(walk(stage)?.div_ceil(1024))
}

/// The binary's library dependencies as Debian versions them (`libc6 (>= 2.34), ...`), from
/// dpkg-shlibdeps (dpkg-dev), which wants a `debian/control` to run in.
fn shared_library_depends(binary: &Path) -> Result<String> {
    let dir = binary
        .ancestors()
        .nth(4)
        .expect("target/debian/<stage>/usr/bin/router-agent")
        .join("shlibdeps");
    fs::create_dir_all(dir.join("debian"))?;
    fs::write(
        dir.join("debian/control"),
        format!("Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: any\n"),
    )?;
    let text = output(
        Command::new("dpkg-shlibdeps")
            .arg("-O")
            .arg(binary)
            .current_dir(&dir),
    )
    .context("dpkg-shlibdeps (package dpkg-dev)")?;
    let _ = fs::remove_dir_all(&dir);
    text.lines()
        .find_map(|line| line.strip_prefix("shlibs:Depends="))
        .map(str::to_owned)
        .with_context(|| format!("no shlibs:Depends in dpkg-shlibdeps' output: {text:?}"))
}

/// Installs the package with apt-get, runs what it installed, purges it (also on failure).
fn install_test(deb: &Path) -> Result<()> {
    let started = Instant::now();
    let status = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", PACKAGE])
        .output()?;
    if String::from_utf8_lossy(&status.stdout).contains("ok installed") {
        bail!("{PACKAGE} is already installed here: not replacing it with a test install");
    }
    let contents = output(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
    for path in [
        "./usr/bin/router-agent",
        "./lib/systemd/system/router-agent.service",
        "./etc/hostrouter/router.toml",
        "./usr/share/man/man8/router-agent.8.gz",
        "./usr/share/man/man8/router-agent-run.8.gz",
        "./usr/share/doc/hostrouter/copyright",
        "./usr/share/doc/hostrouter/changelog.gz",
    ] {
        ensure!(
            contents.contains(path),
            "{} lacks {path}\n{contents}",
            deb.display()
        );
    }
    let installed = Installed;
    // As an operator would: `apt-get install ./hostrouter_*.deb` (a path, not a name).
    let file_name = deb.file_name().expect("a file").to_string_lossy();
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .arg(format!("./{file_name}"))
            .current_dir(deb.parent().expect("in target/debian"))
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let version = output(Command::new("/usr/bin/router-agent").arg("--version"))?;
    ensure!(
        deb.to_string_lossy().contains(&format!(
            "_{}_",
            version.trim_start_matches("router-agent ")
        )),
        "the installed binary says {version:?}, the package is {}",
        deb.display()
    );
    println!("installed: {version}");
    let check = output(Command::new("/usr/bin/router-agent").args(["check", "-c", CONFFILE]))?;
    println!("{check}");
    let conffiles = output(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]))?;
    ensure!(
        conffiles.contains(CONFFILE),
        "{CONFFILE} is not a conffile: {conffiles:?}"
    );
    // The installed unit, with its binary in place now (the man page check is the test's:
    // a container's dpkg may be told not to install man pages).
    run_checked(Command::new("systemd-analyze").args([
        "verify",
        "--man=no",
        "/lib/systemd/system/router-agent.service",
    ]))?;
    drop(installed);
    ensure!(
        !Path::new("/usr/bin/router-agent").exists() && !Path::new(CONFFILE).exists(),
        "purge left /usr/bin/router-agent or {CONFFILE}"
    );
    println!(
        "{}: installed, ran and purged in {:.1} s",
        deb.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Purges the test install when dropped, whatever happened.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("apt-get")
            .args(["purge", "-y", "-qq", PACKAGE])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
}

fn run_checked(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(status.success(), "{command:?} failed: {status}");
    Ok(())
}

/// The command's stdout, trimmed; its stderr in the error if it failed.
fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(
        out.status.success(),
        "{command:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
