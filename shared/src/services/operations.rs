//! Operations: dead letters of every work queue, listed and replayed (SQS dead-letter
//! queues in AWS, the SQLite queue locally).

use serde::Serialize;

use super::{audit, Actor, Context, ServiceResult};
use crate::domain::accounts::AuditAction;
use crate::domain::DomainError;
use crate::ports::{DeadLetter, QueueError, QueueName};

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
