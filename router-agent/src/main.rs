//! `router-agent`: hostrouter's daemon and its command line.

use std::{io::Write, net::IpAddr, path::PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};
use router_agent::{config::Config, control, daemon, show};

/// `println!` that takes a closed pipe (`router-agent show routes | head -1`) as the reader
/// having seen enough: no panic, no error, the command's own result stands.
macro_rules! say {
    ($($arg:tt)*) => {
        write_stdout(&format!($($arg)*))
    };
}

#[derive(Parser)]
#[command(
    version,
    about = "hostrouter: routing on the host with an XDP fast path"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the XDP program, program the FIB and keep it in step with the kernel.
    Run {
        #[arg(short, long, default_value = "/etc/hostrouter/router.toml")]
        config: PathBuf,
        /// SIGTERM / SIGINT is a planned restart: the XDP program, the pinned maps and the
        /// kernel routes keep forwarding, and the next start adopts them (BGP graceful
        /// restart). Without it, SIGTERM is a full stop.
        #[arg(long)]
        keep_datapath: bool,
        /// Load the XDP program with its debug events (why frames are passed or dropped) in
        /// the log: `[datapath] log = "debug"`. Costs per packet; off by default.
        #[arg(long)]
        xdp_log: bool,
    },
    /// Validate a configuration file and exit.
    Check {
        #[arg(short, long, default_value = "/etc/hostrouter/router.toml")]
        config: PathBuf,
    },
    /// Show what the datapath holds, read from the pinned maps.
    Show {
        #[command(subcommand)]
        what: ShowCommand,
        /// The bpffs directory the agent pins to (default: from --config, else the default).
        #[arg(long, global = true)]
        pin_dir: Option<PathBuf>,
        #[arg(short, long, global = true)]
        config: Option<PathBuf>,
        #[arg(long, global = true)]
        json: bool,
    },
    /// Make the running agent re-read its configuration file and apply it without a restart:
    /// static routes and BGP (neighbors, import and export policy, originated routes; no
    /// session is reset unless its own parameters changed). Changes that need a restart are
    /// refused, and then nothing is applied. SIGHUP does the same.
    Reload {
        #[arg(short, long, default_value = "/etc/hostrouter/router.toml")]
        config: PathBuf,
    },
    /// Restart the running agent in place, losing nothing: sessions end the graceful restart
    /// way, the datapath keeps forwarding, and the agent executes its binary again (an
    /// upgraded one if it was replaced) with the same arguments; the new process adopts the
    /// datapath. Same PID, so a service manager keeps tracking it.
    Restart {
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Stop the running agent fully: sessions closed, program detached, maps unpinned,
    /// kernel routes removed (whatever --keep-datapath says).
    Stop {
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Act on the running agent.
    Clear {
        #[command(subcommand)]
        what: ClearCommand,
        /// The agent's configuration (for its control socket).
        #[arg(short, long, global = true)]
        config: Option<PathBuf>,
    },
    /// Drain the host (RFC 8326 graceful shutdown): every route it announces, or one
    /// service's, is re-sent tagged GRACEFUL_SHUTDOWN (65535:0) and prepended, so that the
    /// network moves traffic elsewhere before anything is withdrawn. Kept in the drain state
    /// file: a restart or a reboot comes back drained until `undrain`.
    Drain {
        /// Only this service's prefixes.
        #[arg(long, value_parser = router_agent::drain::request::parse_service)]
        service: Option<String>,
        /// Extra own-AS prepends on eBGP while drained, 0-10 (default: `[drain] prepend`).
        #[arg(long, value_parser = router_agent::drain::request::parse_prepend)]
        prepend: Option<u8>,
        /// Withdraw the drained routes after this long (default: `[drain] withdraw_after`).
        #[arg(long, value_parser = router_agent::drain::config::parse_duration)]
        withdraw_after: Option<std::time::Duration>,
        /// Return once every peer has been sent the drained routes.
        #[arg(long)]
        wait: bool,
        /// With --wait: return after this long at most (default 10s).
        #[arg(long, requires = "wait", value_parser = router_agent::drain::config::parse_duration)]
        max_wait: Option<std::time::Duration>,
        /// With --wait: then also until the traffic XDP forwards for the drained prefixes
        /// has moved (under --idle-below packets/s for 2 s), within --max-wait.
        #[arg(long, requires = "wait")]
        wait_traffic: bool,
        /// With --wait-traffic: packets per second counted as moved (default 10).
        #[arg(long, requires = "wait_traffic")]
        idle_below: Option<u64>,
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// End a drain: everything, or one service's.
    Undrain {
        #[arg(long, value_parser = router_agent::drain::request::parse_service)]
        service: Option<String>,
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Write the manual pages (roff) into DIR: router-agent.8 and one per subcommand.
    /// Used to build the package (`cargo xtask deb`).
    #[command(hide = true)]
    Manpages { dir: PathBuf },
}

#[derive(Subcommand)]
enum ClearCommand {
    /// Hard-reset a BGP session (Cease / Administrative Reset) and restart it at once; also
    /// ends a max-prefix hold-down.
    Neighbor { address: IpAddr },
}

#[derive(Subcommand)]
enum ShowCommand {
    /// Routes, their nexthop groups and nexthops.
    Fib,
    /// Verdict and per-nexthop counters.
    Counters,
    /// BGP neighbors: state, uptime, prefixes, last error (asks the running agent).
    Neighbors,
    /// BGP routes with every path, best/multipath marks and attributes (asks the agent).
    Routes,
    /// FIB route/group/nexthop counts and prefixes received per neighbor (asks the agent).
    Status,
    /// BFD sessions: state, remote state, discriminators, negotiated intervals (asks the
    /// agent).
    Bfd,
    /// `[[redistribute]]` rules: prefixes announced and held back by the limit (asks the
    /// agent).
    Redistribute,
    /// Health-checked services: state, last result per check, latency, flaps (asks the
    /// agent).
    Services,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config: path,
            keep_datapath,
            xdp_log,
        } => {
            init_logging();
            // Resolved now: `restart` runs this path even once an upgrade replaced the file.
            let invocation = daemon::Invocation::current()?;
            let mut config = Config::load(&path)?;
            if xdp_log {
                config.datapath.log = router_agent::config::XdpLogLevel::Debug;
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let options = daemon::RunOptions {
                keep_datapath,
                config_path: path,
            };
            let exit = runtime.block_on(daemon::run(config, options))?;
            drop(runtime);
            match exit {
                daemon::Exit::ReExec => Err(invocation.exec()),
                daemon::Exit::Stop | daemon::Exit::PlannedRestart => Ok(()),
            }
        }
        Command::Restart { ref config } | Command::Stop { ref config } => {
            let restart = matches!(cli.command, Command::Restart { .. });
            let config = config.as_ref().map(|path| Config::load(path)).transpose()?;
            let query = if restart {
                control::Query::Restart
            } else {
                control::Query::Stop
            };
            let answer = control::query(&control_socket(config.as_ref()), query)?;
            let pid = &answer["pid"];
            if restart {
                say!("router-agent (pid {pid}) restarting; the new process adopts the datapath")
            } else {
                say!("router-agent (pid {pid}) stopping")
            }
        }
        Command::Check { config } => {
            let parsed = Config::load(&config)?;
            say!(
                "{}: ok ({} interfaces, {} routes, engine {:?})",
                config.display(),
                parsed.interfaces.len(),
                parsed.routes.len(),
                parsed.engine()
            )?;
            // Not errors: what may be put right on the host before the service is needed.
            for (index, service) in parsed.service.iter().enumerate() {
                for warning in service.warnings(index) {
                    say!("warning: {warning}")?;
                }
            }
            Ok(())
        }
        Command::Reload { config } => {
            // Checked here too, so that a typo is reported before the agent is asked.
            let parsed = Config::load(&config)?;
            let answer = control::query(&control_socket(Some(&parsed)), control::Query::Reload)?;
            // The agent re-reads the file it was started with: say which one that was.
            let loaded = answer["config"].as_str().unwrap_or("?");
            say!(
                "{loaded}: reloaded\n{}",
                serde_json::to_string_pretty(&answer)?
            )
        }
        Command::Clear {
            what: ClearCommand::Neighbor { address },
            config,
        } => {
            let config = config.map(|path| Config::load(&path)).transpose()?;
            control::query(
                &control_socket(config.as_ref()),
                control::Query::ClearNeighbor(address),
            )?;
            say!("neighbor {address}: session reset")
        }
        Command::Show {
            what,
            pin_dir,
            config,
            json,
        } => {
            let config = config.map(|path| Config::load(&path)).transpose()?;
            let pin_dir = match (pin_dir, &config) {
                (Some(dir), _) => dir,
                (None, Some(config)) => config.datapath.pin_dir.clone(),
                (None, None) => router_agent::config::DatapathConfig::default().pin_dir,
            };
            let socket = control_socket(config.as_ref());
            let text = match what {
                ShowCommand::Fib => {
                    let view = show::fib(&pin_dir)?;
                    if json {
                        serde_json::to_string_pretty(&view)?
                    } else {
                        show::render_fib(&view)
                    }
                }
                ShowCommand::Neighbors
                | ShowCommand::Routes
                | ShowCommand::Status
                | ShowCommand::Bfd => {
                    let query = match what {
                        ShowCommand::Neighbors => control::Query::Neighbors,
                        ShowCommand::Routes => control::Query::Routes,
                        ShowCommand::Bfd => control::Query::Bfd,
                        _ => control::Query::Status,
                    };
                    let value = control::query(&socket, query)?;
                    if json {
                        serde_json::to_string_pretty(&value)?
                    } else {
                        match what {
                            ShowCommand::Neighbors => show::render_neighbors(&value),
                            ShowCommand::Routes => show::render_routes(&value),
                            ShowCommand::Bfd => router_agent::bfd::show::render_bfd(&value),
                            _ => show::render_status(&value),
                        }
                    }
                }
                ShowCommand::Counters => {
                    let view = show::counters(&pin_dir)?;
                    if json {
                        serde_json::to_string_pretty(&view)?
                    } else {
                        show::render_counters(&view)
                    }
                }
                ShowCommand::Redistribute => {
                    let value = control::query(&socket, control::Query::Redistribute)?;
                    if json {
                        serde_json::to_string_pretty(&value)?
                    } else {
                        router_agent::redistribute::render(&value)
                    }
                }
                ShowCommand::Services => {
                    let value = control::query(&socket, control::Query::Services)?;
                    if json {
                        serde_json::to_string_pretty(&value)?
                    } else {
                        router_agent::services::show::render_services(&value)
                    }
                }
            };
            say!("{}", text.trim_end())
        }
        Command::Drain {
            service,
            prepend,
            withdraw_after,
            wait,
            max_wait,
            wait_traffic,
            idle_below,
            config,
        } => {
            let config = config.map(|path| Config::load(&path)).transpose()?;
            let request = router_agent::drain::DrainRequest {
                service,
                prepend,
                withdraw_after,
                wait,
                max_wait,
                wait_traffic,
                idle_below,
            };
            let answer = control::query(
                &control_socket(config.as_ref()),
                control::Query::Drain(request),
            )?;
            say!("{}", serde_json::to_string_pretty(&answer)?)
        }
        Command::Undrain { service, config } => {
            let config = config.map(|path| Config::load(&path)).transpose()?;
            let request = router_agent::drain::UndrainRequest { service };
            let answer = control::query(
                &control_socket(config.as_ref()),
                control::Query::Undrain(request),
            )?;
            say!("{}", serde_json::to_string_pretty(&answer)?)
        }
        Command::Manpages { dir } => {
            use clap::CommandFactory;
            for page in router_agent::manpages::write(Cli::command(), &dir)? {
                say!("{}", page.display())?;
            }
            Ok(())
        }
    }
}

fn write_stdout(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => Ok(result?),
    }
}

/// The control socket of the agent running `config` (the default one without).
fn control_socket(config: Option<&Config>) -> PathBuf {
    config.map_or_else(
        || router_agent::config::ControlConfig::default().socket,
        |config| config.control.socket.clone(),
    )
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}
