//! BIRD 2 in a lab namespace: it daemonizes, its control socket and pid file go into the
//! lab's scratch directory.

use std::{path::PathBuf, process::Command};

use crate::netns::{Namespaces, stop_pidfiles};

pub struct Bird {
    dir: PathBuf,
}

impl Bird {
    /// Writes `config` as bird.conf and starts BIRD in `role`'s namespace.
    pub fn start(lab: &Namespaces, role: &str, config: &str) -> Self {
        std::fs::write(lab.path("bird.conf"), config).unwrap();
        let (conf, ctl, pid) = (
            lab.path_str("bird.conf"),
            lab.path_str("bird.ctl"),
            lab.path_str("bird.pid"),
        );
        lab.exec(role, &["bird", "-c", &conf, "-s", &ctl, "-P", &pid]);
        Self {
            dir: lab.dir.clone(),
        }
    }

    /// `birdc` with `command` (words separated by single spaces); stdout.
    pub fn birdc(&self, command: &str) -> String {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.dir.join("bird.ctl"))
            .args(command.split(' '))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        stop_pidfiles(&[self.dir.join("bird.pid")]);
    }
}
