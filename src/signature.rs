//! Webhook signatures as Dwolla computes them: HMAC-SHA256 over the raw body bytes, keyed with
//! the subscription secret, sent as 64 lower-case hex characters in `X-Request-Signature-SHA-256`.
//!
//! Pure functions; the simulator signs with [`sign`] and the webhook receiver checks with
//! [`verify`], which compares in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "X-Request-Signature-SHA-256";

type HmacSha256 = Hmac<Sha256>;

/// The lower-case hex signature of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `signature_hex` is the signature of `body` under `secret`. Malformed hex is simply
/// not a valid signature.
pub fn verify(secret: &[u8], body: &[u8], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector from dwolla-api-notes.md section 7.
    const SECRET: &[u8] = b"sshhhhhh";
    const BODY: &[u8] =
        br#"{"id":"80d8ff7d-7e5a-4975-ade8-9e97306d6c15","topic":"transfer_created"}"#;
    const EXPECTED: &str = "8f8effa0823249750e4b1507edeaaa8a3f9f3f5bcced1ba1d68885995a8bcc44";

    #[test]
    fn signs_the_documented_test_vector() {
        assert_eq!(sign(SECRET, BODY), EXPECTED);
    }

    #[test]
    fn verifies_only_the_exact_body_and_secret() {
        assert!(verify(SECRET, BODY, EXPECTED));
        assert!(verify(SECRET, BODY, &EXPECTED.to_uppercase()));
        assert!(!verify(b"other", BODY, EXPECTED));
        assert!(!verify(SECRET, b"{\"id\":\"x\"}", EXPECTED));
        assert!(!verify(SECRET, BODY, "not hex"));
        assert!(!verify(SECRET, BODY, ""));
    }
}
