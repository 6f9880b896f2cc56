//! `payrun webhooks subscribe|list|delete`: Dwolla webhook subscriptions, and the secrets of
//! the ones payrun created, kept in the spool where `serve` finds them.

use crate::dwolla::Client;
use crate::dwolla::wire::{CreateWebhookSubscription, Webhook};
use crate::ledger::{self, LedgerPlace};
use crate::secret::Secret;

/// Dwolla's limit on a subscription secret.
const MAX_SECRET_CHARS: usize = 128;

/// A random secret: 32 bytes as 64 hex characters.
pub fn generate_secret() -> Secret {
    Secret::new(hex::encode(rand::random::<[u8; 32]>()))
}

pub async fn subscribe(
    client: &Client,
    ledger: &LedgerPlace,
    url: &str,
    secret: Option<String>,
) -> anyhow::Result<()> {
    let generated = secret.is_none();
    let secret = secret.map(Secret::new).unwrap_or_else(generate_secret);
    anyhow::ensure!(
        !secret.is_empty() && secret.expose().chars().count() <= MAX_SECRET_CHARS,
        "the secret must be 1 to {MAX_SECRET_CHARS} characters"
    );
    let mut spool = ledger.open_spool()?;
    let body = CreateWebhookSubscription {
        url: url.to_string(),
        secret: secret.clone(),
    };
    let created = client.create_webhook_subscription(&body, None).await?;
    let id = created.id().to_string();
    let now = ledger::timestamp(time::OffsetDateTime::now_utc());
    spool.save_subscription(&id, url, &secret, &now)?;
    println!("subscribed {url}: subscription {id}");
    if generated {
        // The only time payrun shows it: the operator may need it for another receiver.
        println!(
            "secret (shown once; stored for `payrun serve` in {}): {}",
            spool.shown(),
            secret.expose()
        );
    } else {
        println!("secret stored for `payrun serve` in {}", spool.shown());
    }
    Ok(())
}

pub async fn list(client: &Client, ledger: &LedgerPlace) -> anyhow::Result<()> {
    let stored: Vec<String> = if let Some(spool) = ledger.existing_spool()? {
        spool
            .subscriptions()?
            .into_iter()
            .map(|subscription| subscription.id)
            .collect()
    } else {
        Vec::new()
    };
    let mut page = client.list_webhook_subscriptions().await?;
    println!(
        "{:<36}  {:<7} {:<24} {:<6} url",
        "id", "paused", "created", "secret"
    );
    loop {
        for subscription in &page.items {
            let secret = if stored.contains(&subscription.id) {
                "stored"
            } else {
                "-"
            };
            println!(
                "{:<36}  {:<7} {:<24} {:<6} {}",
                subscription.id,
                subscription.paused,
                subscription.created,
                secret,
                subscription.url
            );
        }
        match client.next_page(&page).await? {
            Some(next) => page = next,
            None => break,
        }
    }
    Ok(())
}

/// Unpauses, then asks for a retry of each webhook without a successful attempt. A webhook
/// that reached payrun before is never among them, and one sent twice anyway is harmless:
/// `serve` stores each event once and applying an event again changes nothing.
pub async fn resume(client: &Client, id: &str) -> anyhow::Result<()> {
    let subscription = client.set_webhook_subscription_paused(id, false).await?;
    let first = client.list_subscription_webhooks(&subscription.id).await?;
    let webhooks = crate::dwolla::all_pages(client, first, None).await?;
    let undelivered: Vec<&Webhook> = webhooks.iter().filter(|w| !was_delivered(w)).collect();
    for webhook in &undelivered {
        client.retry_webhook(&webhook.id).await?;
    }
    println!(
        "resumed subscription {} ({}): {} of its {} webhooks had never been delivered and were sent again",
        subscription.id,
        subscription.url,
        undelivered.len(),
        webhooks.len()
    );
    Ok(())
}

fn was_delivered(webhook: &Webhook) -> bool {
    webhook.attempts.iter().any(|attempt| {
        attempt
            .response
            .as_ref()
            .and_then(|response| response.status_code)
            .is_some_and(|status| (200..300).contains(&status))
    })
}

pub async fn delete(client: &Client, ledger: &LedgerPlace, id: &str) -> anyhow::Result<()> {
    let deleted = client.delete_webhook_subscription(id).await?;
    let forgot = if let Some(mut spool) = ledger.existing_spool()? {
        spool.remove_subscription(&deleted.id)?
    } else {
        false
    };
    println!(
        "deleted subscription {} ({}){}",
        deleted.id,
        deleted.url,
        if forgot {
            "; its secret is forgotten"
        } else {
            ""
        }
    );
    Ok(())
}
