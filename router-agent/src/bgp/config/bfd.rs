//! Each compiled neighbor's BFD parameters, from its `bfd` key and the `[bfd]` section.

use super::{BgpConfig, BgpSetup};
use crate::{bfd::config::BfdConfig, bgp::policy::PolicyError};

impl BgpConfig {
    /// [`BgpConfig::compile`], with each neighbor and dynamic range given the BFD parameters
    /// its `bfd` key names. Errors name the key (`bgp.neighbor[1].bfd`).
    pub fn compile_with_bfd(&self, bfd: &BfdConfig) -> Result<BgpSetup, PolicyError> {
        let mut setup = self.compile()?;
        let invalid = |(key, reason)| PolicyError { key, reason };
        bfd.validate().map_err(invalid)?;
        // compile() keeps the configuration's order, one compiled entry per configured one.
        for (i, (config, neighbor)) in self.neighbors.iter().zip(&mut setup.neighbors).enumerate() {
            if let Some(choice) = &config.bfd {
                neighbor.bfd = bfd
                    .session_config(&format!("bgp.neighbor[{i}].bfd"), choice)
                    .map_err(invalid)?;
            }
        }
        let dynamic = self
            .dynamic_neighbors
            .iter()
            .zip(&mut setup.dynamic_neighbors);
        for (i, (config, range)) in dynamic.enumerate() {
            if let Some(choice) = &config.bfd {
                range.template.bfd = bfd
                    .session_config(&format!("bgp.dynamic_neighbor[{i}].bfd"), choice)
                    .map_err(invalid)?;
            }
        }
        Ok(setup)
    }
}
