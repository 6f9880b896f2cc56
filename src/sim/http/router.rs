//! Every route of the simulator, in one table, behind the request pipeline.

use std::sync::Arc;

use super::pipeline::pipeline;
use axum::Router;
use axum::middleware;
use axum::routing::{get, post};

use super::{
    accounts, client_tokens, control, exchanges, funding_sources, parties, respond, token,
    transfers, webhooks,
};
use crate::sim::state::Shared;

pub(super) fn router(sim: Arc<Shared>) -> Router {
    Router::new()
        .route("/token", post(token::token))
        .route("/", get(accounts::root))
        .route("/accounts/{id}", get(accounts::get_account))
        .route(
            "/accounts/{id}/funding-sources",
            get(funding_sources::list_account_funding_sources),
        )
        .route(
            "/accounts/{id}/transfers",
            get(transfers::list_account_transfers),
        )
        .route(
            "/funding-sources",
            post(funding_sources::create_account_funding_source),
        )
        .route(
            "/funding-sources/{id}",
            get(funding_sources::get_funding_source).post(funding_sources::remove_funding_source),
        )
        .route(
            "/external-parties",
            post(parties::create_external_party).get(parties::list_external_parties),
        )
        .route("/external-parties/{id}", get(parties::get_external_party))
        .route(
            "/external-parties/{id}/funding-sources",
            post(funding_sources::create_party_funding_source)
                .get(funding_sources::list_party_funding_sources),
        )
        .route(
            "/external-parties/{id}/exchanges",
            post(exchanges::create_party_exchange).get(exchanges::list_party_exchanges),
        )
        .route(
            "/external-parties/{id}/transfers",
            get(transfers::list_party_transfers),
        )
        .route("/exchange-partners", get(exchanges::list_exchange_partners))
        .route(
            "/exchange-partners/{id}",
            get(exchanges::get_exchange_partner),
        )
        .route(
            "/exchanges",
            post(exchanges::create_account_exchange).get(exchanges::list_account_exchanges),
        )
        .route("/exchanges/{id}", get(exchanges::get_exchange))
        .route("/transfers", post(transfers::create_transfer))
        .route("/transfers/{id}", get(transfers::get_transfer))
        .route(
            "/treasury-accounts",
            post(accounts::create_treasury_account).get(accounts::list_treasury_accounts),
        )
        .route(
            "/treasury-accounts/{id}",
            get(accounts::get_treasury_account),
        )
        .route("/treasury-partners", get(accounts::list_treasury_partners))
        .route(
            "/treasury-partners/{id}",
            get(accounts::get_treasury_partner),
        )
        .route(
            "/webhook-subscriptions",
            post(webhooks::create_subscription).get(webhooks::list_subscriptions),
        )
        .route(
            "/webhook-subscriptions/{id}",
            get(webhooks::get_subscription)
                .post(webhooks::update_subscription)
                .delete(webhooks::delete_subscription),
        )
        .route(
            "/webhook-subscriptions/{id}/webhooks",
            get(webhooks::list_subscription_webhooks),
        )
        .route("/webhooks/{id}", get(webhooks::get_webhook))
        .route("/webhooks/{id}/retries", post(webhooks::retry_webhook))
        .route("/events/{id}", get(webhooks::get_event))
        .route("/client-tokens", post(client_tokens::create_client_token))
        .route("/_sim/stats", get(control::sim_stats))
        .route("/_sim/advance", post(control::sim_advance))
        .route(
            "/_sim/faults",
            get(control::sim_get_faults).post(control::sim_set_faults),
        )
        .route("/_sim/transfers", get(control::sim_list_transfers))
        .fallback(respond::not_found)
        .method_not_allowed_fallback(respond::method_not_allowed)
        .layer(middleware::from_fn_with_state(sim.clone(), pipeline))
        .with_state(sim)
}
