//! The CTDB public_addresses file. (Being written for issue 4.)

use alloc::vec::Vec;

/// One public address line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicAddress;

/// A parsed public_addresses file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublicAddresses {
    /// The addresses, in file order.
    pub addresses: Vec<PublicAddress>,
}
