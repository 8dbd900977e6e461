//! What the machine is, and how much memory the kernel and this process hold.

use std::{
    fs,
    os::fd::{AsFd, AsRawFd},
    process::Command,
};

use anyhow::{Context, Result};
use aya::{maps::MapInfo, programs::Xdp};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    /// `release` or `debug`: only release numbers mean anything.
    pub profile: &'static str,
    /// `git describe --always --dirty` of the work tree, if git answers.
    pub commit: Option<String>,
    /// CPU vulnerability mitigations that make kernel calls and returns slower (retpolines,
    /// SRSO safe RET...): they weigh on every number here.
    pub mitigations: Vec<String>,
}

impl Machine {
    pub fn probe() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        let commit = Command::new("git")
            .args(["describe", "--always", "--dirty"])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            kernel,
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            commit,
            mitigations: mitigations(),
        }
    }
}

/// `name: mitigation` for each CPU vulnerability the kernel mitigates, except the two that every
/// x86 kernel mitigates at no notable cost (spectre_v1, spec_store_bypass).
fn mitigations() -> Vec<String> {
    let dir = "/sys/devices/system/cpu/vulnerabilities";
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let state = fs::read_to_string(entry.path()).ok()?;
            let mitigation = state.trim().strip_prefix("Mitigation: ")?;
            (!["spectre_v1", "spec_store_bypass"].contains(&name.as_str()))
                .then(|| format!("{name}: {mitigation}"))
        })
        .collect();
    found.sort();
    found
}

/// Kernel memory of one BPF map, as `/proc/self/fdinfo/<map fd>` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct MapMemory {
    pub name: String,
    pub id: u32,
    pub max_entries: u32,
    /// `memlock:`, the map's `map_mem_usage()`. Exact for arrays (their whole allocation); for
    /// the LPM trie it is `entries * (node + key + value)`: without the trie's intermediate
    /// nodes and the allocator's rounding, so a lower bound.
    pub memlock: u64,
}

/// The kernel memory of every map the loaded program uses (the program's `map_ids`, each opened
/// by id and its fdinfo read), in the program's order.
pub fn map_memory(program: &Xdp) -> Result<Vec<MapMemory>> {
    let ids = program
        .info()
        .context("program info")?
        .map_ids()
        .context("program map ids")?
        .unwrap_or_default();
    ids.into_iter()
        .map(|id| {
            let info = MapInfo::from_id(id).with_context(|| format!("map id {id}"))?;
            let fd = info.fd().with_context(|| format!("fd of map id {id}"))?;
            let path = format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd());
            let fdinfo = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
            let memlock =
                field(&fdinfo, "memlock:").with_context(|| format!("no memlock in {path}"))?;
            Ok(MapMemory {
                name: info.name_as_str().unwrap_or("?").to_owned(),
                id,
                max_entries: info.max_entries(),
                memlock,
            })
        })
        .collect()
}

/// This process's resident memory, from `/proc/self/status` (bytes).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Rss {
    /// VmRSS: everything resident, including shared mappings such as the mmap-ed BPF arrays
    /// (kernel memory, also counted in the map's memlock).
    pub total: u64,
    /// RssAnon: the process's own heap and stacks, i.e. the agent's userspace data.
    pub anon: u64,
}

impl Rss {
    pub fn now() -> Result<Self> {
        let status =
            fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
        let kib = |key| field(&status, key).map(|kib| kib * 1024);
        Ok(Self {
            total: kib("VmRSS:").context("VmRSS")?,
            anon: kib("RssAnon:").context("RssAnon")?,
        })
    }
}

/// System-wide kernel memory that BPF maps draw from: unreclaimable slab (LPM trie nodes) and
/// vmalloc (arrays), from `/proc/meminfo` (bytes). A cross-check of `memlock`; other activity on
/// the machine shows up in it too.
pub fn kernel_memory() -> Result<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    let kib = |key| field(&meminfo, key).with_context(|| format!("{key} in /proc/meminfo"));
    Ok((kib("SUnreclaim:")? + kib("VmallocUsed:")?) * 1024)
}

/// Waits (at most `timeout`) until [`kernel_memory`] is at most `bytes`: the kernel frees BPF maps
/// some time after their last reference goes.
pub fn wait_kernel_memory_below(bytes: u64, timeout: std::time::Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    while kernel_memory()? > bytes && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

/// Returns freed heap memory to the kernel, so that RSS deltas show live memory, not what the
/// allocator kept from an earlier measurement.
pub fn trim_heap() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
}

/// The first number after `key` on the line that starts with it.
pub fn field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn field_parses_fdinfo_and_status_lines() {
        let text = "pos:\t0\nmemlock:\t67112960\nVmRSS:\t  1234 kB\n";
        assert_eq!(super::field(text, "memlock:"), Some(67_112_960));
        assert_eq!(super::field(text, "VmRSS:"), Some(1234));
        assert_eq!(super::field(text, "map_id:"), None);
    }
}
