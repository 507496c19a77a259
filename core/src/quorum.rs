//! Quorum arithmetic, votequorum style: one vote per non-deleted node.

/// Whether `votes` connected votes (this node included) form a strict majority of `expected`.
pub fn has_majority(votes: usize, expected: usize) -> bool {
    expected > 0 && votes * 2 > expected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_majority() {
        assert!(has_majority(1, 1));
        assert!(!has_majority(1, 2));
        assert!(has_majority(2, 3));
        assert!(!has_majority(2, 4));
        assert!(has_majority(3, 5));
        assert!(!has_majority(2, 5));
        assert!(!has_majority(0, 0));
    }
}
