//! Remote support sessions (BeyondTrust) as the desk sees them: session ids and external
//! keys, technician matching, transcripts and notes, the linking decision and invitations.
//!
//! Everything here is pure. `beyondtrust::SupportSessionReport` converts into
//! [`SessionFacts`] at the edge; this module never sees XML or HTTP.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::chats::{Chat, ChatStatus};
use super::desk::Agent;
use super::tickets::NOTE_MAX;
use super::DomainError;

// ---------------------------------------------------------------------------------------
// Identifiers
// ---------------------------------------------------------------------------------------

/// A BeyondTrust session id: 32 hexadecimal characters, kept in lower case so that the
/// same session always yields the same idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Lsid(String);

impl Lsid {
    pub fn parse(value: &str) -> Result<Lsid, DomainError> {
        let v = value.trim();
        if v.is_empty() {
            return Err(DomainError::invalid("lsid", "must not be empty"));
        }
        if v.len() != 32 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DomainError::invalid("lsid", "must be 32 hexadecimal characters"));
        }
        Ok(Lsid(v.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Lsid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Lsid {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lsid::parse(s)
    }
}

impl TryFrom<String> for Lsid {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Lsid::parse(&s)
    }
}

impl From<Lsid> for String {
    fn from(l: Lsid) -> String {
        l.0
    }
}

/// The external key deskbridge stores on the sessions it starts: `T<ticket id>` or
/// `C<chat id>`. Sessions started elsewhere carry another key or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
pub enum ExternalKey {
    Ticket(u64),
    Chat(u64),
}

impl ExternalKey {
    /// Parse `T<digits>` / `C<digits>` (prefix case-insensitive, surrounding blanks ignored).
    pub fn parse(value: &str) -> Result<ExternalKey, DomainError> {
        let v = value.trim();
        let refuse = || {
            DomainError::invalid(
                "external_key",
                "must be T<ticket id> or C<chat id> (deskbridge sessions only)",
            )
        };
        let mut chars = v.chars();
        let prefix = chars.next().ok_or_else(refuse)?;
        let digits = chars.as_str();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refuse());
        }
        let id: u64 = digits.parse().map_err(|_| refuse())?;
        if id == 0 {
            return Err(refuse());
        }
        match prefix {
            'T' | 't' => Ok(ExternalKey::Ticket(id)),
            'C' | 'c' => Ok(ExternalKey::Chat(id)),
            _ => Err(refuse()),
        }
    }

    /// The key of a session as reported, or `None` when it is absent, blank or not one
    /// deskbridge issued.
    pub fn from_report(value: Option<&str>) -> Option<ExternalKey> {
        value.and_then(|v| ExternalKey::parse(v).ok())
    }
}

impl fmt::Display for ExternalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExternalKey::Ticket(id) => write!(f, "T{id}"),
            ExternalKey::Chat(id) => write!(f, "C{id}"),
        }
    }
}

impl FromStr for ExternalKey {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExternalKey::parse(s)
    }
}

impl TryFrom<String> for ExternalKey {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ExternalKey::parse(&s)
    }
}

impl From<ExternalKey> for String {
    fn from(k: ExternalKey) -> String {
        k.to_string()
    }
}

/// "Only process sessions generated here": deskbridge can tell its own sessions only by
/// the external key it issued (the report does not carry the short key).
pub fn is_generated_here(external_key: Option<&str>) -> bool {
    ExternalKey::from_report(external_key).is_some()
}

// ---------------------------------------------------------------------------------------
// Session facts (the vendor report, converted at the edge)
// ---------------------------------------------------------------------------------------

/// The names a BeyondTrust representative goes by. Any may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RepNames {
    /// Login name; present in reports only.
    pub username: Option<String>,
    /// Deprecated by the vendor; equal to the public name.
    pub display_name: Option<String>,
    pub public_display_name: Option<String>,
    pub private_display_name: Option<String>,
}

impl RepNames {
    /// The name to show for the representative: display, public, private, then username.
    pub fn shown(&self) -> Option<&str> {
        [
            &self.display_name,
            &self.public_display_name,
            &self.private_display_name,
            &self.username,
        ]
        .into_iter()
        .flatten()
        .map(|s| s.trim())
        .find(|s| !s.is_empty())
    }
}

/// A representative who took part in a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionRep {
    /// Connection number inside the session (links events to this participant).
    pub gsnumber: Option<u32>,
    /// The representative's BeyondTrust user id.
    pub id: Option<String>,
    pub names: RepNames,
    /// Owner of the session when it ended.
    pub session_owner: bool,
    /// The report's primary representative.
    pub primary: bool,
}

/// A customer who took part in a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionCustomer {
    pub gsnumber: Option<u32>,
    pub name: Option<String>,
    pub username: Option<String>,
}

/// Who performed a session event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Customer,
    Representative,
    System,
    Other(String),
}

impl ActorKind {
    pub fn parse(s: &str) -> ActorKind {
        match s.trim().to_ascii_lowercase().as_str() {
            "customer" => ActorKind::Customer,
            "representative" | "rep" => ActorKind::Representative,
            "system" => ActorKind::System,
            other => ActorKind::Other(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionActor {
    pub kind: ActorKind,
    pub gsnumber: Option<u32>,
    /// The name the report printed with the event (may be outdated).
    pub name: Option<String>,
}

/// One entry of the session's event log, in document order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionEvent {
    pub at: DateTime<Utc>,
    /// The vendor's exact event type, e.g. `Chat Message`; unknown types are kept.
    pub event_type: String,
    pub performed_by: Option<SessionActor>,
    /// The event's text, already decoded from `encoded_body` when that was used.
    pub text: Option<String>,
}

/// What deskbridge needs to know about one finished session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionFacts {
    pub lsid: Lsid,
    /// The external key as reported (`None` when empty).
    pub external_key: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_secs: Option<u64>,
    pub primary_customer: Option<String>,
    pub customers: Vec<SessionCustomer>,
    pub reps: Vec<SessionRep>,
    pub events: Vec<SessionEvent>,
}

/// The event type that carries chat lines.
pub const CHAT_MESSAGE: &str = "Chat Message";

impl SessionFacts {
    pub fn external_key(&self) -> Option<ExternalKey> {
        ExternalKey::from_report(self.external_key.as_deref())
    }

    /// Duration from the report, else from start and end.
    pub fn duration(&self) -> Option<u64> {
        self.duration_secs.or_else(|| match (self.started_at, self.ended_at) {
            (Some(s), Some(e)) if e >= s => Some((e - s).num_seconds() as u64),
            _ => None,
        })
    }

    /// The customer's name: the primary customer, else the first named customer.
    pub fn customer_name(&self) -> Option<&str> {
        self.primary_customer
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .or_else(|| {
                self.customers
                    .iter()
                    .find_map(|c| c.name.as_deref().map(str::trim).filter(|s| !s.is_empty()))
            })
    }

    /// Representatives in the order a technician is looked for: the session owner first,
    /// then the primary representative, then the others as listed.
    pub fn reps_by_precedence(&self) -> Vec<&SessionRep> {
        let rank = |r: &SessionRep| match (r.session_owner, r.primary) {
            (true, _) => 0,
            (false, true) => 1,
            _ => 2,
        };
        let mut reps: Vec<&SessionRep> = self.reps.iter().collect();
        reps.sort_by_key(|r| rank(r));
        reps
    }

    /// The name of the participant with this connection number, as the desk should show it.
    fn participant_name(&self, gsnumber: u32) -> Option<&str> {
        if let Some(rep) = self.reps.iter().find(|r| r.gsnumber == Some(gsnumber)) {
            return rep.names.shown();
        }
        self.customers
            .iter()
            .find(|c| c.gsnumber == Some(gsnumber))
            .and_then(|c| {
                [&c.name, &c.username]
                    .into_iter()
                    .flatten()
                    .map(|s| s.trim())
                    .find(|s| !s.is_empty())
            })
    }
}

// ---------------------------------------------------------------------------------------
// Technicians
// ---------------------------------------------------------------------------------------

/// Whether an agent's `bt_name` names this representative: trimmed and case-insensitive
/// against the public, private and display names and the username. A blank `bt_name`
/// matches nobody.
pub fn matches_technician(bt_name: &str, rep: &RepNames) -> bool {
    let wanted = bt_name.trim().to_lowercase();
    if wanted.is_empty() {
        return false;
    }
    [
        &rep.public_display_name,
        &rep.private_display_name,
        &rep.display_name,
        &rep.username,
    ]
    .into_iter()
    .flatten()
    .any(|name| name.trim().to_lowercase() == wanted)
}

/// The agent who handled a session: the first BeyondTrust-enabled agent whose `bt_name`
/// matches a representative, representatives tried owner first (see
/// [`SessionFacts::reps_by_precedence`]), agents in the order given.
pub fn find_technician<'a>(agents: &'a [Agent], facts: &SessionFacts) -> Option<&'a Agent> {
    facts.reps_by_precedence().into_iter().find_map(|rep| {
        agents
            .iter()
            .find(|a| a.bt_enabled && a.bt_name.as_deref().is_some_and(|n| matches_technician(n, &rep.names)))
    })
}

// ---------------------------------------------------------------------------------------
// Transcript, summary, note
// ---------------------------------------------------------------------------------------

/// One chat line of a session (`{at, from, text}` in the HTTP contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TranscriptLine {
    pub at: DateTime<Utc>,
    pub from: String,
    pub text: String,
}

/// The chat of a session: `Chat Message` events in document order, each author resolved
/// through the connection number to the participant's shown name (falling back to the
/// name printed with the event). Messages without text are skipped.
pub fn transcript(facts: &SessionFacts) -> Vec<TranscriptLine> {
    facts
        .events
        .iter()
        .filter(|e| e.event_type == CHAT_MESSAGE)
        .filter_map(|e| {
            let text = clean_text(e.text.as_deref()?);
            if text.trim().is_empty() {
                return None;
            }
            Some(TranscriptLine {
                at: e.at,
                from: author(facts, e.performed_by.as_ref()),
                text,
            })
        })
        .collect()
}

fn author(facts: &SessionFacts, actor: Option<&SessionActor>) -> String {
    let Some(actor) = actor else {
        return "System".to_string();
    };
    if let Some(name) = actor.gsnumber.and_then(|g| facts.participant_name(g)) {
        return name.to_string();
    }
    match actor.name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ if actor.kind == ActorKind::System || actor.gsnumber == Some(0) => "System".to_string(),
        _ => "Unknown".to_string(),
    }
}

/// Chat text as the desk stores it: CR LF and lone CR become LF, vertical tab and form
/// feed (which the appliance sends base64-encoded because XML cannot carry them) become
/// LF, other control characters except tab are dropped.
pub fn clean_text(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    text.chars()
        .filter_map(|c| match c {
            '\r' | '\u{0B}' | '\u{0C}' => Some('\n'),
            '\n' | '\t' => Some(c),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// `HH:MM:SS` (hours may exceed 24).
pub fn format_duration(secs: u64) -> String {
    format!("{:02}:{:02}:{:02}", secs / 3600, (secs % 3600) / 60, secs % 60)
}

fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A short plain-text summary: session id, customer, times, duration, representatives.
pub fn summary(facts: &SessionFacts) -> String {
    let mut out = format!("BeyondTrust remote session {}\n", facts.lsid);
    out.push_str(&format!("Customer: {}\n", facts.customer_name().unwrap_or("Unknown")));
    if let Some(s) = facts.started_at {
        out.push_str(&format!("Started: {}\n", format_time(s)));
    }
    if let Some(e) = facts.ended_at {
        out.push_str(&format!("Ended: {}\n", format_time(e)));
    }
    if let Some(d) = facts.duration() {
        out.push_str(&format!("Duration: {}\n", format_duration(d)));
    }
    let reps: Vec<&str> = facts.reps.iter().filter_map(|r| r.names.shown()).collect();
    out.push_str(&format!(
        "Representatives: {}",
        if reps.is_empty() {
            "none".to_string()
        } else {
            reps.join(", ")
        }
    ));
    out
}

/// The transcript as note text, one `[time] speaker: text` line per message (times UTC;
/// the date is added when the chat spans more than one day; continuation lines indented).
pub fn render_transcript(lines: &[TranscriptLine]) -> String {
    let one_day = lines
        .first()
        .is_none_or(|f| lines.iter().all(|l| l.at.date_naive() == f.at.date_naive()));
    lines
        .iter()
        .map(|l| {
            let time = if one_day {
                l.at.format("%H:%M:%S").to_string()
            } else {
                l.at.format("%Y-%m-%d %H:%M:%S").to_string()
            };
            let text = l.text.trim_end().replace('\n', "\n    ");
            format!("[{time}] {}: {text}", l.from)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The note of the action an imported session adds to a ticket: summary, then the chat.
/// Cut to fit a ticket note ([`NOTE_MAX`] characters).
pub fn render_note(facts: &SessionFacts, lines: &[TranscriptLine]) -> String {
    let chat = if lines.is_empty() {
        "No chat messages.".to_string()
    } else {
        format!("Chat transcript (UTC):\n{}", render_transcript(lines))
    };
    truncate_chars(format!("{}\n\n{chat}", summary(facts)), NOTE_MAX)
}

fn truncate_chars(text: String, max: usize) -> String {
    const MARK: &str = "\n… (truncated)";
    if text.chars().count() <= max {
        return text;
    }
    let keep = max.saturating_sub(MARK.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(MARK);
    out
}

// ---------------------------------------------------------------------------------------
// Linking
// ---------------------------------------------------------------------------------------

/// Name of a stored session that belongs to no chat.
pub const DEFAULT_SESSION_NAME: &str = "Remote Session";

/// Name of a stored session started from a chat.
pub fn chat_session_name(chat: &Chat) -> String {
    format!("Chat {} with {}", chat.id, chat.user_name)
}

/// What the import found behind a session's external key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyLookup<'a> {
    /// No key, or one deskbridge did not issue.
    NoKey,
    /// `T<id>`: whether that ticket exists.
    Ticket { id: u64, exists: bool },
    /// `C<id>`: the chat if it exists, and whether the ticket it is linked to exists.
    Chat {
        id: u64,
        chat: Option<&'a Chat>,
        linked_ticket_exists: bool,
    },
}

/// Where an imported session goes (DESIGN §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkDecision {
    /// Add an action with the chat log to this ticket.
    ToTicket(u64),
    /// The session came from a chat that is linked to a ticket: act on that ticket.
    ToChatTicket { chat_id: u64, ticket_id: u64 },
    /// The chat is open and unlinked: post a chat message and store the session for
    /// manual linking (named with [`chat_session_name`]).
    ToOpenChat(u64),
    /// Store the session unlinked under this name; it can be linked by hand.
    Park { name: String },
}

impl LinkDecision {
    /// The ticket that receives the action, if any.
    pub fn ticket_id(&self) -> Option<u64> {
        match self {
            LinkDecision::ToTicket(id) => Some(*id),
            LinkDecision::ToChatTicket { ticket_id, .. } => Some(*ticket_id),
            _ => None,
        }
    }
}

/// Decide where a session goes from what its external key points at.
pub fn decide_link(lookup: KeyLookup<'_>) -> LinkDecision {
    match lookup {
        KeyLookup::Ticket { id, exists: true } => LinkDecision::ToTicket(id),
        KeyLookup::Chat {
            id,
            chat: Some(chat),
            linked_ticket_exists,
        } => match chat.ticket_id {
            Some(ticket_id) if linked_ticket_exists => LinkDecision::ToChatTicket { chat_id: id, ticket_id },
            _ if chat.status == ChatStatus::Open => LinkDecision::ToOpenChat(id),
            _ => LinkDecision::Park {
                name: chat_session_name(chat),
            },
        },
        KeyLookup::NoKey | KeyLookup::Ticket { exists: false, .. } | KeyLookup::Chat { chat: None, .. } => {
            LinkDecision::Park {
                name: DEFAULT_SESSION_NAME.to_string(),
            }
        }
    }
}

/// A stored remote session (`remote session` in the HTTP contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RemoteSession {
    pub id: u64,
    pub lsid: Lsid,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_ticket_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technician_agent_id: Option<u64>,
    /// The chat's user, or the configured default user when the chat has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<u64>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub transcript: Vec<TranscriptLine>,
    /// Imported from a report without chat URLs (the session did not end properly, or the
    /// appliance had not finished it): the transcript may lack its last lines.
    #[serde(default)]
    pub possibly_partial: bool,
}

/// The line a possibly partial import adds to the ticket action or chat message.
pub const PARTIAL_TRANSCRIPT_NOTE: &str = "Note: BeyondTrust's report of this session has no chat download \
     (the session may not have ended properly), so this transcript may be incomplete.";

// ---------------------------------------------------------------------------------------
// Invitations
// ---------------------------------------------------------------------------------------

/// Who an invitation was asked for, with what the caller already looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteRequest {
    /// A chosen agent; `logged_in_rep_id` is the id of the logged-in representative that
    /// matches the agent's `bt_name`, `None` when none is logged in.
    Agent { logged_in_rep_id: Option<String> },
    /// A chosen team, with its BeyondTrust team id if it has one.
    Team { bt_team_id: Option<String> },
    /// No target given: the default team.
    Default,
}

/// The BeyondTrust queue a session key is generated for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteQueue {
    Rep(String),
    Team(String),
}

/// Pick the queue of an invitation. `Ok(None)` means there is nothing to invite into (no
/// default team): the template variables are blanked. An agent who is not logged in
/// falls back to the default team only when that is configured and exists; otherwise the
/// answer is the `TECHUNAVAILABLE` conflict.
pub fn plan_invite(
    request: InviteRequest,
    fallback_to_default_team: bool,
    default_bt_team_id: Option<&str>,
) -> Result<Option<InviteQueue>, DomainError> {
    let default = default_bt_team_id
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| InviteQueue::Team(s.to_string()));
    match request {
        InviteRequest::Agent {
            logged_in_rep_id: Some(id),
        } => Ok(Some(InviteQueue::Rep(id))),
        InviteRequest::Agent { logged_in_rep_id: None } => match default {
            Some(team) if fallback_to_default_team => Ok(Some(team)),
            _ => Err(DomainError::conflict(
                "TECHUNAVAILABLE",
                "the chosen agent is not logged in to BeyondTrust",
            )),
        },
        InviteRequest::Team { bt_team_id } => match bt_team_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(id) => Ok(Some(InviteQueue::Team(id.to_string()))),
            None => Err(DomainError::invalid("target", "the team has no BeyondTrust team id")),
        },
        InviteRequest::Default => Ok(default),
    }
}

/// The generated key an invitation points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InviteKey {
    /// The 7-character code typed on the public site (`$REMOTESESSIONCODE`).
    pub short_key: String,
    /// The link that downloads the customer client (`$LINKTOREMOTE`).
    pub key_url: String,
}

const VAR_INVITE: &str = "$REMOTEINVITE";
const VAR_LINK: &str = "$LINKTOREMOTE";
const VAR_CODE: &str = "$REMOTESESSIONCODE";

/// Fill a plain-text template (e-mail subject/body, ticket action): `$REMOTEINVITE` becomes
/// `remote_invite` with its own variables filled, `$LINKTOREMOTE` the key URL,
/// `$REMOTESESSIONCODE` the short key. With no key every variable becomes empty.
pub fn render_invite(template: &str, remote_invite: &str, key: Option<&InviteKey>) -> String {
    let invite = invite_text(remote_invite, key);
    substitute(template, |var| match var {
        VAR_INVITE => invite.clone(),
        VAR_LINK => key.map(|k| k.key_url.clone()).unwrap_or_default(),
        _ => key.map(|k| k.short_key.clone()).unwrap_or_default(),
    })
}

/// Like [`render_invite`] for the live-chat HTML template: the template is HTML and kept
/// as is; every substituted value is HTML-escaped, and line breaks of the invite text
/// become `<br>`.
pub fn render_invite_html(template: &str, remote_invite: &str, key: Option<&InviteKey>) -> String {
    let invite = escape_html(&invite_text(remote_invite, key)).replace('\n', "<br>\n");
    substitute(template, |var| match var {
        VAR_INVITE => invite.clone(),
        VAR_LINK => escape_html(key.map(|k| k.key_url.as_str()).unwrap_or_default()),
        _ => escape_html(key.map(|k| k.short_key.as_str()).unwrap_or_default()),
    })
}

fn invite_text(remote_invite: &str, key: Option<&InviteKey>) -> String {
    if key.is_none() {
        return String::new();
    }
    substitute(remote_invite, |var| match var {
        // The invite text cannot contain itself.
        VAR_INVITE => String::new(),
        VAR_LINK => key.map(|k| k.key_url.clone()).unwrap_or_default(),
        _ => key.map(|k| k.short_key.clone()).unwrap_or_default(),
    })
}

/// Replace the variables in one pass, so values that look like variables stay as they are.
fn substitute(template: &str, value: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        match [VAR_INVITE, VAR_LINK, VAR_CODE]
            .into_iter()
            .find(|v| tail.starts_with(v))
        {
            Some(var) => {
                out.push_str(&value(var));
                rest = &tail[var.len()..];
            }
            None => {
                out.push('$');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escape text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    fn names(display: &str, public: &str, private: &str, user: Option<&str>) -> RepNames {
        RepNames {
            username: user.map(str::to_string),
            display_name: Some(display.to_string()),
            public_display_name: Some(public.to_string()),
            private_display_name: Some(private.to_string()),
        }
    }

    fn agent(id: u64, bt_name: Option<&str>, enabled: bool) -> Agent {
        Agent {
            id,
            name: format!("Agent {id}"),
            email: format!("a{id}@example.com"),
            bt_enabled: enabled,
            bt_name: bt_name.map(str::to_string),
            role: Default::default(),
            disabled: false,
        }
    }

    fn chat(id: u64, status: ChatStatus, ticket_id: Option<u64>) -> Chat {
        Chat {
            id,
            user_name: "Jane Doe".into(),
            user_id: None,
            customer_id: None,
            status,
            ticket_id,
            messages: vec![],
            created_at: at(0),
            ended_at: None,
        }
    }

    fn rep(gs: u32, id: &str, n: RepNames, owner: bool) -> SessionRep {
        SessionRep {
            gsnumber: Some(gs),
            id: Some(id.into()),
            names: n,
            session_owner: owner,
            primary: false,
        }
    }

    fn said(secs: i64, gs: u32, kind: ActorKind, printed: &str, text: &str) -> SessionEvent {
        SessionEvent {
            at: at(secs),
            event_type: CHAT_MESSAGE.into(),
            performed_by: Some(SessionActor {
                kind,
                gsnumber: Some(gs),
                name: Some(printed.into()),
            }),
            text: Some(text.into()),
        }
    }

    /// The T1042 session of `fixtures/beyondtrust/report-support-session.xml`, reduced.
    fn t1042() -> SessionFacts {
        SessionFacts {
            lsid: Lsid::parse("a3f1c9e27b5d4e08b6c2d9f4e1a7b530").unwrap(),
            external_key: Some("T1042".into()),
            started_at: Some(at(1795423932)),
            ended_at: Some(at(1795425312)),
            duration_secs: Some(1380),
            primary_customer: Some("Jane Doe".into()),
            customers: vec![SessionCustomer {
                gsnumber: Some(3),
                name: Some("Jane Doe".into()),
                username: Some("jdoe".into()),
            }],
            reps: vec![
                rep(
                    2,
                    "12",
                    names(
                        "Alice Martin",
                        "Alice Martin",
                        "Alice Martin (Service Desk)",
                        Some("amartin"),
                    ),
                    true,
                ),
                rep(
                    4,
                    "17",
                    names("Bob", "Bob", "Robert Keller (L2 Network)", Some("rkeller")),
                    false,
                ),
            ],
            events: vec![
                SessionEvent {
                    at: at(1795423932),
                    event_type: "Session Start".into(),
                    performed_by: None,
                    text: None,
                },
                said(1795424057, 2, ActorKind::Representative, "Alice Martin", "Hi Jane"),
                said(
                    1795424204,
                    3,
                    ActorKind::Customer,
                    "Jane Doe",
                    "Dialog:\u{0B}Error 0x80048823",
                ),
                SessionEvent {
                    at: at(1795425308),
                    event_type: "Session Note Added".into(),
                    performed_by: None,
                    text: Some("not chat".into()),
                },
                // The name printed with the event is outdated; the rep list wins.
                said(
                    1795424352,
                    4,
                    ActorKind::Representative,
                    "Bobby",
                    "Sending a tool & more",
                ),
            ],
        }
    }

    #[test]
    fn lsid_must_be_32_hex_characters_and_is_lowercased() {
        let l = Lsid::parse(" A3F1C9E27B5D4E08B6C2D9F4E1A7B530 ").unwrap();
        assert_eq!(l.as_str(), "a3f1c9e27b5d4e08b6c2d9f4e1a7b530");
        for (bad, why) in [
            ("", "empty"),
            ("a3f1c9e27b5d4e08b6c2d9f4e1a7b53", "31 characters"),
            ("a3f1c9e27b5d4e08b6c2d9f4e1a7b5300", "33 characters"),
            ("g3f1c9e27b5d4e08b6c2d9f4e1a7b530", "not hex"),
        ] {
            assert!(
                matches!(Lsid::parse(bad), Err(DomainError::Validation { ref field, .. }) if field == "lsid"),
                "{why}"
            );
        }
    }

    #[test]
    fn external_keys_round_trip_and_foreign_keys_are_refused() {
        assert_eq!(ExternalKey::parse("T1042").unwrap(), ExternalKey::Ticket(1042));
        assert_eq!(ExternalKey::parse(" c7 ").unwrap(), ExternalKey::Chat(7));
        assert_eq!(ExternalKey::Ticket(1042).to_string(), "T1042");
        assert_eq!(ExternalKey::Chat(7).to_string(), "C7");
        let json = serde_json::to_string(&ExternalKey::Chat(7)).unwrap();
        assert_eq!(json, "\"C7\"");
        assert_eq!(
            serde_json::from_str::<ExternalKey>(&json).unwrap(),
            ExternalKey::Chat(7)
        );
        for (bad, why) in [
            ("", "empty"),
            ("T", "no digits"),
            ("X12", "foreign prefix"),
            ("T12a", "trailing garbage"),
            ("T-1", "sign"),
            ("T0", "zero id"),
            ("T99999999999999999999999", "overflow"),
            ("INC0012345", "a ServiceNow key"),
        ] {
            assert!(ExternalKey::parse(bad).is_err(), "{why}");
        }
        assert!(is_generated_here(Some("T1042")));
        assert!(!is_generated_here(Some("")));
        assert!(!is_generated_here(None));
    }

    #[test]
    fn technician_matches_any_name_trimmed_and_case_insensitive() {
        let bob = names("Bob", "Bob", "Robert Keller (L2 Network)", Some("rkeller"));
        for (bt_name, expected, why) in [
            ("Bob", true, "public/display name"),
            ("  bob ", true, "trimmed, case-insensitive"),
            ("robert keller (l2 network)", true, "private name"),
            ("RKELLER", true, "username"),
            ("Robert Keller", false, "partial private name"),
            ("", false, "blank bt_name matches nobody"),
            ("Alice", false, "another rep"),
        ] {
            assert_eq!(matches_technician(bt_name, &bob), expected, "{why}");
        }
        let empty = RepNames::default();
        assert!(!matches_technician("", &empty));
    }

    #[test]
    fn technician_is_found_for_the_owner_before_other_reps() {
        let facts = t1042();
        let agents = vec![agent(1, Some("Bob"), true), agent(2, Some("alice martin"), true)];
        assert_eq!(find_technician(&agents, &facts).unwrap().id, 2);

        // A disabled agent never matches; the invited rep is then used.
        let agents = vec![agent(1, Some("Bob"), true), agent(2, Some("Alice Martin"), false)];
        assert_eq!(find_technician(&agents, &facts).unwrap().id, 1);

        let agents = vec![agent(3, None, true), agent(4, Some("Carol"), true)];
        assert!(find_technician(&agents, &facts).is_none());
    }

    #[test]
    fn transcript_holds_chat_messages_in_order_with_resolved_authors() {
        let lines = transcript(&t1042());
        let got: Vec<(&str, &str)> = lines.iter().map(|l| (l.from.as_str(), l.text.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("Alice Martin", "Hi Jane"),
                ("Jane Doe", "Dialog:\nError 0x80048823"),
                ("Bob", "Sending a tool & more"),
            ]
        );
        assert_eq!(lines[0].at, at(1795424057));
    }

    #[test]
    fn transcript_falls_back_to_printed_names_and_system() {
        let mut facts = t1042();
        facts.events = vec![
            said(10, 9, ActorKind::Customer, "Visitor", "who am I"),
            SessionEvent {
                at: at(11),
                event_type: CHAT_MESSAGE.into(),
                performed_by: None,
                text: Some("automatic".into()),
            },
            said(12, 2, ActorKind::Representative, "Alice", "   "),
        ];
        let lines = transcript(&facts);
        assert_eq!(lines.len(), 2, "blank messages are skipped");
        assert_eq!(lines[0].from, "Visitor");
        assert_eq!(lines[1].from, "System");
    }

    #[test]
    fn clean_text_keeps_newlines_and_drops_control_characters() {
        assert_eq!(clean_text("a\r\nb\rc\u{0B}d\u{0C}e\u{07}f\tg"), "a\nb\nc\nd\nef\tg");
    }

    #[test]
    fn summary_names_session_customer_duration_and_reps() {
        let s = summary(&t1042());
        assert_eq!(
            s,
            "BeyondTrust remote session a3f1c9e27b5d4e08b6c2d9f4e1a7b530\n\
             Customer: Jane Doe\n\
             Started: 2026-11-23 08:52:12 UTC\n\
             Ended: 2026-11-23 09:15:12 UTC\n\
             Duration: 00:23:00\n\
             Representatives: Alice Martin, Bob"
        );
        let mut facts = t1042();
        facts.duration_secs = None;
        facts.primary_customer = None;
        facts.customers.clear();
        facts.reps.clear();
        let s = summary(&facts);
        assert!(s.contains("Duration: 00:23:00"), "computed from start and end: {s}");
        assert!(s.contains("Customer: Unknown"));
        assert!(s.contains("Representatives: none"));
    }

    #[test]
    fn note_renders_time_speaker_and_text() {
        let facts = t1042();
        let note = render_note(&facts, &transcript(&facts));
        assert!(note.starts_with("BeyondTrust remote session a3f1"));
        assert!(
            note.contains(
                "Chat transcript (UTC):\n\
             [08:54:17] Alice Martin: Hi Jane\n\
             [08:56:44] Jane Doe: Dialog:\n    Error 0x80048823\n\
             [08:59:12] Bob: Sending a tool & more"
            ),
            "{note}"
        );
        assert!(render_note(&facts, &[]).ends_with("No chat messages."));
    }

    #[test]
    fn transcript_over_several_days_shows_dates() {
        let lines = vec![
            TranscriptLine {
                at: at(1795478390),
                from: "A".into(),
                text: "late".into(),
            },
            TranscriptLine {
                at: at(1795478410),
                from: "B".into(),
                text: "early".into(),
            },
        ];
        assert_eq!(
            render_transcript(&lines),
            "[2026-11-23 23:59:50] A: late\n[2026-11-24 00:00:10] B: early"
        );
    }

    #[test]
    fn note_is_cut_to_the_ticket_note_limit() {
        let facts = t1042();
        let long = vec![TranscriptLine {
            at: at(0),
            from: "A".into(),
            text: "x".repeat(NOTE_MAX),
        }];
        let note = render_note(&facts, &long);
        assert_eq!(note.chars().count(), NOTE_MAX);
        assert!(note.ends_with("(truncated)"));
    }

    #[test]
    fn link_decision_covers_the_four_outcomes() {
        let open_unlinked = chat(7, ChatStatus::Open, None);
        let open_linked = chat(8, ChatStatus::Open, Some(1042));
        let ended_linked = chat(9, ChatStatus::Ended, Some(1042));
        let ended_unlinked = chat(10, ChatStatus::Ended, None);
        let park = |n: &str| LinkDecision::Park { name: n.to_string() };
        let cases = [
            (
                KeyLookup::Ticket { id: 1042, exists: true },
                LinkDecision::ToTicket(1042),
                "ticket exists",
            ),
            (
                KeyLookup::Ticket {
                    id: 1042,
                    exists: false,
                },
                park("Remote Session"),
                "ticket gone",
            ),
            (KeyLookup::NoKey, park("Remote Session"), "no key"),
            (
                KeyLookup::Chat {
                    id: 8,
                    chat: Some(&open_linked),
                    linked_ticket_exists: true,
                },
                LinkDecision::ToChatTicket {
                    chat_id: 8,
                    ticket_id: 1042,
                },
                "open chat linked to a ticket",
            ),
            (
                KeyLookup::Chat {
                    id: 9,
                    chat: Some(&ended_linked),
                    linked_ticket_exists: true,
                },
                LinkDecision::ToChatTicket {
                    chat_id: 9,
                    ticket_id: 1042,
                },
                "ended chat linked to a ticket",
            ),
            (
                KeyLookup::Chat {
                    id: 7,
                    chat: Some(&open_unlinked),
                    linked_ticket_exists: false,
                },
                LinkDecision::ToOpenChat(7),
                "open unlinked chat",
            ),
            (
                KeyLookup::Chat {
                    id: 8,
                    chat: Some(&open_linked),
                    linked_ticket_exists: false,
                },
                LinkDecision::ToOpenChat(8),
                "open chat whose ticket is gone",
            ),
            (
                KeyLookup::Chat {
                    id: 10,
                    chat: Some(&ended_unlinked),
                    linked_ticket_exists: false,
                },
                park("Chat 10 with Jane Doe"),
                "ended unlinked chat: named after the chat",
            ),
            (
                KeyLookup::Chat {
                    id: 11,
                    chat: None,
                    linked_ticket_exists: false,
                },
                park("Remote Session"),
                "chat gone",
            ),
        ];
        for (lookup, expected, why) in cases {
            assert_eq!(decide_link(lookup), expected, "{why}");
        }
        assert_eq!(
            LinkDecision::ToChatTicket {
                chat_id: 8,
                ticket_id: 5
            }
            .ticket_id(),
            Some(5)
        );
        assert_eq!(LinkDecision::ToOpenChat(8).ticket_id(), None);
    }

    #[test]
    fn invite_plan_follows_agent_team_and_default_rules() {
        let agent_in = InviteRequest::Agent {
            logged_in_rep_id: Some("12".into()),
        };
        let agent_out = InviteRequest::Agent { logged_in_rep_id: None };
        let unavailable = |r: Result<Option<InviteQueue>, DomainError>| {
            matches!(
                r,
                Err(DomainError::Conflict {
                    code: "TECHUNAVAILABLE",
                    ..
                })
            )
        };
        assert_eq!(
            plan_invite(agent_in, false, None).unwrap(),
            Some(InviteQueue::Rep("12".into()))
        );
        assert_eq!(
            plan_invite(agent_out.clone(), true, Some("3")).unwrap(),
            Some(InviteQueue::Team("3".into()))
        );
        assert!(
            unavailable(plan_invite(agent_out.clone(), false, Some("3"))),
            "no fallback"
        );
        assert!(
            unavailable(plan_invite(agent_out, true, None)),
            "fallback without default team"
        );
        assert_eq!(
            plan_invite(
                InviteRequest::Team {
                    bt_team_id: Some("5".into())
                },
                false,
                Some("3")
            )
            .unwrap(),
            Some(InviteQueue::Team("5".into()))
        );
        assert!(matches!(
            plan_invite(InviteRequest::Team { bt_team_id: None }, false, Some("3")),
            Err(DomainError::Validation { ref field, .. }) if field == "target"
        ));
        assert_eq!(
            plan_invite(InviteRequest::Default, false, Some("3")).unwrap(),
            Some(InviteQueue::Team("3".into()))
        );
        assert_eq!(plan_invite(InviteRequest::Default, true, Some(" ")).unwrap(), None);
    }

    fn key() -> InviteKey {
        InviteKey {
            short_key: "4825913".into(),
            key_url: "https://support.example.com/?ak=7c1e&x=1".into(),
        }
    }

    #[test]
    fn invite_templates_fill_all_three_variables() {
        let invite = "Join at $LINKTOREMOTE or enter $REMOTESESSIONCODE. $REMOTEINVITE";
        let body = render_invite(
            "Hello,\n$REMOTEINVITE\nCode: $REMOTESESSIONCODE, $5 fee",
            invite,
            Some(&key()),
        );
        assert_eq!(
            body,
            "Hello,\nJoin at https://support.example.com/?ak=7c1e&x=1 or enter 4825913. \nCode: 4825913, $5 fee"
        );
    }

    #[test]
    fn invite_templates_blank_the_variables_without_a_key() {
        let out = render_invite(
            "[$REMOTEINVITE|$LINKTOREMOTE|$REMOTESESSIONCODE]",
            "Code $REMOTESESSIONCODE",
            None,
        );
        assert_eq!(out, "[||]");
        let html = render_invite_html("<p>$REMOTEINVITE</p>", "Code $REMOTESESSIONCODE", None);
        assert_eq!(html, "<p></p>");
    }

    #[test]
    fn chat_template_escapes_the_values_but_not_the_template() {
        let html = render_invite_html(
            "<p>$REMOTEINVITE</p><a href=\"$LINKTOREMOTE\">Start</a>",
            "Use <b>code</b> $REMOTESESSIONCODE\nthen wait",
            Some(&key()),
        );
        assert_eq!(
            html,
            "<p>Use &lt;b&gt;code&lt;/b&gt; 4825913<br>\nthen wait</p>\
             <a href=\"https://support.example.com/?ak=7c1e&amp;x=1\">Start</a>"
        );
    }

    #[test]
    fn values_that_look_like_variables_are_not_expanded_again() {
        let k = InviteKey {
            short_key: "$LINKTOREMOTE".into(),
            key_url: "u".into(),
        };
        assert_eq!(render_invite("$REMOTESESSIONCODE", "", Some(&k)), "$LINKTOREMOTE");
    }
}
