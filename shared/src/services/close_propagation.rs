//! Closing tickets as an agent: the close is stored, and when the ticket came from a Datto
//! alert the `ticket-closed` message goes out after the commit (the consumer resolves it).

use super::{Actor, Context, ServiceResult};
use crate::domain::ids::{AgentId, TicketId};
use crate::domain::tickets::Ticket;
use crate::jobs::close_propagation::close_ticket_as_agent;

/// `POST /api/tickets/{id}/close`.
pub async fn close_ticket(ctx: &Context, actor: &Actor, id: TicketId, note: &str) -> ServiceResult<Ticket> {
    let agent = ctx.acting_agent(actor).await?;
    let ticket = close_ticket_as_agent(&ctx.store, ctx.queue.as_ref(), id.get(), note, agent.map(AgentId::get)).await?;
    Ok(ticket)
}
