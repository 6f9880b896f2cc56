//! Client tokens (`POST /client-tokens`, classic API): the opaque token drop-in components are
//! given. The simulator keeps none of them; it only draws one from the seeded generator.
//!
//! Must not touch: access tokens (`state::tokens`) or the party it is issued for.

use rand::Rng;

use super::tables::Store;

impl Store {
    /// A 50-character alphanumeric token, as Dwolla's look.
    pub fn mint_client_token(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..50)
            .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    }
}
