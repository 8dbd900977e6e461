//! Compares XDP's verdict on a packet with the kernel's answer, and tallies the outcomes.
//!
//! XDP_PASS is always fine. XDP_DROP only for malformed frames. XDP_REDIRECT only where the
//! kernel forwards too, to the same egress device and destination MAC, with the TTL / hop
//! limit decremented and nothing else changed; for a multipath route any member of the
//! kernel's route is fine (the helper's hash may pick another one), which is settled after
//! the run with `ip route get fibmatch` ([`Pending`]).

use std::{collections::BTreeMap, fmt::Write as _, net::IpAddr};

use serde_json::Value;

use super::{
    kernel::{self, FibAnswer, RC_NO_NEIGH, RC_SUCCESS, XDP_DROP, XDP_PASS, XDP_REDIRECT},
    lab::mac_text,
    packets::{Packet, checksum},
};

pub enum Outcome {
    Fine(String),
    Mismatch(String),
    /// XDP forwarded where the kernel (SUCCESS or NO_NEIGH) chose another next hop: fine if
    /// the kernel's route is multipath and XDP's next hop is one of its members.
    AskFibmatch,
}

/// A packet XDP forwarded: the egress it took, by its source MAC.
pub struct Forwarded {
    pub egress: u32,
    pub dmac: [u8; 6],
}

/// Everything known about one packet, for the report.
pub struct Case {
    pub index: usize,
    pub ingress: String,
    pub packet: Packet,
    pub action: u32,
    pub output: Vec<u8>,
    pub answer: FibAnswer,
    pub forwarded: Option<Forwarded>,
}

pub fn action_name(action: u32) -> &'static str {
    match action {
        kernel::XDP_ABORTED => "XDP_ABORTED",
        XDP_DROP => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        kernel::XDP_TX => "XDP_TX",
        XDP_REDIRECT => "XDP_REDIRECT",
        _ => "XDP_?",
    }
}

/// `mac_to_ifindex`: the router's interfaces by MAC; `locals`: its addresses.
pub fn judge(
    case: &mut Case,
    mac_to_ifindex: &BTreeMap<[u8; 6], u32>,
    locals: &[IpAddr],
    ingress_ifindex: u32,
) -> Outcome {
    let kernel_forwards = case.answer.rc == RC_SUCCESS;
    match case.action {
        XDP_PASS
            if kernel_forwards
                && kernel::input_refusal(
                    &case.packet,
                    locals,
                    case.answer.ifindex == ingress_ifindex,
                )
                .is_none() =>
        {
            Outcome::Fine("XDP_PASS (the kernel forwards it)".into())
        }
        XDP_PASS => Outcome::Fine("XDP_PASS (the kernel does not forward it)".into()),
        XDP_DROP if case.packet.malformed.is_some() => {
            Outcome::Fine("XDP_DROP of a malformed frame".into())
        }
        XDP_DROP => Outcome::Mismatch("XDP_DROP of a well-formed frame".into()),
        XDP_REDIRECT => judge_redirect(case, mac_to_ifindex, locals, ingress_ifindex),
        other => Outcome::Mismatch(format!("unexpected action {}", action_name(other))),
    }
}

fn judge_redirect(
    case: &mut Case,
    mac_to_ifindex: &BTreeMap<[u8; 6], u32>,
    locals: &[IpAddr],
    ingress_ifindex: u32,
) -> Outcome {
    let out = &case.output;
    if out.len() < 14 {
        return Outcome::Mismatch("XDP_REDIRECT of a frame shorter than Ethernet".into());
    }
    let dmac: [u8; 6] = out[0..6].try_into().unwrap();
    let smac: [u8; 6] = out[6..12].try_into().unwrap();
    let Some(&egress) = mac_to_ifindex.get(&smac) else {
        return Outcome::Mismatch("XDP_REDIRECT with a source MAC of no router interface".into());
    };
    case.forwarded = Some(Forwarded { egress, dmac });
    if let Some(why) = kernel::input_refusal(&case.packet, locals, egress == ingress_ifindex) {
        return Outcome::Mismatch(format!(
            "XDP_REDIRECT, but the kernel would not forward: {why}"
        ));
    }
    if let Some(why) = rewrite_error(&case.packet.frame, out) {
        return Outcome::Mismatch(format!("XDP_REDIRECT with a wrong rewrite: {why}"));
    }
    let answer = case.answer;
    if answer.rc == RC_SUCCESS && answer.ifindex == egress && answer.dmac == dmac {
        return Outcome::Fine("XDP_REDIRECT, same egress and next hop as the kernel".into());
    }
    if answer.rc == RC_SUCCESS || answer.rc == RC_NO_NEIGH {
        return Outcome::AskFibmatch;
    }
    Outcome::Mismatch(format!(
        "XDP_REDIRECT, but the kernel's lookup says {}",
        kernel::rc_name(answer.rc)
    ))
}

/// The forwarded frame must be the input with the TTL (hop limit) decremented, the IPv4
/// checksum still valid, and the new MACs.
fn rewrite_error(input: &[u8], output: &[u8]) -> Option<&'static str> {
    if input.len() != output.len() {
        return Some("length changed");
    }
    if input[12..14] != output[12..14] {
        return Some("EtherType changed");
    }
    let ip = 14;
    let (ttl_at, skip): (usize, &[usize]) = if input[12..14] == [0x86, 0xdd] {
        (ip + 7, &[ip + 7])
    } else {
        (ip + 8, &[ip + 8, ip + 10, ip + 11])
    };
    if output[ttl_at] != input[ttl_at].wrapping_sub(1) {
        return Some("TTL/hop limit not decremented by one");
    }
    if input[12..14] == [0x08, 0x00] {
        let ihl = usize::from(input[ip] & 0x0f) * 4;
        if checksum(&output[ip..ip + ihl]) != 0 {
            return Some("IPv4 header checksum wrong");
        }
    }
    let changed = (ip..input.len()).any(|i| !skip.contains(&i) && input[i] != output[i]);
    changed.then_some("bytes other than TTL/checksum changed")
}

/// Cases waiting for the kernel's multipath route.
#[derive(Default)]
pub struct Pending {
    pub cases: Vec<Case>,
}

impl Pending {
    /// Settles each case with the kernel's matching route (`fibmatch`, in `routes`, one per
    /// case) and the kernel's resolved neighbors ((dev, address) -> MAC).
    pub fn settle(
        self,
        routes: &[Value],
        neighbors: &BTreeMap<(String, IpAddr), [u8; 6]>,
        ifindex: &BTreeMap<String, u32>,
    ) -> Vec<(Case, Outcome)> {
        self.cases
            .into_iter()
            .zip(routes)
            .map(|(case, route)| {
                let members: Vec<&Value> = match route["nexthops"].as_array() {
                    Some(members) => members.iter().collect(),
                    None => vec![route],
                };
                let forwarded = case.forwarded.as_ref().unwrap();
                let is_member = members.iter().any(|member| {
                    let Some(dev) = member["dev"].as_str() else {
                        return false;
                    };
                    let neighbor: IpAddr = member["gateway"]
                        .as_str()
                        .and_then(|g| g.parse().ok())
                        .unwrap_or(case.packet.dst);
                    ifindex.get(dev) == Some(&forwarded.egress)
                        && neighbors.get(&(dev.to_owned(), neighbor)) == Some(&forwarded.dmac)
                });
                let kind = route_kind(route);
                let outcome = if members.len() > 1 && is_member {
                    Outcome::Fine(
                        "XDP_REDIRECT via another member of the kernel's multipath route".into(),
                    )
                } else if case.answer.rc == RC_SUCCESS {
                    Outcome::Mismatch(format!(
                        "XDP_REDIRECT to another next hop than the kernel's ({kind})"
                    ))
                } else {
                    Outcome::Mismatch(format!(
                        "XDP_REDIRECT where the kernel's next hop is unresolved, NO_NEIGH ({kind})"
                    ))
                };
                (case, outcome)
            })
            .collect()
    }
}

/// Which kind of kernel route the kernel chose, to tell mismatch causes apart.
fn route_kind(route: &Value) -> &'static str {
    let multipath = route["nexthops"].is_array();
    match (route["protocol"].as_str(), multipath) {
        (Some("kernel"), _) => "kernel route: a connected subnet",
        (Some("201"), true) => "kernel route: the agent's own, multipath",
        (Some("201"), false) => "kernel route: the agent's own",
        (_, true) => "kernel route: another program's, multipath",
        (_, false) => "kernel route: another program's",
    }
}

/// Counts per outcome class, with the first examples of each mismatch.
#[derive(Default)]
pub struct Tally {
    fine: BTreeMap<String, usize>,
    mismatches: BTreeMap<String, (usize, Vec<String>)>,
}

impl Tally {
    pub fn add(
        &mut self,
        outcome: Outcome,
        case: &Case,
        names: &BTreeMap<u32, String>,
        examples: usize,
        route: Option<&Value>,
    ) {
        match outcome {
            Outcome::Fine(class) => *self.fine.entry(class).or_default() += 1,
            Outcome::Mismatch(class) => {
                let entry = self.mismatches.entry(class).or_default();
                entry.0 += 1;
                if entry.1.len() < examples {
                    entry.1.push(describe(case, names, route));
                }
            }
            Outcome::AskFibmatch => unreachable!("settled before tallying"),
        }
    }

    pub fn mismatch_count(&self) -> usize {
        self.mismatches.values().map(|(n, _)| n).sum()
    }

    pub fn fine_count(&self, prefix: &str) -> usize {
        self.fine
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// Packets per outcome class.
    pub fn summary(&self) -> String {
        let mut text = String::from("outcomes:\n");
        for (class, count) in &self.fine {
            let _ = writeln!(text, "  ok        {count:>7}  {class}");
        }
        for (class, (count, _)) in &self.mismatches {
            let _ = writeln!(text, "  MISMATCH  {count:>7}  {class}");
        }
        text
    }

    /// The summary, then the examples of each mismatch class.
    pub fn report(&self) -> String {
        let mut text = self.summary();
        for (class, (count, examples)) in &self.mismatches {
            let _ = writeln!(
                text,
                "\n=== MISMATCH: {class} ({count} packets; first {}):",
                examples.len()
            );
            for example in examples {
                text.push_str(example);
            }
        }
        text
    }
}

fn describe(case: &Case, names: &BTreeMap<u32, String>, route: Option<&Value>) -> String {
    let name = |ifindex: u32| {
        names
            .get(&ifindex)
            .cloned()
            .unwrap_or_else(|| format!("ifindex {ifindex}"))
    };
    let hex = |bytes: &[u8]| {
        bytes
            .iter()
            .take(74)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let mut text = format!(
        "  packet #{} in {}: {}\n",
        case.index, case.ingress, case.packet
    );
    let _ = writeln!(text, "    frame  {}", hex(&case.packet.frame));
    let _ = write!(text, "    XDP    {}", action_name(case.action));
    if let Some(forwarded) = &case.forwarded {
        let _ = write!(
            text,
            " via {} to {}",
            name(forwarded.egress),
            mac_text(&forwarded.dmac)
        );
    }
    let _ = writeln!(text, "\n    output {}", hex(&case.output));
    let answer = &case.answer;
    let _ = write!(
        text,
        "    kernel bpf_fib_lookup {}",
        kernel::rc_name(answer.rc)
    );
    if answer.rc == RC_SUCCESS || answer.rc == RC_NO_NEIGH {
        let _ = write!(
            text,
            " via {} dmac {} smac {}",
            name(answer.ifindex),
            mac_text(&answer.dmac),
            mac_text(&answer.smac)
        );
    }
    if let Some(route) = route {
        let _ = write!(text, "; route {route}");
    }
    text.push('\n');
    text
}
