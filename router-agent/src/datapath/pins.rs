//! Attaching the program (behind a pinned link, replacing a previous agent's atomically),
//! pinning the maps, and the clean way out.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use aya::programs::{
    links::{FdLink, PinnedLink},
    xdp::{XdpLink, XdpMode},
};
use router_common::map_names;

use super::Datapath;

/// Pinned XDP link of an interface: `<pin dir>/link_<ifname>`.
pub fn link_pin_path(pin_dir: &Path, ifname: &str) -> PathBuf {
    pin_dir.join(format!("link_{ifname}"))
}

impl Datapath {
    /// Attaches to `ifname`: replaces the program behind its pinned link if a previous agent
    /// left one (atomic, no packet sees no program), else attaches and pins a new link.
    pub fn attach(&mut self, ifname: &str, ifindex: u32, mode: XdpMode) -> Result<()> {
        let pin_dir = self.options.pin_dir.clone();
        std::fs::create_dir_all(&pin_dir)
            .with_context(|| format!("creating pin directory {}", pin_dir.display()))?;
        let link_path = link_pin_path(&pin_dir, ifname);
        // From here on the program may read the tables.
        self.publish_tables();
        let program = self.program_mut();
        if link_path.exists() {
            let pinned = PinnedLink::from_pin(&link_path)
                .with_context(|| format!("opening pinned link {}", link_path.display()))?;
            let link = XdpLink::try_from(FdLink::from(pinned))
                .with_context(|| format!("{} is not an XDP link", link_path.display()))?;
            program
                .attach_to_link(link)
                .with_context(|| format!("replacing the program on {ifname}"))?;
            self.replaced.insert(ifname.to_owned());
            tracing::info!(ifname, "replaced the XDP program behind the pinned link");
            // The pin stays; nothing more to keep.
            return Ok(());
        }
        let id = program
            .attach_to_if_index(ifindex, mode)
            .with_context(|| format!("attaching XDP to {ifname} ({mode:?} mode)"))?;
        let link = program.take_link(id)?;
        let fd_link = FdLink::try_from(link).map_err(|err| {
            anyhow!("{ifname}: the kernel attached without a bpf_link ({err}); cannot pin")
        })?;
        let pinned = fd_link
            .pin(&link_path)
            .with_context(|| format!("pinning {}", link_path.display()))?;
        self.links.insert(ifname.to_owned(), pinned);
        tracing::info!(ifname, ?mode, "attached XDP program");
        Ok(())
    }

    /// Pins every map as `<pin dir>/<name>`, replacing what a previous agent pinned there,
    /// stamped as running: the next run may adopt them.
    pub fn pin_maps(&mut self) -> Result<()> {
        self.write_stamp(router_common::STAMP_RUNNING)?;
        let pin_dir = &self.options.pin_dir;
        std::fs::create_dir_all(pin_dir)
            .with_context(|| format!("creating pin directory {}", pin_dir.display()))?;
        for (name, map) in &self.maps {
            let path = pin_dir.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(err).with_context(|| format!("unpinning {}", path.display()));
                }
            }
            map.pin(&path)
                .with_context(|| format!("pinning {}", path.display()))?;
        }
        self.pinned = true;
        Ok(())
    }

    /// A cold start that failed: detaches from the interfaces it attached to (`ifnames`:
    /// through the links it pinned, or a refused previous datapath's pinned links whose
    /// program it replaced) and removes the map pins only if it pinned them, so that a
    /// pin directory it was not going to use keeps what was there.
    pub fn abandon_start(mut self, ifnames: &[String]) -> Result<()> {
        let pinned = self.pinned;
        let pin_dir = self.options.pin_dir.clone();
        let mut first_error = None;
        for ifname in ifnames {
            let path = link_pin_path(&pin_dir, ifname);
            let link = match self.links.remove(ifname) {
                Some(link) => Ok(link),
                None if self.replaced.contains(ifname) => PinnedLink::from_pin(&path)
                    .with_context(|| format!("opening pinned link {}", path.display())),
                None => continue,
            };
            // Unpinning leaves us the last reference: dropping it detaches the program.
            match link.and_then(|link| Ok(link.unpin()?)) {
                Ok(link) => drop(link),
                Err(err) => {
                    first_error.get_or_insert(err.context(format!("detaching from {ifname}")));
                }
            }
        }
        if pinned {
            for name in map_names::ALL {
                let _ = std::fs::remove_file(pin_dir.join(name));
            }
        }
        // Only if empty: what someone else pinned there stays.
        let _ = std::fs::remove_dir(&pin_dir);
        first_error.map_or(Ok(()), Err)
    }

    /// Detaches from every interface and removes our pins: the clean way out.
    pub fn detach_and_unpin(mut self, ifnames: &[String]) -> Result<()> {
        let pin_dir = self.options.pin_dir.clone();
        for ifname in ifnames {
            let path = link_pin_path(&pin_dir, ifname);
            let link = match self.links.remove(ifname) {
                Some(link) => link,
                None if path.exists() => PinnedLink::from_pin(&path)?,
                None => continue,
            };
            // Unpinning leaves us the last reference: dropping it detaches the program.
            drop(link.unpin()?);
        }
        for name in map_names::ALL {
            let _ = std::fs::remove_file(pin_dir.join(name));
        }
        let _ = std::fs::remove_dir(&pin_dir);
        Ok(())
    }
}
