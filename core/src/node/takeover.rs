//! Takeover runs: after every recovery the recovery master reallocates the public addresses
//! (seed 000: release what must move, wait for the acknowledgements, take, then "IP
//! reallocated" to all). This is the layer's place; the public-address work fills it in.

use super::ctx::Ctx;

/// The takeover layer.
#[derive(Debug, Default)]
pub(super) struct Takeover {}

impl Takeover {
    /// A recovery committed: reallocate.
    pub fn run(&mut self, ctx: &mut Ctx) {
        ctx.stats.takeover_runs += 1;
    }
}
