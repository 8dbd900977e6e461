//! hostrouter's agent. Data flows one way:
//!
//! ```text
//!   config / (BGP) ──> fib (routes -> nexthop groups -> nexthops, neighbor state)
//!                  ──> datapath (BPF maps: LPM trie or DIR-24-8, groups, nexthops) ──> packets
//!   netlink: neighbors, links, addresses in; kernel routes out
//! ```
pub mod bfd;
pub mod bgp;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod drain;
pub mod fib;
pub mod kernel_mirror;
pub mod kernel_routes;
pub mod manpages;
pub mod netlink;
pub mod next_hop_check;
pub mod redistribute;
pub mod services;
pub mod show;
pub mod systemd;
