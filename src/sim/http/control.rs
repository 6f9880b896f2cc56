//! The `/_sim/*` control endpoints: statistics, the clock, faults and the transfer view.
//! They skip the pipeline and are not counted.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::respond::plain_json;
use crate::sim::config::Faults;
use crate::sim::state::Shared;
use crate::sim::state::inspect;

pub(super) async fn sim_stats(State(sim): State<Arc<Shared>>) -> Response {
    plain_json(StatusCode::OK, json!(inspect::stats(&sim)))
}

/// `POST /_sim/advance {"ms": N}`: moves the clock forward by N milliseconds.
pub(super) async fn sim_advance(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let ms = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("ms").and_then(Value::as_u64));
    let Some(ms) = ms else {
        return plain_json(
            StatusCode::BAD_REQUEST,
            json!({"code": "BadRequest", "message": "Expected {\"ms\": <non-negative integer>}."}),
        );
    };
    inspect::advance(&sim, Duration::from_millis(ms));
    plain_json(StatusCode::OK, json!({"now": sim.clock.now().iso()}))
}

pub(super) async fn sim_get_faults(State(sim): State<Arc<Shared>>) -> Response {
    plain_json(StatusCode::OK, json!(sim.with(|st, _| st.faults.clone())))
}

/// `POST /_sim/faults` with a `Faults` JSON object; fields left out mean "no such fault".
pub(super) async fn sim_set_faults(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            sim.with(|st, _| st.faults = faults.clone());
            plain_json(StatusCode::OK, json!(faults))
        }
        Err(err) => plain_json(
            StatusCode::BAD_REQUEST,
            json!({"code": "BadRequest", "message": err.to_string()}),
        ),
    }
}

pub(super) async fn sim_list_transfers(State(sim): State<Arc<Shared>>) -> Response {
    plain_json(StatusCode::OK, json!(inspect::sim_transfers(&sim)))
}
