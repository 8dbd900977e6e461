//! The XDP program's opt-in debug events (`[datapath] log = "debug"`, `run --xdp-log`):
//! why a frame was passed to the kernel or dropped, read from aya-log's ring buffer and
//! forwarded into the agent's log (tracing, target `xdp`, level INFO: asked for, so shown).
//!
//! Off (the default) the program is loaded with `XDP_LOG = 0`, a read-only global the
//! verifier prunes the event code with (`router-ebpf/src/debug_log.rs`), and the ring buffer
//! shrinks to one page.

use anyhow::{Context, Result};
use aya_log::EbpfLogger;
use tokio::io::{Interest, unix::AsyncFd};

use super::Datapath;

/// The program's global that switches the events on (1) or off (0).
pub const XDP_LOG_GLOBAL: &str = "XDP_LOG";
/// aya-log's ring buffer in the program.
const RING_BUFFER: &str = "AYA_LOGS";
/// Its size with the events on: aya-log's default, room for about a thousand events between
/// two reads.
const RING_BYTES_ON: u32 = 128 << 10;

/// The ring buffer's size: a ring buffer's size is a power-of-two number of pages, so off it
/// is one page.
pub(super) fn ring_bytes(on: bool) -> u32 {
    if on {
        RING_BYTES_ON
    } else {
        // SAFETY: sysconf(3) reads a constant.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u32::try_from(page).unwrap_or(4096)
    }
}

/// aya-log's records, one tracing event each.
struct ToTracing;

impl log::Log for ToTracing {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        tracing::info!(target: "xdp", "{}", record.args());
    }

    fn flush(&self) {}
}

/// Reads the program's events.
pub struct XdpLog {
    logger: EbpfLogger<ToTracing>,
}

impl XdpLog {
    /// Forwards every event waiting in the ring buffer.
    pub fn drain(&mut self) {
        self.logger.flush();
    }

    /// Forwards the events as they come, for as long as the agent runs.
    pub fn spawn(self) -> Result<tokio::task::JoinHandle<()>> {
        // SAFETY: the logger owns the ring buffer's fd, open and the same as long as it lives.
        let mut ring = unsafe { AsyncFd::register_with_interest(self.logger, Interest::READABLE) }
            .map_err(std::io::Error::from)
            .context("watching the XDP log ring buffer")?;
        Ok(tokio::spawn(async move {
            loop {
                let Ok(mut ready) = ring.readable_mut().await else {
                    tracing::warn!("XDP log: the ring buffer cannot be polled; events stop");
                    return;
                };
                ready.get_inner_mut().flush();
                ready.clear_ready();
            }
        }))
    }
}

impl Datapath {
    /// The program's event reader: `None` unless loaded with `xdp_log`. Once only (the reader
    /// takes the ring buffer).
    pub fn xdp_log(&mut self) -> Result<Option<XdpLog>> {
        if !self.options.xdp_log {
            return Ok(None);
        }
        let logger = EbpfLogger::init_with_logger(&mut self.ebpf, ToTracing)
            .with_context(|| format!("reading the program's {RING_BUFFER} ring buffer"))?;
        Ok(Some(XdpLog { logger }))
    }
}
