//! Where the attached XDP program sends each of a set of flows, without sending traffic:
//! the program behind the agent's pinned link (`<pin_dir>/link_<ifname>`) runs each flow's
//! first packet with `BPF_PROG_TEST_RUN`, as received on the ingress interface (its ifindex
//! in the `xdp_md` context), and the rewritten destination MAC names the next hop. Tables
//! taken before and after a change tell which flows moved.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::Ipv4Addr,
    os::fd::{AsFd, AsRawFd},
    path::PathBuf,
};

use aya::programs::{
    links::{FdLink, PinnedLink},
    loaded_programs,
};

use super::{format_mac, frames::udp_v4, in_netns};

pub const XDP_REDIRECT: u32 = 4;

/// The frames of `count` UDP flows from `src` to `dst`, source ports 20000.. (one flow
/// each), addressed to `ingress_mac` from `sender_mac`.
pub fn udp_flows(
    (ingress_mac, sender_mac): ([u8; 6], [u8; 6]),
    (src, dst): (Ipv4Addr, Ipv4Addr),
    count: u16,
) -> Vec<(u16, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let sport = 20000 + i;
            let frame = udp_v4((ingress_mac, sender_mac), (src, dst), (sport, 4789));
            (sport, frame)
        })
        .collect()
}

/// Runs `frames` through the program attached by the pinned link `link_pin`, in namespace
/// `ns`, as received on `ingress_ifindex` there (the test run resolves the ifindex in the
/// caller's namespace). Returns each frame's action and the frame after the program.
pub fn run_attached(
    ns: &str,
    link_pin: PathBuf,
    ingress_ifindex: u32,
    frames: Vec<Vec<u8>>,
) -> Vec<(u32, Vec<u8>)> {
    in_netns(ns, move || {
        let link = PinnedLink::from_pin(&link_pin)
            .unwrap_or_else(|e| panic!("opening {}: {e}", link_pin.display()));
        let program_id = FdLink::from(link).info().expect("link info").program_id();
        let info = loaded_programs()
            .flatten()
            .find(|p| p.id() == program_id)
            .unwrap_or_else(|| panic!("program {program_id} of {}", link_pin.display()));
        let program = info.fd().expect("the attached program's fd");
        let program = program.as_fd().as_raw_fd() as u32;
        frames
            .iter()
            .map(|frame| test_run(program, frame, ingress_ifindex))
            .collect()
    })
}

/// One BPF_PROG_TEST_RUN of the XDP program `prog_fd` on `frame`, received on
/// `ingress_ifindex`: (action, frame after the program). By hand, because aya builds an
/// `Xdp` from a loaded program only with an attach type it does not export.
fn test_run(prog_fd: u32, frame: &[u8], ingress_ifindex: u32) -> (u32, Vec<u8>) {
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
    // egress_ifindex (u32 each); data_end must be the frame's length.
    let mut context = [0u32; 6];
    context[1] = frame.len() as u32;
    context[3] = ingress_ifindex;
    let mut out = vec![0u8; frame.len() + 256];
    // union bpf_attr, the `test` member: prog_fd, retval, data_size_in, data_size_out,
    // data_in, data_out, repeat, duration, ctx_size_in, ctx_size_out, ctx_in, ctx_out,
    // flags, cpu, batch_size (u64 pointers at 8-byte offsets).
    let mut attr = [0u64; 10];
    attr[0] = u64::from(prog_fd);
    attr[1] = u64::from(frame.len() as u32) | (u64::from(out.len() as u32) << 32);
    attr[2] = frame.as_ptr() as u64;
    attr[3] = out.as_mut_ptr() as u64;
    attr[4] = 1; // repeat
    attr[5] = u64::from(size_of_val(&context) as u32);
    attr[6] = context.as_ptr() as u64;
    // SAFETY: the kernel reads `attr` and the buffers it points to, and writes at most
    // data_size_out bytes into `out`; all outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            10, // BPF_PROG_TEST_RUN
            attr.as_mut_ptr(),
            size_of_val(&attr) as u32,
        )
    };
    assert_eq!(
        rc,
        0,
        "BPF_PROG_TEST_RUN: {}",
        std::io::Error::last_os_error()
    );
    let action = attr[0] >> 32;
    let size_out = attr[1] >> 32;
    out.truncate(size_out as usize);
    (action as u32, out)
}

/// Flow (source port) -> where it went: a next hop's label, or `action N` when the program
/// did not redirect it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowTable(pub BTreeMap<u16, String>);

/// A flow whose next hop changed between two tables.
#[derive(Debug)]
pub struct Move {
    pub sport: u16,
    pub from: String,
    pub to: String,
}

impl FlowTable {
    /// Runs `flows` through the attached program and names each redirected frame's next hop
    /// by its destination MAC (`labels`: MAC -> label).
    pub fn take(
        ns: &str,
        link_pin: PathBuf,
        ingress_ifindex: u32,
        flows: &[(u16, Vec<u8>)],
        labels: &BTreeMap<[u8; 6], String>,
    ) -> Self {
        let frames = flows.iter().map(|(_, f)| f.clone()).collect();
        let results = run_attached(ns, link_pin, ingress_ifindex, frames);
        let table = flows
            .iter()
            .zip(results)
            .map(|((sport, _), (action, out))| {
                let label = if action != XDP_REDIRECT {
                    format!("action {action}")
                } else {
                    let mac: [u8; 6] = out[..6].try_into().unwrap();
                    labels
                        .get(&mac)
                        .cloned()
                        .unwrap_or_else(|| format!("unknown {}", format_mac(&mac)))
                };
                (*sport, label)
            })
            .collect();
        Self(table)
    }

    /// Flows per label.
    pub fn spread(&self) -> BTreeMap<String, usize> {
        let mut spread = BTreeMap::new();
        for label in self.0.values() {
            *spread.entry(label.clone()).or_default() += 1;
        }
        spread
    }

    /// Flows whose label differs in `after`.
    pub fn moves(&self, after: &FlowTable) -> Vec<Move> {
        self.0
            .iter()
            .filter_map(|(sport, from)| {
                let to = after.0.get(sport)?;
                (to != from).then(|| Move {
                    sport: *sport,
                    from: from.clone(),
                    to: to.clone(),
                })
            })
            .collect()
    }

    /// Both tables side by side, changed flows marked, for failure messages.
    pub fn side_by_side(&self, after: &FlowTable) -> String {
        let mut text = format!(
            "before {:?}\nafter  {:?}\nsport  before -> after\n",
            self.spread(),
            after.spread()
        );
        for (sport, from) in &self.0 {
            let to = after.0.get(sport).map_or("?", String::as_str);
            let mark = if to == from { "" } else { "   <- moved" };
            let _ = writeln!(text, "{sport}  {from} -> {to}{mark}");
        }
        text
    }
}

/// What went wrong when next hop `leaver` left the set (`before` -> `after`): flows that
/// were on another next hop and moved, flows of the leaver that still go to it or were not
/// redirected; None if the change was resilient. `survivors` must all take some of the
/// leaver's flows.
pub fn check_leave(
    before: &FlowTable,
    after: &FlowTable,
    leaver: &str,
    survivors: &[&str],
) -> Option<String> {
    let mut problems = Vec::new();
    let moves = before.moves(after);
    let wrongly_moved: Vec<&Move> = moves.iter().filter(|m| m.from != leaver).collect();
    if !wrongly_moved.is_empty() {
        problems.push(format!(
            "{} flows moved off surviving next hops (must be 0)",
            wrongly_moved.len()
        ));
    }
    let stranded = after
        .0
        .iter()
        .filter(|(sport, to)| before.0[*sport] == leaver && !survivors.contains(&to.as_str()))
        .count();
    if stranded > 0 {
        problems.push(format!(
            "{stranded} of {leaver}'s flows are not on a survivor"
        ));
    }
    for survivor in survivors {
        let taken = moves
            .iter()
            .filter(|m| m.from == leaver && m.to == *survivor)
            .count();
        if taken == 0 {
            problems.push(format!("{survivor} took none of {leaver}'s flows"));
        }
    }
    report(problems, before, after)
}

/// What went wrong when next hop `joiner` joined the set: flows that moved anywhere but to
/// the joiner, or a joiner that took fewer than `min_taken` flows; None if resilient.
pub fn check_join(
    before: &FlowTable,
    after: &FlowTable,
    joiner: &str,
    min_taken: usize,
) -> Option<String> {
    let mut problems = Vec::new();
    let moves = before.moves(after);
    let elsewhere = moves.iter().filter(|m| m.to != joiner).count();
    if elsewhere > 0 {
        problems.push(format!(
            "{elsewhere} flows moved between the other next hops (must be 0)"
        ));
    }
    let taken = moves.iter().filter(|m| m.to == joiner).count();
    if taken < min_taken {
        problems.push(format!(
            "{joiner} took {taken} flows, expected at least {min_taken}"
        ));
    }
    report(problems, before, after)
}

fn report(problems: Vec<String>, before: &FlowTable, after: &FlowTable) -> Option<String> {
    (!problems.is_empty())
        .then(|| format!("{}\n{}", problems.join("; "), before.side_by_side(after)))
}
