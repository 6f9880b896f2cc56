//! Idempotency-Key records: claiming a key for a POST, replaying the stored response, the
//! in-flight and reuse refusals, and expiry after the configured time (Dwolla: 24 h).
//!
//! Must not touch: how a claim is answered over HTTP (the pipeline) or what the request does.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::shared::{IdempotencyEntry, State, StoredResponse};
use crate::sim::clock::SimTime;

/// What to do with a POST that carries an Idempotency-Key.
#[derive(Debug)]
pub enum Claim {
    /// First use (or the earlier use expired or failed): process it.
    Fresh,
    /// Same key, same request, already done: send the original response again.
    Replay(StoredResponse),
    /// Same key while the first request is in flight: 409.
    InFlight,
    /// Same key, different method, path or body: refused (see `http::pipeline::key_reused`).
    Mismatch,
}

impl State {
    pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(method.as_bytes());
        hasher.update(b" ");
        hasher.update(path.as_bytes());
        hasher.update(b"\n");
        hasher.update(body);
        hasher.finalize().into()
    }

    pub fn claim(
        &mut self,
        key: &str,
        fingerprint: [u8; 32],
        now: SimTime,
        ttl: Duration,
    ) -> Claim {
        self.expire_keys(now, ttl);
        if let Some(entry) = self.idempotency.get(key) {
            if now >= entry.created.plus(ttl) {
                // Expired but not yet swept: forgotten.
                self.idempotency.remove(key);
            } else {
                return match &entry.response {
                    None => Claim::InFlight,
                    Some(_) if entry.fingerprint != fingerprint => Claim::Mismatch,
                    Some(stored) => {
                        self.stats.idempotent_replays += 1;
                        Claim::Replay(stored.clone())
                    }
                };
            }
        }
        self.idempotency.insert(
            key.to_string(),
            IdempotencyEntry {
                fingerprint,
                created: now,
                response: None,
            },
        );
        self.idempotency_order.push_back((now, key.to_string()));
        Claim::Fresh
    }

    /// Ends a claim: remembers a successful response for 24 h, or forgets the key when the
    /// request failed (nothing was created, so a retry must be processed afresh).
    pub fn finish_claim(&mut self, key: &str, response: Option<StoredResponse>) {
        match response {
            Some(stored) => {
                if let Some(entry) = self.idempotency.get_mut(key) {
                    entry.response = Some(stored);
                }
            }
            None => {
                if self
                    .idempotency
                    .get(key)
                    .is_some_and(|e| e.response.is_none())
                {
                    self.idempotency.remove(key);
                }
            }
        }
    }

    fn expire_keys(&mut self, now: SimTime, ttl: Duration) {
        while let Some((created, _)) = self.idempotency_order.front() {
            if now < created.plus(ttl) {
                break;
            }
            let (created, key) = self.idempotency_order.pop_front().expect("peeked");
            if self
                .idempotency
                .get(&key)
                .is_some_and(|e| e.created == created && e.response.is_some())
            {
                self.idempotency.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::shared::test_state as state;
    use super::*;
    use crate::sim::config::Faults;
    use axum::body::Bytes;

    #[test]
    fn keys_replay_conflict_mismatch_and_expire() {
        let mut st = state(Faults::none());
        let day = Duration::from_secs(86_400);
        let fp = State::fingerprint("POST", "/transfers", b"{}");
        let other = State::fingerprint("POST", "/transfers", b"{ }");
        assert!(matches!(st.claim("k", fp, SimTime(0), day), Claim::Fresh));
        assert!(matches!(
            st.claim("k", fp, SimTime(1), day),
            Claim::InFlight
        ));
        st.finish_claim(
            "k",
            Some(StoredResponse {
                status: 201,
                location: Some("l".into()),
                content_type: None,
                body: Bytes::new(),
            }),
        );
        assert!(matches!(
            st.claim("k", fp, SimTime(2), day),
            Claim::Replay(_)
        ));
        assert!(matches!(
            st.claim("k", other, SimTime(3), day),
            Claim::Mismatch
        ));
        assert_eq!(st.stats.idempotent_replays, 1);
        let later = SimTime(86_400_000);
        assert!(matches!(st.claim("k", other, later, day), Claim::Fresh));
        // A failed first attempt frees the key.
        assert!(matches!(st.claim("j", fp, SimTime(0), day), Claim::Fresh));
        st.finish_claim("j", None);
        assert!(matches!(st.claim("j", fp, SimTime(1), day), Claim::Fresh));
    }
}
