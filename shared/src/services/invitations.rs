//! Remote support invitations from tickets and chats: check the settings, pick the queue
//! (`domain::remote::plan_invite`), generate the session key, store and deliver the invite;
//! a failed invitation mail is recorded on the invite and the ticket, and can be resent.

use crate::beyondtrust::{find_logged_in_rep, Client, Error as BtError, QueueId, SessionKeyRequest};
use crate::domain::bt::{BeyondTrustSettings, EmailFailure, RemoteInvite};
use crate::domain::chats::Chat;
use crate::domain::ids::{AgentId, ChatId, RemoteInviteId, TeamId, TicketId};
use crate::domain::remote::{
    plan_invite, render_invite, render_invite_html, ExternalKey, InviteKey, InviteQueue, InviteRequest,
};
use crate::domain::tickets::{Action, ActionKind, Ticket};
use crate::domain::DomainError;
use crate::ports::OutgoingMail;

use super::{Actor, Context, ServiceError, ServiceResult};

/// Whom an invitation is for: the default team, an agent's queue or a team's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Default,
    Agent(AgentId),
    Team(TeamId),
}

impl Target {
    /// `"agent:<id>"`, `"team:<id>"`, or absent/blank for the default team.
    pub fn parse(t: Option<&str>) -> ServiceResult<Target> {
        let Some(t) = t.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Target::Default);
        };
        let bad = || ServiceError::invalid("target", format!("must be \"agent:<id>\" or \"team:<id>\", got {t:?}"));
        let (kind, id) = t.split_once(':').ok_or_else(bad)?;
        let id: u64 = id.trim().parse().map_err(|_| bad())?;
        match kind {
            "agent" => Ok(Target::Agent(AgentId(id))),
            "team" => Ok(Target::Team(TeamId(id))),
            _ => Err(bad()),
        }
    }
}

/// How an invitation is asked for from a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The quick invite button (may be switched off in the settings).
    Quick,
    /// The invite action.
    Action,
}

impl Via {
    /// `"quick"` or `"action"` (the default when absent or blank).
    pub fn parse(v: Option<&str>) -> ServiceResult<Via> {
        match v.map(str::trim) {
            None | Some("") | Some("action") => Ok(Via::Action),
            Some("quick") => Ok(Via::Quick),
            Some(other) => Err(ServiceError::invalid(
                "via",
                format!("must be \"quick\" or \"action\", got {other:?}"),
            )),
        }
    }
}

/// What an invitation is for.
enum Subject {
    Ticket(Ticket),
    Chat(Chat),
}

/// How an invitation was asked for.
struct InviteAsk {
    target: Target,
    email: Option<String>,
    /// `quick`, `action`, `chat` or `automatic`.
    via: &'static str,
    acting: Option<AgentId>,
}

/// `POST /api/tickets/{id}/remote-invites`: invite the ticket's user (or `email`).
pub async fn invite_for_ticket(
    ctx: &Context,
    actor: &Actor,
    id: TicketId,
    target: Target,
    email: Option<String>,
    via: Via,
) -> ServiceResult<RemoteInvite> {
    let acting = ctx.acting_agent(actor).await?;
    let ticket = ctx.store.ticket_head(id.get()).await?.0;
    let via = match via {
        Via::Quick => "quick",
        Via::Action => "action",
    };
    let ask = InviteAsk {
        target,
        email,
        via,
        acting,
    };
    invite(ctx, Subject::Ticket(ticket), ask).await
}

/// `POST /api/chats/{id}/remote-invites`: post an invitation into an open chat.
pub async fn invite_for_chat(ctx: &Context, actor: &Actor, id: ChatId, target: Target) -> ServiceResult<RemoteInvite> {
    let acting = ctx.acting_agent(actor).await?;
    let chat = ctx.store.chat(id.get()).await?;
    chat.ensure_open()?;
    let ask = InviteAsk {
        target,
        email: None,
        via: "chat",
        acting,
    };
    invite(ctx, Subject::Chat(chat), ask).await
}

/// The automatic invitation of a new ticket (ticket type flag or `send_remote_invite`).
/// A failure never fails the ticket: it becomes a system action.
pub(crate) async fn automatic_invite(ctx: &Context, ticket: Ticket, acting: Option<AgentId>) {
    let id = ticket.id;
    let ask = InviteAsk {
        target: Target::Default,
        email: None,
        via: "automatic",
        acting,
    };
    let Err(e) = invite(ctx, Subject::Ticket(ticket), ask).await else {
        return;
    };
    tracing::warn!(ticket_id = id, error = %e, "automatic remote invitation failed");
    let note = format!("Automatic remote support invitation failed: {e}");
    if let Err(e) = system_note(ctx, id, note).await {
        tracing::error!(ticket_id = id, error = %e, "could not note the failed invitation");
    }
}

async fn system_note(ctx: &Context, ticket_id: u64, note: String) -> crate::Result<()> {
    let (id, at) = ctx.store.new_action_stamp().await?;
    let action = Action {
        id,
        at,
        kind: ActionKind::System,
        agent_id: None,
        note,
    };
    ctx.store.append_action(ticket_id, &action).await
}

/// Refuse what the settings forbid: quick invites, invites for other agents or teams.
fn check_allowed(settings: &BeyondTrustSettings, ask: &InviteAsk) -> ServiceResult<()> {
    if ask.via == "quick" && settings.disable_quick_invites {
        return Err(ServiceError::forbidden(
            "QUICK_INVITES_DISABLED",
            "quick invites are disabled in the BeyondTrust settings; use the invite action",
        ));
    }
    let for_others = match ask.target {
        Target::Agent(id) => ask.acting != Some(id),
        Target::Team(_) => true,
        Target::Default => false,
    };
    if for_others && !settings.allow_invites_for_others {
        return Err(ServiceError::forbidden(
            "INVITES_FOR_OTHERS_DISABLED",
            "invites for other agents or teams are not allowed: invite for yourself (target agent:<your id> with X-Agent-Id) or for the default team",
        ));
    }
    Ok(())
}

/// The queue request of `target`; an agent target needs the appliance's list of
/// logged-in reps, and the client it connected for that is handed back for reuse.
async fn queue_request(ctx: &Context, target: Target) -> ServiceResult<(InviteRequest, Option<Client>)> {
    match target {
        Target::Default => Ok((InviteRequest::Default, None)),
        Target::Agent(id) => {
            let agent = ctx
                .store
                .agent(id.get())
                .await
                .map_err(|_| ServiceError::invalid("target", format!("agent {id} does not exist")))?;
            let bt_name = agent
                .bt_name
                .clone()
                .filter(|n| agent.bt_enabled && !n.trim().is_empty())
                .ok_or_else(|| ServiceError::invalid("target", format!("agent {id} is not enabled for BeyondTrust")))?;
            let c = ctx.beyondtrust_client().await?;
            let reps = ctx.beyondtrust.logged_in_reps(&c).await?;
            let rep = find_logged_in_rep(&reps, &bt_name).map(|r| r.id.clone());
            Ok((InviteRequest::Agent { logged_in_rep_id: rep }, Some(c)))
        }
        Target::Team(id) => {
            let team = ctx
                .store
                .team(id.get())
                .await
                .map_err(|_| ServiceError::invalid("target", format!("team {id} does not exist")))?;
            if !team.enabled {
                return Err(ServiceError::invalid("target", format!("team {id} is disabled")));
            }
            let bt_team_id = team.bt_team_id;
            Ok((InviteRequest::Team { bt_team_id }, None))
        }
    }
}

/// A generated session key for `queue`, and the queue it was generated for (an agent's
/// queue refused by the appliance falls back to the default team when that is allowed).
struct Generated {
    key: InviteKey,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    queue: InviteQueue,
}

async fn generate_key(
    c: &Client,
    queue: InviteQueue,
    external_key: ExternalKey,
    fallback: Option<String>,
) -> ServiceResult<Generated> {
    let key_for = |q: InviteQueue| SessionKeyRequest::new(QueueId::from(q)).external_key(external_key);
    let (generated, queue) = match c.generate_session_key(&key_for(queue.clone())).await {
        Ok(k) => (k, queue),
        // The appliance refused the agent's queue (e.g. logged out since the list was
        // fetched): the same rule as for an agent who is not logged in.
        Err(BtError::Api(m)) if matches!(queue, InviteQueue::Rep(_)) => {
            let team = fallback.map(InviteQueue::Team).ok_or_else(|| {
                DomainError::conflict(
                    "TECHUNAVAILABLE",
                    format!("BeyondTrust refused a key for the agent: {m}"),
                )
            })?;
            (c.generate_session_key(&key_for(team.clone())).await?, team)
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Generated {
        expires_at: generated.expires,
        key: generated.invite_key(c.base_url()),
        queue,
    })
}

/// Generate (or, with no default team, blank) an invitation, deliver it — e-mail and audit
/// action for a ticket, HTML message for a chat — and store it.
async fn invite(ctx: &Context, subject: Subject, ask: InviteAsk) -> ServiceResult<RemoteInvite> {
    let settings = ctx.store.bt_settings().await?;
    check_allowed(&settings, &ask)?;
    let (request, connected) = queue_request(ctx, ask.target).await?;
    let default_team = ctx.store.default_team().await?.filter(|t| t.enabled);
    let default_bt = default_team.and_then(|t| t.bt_team_id);
    let planned = plan_invite(request, settings.fallback_to_default_team, default_bt.as_deref())?;
    let external_key = match &subject {
        Subject::Ticket(t) => ExternalKey::Ticket(t.id),
        Subject::Chat(c) => ExternalKey::Chat(c.id),
    };
    let generated = match planned {
        None => None,
        Some(q) => {
            let c = match connected {
                Some(c) => c,
                None => ctx.beyondtrust_client().await?,
            };
            let fallback = default_bt.clone().filter(|_| settings.fallback_to_default_team);
            Some(generate_key(&c, q, external_key, fallback).await?)
        }
    };
    let mut invite = RemoteInvite {
        id: ctx.store.next_id("remote-invite").await?,
        external_key: external_key.to_string(),
        ticket_id: None,
        chat_id: None,
        queue: generated.as_ref().map(|g| QueueId::from(g.queue.clone()).to_string()),
        short_key: generated.as_ref().map(|g| g.key.short_key.clone()),
        key_url: generated.as_ref().map(|g| g.key.key_url.clone()),
        expires_at: generated.as_ref().and_then(|g| g.expires_at),
        via: ask.via.to_string(),
        agent_id: ask.acting.map(AgentId::get),
        email_to: None,
        email_failed: None,
        created_at: ctx.clock.now(),
    };
    let key = generated.map(|g| g.key);
    match subject {
        Subject::Ticket(ticket) => deliver_to_ticket(ctx, &settings, &mut invite, key.as_ref(), ticket, &ask).await?,
        Subject::Chat(chat) => deliver_to_chat(ctx, &settings, &mut invite, key.as_ref(), chat, &ask).await?,
    }
    Ok(invite)
}

/// The address a ticket invitation goes to: the one asked for, else the ticket user's.
async fn recipient(ctx: &Context, ticket: &Ticket, asked: Option<&str>) -> ServiceResult<Option<String>> {
    match asked.map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) if e.contains('@') && !e.contains(char::is_whitespace) => Ok(Some(e.to_string())),
        Some(_) => Err(ServiceError::invalid("email", "must be an e-mail address")),
        None => match ticket.user_id {
            Some(u) => Ok(Some(ctx.store.user(u).await?.email).filter(|e| !e.trim().is_empty())),
            None => Ok(None),
        },
    }
}

async fn deliver_to_ticket(
    ctx: &Context,
    settings: &BeyondTrustSettings,
    invite: &mut RemoteInvite,
    key: Option<&InviteKey>,
    ticket: Ticket,
    ask: &InviteAsk,
) -> ServiceResult<()> {
    invite.ticket_id = Some(ticket.id);
    let to = recipient(ctx, &ticket, ask.email.as_deref()).await?;
    ctx.store.save_invite(invite).await?;
    let what = match (&invite.queue, key) {
        (Some(q), Some(k)) => format!("queue {q}, code {}, link {}", k.short_key, k.key_url),
        _ => "no default team: sent without a session code".to_string(),
    };
    let (kind, note) = match &to {
        Some(addr) => {
            let mail = invite_mail(settings, addr, key);
            match ctx.mailer.send(&mail).await {
                Ok(_) => {
                    invite.email_to = Some(addr.clone());
                    (
                        ActionKind::Email,
                        format!("Remote support invitation e-mailed to {addr} ({what})."),
                    )
                }
                Err(e) => {
                    // BeyondTrust issued the key: keep the invite, say the mail did not go.
                    tracing::warn!(invite_id = invite.id, error = %e, "invitation mail failed; the key stands");
                    invite.email_failed = Some(EmailFailure {
                        to: addr.clone(),
                        reason: e.to_string(),
                    });
                    (
                        ActionKind::System,
                        mail_failed_note(invite.id, addr, &e.to_string(), &what),
                    )
                }
            }
        }
        None => (
            ActionKind::System,
            format!("Remote support invitation created ({what}); not e-mailed: the ticket has no user e-mail address."),
        ),
    };
    let (id, at) = ctx.store.new_action_stamp().await?;
    let agent_id = ask.acting.map(AgentId::get);
    let action = Action {
        id,
        at,
        kind,
        agent_id,
        note,
    };
    if invite.email_failed.is_some() || invite.email_to.is_some() {
        ctx.store.record_invite_mail(invite, ticket.id, &action).await?;
    } else {
        ctx.store.append_action(ticket.id, &action).await?;
    }
    Ok(())
}

fn invite_mail(settings: &BeyondTrustSettings, to: &str, key: Option<&InviteKey>) -> OutgoingMail {
    let t = &settings.templates;
    OutgoingMail {
        from: settings.email_from.clone(),
        to: vec![to.to_string()],
        subject: render_invite(&t.email_subject, &t.remote_invite, key),
        text: render_invite(&t.email_body, &t.remote_invite, key),
    }
}

fn mail_failed_note(invite_id: u64, to: &str, reason: &str, what: &str) -> String {
    format!(
        "Remote support invitation created ({what}), but the e-mail to {to} failed: {reason}. \
         The session key is valid: give the code by phone, or resend (invite {invite_id})."
    )
}

/// `POST /api/remote-invites/{id}/resend`: send a ticket invitation's mail again with the
/// key BeyondTrust issued (no new key), to the address it failed for (or went to). The
/// answer is the invite: `email_failed` is cleared when the mail went, or holds the new
/// reason when it failed again; either way the ticket gets an action saying so.
pub async fn resend(ctx: &Context, actor: &Actor, id: RemoteInviteId) -> ServiceResult<RemoteInvite> {
    let acting = ctx.acting_agent(actor).await?;
    let mut invite = ctx.store.invite(id.get()).await?;
    let Some(ticket_id) = invite.ticket_id else {
        return Err(ServiceError::invalid(
            "id",
            "is a chat invitation; only ticket invitations are e-mailed",
        ));
    };
    let Some(to) = invite
        .email_failed
        .as_ref()
        .map(|f| f.to.clone())
        .or(invite.email_to.clone())
    else {
        return Err(ServiceError::invalid(
            "id",
            "was never e-mailed: the ticket had no user e-mail address",
        ));
    };
    let settings = ctx.store.bt_settings().await?;
    let key = match (&invite.short_key, &invite.key_url) {
        (Some(s), Some(u)) => Some(InviteKey {
            short_key: s.clone(),
            key_url: u.clone(),
        }),
        _ => None,
    };
    let (kind, note) = match ctx.mailer.send(&invite_mail(&settings, &to, key.as_ref())).await {
        Ok(_) => {
            invite.email_to = Some(to.clone());
            invite.email_failed = None;
            (
                ActionKind::Email,
                format!("Remote support invitation e-mailed again to {to}."),
            )
        }
        Err(e) => {
            invite.email_failed = Some(EmailFailure {
                to: to.clone(),
                reason: e.to_string(),
            });
            (
                ActionKind::System,
                mail_failed_note(invite.id, &to, &e.to_string(), "resent"),
            )
        }
    };
    let (action_id, at) = ctx.store.new_action_stamp().await?;
    let action = Action {
        id: action_id,
        at,
        kind,
        agent_id: acting.map(AgentId::get),
        note,
    };
    ctx.store.record_invite_mail(&invite, ticket_id, &action).await?;
    Ok(invite)
}

async fn deliver_to_chat(
    ctx: &Context,
    settings: &BeyondTrustSettings,
    invite: &mut RemoteInvite,
    key: Option<&InviteKey>,
    chat: Chat,
    ask: &InviteAsk,
) -> ServiceResult<()> {
    invite.chat_id = Some(chat.id);
    ctx.store.save_invite(invite).await?;
    let t = &settings.templates;
    let html = render_invite_html(&t.chat_html, &t.remote_invite, key);
    let from = match ask.acting {
        Some(a) => ctx.store.agent(a.get()).await?.name,
        None => "Service Desk".to_string(),
    };
    ctx.store.push_chat_message(chat.id, &from, &html, true).await?;
    Ok(())
}
