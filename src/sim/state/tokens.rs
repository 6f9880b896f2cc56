//! Access tokens (the token and auth family): minting a JWT-shaped bearer token on the
//! simulator's clock and checking one on every request.
//!
//! Must not touch: the client credentials check (the `POST /token` handler does it) or client
//! tokens (`store::client_tokens`).

use std::time::Duration;

use crate::sim::clock::SimTime;

use super::shared::State;

pub enum TokenCheck {
    Valid,
    Expired,
    Unknown,
}

impl State {
    pub fn mint_token(&mut self, now: SimTime, ttl: Duration) -> String {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use rand::RngCore;
        let expires = now.plus(ttl);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"iss":"payrun-sim","iat":{},"exp":{},"jti":"{}"}}"#,
            now.0 / 1000,
            expires.0 / 1000,
            self.store.new_id()
        ));
        let mut sig = [0u8; 32];
        self.store.rng.fill_bytes(&mut sig);
        let token = format!("connect.{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(sig));
        self.tokens.insert(token.clone(), expires);
        token
    }

    pub fn check_token(&self, token: &str, now: SimTime) -> TokenCheck {
        match self.tokens.get(token) {
            None => TokenCheck::Unknown,
            Some(&expires) if now >= expires => TokenCheck::Expired,
            Some(_) => TokenCheck::Valid,
        }
    }
}
