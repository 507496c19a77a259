//! Public-IP allocation (CTDB's LCP2, deterministic and nondeterministic). Being written for
//! issue 4.
