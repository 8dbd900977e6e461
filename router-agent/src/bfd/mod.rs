//! Bidirectional Forwarding Detection: RFC 5880, single-hop over IPv4 and IPv6 (RFC 5881),
//! Asynchronous mode. Layers, one way like BGP's: wire ([`packet`]) -> session ([`session`],
//! sans-IO) -> driver ([`runtime`], over [`socket`]) -> consumers (BGP and the FIB, RFC
//! 5882). [`config`] is the `[bfd]` section, [`show`] `show bfd`.
//!
//! # How it runs
//!
//! - **Off the BGP event loop.** One BFD task on its own thread (a current-thread tokio
//!   runtime), so that a 1.2M-route UPDATE burst on the BGP loop cannot delay a packet. It
//!   owns every [`session::Session`] and their two timers each; the daemon only sends it the
//!   sessions its neighbours want (new ones start, gone ones are sent AdminDown and dropped,
//!   changed intervals are negotiated) and receives state changes, both over channels.
//! - **Sockets (RFC 5881).** One receive socket per family bound to UDP 3784, with
//!   IP_RECVTTL / IPV6_RECVHOPLIMIT: a packet whose TTL / hop limit is not 255 is discarded
//!   (GTSM, RFC 5881 5), and IP_PKTINFO gives the interface for link-local peers. Each session
//!   sends from its own socket bound to a source port in 49152-65535 (unique per session),
//!   with IP_TTL / IPV6_UNICAST_HOPS 255 and SO_BINDTODEVICE for link-local and unnumbered
//!   peers. Demultiplexing: Your Discriminator when non-zero, else (source, destination,
//!   interface), after [`packet::ControlPacket::decode`]'s checks.
//! - **Down (RFC 5882).** A `StateChanged` with `path_failed` sends the neighbour's address
//!   to two places. First the FIB, which marks that next hop unusable in every group that
//!   holds it with one write of the next hop's entry: groups refer to next hops by index, so
//!   the cost does not depend on the table size (the path a neighbour-table failure takes
//!   today), in a commit of its own. Then the BGP session, which is torn down (Cease / BFD
//!   Down) and held down while BFD is down, after which its routes are withdrawn the usual
//!   way. Back in Up, the mark is cleared and the session starts again at once. The peer's
//!   AdminDown is not a failure (RFC 5882 3.2): nothing is torn down. (`bgp/speaker/bfd.rs`,
//!   `daemon/bfd.rs`.)
//! - **Start.** A BFD session starts with its BGP neighbour's configuration, before the BGP
//!   session is Established, so that both come up together.
pub mod config;
pub mod packet;
pub mod runtime;
pub mod session;
pub mod show;
pub mod socket;
