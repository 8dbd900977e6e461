//! TODO(helper): being written.
use anyhow::Result;

#[derive(clap::Args)]
pub struct LabArgs {}

pub fn lab(_args: LabArgs) -> Result<()> {
    anyhow::bail!("not implemented yet")
}
