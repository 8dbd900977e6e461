//! `cargo xtask bench services`: the cost of health checks. N services (default 1,000), each
//! with one TCP check every second against its own listener on 127.0.0.1 (all in this
//! process, a current-thread runtime accepting and closing), run by router-agent under
//! `taskset -c 0,1` in a lab namespace. Reported over the measured window: the agent's CPU
//! (utime + stime from /proc/PID/stat) and the check latency p50/p99 merged from the
//! `show services --json` histograms (log2 buckets: an upper bound within 2x).
//!
//! The agent's one neighbor (in a second namespace) never answers: the services need an
//! export policy that permits their prefixes, not a session.

use std::{
    fmt::Write as _,
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use netns_lab::{Namespace, remove_pin_dir};
use serde::Serialize;

const TAG: &str = "hrsv";
const FIRST_PORT: u16 = 20_000;

#[derive(clap::Args)]
pub struct Args {
    /// Services, each with one TCP check.
    #[arg(long, default_value_t = 1000)]
    services: u16,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seconds before measuring: every service has run its first rounds.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Also print the results as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Outcome {
    services: u16,
    interval_s: u64,
    seconds: f64,
    services_up: usize,
    checks: u64,
    /// Agent CPU over the window, percent of one CPU.
    agent_cpu_percent: f64,
    check_latency_p50_us: Option<u64>,
    check_latency_p99_us: Option<u64>,
    max_resident_kib: Option<u64>,
}

pub fn run(args: Args) -> Result<()> {
    ensure!(
        args.services > 0 && args.services <= 10_000,
        "--services: 1..10000"
    );
    crate::ensure_bpffs()?;
    let agent = crate::bench_bgp::dut::agent_binary()?;
    netns_lab::remove_stale_labs(&format!("{TAG}-"));
    let name = format!("{TAG}-{}", std::process::id());
    let dut = Namespace::create(&format!("{name}-dut"))?;
    let peer = Namespace::create(&format!("{name}-peer"))?;
    let dir = std::env::temp_dir().join(&name);
    let pin_dir = Path::new("/sys/fs/bpf").join(&name);
    std::fs::create_dir_all(&dir)?;
    let result = measure(&args, &agent, &dut, &peer, &dir, &pin_dir);
    remove_pin_dir(&pin_dir);
    let _ = std::fs::remove_dir_all(&dir);
    let outcome = result?;
    print!("{}", render(&outcome));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    }
    Ok(())
}

fn measure(
    args: &Args,
    agent: &Path,
    dut: &Namespace,
    peer: &Namespace,
    dir: &Path,
    pin_dir: &Path,
) -> Result<Outcome> {
    netns_lab::veth(
        (dut, "up0", [0x02, 0, 0, 0, 0xfe, 2]),
        (peer, "dn0", [0x02, 0, 0, 0, 0xfe, 1]),
    )?;
    dut.ip(&["addr", "add", "10.254.0.2/24", "dev", "up0"])?;
    peer.ip(&["addr", "add", "10.254.0.1/24", "dev", "dn0"])?;
    let _listeners = Listeners::start(dut, args.services)?;

    let config_path = dir.join("agent.toml");
    let socket = dir.join("agent.sock");
    std::fs::write(&config_path, config(args.services, pin_dir, &socket))?;
    let log = std::fs::File::create(dir.join("agent.log"))?;
    let mut child: Child = dut
        .command("taskset")
        .arg("-c")
        .arg("0,1")
        .arg(agent)
        .args(["run", "-c"])
        .arg(&config_path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting router-agent")?;
    let outcome = (|| {
        std::thread::sleep(Duration::from_secs(args.warmup));
        ensure_running(&mut child, dir)?;
        let (cpu_before, started) = (cpu_ticks(child.id())?, Instant::now());
        std::thread::sleep(Duration::from_secs(args.seconds));
        ensure_running(&mut child, dir)?;
        let cpu = cpu_ticks(child.id())? - cpu_before;
        let seconds = started.elapsed().as_secs_f64();
        let services = show_services(dut, agent, &config_path)?;
        let mut buckets = vec![0u64; 32];
        let mut up = 0;
        for service in services.as_array().into_iter().flatten() {
            up += usize::from(service["state"] == "up");
            for (i, count) in service["latency_histogram"]["buckets"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if let Some(slot) = buckets.get_mut(i) {
                    *slot += count.as_u64().unwrap_or(0);
                }
            }
        }
        // SAFETY: sysconf has no memory effects.
        let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Ok(Outcome {
            services: args.services,
            interval_s: 1,
            seconds,
            services_up: up,
            checks: buckets.iter().sum(),
            agent_cpu_percent: cpu as f64 / ticks_per_second / seconds * 100.0,
            check_latency_p50_us: quantile(&buckets, 0.5),
            check_latency_p99_us: quantile(&buckets, 0.99),
            max_resident_kib: status_field(child.id(), "VmHWM:"),
        })
    })();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
    outcome
}

fn ensure_running(child: &mut Child, dir: &Path) -> Result<()> {
    if let Some(status) = child.try_wait()? {
        let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
        bail!("router-agent exited ({status}):\n{log}");
    }
    Ok(())
}

fn config(services: u16, pin_dir: &Path, socket: &Path) -> String {
    let mut text = format!(
        "[datapath]\npin_dir = \"{}\"\n[control]\nsocket = \"{}\"\n[[interface]]\nname = \"up0\"\n\
         [bgp]\nasn = 65101\nrouter_id = \"10.254.0.2\"\n\
         [[bgp.neighbor]]\naddress = \"10.254.0.1\"\nremote_as = 65000\nexport = \"all\"\n",
        pin_dir.display(),
        socket.display()
    );
    for i in 0..services {
        let vip = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + u32::from(i));
        let _ = write!(
            text,
            "[[service]]\nname = \"s{i}\"\nprefixes = [\"{vip}/32\"]\ninterval = \"1s\"\n\
             timeout = \"500ms\"\n[[service.check]]\ntcp = \"127.0.0.1:{}\"\n",
            FIRST_PORT + i
        );
    }
    text
}

fn show_services(dut: &Namespace, agent: &Path, config: &Path) -> Result<serde_json::Value> {
    let out = dut
        .command(agent)
        .args(["show", "services", "--json", "-c"])
        .arg(config)
        .output()?;
    ensure!(
        out.status.success(),
        "show services: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The upper bound (µs) of the log2 bucket holding quantile `q`.
fn quantile(buckets: &[u64], q: f64) -> Option<u64> {
    let total: u64 = buckets.iter().sum();
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total.max(1));
    let mut seen = 0;
    for (i, count) in buckets.iter().enumerate() {
        seen += count;
        if total > 0 && seen >= rank {
            return Some(1u64 << i);
        }
    }
    None
}

/// utime + stime of a process, in clock ticks (threads included).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("/proc/PID/stat")?
        .1
        .split_whitespace()
        .collect();
    // After "(comm)": state is field 3 of stat(5); utime 14 and stime 15.
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

fn status_field(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    crate::bench_cost::sys::field(&status, key)
}

/// The listeners the checks connect to: one thread in the namespace, a current-thread
/// runtime accepting on all of them and closing at once.
struct Listeners {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listeners {
    fn start(namespace: &Namespace, count: u16) -> Result<Self> {
        let mut listeners = Vec::new();
        namespace.run_in(|| {
            for i in 0..count {
                let address = SocketAddr::from((Ipv4Addr::LOCALHOST, FIRST_PORT + i));
                let listener = std::net::TcpListener::bind(address)
                    .with_context(|| format!("binding {address}"))?;
                listener.set_nonblocking(true)?;
                listeners.push(listener);
            }
            Ok(())
        })?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                for listener in listeners {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("nonblocking");
                    tokio::spawn(async move {
                        while let Ok((stream, _)) = listener.accept().await {
                            drop(stream);
                        }
                    });
                }
                // Until told to stop (checked rarely: it only ends the run).
                while matches!(
                    stopped.try_recv(),
                    Err(std::sync::mpsc::TryRecvError::Empty)
                ) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        });
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn render(o: &Outcome) -> String {
    let us = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{:.1} ms", v as f64 / 1000.0));
    format!(
        "bench services: {} services, one TCP check each every {} s, {:.0} s measured\n\
         services up:            {}\n\
         checks in histograms:   {}\n\
         agent CPU:              {:.1} % of one CPU\n\
         check latency p50/p99:  {} / {} (log2 bucket upper bounds)\n\
         agent peak RSS:         {} KiB\n",
        o.services,
        o.interval_s,
        o.seconds,
        o.services_up,
        o.checks,
        o.agent_cpu_percent,
        us(o.check_latency_p50_us),
        us(o.check_latency_p99_us),
        o.max_resident_kib.map_or("-".to_owned(), |v| v.to_string()),
    )
}
