//! Counts of the FIB per address family, for the metrics (`metrics/fib.rs`).

use super::Fib;

/// Per family: IPv4 first, IPv6 second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FibCensus {
    pub routes: [usize; 2],
    /// A group counts in the family of its next hops' addresses (an IPv4 route may go via an
    /// IPv6 next hop, RFC 8950); a group of both counts in each.
    pub groups: [usize; 2],
    pub nexthops: [usize; 2],
    /// Routes left to the kernel because they did not fit the tables.
    pub unplaced: usize,
}

fn family(address: std::net::IpAddr) -> usize {
    usize::from(address.is_ipv6())
}

impl Fib {
    /// Each nexthop's stable id (its `NEXTHOP_STATS` index), gateway and interface, by id.
    pub fn nexthop_ids(&self) -> Vec<(u32, std::net::IpAddr, u32)> {
        let mut ids: Vec<_> = self
            .nexthops
            .values()
            .map(|entry| (entry.record.id, entry.key.via, entry.key.ifindex))
            .collect();
        ids.sort_unstable_by_key(|(id, _, _)| *id);
        // Owners sharing a gateway share its record: one series each.
        ids.dedup_by_key(|(id, _, _)| *id);
        ids
    }

    pub fn census(&self) -> FibCensus {
        let mut census = FibCensus {
            routes: [self.routes.v4_len(), self.routes.v6_len()],
            unplaced: self.unplaced.len(),
            ..FibCensus::default()
        };
        for entry in self.nexthops.values() {
            census.nexthops[family(entry.key.via)] += 1;
        }
        for group in self.groups.values() {
            let mut families = [false; 2];
            for member in &group.members {
                if let Some(entry) = self.nexthops.get(member) {
                    families[family(entry.key.via)] = true;
                }
            }
            for (count, present) in census.groups.iter_mut().zip(families) {
                *count += usize::from(present);
            }
        }
        census
    }
}
