//! The benchmark's three namespaces:
//!
//! ```text
//!   gen ns                 rtr ns (router under test)              sink ns
//!   gen0 10.10.0.2 ─veth─ rtr0 10.10.0.1   rtr1 10.20.0.1 ─veth─ sink0 10.20.0.2
//!   trafficgen (XDP_TX)    kernel / XDP router                     sink (XDP: count, drop)
//! ```
//!
//! IPv6 likewise: 2001:db8:10::/64 and 2001:db8:20::/64. Every route of the table points at the
//! sink (10.20.0.2 / 2001:db8:20::2), whose MAC rtr knows from a permanent neighbor entry.

use std::path::PathBuf;

use anyhow::{Context, Result};

use netns_lab::{LinkInfo, Namespace};

pub const GEN_V4: &str = "10.10.0.2";
pub const GEN_V6: &str = "2001:db8:10::2";
pub const SINK_V4: &str = "10.20.0.2";
pub const SINK_V6: &str = "2001:db8:20::2";
/// `proto` of the kernel routes the benchmark installs (`ip route show proto 201`).
pub const ROUTE_PROTOCOL: u8 = 201;

const GEN0_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x0a, 0x00, 0x02];
const RTR0_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x0a, 0x00, 0x01];
const RTR1_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x14, 0x00, 0x01];
const SINK0_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x14, 0x00, 0x02];

/// Namespace names and pin directories start with this, then the pid.
pub const TAG: &str = "hrb";

pub struct Topology {
    pub gen_ns: Namespace,
    pub rtr: Namespace,
    pub sink: Namespace,
    pub gen0: LinkInfo,
    pub rtr0: LinkInfo,
    pub rtr1: LinkInfo,
    pub sink0: LinkInfo,
    /// bpffs directory of this run's router datapath.
    pub pin_dir: PinDir,
}

/// A bpffs directory removed (with its pins) on drop.
pub struct PinDir(pub PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        netns_lab::remove_pin_dir(&self.0);
    }
}

impl Topology {
    /// `threaded_napi`: rtr0's NAPI runs in a kernel thread (which the scheduler may put on
    /// another CPU than the generator) instead of in softirq on the generator's CPU. `queues`:
    /// transmit and receive queues of every veth (a frame goes to the peer's receive queue of
    /// the sending CPU, so each CPU gets a chain of its own).
    pub fn create(threaded_napi: bool, queues: usize) -> Result<Self> {
        let pid = std::process::id();
        let name = |role: &str| format!("{TAG}-{pid}-{role}");
        let gen_ns = Namespace::create(&name("gen"))?;
        let rtr = Namespace::create(&name("rtr"))?;
        let sink = Namespace::create(&name("sink"))?;
        veth(
            (&gen_ns, "gen0", GEN0_MAC),
            (&rtr, "rtr0", RTR0_MAC),
            queues,
        )?;
        veth(
            (&rtr, "rtr1", RTR1_MAC),
            (&sink, "sink0", SINK0_MAC),
            queues,
        )?;

        for (ns, dev, v4, v6) in [
            (&gen_ns, "gen0", "10.10.0.2/24", "2001:db8:10::2/64"),
            (&rtr, "rtr0", "10.10.0.1/24", "2001:db8:10::1/64"),
            (&rtr, "rtr1", "10.20.0.1/24", "2001:db8:20::1/64"),
            (&sink, "sink0", "10.20.0.2/24", "2001:db8:20::2/64"),
        ] {
            ns.ip(&["addr", "add", v4, "dev", dev])?;
            ns.ip(&["addr", "add", v6, "dev", dev, "nodad"])?;
        }
        rtr.sysctl("net.ipv4.ip_forward", "1")?;
        rtr.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        rtr.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
        rtr.sysctl("net.ipv4.conf.rtr0.rp_filter", "0")?;
        let sink_mac = netns_lab::mac_string(&SINK0_MAC);
        for addr in [SINK_V4, SINK_V6] {
            rtr.ip(&[
                "neigh",
                "replace",
                addr,
                "lladdr",
                &sink_mac,
                "dev",
                "rtr1",
                "nud",
                "permanent",
            ])?;
        }
        // A veth only takes XDP_TX/XDP_REDIRECTed frames when its receiving side has NAPI, i.e.
        // an XDP program or GRO. The router's XDP program provides it in the XDP modes; for
        // kernel forwarding rtr0 needs GRO (left on in every mode, so all modes run alike).
        rtr.exec("ethtool", &["-K", "rtr0", "gro", "on"])
            .context("enabling GRO on rtr0")?;
        if threaded_napi {
            // /sys/class/net is per namespace: `ip netns exec` mounts the namespace's sysfs.
            netns_lab::run(std::process::Command::new("ip").args([
                "netns",
                "exec",
                rtr.name(),
                "sh",
                "-c",
                "echo 1 > /sys/class/net/rtr0/threaded",
            ]))
            .context("enabling threaded NAPI on rtr0")?;
        }

        Ok(Self {
            gen0: gen_ns.link("gen0")?,
            rtr0: rtr.link("rtr0")?,
            rtr1: rtr.link("rtr1")?,
            sink0: sink.link("sink0")?,
            gen_ns,
            rtr,
            sink,
            pin_dir: PinDir(PathBuf::from(format!("/sys/fs/bpf/{TAG}-{pid}"))),
        })
    }

    /// Kernel counter of forwarded datagrams in rtr: (IPv4 ForwDatagrams, IPv6
    /// OutForwDatagrams).
    pub fn kernel_forwarded(&self) -> Result<(u64, u64)> {
        let snmp = self.rtr.exec("cat", &["/proc/net/snmp"])?;
        let snmp6 = self.rtr.exec("cat", &["/proc/net/snmp6"])?;
        Ok((
            snmp_value(&snmp, "Ip", "ForwDatagrams")?,
            snmp6_value(&snmp6, "Ip6OutForwDatagrams")?,
        ))
    }

    /// Frames the generator transmitted so far: gen0's XDP transmit counters (veth counts
    /// every frame handed to it by XDP_TX/redirect, `tx_queue_N_xdp_xmit`).
    pub fn generated(&self) -> Result<u64> {
        let stats = Self::ethtool_stats(&self.gen_ns, "gen0")?;
        let frames: Vec<u64> = stats
            .iter()
            .filter(|(name, _)| name.starts_with("tx_queue_") && name.ends_with("_xdp_xmit"))
            .map(|(_, value)| *value)
            .collect();
        if frames.is_empty() {
            anyhow::bail!("gen0 reports no tx_queue_*_xdp_xmit counter (ethtool -S gen0)");
        }
        Ok(frames.iter().sum())
    }

    /// `ethtool -S` of an interface: name -> value, for the diagnostics of a lossy run.
    pub fn ethtool_stats(ns: &Namespace, ifname: &str) -> Result<Vec<(String, u64)>> {
        let text = ns.exec("ethtool", &["-S", ifname])?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let (name, value) = line.trim().split_once(':')?;
                Some((name.trim().to_owned(), value.trim().parse().ok()?))
            })
            .collect())
    }
}

/// `netns_lab::veth` with `queues` transmit and receive queues on both ends.
fn veth(
    (a, a_name, a_mac): (&Namespace, &str, [u8; 6]),
    (b, b_name, b_mac): (&Namespace, &str, [u8; 6]),
    queues: usize,
) -> Result<()> {
    let (a_mac, b_mac) = (netns_lab::mac_string(&a_mac), netns_lab::mac_string(&b_mac));
    let queues = queues.to_string();
    let end = |ns: &Namespace, name: &str, mac: &str| -> Vec<String> {
        [
            name,
            "netns",
            ns.name(),
            "address",
            mac,
            "numtxqueues",
            &queues,
            "numrxqueues",
            &queues,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let mut args = vec!["link".to_owned(), "add".to_owned()];
    args.extend(end(a, a_name, &a_mac));
    args.extend(["type", "veth", "peer", "name"].map(str::to_owned));
    args.extend(end(b, b_name, &b_mac));
    netns_lab::run(std::process::Command::new("ip").args(&args))
        .context("creating a veth pair with several queues")?;
    a.ip(&["link", "set", a_name, "up"])?;
    b.ip(&["link", "set", b_name, "up"])?;
    Ok(())
}

/// A value of `/proc/net/snmp`, where a header line and a value line share a prefix.
fn snmp_value(text: &str, group: &str, field: &str) -> Result<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let (header, values) = (lines.next(), lines.next());
    let (Some(header), Some(values)) = (header, values) else {
        anyhow::bail!("no {group} lines in /proc/net/snmp");
    };
    let index = header
        .split_whitespace()
        .position(|f| f == field)
        .with_context(|| format!("no {group} {field} in /proc/net/snmp"))?;
    values
        .split_whitespace()
        .nth(index)
        .context("short value line")?
        .parse()
        .context("parsing a counter")
}

/// A value of `/proc/net/snmp6` ("Name value" lines).
fn snmp6_value(text: &str, field: &str) -> Result<u64> {
    text.lines()
        .find_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some(field)).then(|| parts.next())?
        })
        .with_context(|| format!("no {field} in /proc/net/snmp6"))?
        .parse()
        .context("parsing a counter")
}
