//! Generations only grow: a daemon never goes back to an older generation during its life (a
//! restarted daemon starts afresh).

use super::{Invariant, NodeState, Snapshot};
use crate::types::Generation;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct GenerationsGrow {
    last: Vec<(u64, Generation)>,
}

impl GenerationsGrow {
    /// For `n` nodes.
    pub fn new(n: usize) -> Self {
        GenerationsGrow {
            last: alloc::vec![(0, Generation(0)); n],
        }
    }
}

impl Invariant for GenerationsGrow {
    fn name(&self) -> &'static str {
        "generations-grow"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        for (i, o) in s.nodes.iter().enumerate() {
            if o.life == 0 || matches!(o.state, NodeState::Down | NodeState::HostDown) {
                continue;
            }
            let (life, g) = self.last[i];
            if life == o.life && o.generation < g {
                return Err(format!(
                    "n{i} (life {life}) went back from generation {} to {}",
                    g.0, o.generation.0
                ));
            }
            self.last[i] = (o.life, o.generation);
        }
        Ok(())
    }
}
