//! Connection handling against real peers (see `interop/mod.rs` for the lab):
//!
//! - `collisions_with_gobgp_both_active`, `collisions_with_frr_both_active`: both sides
//!   configured active. Each round freezes the peer (SIGSTOP) so that the agent's connection is
//!   accepted by the peer's kernel and waits in OpenSent, lets the peer's own connect timer
//!   run out, freezes the agent and thaws the peer: the peer answers our connection and opens
//!   its own (FRR does; GoBGP does not dial while a connection to it is pending), and the agent,
//!   thawed, finds both: a connection collision (RFC 4271 6.8), resolved by FRR (its higher
//!   identifier keeps its connection and it closes ours) or by the agent (whose Established
//!   connection refuses the new one); the OpenSent / OpenConfirm resolution by BGP Identifier
//!   on the agent's side is tested event by event in `bgp/fsm/peering/tests.rs`. Then the peer is killed and restarted for

//! - `dynamic_neighbors_from_a_range`: GoBGP, ExaBGP and BIRD connect from three addresses of a
//!   `dynamic_neighbor` range with no per-peer config; what the range's prefix list allows is
//!   installed, the rest rejected; one leaves and its routes and its neighbor entry go; the
//!   range's limit refuses one more.
//! - `dynamic_interface_range_with_gobgp_neighbor_interface` is in `bgp_interface_range.rs`.
//!
//! Needs root, `gobgpd`, FRR, ExaBGP and BIRD. `HRGX_KEEP_LOGS=1` keeps each lab's directory.

mod interop;
mod neighbors;
mod netns;
