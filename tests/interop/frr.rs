//! FRR 8 (zebra + bgpd, and bfdd if asked) in a lab namespace. Both daemonize (`-d`) and write pid files, the
//! vty sockets and the zserv socket into the lab's scratch directory; `-N` gives the instance
//! its own pathspace (`<lab><role>`), so that labs never share FRR's run directory.

use std::{path::PathBuf, process::Command};

use serde_json::Value;

use crate::netns::{Namespaces, signal_pidfile, stop_pidfiles, wait_pidfile_gone};

pub struct Frr {
    dir: PathBuf,
    role: String,
    pathspace: String,
}

impl Frr {
    /// Writes `config` as bgpd.conf and starts zebra and bgpd in `role`'s namespace.
    pub fn start(lab: &Namespaces, role: &str, config: &str) -> Self {
        Self::start_with(lab, role, config, false)
    }

    /// As [`Frr::start`], with bfdd too (`bfdd`: for `neighbor X bfd`), started before bgpd.
    pub fn start_with(lab: &Namespaces, role: &str, config: &str, bfdd: bool) -> Self {
        std::fs::write(lab.path("bgpd.conf"), config).unwrap();
        let frr = Self {
            dir: lab.dir.clone(),
            role: role.to_owned(),
            pathspace: format!("{}{role}", lab.name),
        };
        let pidfile = frr.path_str("zebra.pid");
        frr.daemon(lab, "/usr/lib/frr/zebra", &["-i", &pidfile]);
        if bfdd {
            let pidfile = frr.path_str("bfdd.pid");
            frr.daemon(lab, "/usr/lib/frr/bfdd", &["-i", &pidfile]);
        }
        frr.start_bgpd(lab);
        frr
    }

    /// (Re)starts bgpd alone, with the same configuration.
    pub fn start_bgpd(&self, lab: &Namespaces) {
        let (pidfile, config) = (self.path_str("bgpd.pid"), self.path_str("bgpd.conf"));
        self.daemon(lab, "/usr/lib/frr/bgpd", &["-i", &pidfile, "-f", &config]);
    }

    /// Kills bgpd without a word (SIGKILL) and waits for it to be gone.
    pub fn kill_bgpd(&self) {
        let pidfile = self.path("bgpd.pid");
        signal_pidfile(&pidfile, libc::SIGKILL);
        wait_pidfile_gone(&pidfile);
    }

    fn daemon(&self, lab: &Namespaces, program: &str, args: &[&str]) {
        let (zserv, vty_dir) = (self.path_str("zserv.api"), self.path_str(""));
        let mut full = vec![program, "-d"];
        full.extend_from_slice(args);
        full.extend_from_slice(&[
            "-z",
            &zserv,
            "--vty_socket",
            &vty_dir,
            "-N",
            &self.pathspace,
        ]);
        lab.exec(&self.role, &full);
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn path_str(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    /// vtysh with each of `commands` as a `-c`; stdout and stderr.
    pub fn vtysh_text(&self, commands: &[&str]) -> String {
        let mut command = Command::new("vtysh");
        command.args(["--vty_socket", &self.path_str("")]);
        for c in commands {
            command.args(["-c", c]);
        }
        let out = command.output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// A `... json` show command's output; Null if it printed no JSON.
    pub fn vtysh(&self, command: &str) -> Value {
        let out = Command::new("vtysh")
            .args(["--vty_socket", &self.path_str(""), "-c", command])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        stop_pidfiles(&[
            self.path("bgpd.pid"),
            self.path("bfdd.pid"),
            self.path("zebra.pid"),
        ]);
    }
}
