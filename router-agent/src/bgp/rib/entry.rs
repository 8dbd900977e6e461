//! How the RIB stores one prefix: its paths in one array, import-accepted ones first, ranked,
//! the installed ones leading, inline when there is only one (most prefixes of a full table).

use std::sync::Arc;

use super::PeerId;
use super::nexthop::NextHopId;
use crate::bgp::packet::types::PathAttributes;

/// A path as stored: 16 bytes. Not `Clone`: it holds a counted reference into the next hop
/// table, which only the `Rib` may take and release.
#[derive(Debug)]
pub(super) struct StoredPath {
    pub(super) attrs: Arc<PathAttributes>,
    pub(super) peer: PeerId,
    pub(super) next_hop: NextHopId,
}

/// All paths to one prefix: `paths()[..accepted()]` passed import policy and are ranked by the
/// decision process, `paths()[..installed()]` form the Loc-RIB route, `paths()[accepted()..]`
/// were rejected by import policy.
///
/// 24 bytes. Most prefixes of a full table have exactly one path (one peer sends them), kept
/// inline with its two counts: no allocation per prefix (a 16-byte block costs 32 with the
/// allocator's header). More paths live in a boxed slice (not a `Vec`: no capacity word; the
/// slice is tiny, one path per peer, and rewritten on a change anyway).
#[derive(Debug)]
pub(super) enum PrefixEntry {
    One {
        path: StoredPath,
        accepted: bool,
        installed: bool,
    },
    /// Any other number of paths, none included (an empty box does not allocate).
    Many {
        paths: Box<[StoredPath]>,
        accepted: u16,
        installed: u16,
    },
}

impl PrefixEntry {
    pub(super) fn empty() -> Self {
        PrefixEntry::Many {
            paths: Box::new([]),
            accepted: 0,
            installed: 0,
        }
    }

    pub(super) fn paths(&self) -> &[StoredPath] {
        match self {
            PrefixEntry::One { path, .. } => std::slice::from_ref(path),
            PrefixEntry::Many { paths, .. } => paths,
        }
    }

    pub(super) fn paths_mut(&mut self) -> &mut [StoredPath] {
        match self {
            PrefixEntry::One { path, .. } => std::slice::from_mut(path),
            PrefixEntry::Many { paths, .. } => paths,
        }
    }

    pub(super) fn accepted(&self) -> usize {
        match self {
            PrefixEntry::One { accepted, .. } => usize::from(*accepted),
            PrefixEntry::Many { accepted, .. } => usize::from(*accepted),
        }
    }

    pub(super) fn installed(&self) -> usize {
        match self {
            PrefixEntry::One { installed, .. } => usize::from(*installed),
            PrefixEntry::Many { installed, .. } => usize::from(*installed),
        }
    }

    /// `count <= accepted()`.
    pub(super) fn set_installed(&mut self, count: usize) {
        debug_assert!(count <= self.accepted());
        match self {
            PrefixEntry::One { installed, .. } => *installed = count == 1,
            PrefixEntry::Many { installed, .. } => {
                *installed = u16::try_from(count).expect("one path per peer fits in u16");
            }
        }
    }

    /// Takes the paths out for a change, as (paths, accepted, installed), with room for one
    /// more; [`PrefixEntry::from_parts`] puts them back.
    pub(super) fn take(&mut self) -> (Vec<StoredPath>, usize, usize) {
        let counts = (self.accepted(), self.installed());
        let paths = match std::mem::replace(self, PrefixEntry::empty()) {
            PrefixEntry::One { path, .. } => {
                let mut paths = Vec::with_capacity(2);
                paths.push(path);
                paths
            }
            PrefixEntry::Many { paths, .. } => {
                let mut paths = paths.into_vec();
                // Exact growth: the boxed slice in from_parts then needs no reallocation.
                paths.reserve_exact(1);
                paths
            }
        };
        (paths, counts.0, counts.1)
    }

    pub(super) fn from_parts(
        mut paths: Vec<StoredPath>,
        accepted: usize,
        installed: usize,
    ) -> Self {
        debug_assert!(installed <= accepted && accepted <= paths.len());
        if paths.len() == 1 {
            let path = paths.pop().expect("one path");
            return PrefixEntry::One {
                path,
                accepted: accepted == 1,
                installed: installed == 1,
            };
        }
        PrefixEntry::Many {
            paths: paths.into_boxed_slice(),
            accepted: u16::try_from(accepted).expect("one path per peer fits in u16"),
            installed: u16::try_from(installed).expect("one path per peer fits in u16"),
        }
    }

    /// Heap bytes the entry allocated.
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            PrefixEntry::One { .. } => 0,
            PrefixEntry::Many { paths, .. } => size_of_val(&**paths),
        }
    }
}

/// The installed paths' identity: what a Loc-RIB change is detected against. Next hops by id
/// are safe to compare: the snapshot is taken and compared while the old paths (and so their
/// ids) are still held.
pub(super) type InstalledSnapshot = Vec<(PeerId, *const PathAttributes, NextHopId)>;

pub(super) fn snapshot(entry: &PrefixEntry) -> InstalledSnapshot {
    entry.paths()[..entry.installed()]
        .iter()
        .map(|path| (path.peer, Arc::as_ptr(&path.attrs), path.next_hop))
        .collect()
}

/// Reorders `items` so that `items[i]` is the element that was at `order[i]`.
pub(super) fn apply_order<T>(items: &mut [T], order: &[usize]) {
    debug_assert_eq!(items.len(), order.len());
    // position[k]: where the element originally at k is now; origin[p]: the reverse.
    let mut position: Vec<usize> = (0..items.len()).collect();
    let mut origin = position.clone();
    for (i, &wanted) in order.iter().enumerate() {
        let at = position[wanted];
        if at != i {
            items.swap(i, at);
            let displaced = origin[i];
            origin[at] = displaced;
            position[displaced] = at;
            origin[i] = wanted;
            position[wanted] = i;
        }
    }
}

/// Removes `entry.paths[index]`; returns it and whether it was accepted. Keeps the accepted
/// partition; `installed` is only meaningful again after ranking.
pub(super) fn remove_path(
    entry: &mut PrefixEntry,
    index: Option<usize>,
) -> Option<(StoredPath, bool)> {
    let index = index?;
    let (mut paths, mut accepted, installed) = entry.take();
    let was_accepted = index < accepted;
    let path = paths.remove(index);
    if was_accepted {
        accepted -= 1;
    }
    *entry = PrefixEntry::from_parts(paths, accepted, installed.min(accepted));
    Some((path, was_accepted))
}

/// Adds `path` to the accepted partition (ranked later) or to the rejected tail.
pub(super) fn insert_path(entry: &mut PrefixEntry, path: StoredPath, accepted: bool) {
    let (mut paths, mut accepted_count, installed) = entry.take();
    if accepted {
        paths.insert(accepted_count, path);
        accepted_count += 1;
    } else {
        paths.push(path);
    }
    *entry = PrefixEntry::from_parts(paths, accepted_count, installed);
}
