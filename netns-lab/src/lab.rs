//! The lab of one integration test: its namespaces by role, a scratch directory and a bpffs
//! pin directory, all removed on drop (also when the test panics).

use std::{
    fs,
    net::{SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

use crate::{Namespace, process::sh, stale::remove_stale_labs};

/// Set (to anything) to keep every lab's scratch directory (configs and logs).
const KEEP_ENV: &[&str] = &["HOSTROUTER_KEEP_LABS", "HRGX_KEEP_LOGS"];

/// The network namespaces and scratch directory of one lab, removed on Drop.
pub struct Namespaces {
    /// `<prefix><pid>-<tag>`.
    pub name: String,
    /// Scratch directory (configs, logs, sockets), world-writable: FRR and BIRD drop
    /// privileges and write their sockets there.
    pub dir: PathBuf,
    /// Where the agent pins its maps and links.
    pub pin_dir: PathBuf,
    roles: Vec<(String, Namespace)>,
}

impl Namespaces {
    /// Removes stale labs of `prefix`, then creates `<prefix><pid>-<tag>-<role>` for each
    /// role with the loopback up, and a fresh scratch directory.
    pub fn new(prefix: &str, tag: &str, roles: &[&str]) -> Self {
        remove_stale_labs(prefix);
        let name = format!("{prefix}{}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        sh(&["chmod", "777", dir.to_str().unwrap()]);
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/{name}"));
        let _ = fs::remove_dir_all(&pin_dir);
        let mut lab = Self {
            name,
            dir,
            pin_dir,
            roles: Vec::new(),
        };
        for role in roles {
            lab.add(role);
        }
        lab
    }

    /// One more namespace, loopback up.
    pub fn add(&mut self, role: &str) {
        let namespace = Namespace::create(&self.ns(role)).unwrap_or_else(|e| panic!("{e:#}"));
        self.roles.push((role.to_owned(), namespace));
    }

    /// The namespace's name.
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.name)
    }

    /// The namespace of `role`.
    pub fn namespace(&self, role: &str) -> &Namespace {
        self.roles
            .iter()
            .find_map(|(name, namespace)| (name == role).then_some(namespace))
            .unwrap_or_else(|| panic!("lab {} has no namespace {role:?}", self.name))
    }

    /// A file in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn path_str(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    /// Runs a short command in `role`'s namespace (`ip netns exec`, so /sys is the
    /// namespace's: fine for iproute2, sysctl, ethtool, which need no bpffs); panics if it
    /// fails.
    pub fn exec(&self, role: &str, args: &[&str]) -> String {
        let ns = self.ns(role);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// A veth pair between two namespaces (left down).
    pub fn veth(&self, (role_a, if_a): (&str, &str), (role_b, if_b): (&str, &str)) {
        sh(&[
            "ip",
            "link",
            "add",
            if_a,
            "netns",
            &self.ns(role_a),
            "type",
            "veth",
            "peer",
            "name",
            if_b,
            "netns",
            &self.ns(role_b),
        ]);
    }

    /// `program` in `role`'s network namespace (setns only), killed if the spawning thread
    /// dies.
    pub fn command_in(&self, role: &str, program: &str) -> Command {
        self.namespace(role).command_tied(program)
    }

    /// `AGENT show WHAT --json --pin-dir ... [-c CONFIG]` in `role`'s namespace: the FIB and
    /// counters come from the pinned maps, neighbors and routes from the running agent's
    /// control socket (named in `config`). None if it failed.
    pub fn agent_show(
        &self,
        agent: &str,
        role: &str,
        what: &str,
        config: Option<&Path>,
    ) -> Option<Value> {
        let mut command = self.command_in(role, agent);
        command.args(["show", what, "--json", "--pin-dir"]);
        command.arg(&self.pin_dir);
        if let Some(config) = config {
            command.arg("-c").arg(config);
        }
        let out = command.output().ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Sends `count` UDP datagrams from `role` to `dst`, each from a new socket (a new source
    /// port: a new flow for ECMP).
    pub fn send_udp(&self, role: &str, dst: SocketAddr, count: usize) {
        let bind = if dst.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
        self.namespace(role)
            .run_in(|| {
                for _ in 0..count {
                    UdpSocket::bind(bind)?.send_to(b"hostrouter", dst)?;
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("sending UDP from {role} to {dst}: {e:#}"));
    }
}

impl Drop for Namespaces {
    /// Runs after the owning lab's own Drop (fields drop last): by then its processes are
    /// stopped and its pins removed (unpinning the links detaches the program). The
    /// namespaces go last, with the `roles` field.
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.pin_dir);
        // FRR makes a run directory per pathspace (-N): `<lab><role>`, see tests/interop/frr.rs.
        for (role, _) in &self.roles {
            let _ = fs::remove_dir_all(format!("/var/run/frr/{}{role}", self.name));
        }
        if KEEP_ENV.iter().all(|var| std::env::var_os(var).is_none()) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
