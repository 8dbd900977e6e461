//! The standard `process_*` metrics (prometheus-client has none on Linux), from /proc/self.

use super::exposition::{Exposition, count, set};

/// What /proc/self/stat says of us (fields after the command name, see proc(5)).
#[derive(Debug, Default, PartialEq)]
struct Stat {
    cpu_seconds: f64,
    threads: f64,
    start_time_seconds: f64,
    virtual_bytes: f64,
    resident_bytes: f64,
}

/// Parses /proc/self/stat; `boot_time`: the system's boot, seconds since the epoch.
fn parse_stat(text: &str, ticks_per_second: f64, page_size: f64, boot_time: f64) -> Option<Stat> {
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split(' ').collect();
    // proc(5) numbers fields from 1 (pid); `fields[0]` is field 3 (state).
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    Some(Stat {
        cpu_seconds: (field(14)? + field(15)?) / ticks_per_second,
        threads: field(20)?,
        start_time_seconds: boot_time + field(22)? / ticks_per_second,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page_size,
    })
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn stat() -> Option<Stat> {
    // SAFETY: sysconf only reads configuration values.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&text, ticks as f64, page as f64, boot_time()?)
}

fn max_fds() -> Option<f64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0)
        .then_some(limit.rlim_cur as f64)
}

pub fn record(out: &mut Exposition) {
    let cpu = out.counter(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds",
    );
    let resident = out.gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
    );
    let virtual_memory = out.gauge(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes",
    );
    let start = out.gauge(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds",
    );
    let threads = out.gauge("process_threads", "Number of OS threads in the process");
    let open_fds = out.gauge("process_open_fds", "Number of open file descriptors");
    let limit_fds = out.gauge("process_max_fds", "Maximum number of open file descriptors");
    if let Some(stat) = stat() {
        count(&cpu, Vec::new(), stat.cpu_seconds);
        set(&resident, Vec::new(), stat.resident_bytes);
        set(&virtual_memory, Vec::new(), stat.virtual_bytes);
        set(&start, Vec::new(), stat.start_time_seconds);
        set(&threads, Vec::new(), stat.threads);
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        set(&open_fds, Vec::new(), entries.count() as f64);
    }
    if let Some(max) = max_fds() {
        set(&limit_fds, Vec::new(), max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_by_number_even_with_spaces_in_the_name() {
        // pid (comm) state ppid ... utime=14 stime=15 ... threads=20 ... start=22 vsize=23 rss=24
        let text = "42 (router agent) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 \
                    1000 123456789 300 18446744073709551615";
        let stat = parse_stat(text, 100.0, 4096.0, 1_700_000_000.0).unwrap();
        assert_eq!(
            stat,
            Stat {
                cpu_seconds: 3.0,
                threads: 7.0,
                start_time_seconds: 1_700_000_010.0,
                virtual_bytes: 123_456_789.0,
                resident_bytes: 300.0 * 4096.0,
            }
        );
    }

    #[test]
    fn this_process_has_a_resident_size() {
        let stat = stat().expect("/proc/self/stat");
        assert!(stat.resident_bytes > 0.0 && stat.threads >= 1.0);
    }
}
