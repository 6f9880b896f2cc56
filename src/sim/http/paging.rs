//! Paged lists: `limit` and `cursor` from the query, opaque cursors, and the `self`/`next`/
//! `prev` links of a page.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::sim::error::ApiError;
use crate::sim::state::Shared;
use crate::sim::store::{HAL, Page};

pub(super) struct Paging {
    pub(super) limit: usize,
    pub(super) cursor: Option<u32>,
}

pub(super) fn paging(query: &HashMap<String, String>) -> Result<Paging, ApiError> {
    let limit = match query.get("limit") {
        None => 25,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=200).contains(&n) => n,
            _ => {
                return Err(ApiError::one(
                    "Invalid",
                    "Limit must be a whole number between 1 and 200.",
                    "/limit",
                ));
            }
        },
    };
    let cursor = match query.get("cursor") {
        None => None,
        Some(text) => Some(
            decode_cursor(text)
                .ok_or_else(|| ApiError::one("Invalid", "Invalid cursor.", "/cursor"))?,
        ),
    };
    Ok(Paging { limit, cursor })
}

fn encode_cursor(seq: u32) -> String {
    URL_SAFE_NO_PAD.encode(format!("s{seq}"))
}

fn decode_cursor(text: &str) -> Option<u32> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix('s')?
        .parse()
        .ok()
}

/// Percent-encodes a query value (correlation ids are plain, but be safe).
fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `_links` of a paged list: `self`, and `next` / `prev` when they exist.
pub(super) fn page_links(
    sim: &Shared,
    path: &str,
    filter: Option<(&str, &str)>,
    paging: &Paging,
    page: &Page,
    resource_type: &str,
) -> Value {
    let href = |cursor: Option<u32>| {
        let mut query = vec![format!("limit={}", paging.limit)];
        if let Some((name, value)) = filter {
            query.push(format!("{name}={}", encode_query_value(value)));
        }
        if let Some(c) = cursor {
            query.push(format!("cursor={}", encode_cursor(c)));
        }
        json!({"href": format!("{}{path}?{}", sim.base_url, query.join("&")), "type": HAL, "resource-type": resource_type})
    };
    let mut links = Map::new();
    links.insert("self".into(), href(paging.cursor));
    if let Some(next) = page.next {
        links.insert("next".into(), href(Some(next)));
    }
    if let Some(prev) = page.prev {
        links.insert("prev".into(), href(prev));
    }
    Value::Object(links)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(12345)), Some(12345));
        assert_eq!(decode_cursor("not a cursor"), None);
        assert_eq!(decode_cursor(""), None);
    }
}
