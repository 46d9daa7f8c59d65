//! Operations: dead letters of every work queue, listed and replayed (SQS dead-letter
//! queues in AWS, the SQLite queue locally), and the health figures: queue depths, each
//! vendor's last success and failure, the Datto request budget used.

use serde::Serialize;

use super::{audit, Actor, Context, ServiceResult};
use crate::datto::budget::{BudgetConfig, RequestBudget};
use crate::domain::accounts::AuditAction;
use crate::domain::DomainError;
use crate::ports::{DeadLetter, QueueDepth, QueueError, QueueName};
use crate::store::VendorHealth;

/// A replayed dead letter and the queue it went back to.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Replayed {
    pub replayed: String,
    #[schema(value_type = String)]
    pub queue: QueueName,
}

/// The dead letters of every queue this host has.
pub async fn dead_letters(ctx: &Context, actor: &Actor) -> ServiceResult<Vec<DeadLetter>> {
    actor.require_admin("reading dead letters")?;
    let mut items = Vec::new();
    for q in QueueName::ALL {
        match ctx.queue.dead_letters(q).await {
            Ok(list) => items.extend(list),
            // A queue this host has no URL for is not an error of the listing.
            Err(QueueError::NotConfigured(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(items)
}

/// Put one dead letter back on its queue with a fresh receive count.
pub async fn replay(ctx: &Context, actor: &Actor, id: &str) -> ServiceResult<Replayed> {
    actor.require_admin("replaying dead letters")?;
    for q in QueueName::ALL {
        let found = match ctx.queue.dead_letters(q).await {
            Ok(list) => list.iter().any(|d| d.id == id),
            Err(_) => false,
        };
        if found {
            ctx.queue.replay(q, id).await?;
            tracing::info!(queue = %q, message_id = %id, "dead letter replayed");
            audit::record(
                ctx,
                actor,
                AuditAction::DeadLetterReplayed,
                format!("dead-letter/{id}"),
                vec![],
            )
            .await?;
            return Ok(Replayed {
                replayed: id.to_string(),
                queue: q,
            });
        }
    }
    Err(DomainError::not_found("dead letter", id).into())
}

/// The Datto requests of the rolling minute against the account-wide limit.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetUse {
    pub used: u64,
    pub limit: u32,
}

/// `GET /api/operations/health`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Every queue this host has, with its dead-letter queue.
    pub queues: Vec<QueueDepth>,
    pub datto: VendorHealth,
    pub beyondtrust: VendorHealth,
    pub datto_budget: BudgetUse,
}

/// Queue depths, vendor health and the Datto budget, as the store and queues know them.
pub async fn health(ctx: &Context, actor: &Actor) -> ServiceResult<Health> {
    actor.require_admin("reading the operations health")?;
    let mut queues = Vec::new();
    for q in QueueName::ALL {
        match ctx.queue.depth(q).await {
            Ok(d) => queues.push(d),
            Err(QueueError::NotConfigured(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The same shared counters every Datto client of every instance counts in.
    let config = BudgetConfig::default();
    let limit = config.per_minute;
    let budget = RequestBudget::shared(config, ctx.store.records().clone(), ctx.clock.clone());
    let used = budget.used().await.map_err(crate::error::Error::from)?;
    Ok(Health {
        queues,
        datto: ctx.store.vendor_health(crate::datto::connect::HEALTH_VENDOR).await?,
        beyondtrust: ctx
            .store
            .vendor_health(crate::beyondtrust::connect::HEALTH_VENDOR)
            .await?,
        datto_budget: BudgetUse { used, limit },
    })
}
