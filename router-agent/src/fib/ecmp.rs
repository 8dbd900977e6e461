//! Resilient ECMP: which nexthop each of a group's buckets points at.
//!
//! The XDP program sends a flow to `buckets[hash % NEXTHOP_BUCKETS]`. When the set of usable
//! nexthops changes, we move as few buckets as possible, like Linux resilient nexthop groups:
//! a nexthop that leaves gives up exactly its own buckets; one that joins takes buckets only
//! from members holding more than their share. Flows on untouched buckets keep their path.

use router_common::NEXTHOP_BUCKETS;

/// Stable nexthop identity inside the FIB.
pub type NexthopId = u32;

/// Bucket assignment of one group, in nexthop ids (the datapath translates ids to slots).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buckets(pub [Option<NexthopId>; NEXTHOP_BUCKETS]);

impl Default for Buckets {
    fn default() -> Self {
        Self([None; NEXTHOP_BUCKETS])
    }
}

impl Buckets {
    /// Reassigns buckets to `members` (sorted, deduplicated), keeping every bucket whose
    /// nexthop is still a member and under its share. Shares are even; the remainder of the
    /// division goes to members already holding one more bucket than the even share (a layout
    /// made elsewhere, as the previous run's of an adopted group, is kept as it is), then to
    /// the first members.
    pub fn rebalance(&mut self, members: &[NexthopId]) {
        if members.is_empty() {
            self.0 = [None; NEXTHOP_BUCKETS];
            return;
        }
        let base = NEXTHOP_BUCKETS / members.len();
        let mut extra = NEXTHOP_BUCKETS % members.len();
        let rank_of = |id: NexthopId| members.binary_search(&id).ok();

        let mut held = vec![0usize; members.len()];
        let mut holds_extra = vec![false; members.len()];
        for bucket in self.0.iter_mut() {
            let Some(rank) = bucket.and_then(rank_of) else {
                *bucket = None;
                continue;
            };
            if held[rank] < base {
                held[rank] += 1;
            } else if held[rank] == base && extra > 0 {
                held[rank] += 1;
                holds_extra[rank] = true;
                extra -= 1;
            } else {
                *bucket = None;
            }
        }
        // The extras left go to the first members.
        for holds in holds_extra.iter_mut().filter(|holds| !**holds).take(extra) {
            *holds = true;
        }
        let share = |rank: usize| base + usize::from(holds_extra[rank]);
        let mut rank = 0;
        for bucket in self.0.iter_mut().filter(|bucket| bucket.is_none()) {
            while held[rank] >= share(rank) {
                rank += 1;
            }
            held[rank] += 1;
            *bucket = Some(members[rank]);
        }
    }

    pub fn count(&self, id: NexthopId) -> usize {
        self.0.iter().filter(|bucket| **bucket == Some(id)).count()
    }

    pub fn contains(&self, id: NexthopId) -> bool {
        self.0.contains(&Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_split_and_full_coverage() {
        let mut buckets = Buckets::default();
        buckets.rebalance(&[1, 2, 3]);
        assert!(buckets.0.iter().all(Option::is_some));
        assert_eq!(
            [buckets.count(1), buckets.count(2), buckets.count(3)],
            [22, 21, 21]
        );
    }

    #[test]
    fn removing_a_member_moves_only_its_buckets() {
        let mut buckets = Buckets::default();
        buckets.rebalance(&[1, 2, 3, 4]);
        let before = buckets.clone();
        buckets.rebalance(&[1, 2, 4]);
        for (old, new) in before.0.iter().zip(buckets.0.iter()) {
            if *old != Some(3) {
                assert_eq!(old, new, "a bucket not owned by the removed member moved");
            }
        }
        assert!(!buckets.contains(3));
        assert_eq!(buckets.count(1) + buckets.count(2) + buckets.count(4), 64);
        assert!(buckets.count(1).abs_diff(buckets.count(4)) <= 1);
    }

    #[test]
    fn adding_a_member_takes_only_surplus_buckets() {
        let mut buckets = Buckets::default();
        buckets.rebalance(&[1, 2]);
        let before = buckets.clone();
        buckets.rebalance(&[1, 2, 3]);
        let moved = before
            .0
            .iter()
            .zip(buckets.0.iter())
            .filter(|(old, new)| old != new)
            .count();
        assert_eq!(moved, buckets.count(3));
        assert_eq!(buckets.count(3), 21);
        for (old, new) in before.0.iter().zip(buckets.0.iter()) {
            assert!(old == new || *new == Some(3));
        }
    }

    #[test]
    fn a_balanced_layout_is_kept_whoever_holds_the_remainder() {
        // 3 members: 22/21/21, here the last one holding 22.
        let mut buckets = Buckets::default();
        for (i, bucket) in buckets.0.iter_mut().enumerate() {
            *bucket = Some(match i % 3 {
                0 => 3,
                1 => 1,
                _ => 2,
            });
        }
        assert_eq!(buckets.count(3), 22);
        let before = buckets.clone();
        buckets.rebalance(&[1, 2, 3]);
        assert_eq!(buckets, before);
    }

    #[test]
    fn empty_member_set_clears_and_readding_restores_balance() {
        let mut buckets = Buckets::default();
        buckets.rebalance(&[7]);
        assert_eq!(buckets.count(7), 64);
        buckets.rebalance(&[]);
        assert_eq!(buckets, Buckets::default());
        buckets.rebalance(&[5, 7]);
        assert_eq!((buckets.count(5), buckets.count(7)), (32, 32));
    }
}
