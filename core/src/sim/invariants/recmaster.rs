//! At most one node acts as recovery master in any generation.
//!
//! Two checks. At every instant, no two running nodes are acting recovery masters
//! (`is_acting_recmaster()`) with the same generation. And a generation is made by one master
//! only: when an acting master moves to a generation it made, no other daemon (still alive in
//! the life that made it, frozen or not) may have made and still be in the same generation, as
//! that would let the two masters' frames pass for one another's. A new master acting in its
//! predecessor's generation until its first recovery is fine: the predecessor is gone.

use super::{Invariant, NodeObs, NodeState, Snapshot};
use crate::types::Generation;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct OneRecmasterPerGeneration {
    /// Per node: (life, generation) at the last step.
    last: Vec<(u64, Generation)>,
    /// Who made each generation: (node, life).
    makers: BTreeMap<u32, (usize, u64)>,
}

impl OneRecmasterPerGeneration {
    /// For `n` nodes.
    pub fn new(n: usize) -> Self {
        OneRecmasterPerGeneration {
            last: alloc::vec![(0, Generation(0)); n],
            makers: BTreeMap::new(),
        }
    }
}

impl Invariant for OneRecmasterPerGeneration {
    fn name(&self) -> &'static str {
        "one-recmaster-per-generation"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        let acts = |o: &NodeObs| o.active() && o.acting;
        for (i, o) in s.nodes.iter().enumerate().filter(|(_, o)| acts(o)) {
            // Acting masters are few: a quadratic scan allocates nothing.
            if let Some(j) =
                (0..i).find(|&j| acts(&s.nodes[j]) && s.nodes[j].generation == o.generation)
            {
                return Err(format!(
                    "n{j} and n{i} both act as recovery master in generation {}",
                    o.generation.0
                ));
            }
        }
        for (i, o) in s.nodes.iter().enumerate() {
            let alive = o.state != NodeState::Down && o.state != NodeState::HostDown;
            if !alive {
                continue;
            }
            let (life, before) = self.last[i];
            let moved = life == o.life && o.generation > before;
            self.last[i] = (o.life, o.generation);
            if !(moved && o.acting) {
                continue;
            }
            let g = o.generation.0;
            if let Some(&(m, mlife)) = self.makers.get(&g) {
                let other = &s.nodes[m];
                let still = m != i
                    && other.life == mlife
                    && other.state != NodeState::Down
                    && other.state != NodeState::HostDown
                    && other.generation.0 == g;
                if still {
                    return Err(format!(
                        "generation {g} made twice: by n{m} (life {mlife}, {:?}, still in it) and \
                         now by n{i} (life {})",
                        other.state, o.life
                    ));
                }
            }
            self.makers.insert(g, (i, o.life));
        }
        Ok(())
    }
}
