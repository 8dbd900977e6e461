//! I1-I5 under a live reader: a thread looks addresses up over shared atomic storage, as the
//! XDP program does, while the writer flips the tables between two states; every answer must
//! be the address's answer in one of the two.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::*;

/// The BPF arrays' stand-in: atomics shared by the writer and the reader thread.
struct Shared {
    direct4: Vec<AtomicU64>,
    direct6: Vec<AtomicU64>,
    ext: Vec<AtomicU64>,
    sub6: Vec<AtomicU64>,
    ranges4: Vec<AtomicU32>,
    ranges6: Vec<AtomicU64>,
    xkeys: Vec<AtomicU64>,
    xvalues: Vec<AtomicU64>,
    default: [AtomicU64; 2],
}

#[derive(Clone)]
struct SharedStorage(Arc<Shared>);

fn atomics64(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl SharedStorage {
    fn new(lines4: usize, lines6: usize, xlines: usize, ext: usize) -> Self {
        Self(Arc::new(Shared {
            direct4: atomics64(1 << DXR4_DIRECT_BITS),
            direct6: atomics64(1 << DXR6_DIRECT_BITS),
            ext: atomics64(ext),
            sub6: atomics64(router_common::DXR6_SUB_ENTRIES as usize),
            ranges4: (0..lines4 * 16).map(|_| AtomicU32::new(0)).collect(),
            ranges6: atomics64(lines6 * 8),
            xkeys: atomics64(xlines * 4),
            xvalues: atomics64(xlines * 4),
            default: [AtomicU64::new(0), AtomicU64::new(0)],
        }))
    }

    fn directory(&self, directory: Directory) -> &[AtomicU64] {
        match directory {
            Directory::Direct4 => &self.0.direct4,
            Directory::Direct6 => &self.0.direct6,
            Directory::Ext6 => &self.0.ext,
            Directory::Sub6 => &self.0.sub6,
        }
    }
}

impl DxrStorage for SharedStorage {
    fn descriptor(&self, directory: Directory, index: u32) -> Option<u64> {
        // Acquire stands in for the program's address dependency (descriptor -> block).
        let table = self.directory(directory);
        table.get(index as usize).map(|d| d.load(Ordering::Acquire))
    }

    fn set_descriptor(&mut self, directory: Directory, index: u32, desc: u64) {
        self.directory(directory)[index as usize].store(desc, Ordering::Relaxed);
    }

    fn range_key(&self, arena: Arena, index: u32) -> Option<u64> {
        let i = index as usize;
        match arena {
            Arena::Ranges4 => self
                .0
                .ranges4
                .get(i)
                .map(|e| u64::from(e.load(Ordering::Relaxed))),
            Arena::Ranges6 => self.0.ranges6.get(i).map(|e| e.load(Ordering::Relaxed)),
            Arena::XRanges6 => self.0.xkeys.get(i).map(|e| e.load(Ordering::Relaxed)),
        }
    }

    fn range_value(&self, arena: Arena, index: u32) -> Option<u16> {
        let i = index as usize;
        match arena {
            Arena::Ranges4 => self
                .0
                .ranges4
                .get(i)
                .map(|e| e.load(Ordering::Relaxed) as u16),
            Arena::Ranges6 => self
                .0
                .ranges6
                .get(i)
                .map(|e| e.load(Ordering::Relaxed) as u16),
            Arena::XRanges6 => self
                .0
                .xvalues
                .get(i)
                .map(|e| e.load(Ordering::Relaxed) as u16),
        }
    }

    fn write_unpublished(&mut self, arena: Arena, index: u32, key: u64, value: u16) {
        // Widen the window in which a reader could catch a block half written, were it
        // reachable (on one CPU, this lets the reader run mid-block).
        std::thread::yield_now();
        let i = index as usize;
        match arena {
            Arena::Ranges4 => self.0.ranges4[i].store(key as u32, Ordering::Relaxed),
            Arena::Ranges6 => self.0.ranges6[i].store(key, Ordering::Relaxed),
            Arena::XRanges6 => {
                self.0.xkeys[i].store(key, Ordering::Relaxed);
                self.0.xvalues[i].store(u64::from(value), Ordering::Relaxed);
            }
        }
    }

    fn default_entry(&self, family: u32) -> u64 {
        self.0.default[family as usize].load(Ordering::Acquire)
    }

    fn set_default_entry(&mut self, family: u32, entry: u64) {
        self.0.default[family as usize].store(entry, Ordering::Relaxed);
    }

    fn capacity(&self, arena: Arena) -> u32 {
        match arena {
            Arena::Ranges4 => self.0.ranges4.len() as u32,
            Arena::Ranges6 => self.0.ranges6.len() as u32,
            Arena::XRanges6 => self.0.xkeys.len() as u32,
        }
    }

    fn ext_capacity(&self) -> u32 {
        self.0.ext.len() as u32
    }

    fn sub_groups(&self) -> u32 {
        self.0.sub6.len() as u32 / router_common::DXR_SPLIT_FANOUT
    }
}

fn state(routes: &[(&str, u32)]) -> Vec<(IpNet, u32)> {
    routes.iter().map(|&(p, g)| (net(p), g)).collect()
}

/// The changes taking the tables from `from` to `to`.
fn transition(from: &[(IpNet, u32)], to: &[(IpNet, u32)]) -> Vec<(IpNet, Option<u32>)> {
    let gone = from.iter().filter(|(p, _)| !to.iter().any(|(q, _)| q == p));
    gone.map(|&(p, _)| (p, None))
        .chain(to.iter().map(|&(p, g)| (p, Some(g))))
        .collect()
}

#[test]
fn readers_see_the_old_or_the_new_answer() {
    readers_see_old_or_new(None);
}

/// The same with IPv6 nodes split down to the last level (limits of one prefix): children
/// are rebuilt and published one by one, nodes split and merge back under the reader.
#[test]
fn readers_see_the_old_or_the_new_answer_across_split_nodes() {
    readers_see_old_or_new(Some(SplitLimits {
        split: 2,
        unsplit: 1,
    }));
}

fn readers_see_old_or_new(limits: Option<SplitLimits>) {
    let seed = test_seed();
    let mut rng = SmallRng::seed_from_u64(seed);
    let a = state(&[
        ("0.0.0.0/0", 2),
        ("10.0.0.0/8", 3),
        ("10.1.0.0/16", 4),
        ("10.1.0.0/20", 5),
        ("10.1.16.0/24", 6),
        ("10.1.128.0/17", 7),
        ("10.1.200.7/32", 8),
        ("2001:db8::/32", 2),
        ("2001:db8::/48", 3),
        ("2001:db8::/64", 4),
        ("2001:db8::/80", 5),
        ("2001:db8:0:0:8000::/65", 6),
        ("2001:db8:0:1::/64", 7),
    ]);
    let b = state(&[
        ("0.0.0.0/0", 9),
        ("10.0.0.0/8", 10),
        ("10.1.0.0/20", 11),
        ("10.1.16.0/25", 12),
        ("10.1.128.0/18", 13),
        ("10.1.200.7/32", 8),
        ("10.1.255.0/24", 14),
        ("2001:db8::/32", 9),
        ("2001:db8::/64", 10),
        ("2001:db8::/96", 11),
        ("2001:db8:0:0:8000::/65", 12),
        ("2001:db8:0:2::/64", 13),
    ]);
    let mut addrs: Vec<IpAddr> = Vec::new();
    for &(prefix, _) in a.iter().chain(b.iter()) {
        addrs.extend(edges(prefix, &mut rng));
        for _ in 0..100 {
            addrs.push(edges(prefix, &mut rng)[2]);
        }
    }
    // One change per batch: an address may see each state along the way (a batch lands
    // change by change too), and nothing else.
    let (to_b, back_to_a) = (transition(&a, &b), transition(&b, &a));
    let mut model = Model::default();
    a.iter().for_each(|&(p, g)| model.set(p, Some(g)));
    let mut allowed: Vec<Vec<Option<u32>>> = addrs.iter().map(|&x| vec![model.lookup(x)]).collect();
    for &(prefix, group) in to_b.iter().chain(back_to_a.iter()) {
        model.set(prefix, group);
        for (answers, &addr) in allowed.iter_mut().zip(&addrs) {
            let answer = model.lookup(addr);
            if !answers.contains(&answer) {
                answers.push(answer);
            }
        }
    }
    let expected: Vec<(IpAddr, Vec<Option<u32>>)> = addrs.into_iter().zip(allowed).collect();

    let storage = SharedStorage::new(1 << 12, 1 << 12, 1 << 10, 1 << 10);
    let mut dxr = Dxr::new(storage.clone());
    if let Some(limits) = limits {
        dxr.set_split_limits(limits);
    }
    let mut to_a = transition(&[], &a);
    assert_eq!(dxr.apply(&mut to_a), vec![]);

    let stop = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stop, passes, storage) = (stop.clone(), passes.clone(), storage.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (addr, allowed) in &expected {
                    let got = match *addr {
                        IpAddr::V4(v4) => lookup_v4(&storage, u32::from(v4)),
                        IpAddr::V6(v6) => lookup_v6(&storage, &v6.octets()),
                    };
                    assert!(
                        allowed.contains(&got),
                        "{addr}: {got:?}, not one of {allowed:?}"
                    );
                }
                passes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let path: Vec<_> = to_b.iter().chain(back_to_a.iter()).copied().collect();
    let start = Instant::now();
    let mut flips = 0;
    while (passes.load(Ordering::Relaxed) < 200 || flips < 200)
        && start.elapsed() < Duration::from_secs(5)
        && !reader.is_finished()
    {
        for &change in &path {
            assert_eq!(dxr.apply(&mut [change]), vec![]);
        }
        flips += 1;
        // A long quarantine here: the reader is a thread the scheduler may pause, not an
        // XDP program in an RCU section.
        if let Some(then) = Instant::now().checked_sub(Duration::from_secs(2)) {
            dxr.release_quarantined(then);
        }
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("the reader saw a third answer");
    assert_eq!(dxr.split_groups() > 0, limits.is_some(), "split nodes");
    assert!(passes.load(Ordering::Relaxed) > 0 && flips > 0);
    eprintln!(
        "{flips} flips, {} reader passes",
        passes.load(Ordering::Relaxed)
    );
}
