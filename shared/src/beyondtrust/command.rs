//! Command API answers (`/api/command`): API info and permissions, logged-in reps,
//! support teams, generated session keys; and the `generate_session_key` request.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::xml::{self, parse_flag, Element};
use super::Error;
use crate::domain::remote::{matches_technician, InviteKey, InviteQueue, RepNames};

// ---------------------------------------------------------------------------------------
// get_api_info
// ---------------------------------------------------------------------------------------

/// `get_api_info`: the API version and the API account's permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApiInfo {
    pub api_version: Option<String>,
    pub company_name: Option<String>,
    /// The appliance's clock.
    pub timestamp: Option<DateTime<Utc>>,
    /// Permission name (`perm_command`, `perm_reporting_support`, …) → raw value.
    pub permissions: BTreeMap<String, String>,
}

impl ApiInfo {
    /// Parse the answer. Permissions are read as `<permission name= value=>` elements (or
    /// with the value as text), as attributes of `<permissions>`, and as child elements
    /// named after the permission — the vendor's markup is not documented.
    pub fn from_xml(body: &str) -> Result<ApiInfo, Error> {
        let root = xml::expect_root(body, "api_information")?;
        let mut permissions = BTreeMap::new();
        if let Some(perms) = root.child("permissions") {
            for (k, v) in &perms.attrs {
                permissions.insert(k.clone(), v.trim().to_string());
            }
            for child in &perms.children {
                if child.name == "permission" {
                    if let Some(name) = child.attr_text("name") {
                        let value = child.attr_text("value").or_else(|| child.value());
                        permissions.insert(name, value.unwrap_or_default());
                    }
                } else {
                    let value = child.attr_text("value").or_else(|| child.value());
                    permissions.insert(child.name.clone(), value.unwrap_or_default());
                }
            }
        }
        Ok(ApiInfo {
            api_version: root.child_text("api_version"),
            company_name: root.child_text("company_name"),
            timestamp: root.child("timestamp").and_then(Element::time),
            permissions,
        })
    }

    pub fn permission(&self, name: &str) -> Option<&str> {
        self.permissions.get(name).map(String::as_str)
    }

    /// `perm_command` is full access (`generate_session_key` needs it). The exact spelling
    /// is unconfirmed: `full_access`, `full access`, `fullaccess` and `full` are accepted.
    pub fn command_full_access(&self) -> bool {
        self.permission("perm_command").is_some_and(|v| {
            let v: String = v
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            v == "fullaccess" || v == "full"
        })
    }

    /// `perm_reporting_support` is granted (SupportSession reports).
    pub fn reporting_support(&self) -> bool {
        self.permission("perm_reporting_support")
            .and_then(parse_flag)
            .unwrap_or(false)
    }

    /// What the API account lacks for deskbridge, one sentence per problem.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.command_full_access() {
            out.push(format!(
                "Command API permission is {} but Full Access is needed to generate session keys",
                self.permission("perm_command")
                    .map(|v| format!("\"{v}\""))
                    .unwrap_or_else(|| "missing".into())
            ));
        }
        if !self.reporting_support() {
            out.push(
                "Reporting API permission \"Allow Access to Support Session Reports and Recordings\" is not granted"
                    .into(),
            );
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// get_logged_in_reps
// ---------------------------------------------------------------------------------------

/// One logged-in representative. The API returns neither username nor availability;
/// being in the list is what "available" means.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoggedInRep {
    pub id: String,
    pub display_name: Option<String>,
    pub public_display_name: Option<String>,
    pub private_display_name: Option<String>,
    /// `Normal`, `Invited` (old: `Embassy`).
    pub rep_type: Option<String>,
    pub direct_link: Option<String>,
    pub logged_in_since: Option<DateTime<Utc>>,
    pub presentation_count: Option<u32>,
    pub support_session_count: Option<u32>,
    pub showing_on_rep_list: Option<bool>,
}

impl LoggedInRep {
    /// Parse the answer; reps without an `id` are skipped (they cannot be invited to).
    pub fn list_from_xml(body: &str) -> Result<Vec<LoggedInRep>, Error> {
        let root = xml::expect_root(body, "logged_in_reps")?;
        Ok(root
            .children("rep")
            .filter_map(|r| {
                let Some(id) = r.attr_text("id") else {
                    tracing::warn!("BeyondTrust listed a logged-in rep without an id; skipped");
                    return None;
                };
                Some(LoggedInRep {
                    id,
                    display_name: r.child_text("display_name"),
                    public_display_name: r.child_text("public_display_name"),
                    private_display_name: r.child_text("private_display_name"),
                    rep_type: r.child_text("type"),
                    direct_link: r.child_text("direct_link"),
                    logged_in_since: r.child("logged_in_since").and_then(Element::time),
                    presentation_count: r.child_text("presentation_count").and_then(|v| v.parse().ok()),
                    support_session_count: r.child_text("support_session_count").and_then(|v| v.parse().ok()),
                    showing_on_rep_list: r.child_text("showing_on_rep_list").as_deref().and_then(parse_flag),
                })
            })
            .collect())
    }

    pub fn names(&self) -> RepNames {
        RepNames {
            username: None,
            display_name: self.display_name.clone(),
            public_display_name: self.public_display_name.clone(),
            private_display_name: self.private_display_name.clone(),
        }
    }
}

/// The logged-in representative an agent's `bt_name` names (see
/// `domain::remote::matches_technician`), if any.
pub fn find_logged_in_rep<'a>(reps: &'a [LoggedInRep], bt_name: &str) -> Option<&'a LoggedInRep> {
    reps.iter().find(|r| matches_technician(bt_name, &r.names()))
}

// ---------------------------------------------------------------------------------------
// get_support_teams
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SupportTeam {
    pub id: String,
    pub name: String,
    pub code_name: Option<String>,
    pub issues: Vec<TeamIssue>,
    /// Filled only with `showmembers=1`.
    pub members: Vec<TeamMember>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TeamIssue {
    pub id: Option<String>,
    pub code_name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TeamMember {
    pub id: String,
    pub names: RepNames,
}

impl SupportTeam {
    /// Parse the answer; teams without an `id` are skipped. A team without `<name>` is
    /// named after its code name, else `Team <id>`.
    pub fn list_from_xml(body: &str) -> Result<Vec<SupportTeam>, Error> {
        let root = xml::expect_root(body, "support_teams")?;
        Ok(root
            .children("support_team")
            .filter_map(|t| {
                let Some(id) = t.attr_text("id") else {
                    tracing::warn!("BeyondTrust listed a support team without an id; skipped");
                    return None;
                };
                let code_name = t.child_text("code_name");
                Some(SupportTeam {
                    name: t
                        .child_text("name")
                        .or_else(|| code_name.clone())
                        .unwrap_or_else(|| format!("Team {id}")),
                    id,
                    code_name,
                    issues: t
                        .list("issues", "issue")
                        .into_iter()
                        .map(|i| TeamIssue {
                            id: i.attr_text("id"),
                            code_name: i.child_text("code_name"),
                            description: i.child_text("description"),
                        })
                        .collect(),
                    members: t
                        .list("members", "representative")
                        .into_iter()
                        .filter_map(|m| {
                            Some(TeamMember {
                                id: m.attr_text("id")?,
                                names: RepNames {
                                    username: m.child_text("username"),
                                    display_name: m.child_text("display_name"),
                                    public_display_name: m.child_text("public_display_name"),
                                    private_display_name: m.child_text("private_display_name"),
                                },
                            })
                        })
                        .collect(),
                })
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------------------
// generate_session_key
// ---------------------------------------------------------------------------------------

/// Longest external key (and custom field) the appliance stores.
pub const EXTERNAL_KEY_MAX: usize = 1024;

/// The queue a session key puts the customer into (`queue_id=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum QueueId {
    General,
    /// A representative's personal queue, by rep id (from `get_logged_in_reps`).
    Rep(String),
    /// A team queue, by team id (from `get_support_teams`).
    Team(String),
    /// Fails unless exactly one user has that username.
    RepUsername(String),
    /// An issue queue, by issue code name.
    Issue(String),
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueId::General => f.write_str("general"),
            QueueId::Rep(id) => write!(f, "rep:{id}"),
            QueueId::Team(id) => write!(f, "team:{id}"),
            QueueId::RepUsername(u) => write!(f, "rep_username:{u}"),
            QueueId::Issue(c) => write!(f, "issue:{c}"),
        }
    }
}

impl From<InviteQueue> for QueueId {
    fn from(q: InviteQueue) -> QueueId {
        match q {
            InviteQueue::Rep(id) => QueueId::Rep(id),
            InviteQueue::Team(id) => QueueId::Team(id),
        }
    }
}

/// A `generate_session_key` call (`type=support` is implied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeyRequest {
    pub queue: QueueId,
    /// Seconds the key can be used to *start* a session.
    pub ttl_secs: Option<u32>,
    /// Sent as `session.custom.external_key` (deskbridge: `T<id>` / `C<id>`).
    pub external_key: Option<String>,
    /// The public site the `key_url` should point at.
    pub url_hostname: Option<String>,
}

impl SessionKeyRequest {
    pub fn new(queue: QueueId) -> Self {
        SessionKeyRequest {
            queue,
            ttl_secs: None,
            external_key: None,
            url_hostname: None,
        }
    }

    pub fn external_key(mut self, key: impl ToString) -> Self {
        self.external_key = Some(key.to_string());
        self
    }

    pub fn ttl_secs(mut self, secs: u32) -> Self {
        self.ttl_secs = Some(secs);
        self
    }

    /// The form fields, after checking what the appliance would refuse.
    pub(crate) fn form(&self) -> Result<Vec<(&'static str, String)>, Error> {
        let id_ok = |id: &str| !id.trim().is_empty() && !id.contains(|c: char| c.is_whitespace() || c == ':');
        match &self.queue {
            QueueId::Rep(id) | QueueId::Team(id) | QueueId::RepUsername(id) | QueueId::Issue(id) if !id_ok(id) => {
                return Err(Error::Invalid(format!(
                    "queue id {:?} is not usable",
                    self.queue.to_string()
                )));
            }
            _ => {}
        }
        let mut form = vec![
            ("action", "generate_session_key".to_string()),
            ("type", "support".to_string()),
            ("queue_id", self.queue.to_string()),
        ];
        if let Some(ttl) = self.ttl_secs {
            if ttl == 0 {
                return Err(Error::Invalid("ttl must be positive".into()));
            }
            form.push(("ttl", ttl.to_string()));
        }
        if let Some(host) = &self.url_hostname {
            form.push(("url_hostname", host.trim().to_string()));
        }
        if let Some(key) = &self.external_key {
            if key.chars().count() > EXTERNAL_KEY_MAX {
                return Err(Error::Invalid(format!(
                    "external key longer than {EXTERNAL_KEY_MAX} characters"
                )));
            }
            form.push(("session.custom.external_key", key.clone()));
        }
        Ok(form)
    }
}

/// A generated session key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionKey {
    /// The 7-character code the customer types on the public site.
    pub short_key: String,
    /// The link that downloads the customer client.
    pub key_url: Option<String>,
    /// Until when the key can start a session (`timestamp` attribute, else the text).
    pub expires: Option<DateTime<Utc>>,
    pub mail_subject: Option<String>,
    pub mail_body: Option<String>,
}

impl SessionKey {
    pub fn from_xml(body: &str) -> Result<SessionKey, Error> {
        let root = xml::expect_root(body, "session_key")?;
        let short_key = root
            .child_text("short_key")
            .ok_or_else(|| Error::Malformed("session_key without short_key".into()))?;
        Ok(SessionKey {
            short_key,
            key_url: root.child_text("key_url"),
            expires: root.child("expires").and_then(Element::time),
            mail_subject: root.child_text("mail_subject"),
            // Keep the body's inner line breaks; only the ends are trimmed.
            mail_body: root.child_text("mail_body"),
        })
    }

    /// The values the invite templates need. Without a `key_url` the documented
    /// `{site}/api/start_session?short_key=` link is used.
    pub fn invite_key(&self, site_base_url: &str) -> InviteKey {
        let key_url = self.key_url.clone().unwrap_or_else(|| {
            format!(
                "{}/api/start_session?{}",
                site_base_url.trim_end_matches('/'),
                serde_urlencoded::to_string([("short_key", &self.short_key)]).unwrap_or_default()
            )
        });
        InviteKey {
            short_key: self.short_key.clone(),
            key_url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn api_info_fixture_has_full_command_access_and_support_reporting() {
        let info = ApiInfo::from_xml(fixtures::API_INFO).unwrap();
        assert_eq!(info.api_version.as_deref(), Some("1.22.2"));
        assert_eq!(info.company_name.as_deref(), Some("example"));
        assert_eq!(info.timestamp.unwrap().timestamp(), 1795423102);
        assert_eq!(info.permission("perm_command"), Some("full_access"));
        assert_eq!(info.permissions.len(), 10);
        assert!(info.command_full_access());
        assert!(info.reporting_support());
        assert!(info.problems().is_empty());
    }

    #[test]
    fn api_info_permissions_parse_as_attributes_and_child_elements() {
        let attrs = r#"<api_information xmlns="http://www.bomgar.com/namespaces/API/command">
            <api_version>1.19.0</api_version>
            <permissions perm_command="read_only" perm_reporting_support="1"/></api_information>"#;
        let info = ApiInfo::from_xml(attrs).unwrap();
        assert!(!info.command_full_access());
        assert!(info.reporting_support());
        assert_eq!(info.problems().len(), 1);
        assert!(info.problems()[0].contains("\"read_only\""), "{:?}", info.problems());

        let children = r#"<api_information><permissions>
            <perm_command>Full Access</perm_command><perm_reporting_support>0</perm_reporting_support>
            <permission name="perm_backup">1</permission></permissions></api_information>"#;
        let info = ApiInfo::from_xml(children).unwrap();
        assert!(info.command_full_access());
        assert!(!info.reporting_support());
        assert_eq!(info.permission("perm_backup"), Some("1"));

        let none = ApiInfo::from_xml("<api_information/>").unwrap();
        assert_eq!(none.problems().len(), 2);
        assert!(none.problems()[0].contains("missing"));
    }

    #[test]
    fn logged_in_reps_fixture_lists_alice_and_bob() {
        let reps = LoggedInRep::list_from_xml(fixtures::LOGGED_IN_REPS).unwrap();
        assert_eq!(reps.len(), 2);
        let bob = &reps[1];
        assert_eq!(bob.id, "17");
        assert_eq!(bob.public_display_name.as_deref(), Some("Bob"));
        assert_eq!(bob.private_display_name.as_deref(), Some("Robert Keller (L2 Network)"));
        assert_eq!(bob.rep_type.as_deref(), Some("Normal"));
        assert_eq!(bob.showing_on_rep_list, Some(false));
        assert_eq!(bob.logged_in_since.unwrap().timestamp(), 1795417202);
        assert!(reps[0].direct_link.as_deref().unwrap().starts_with("<a href="));
        assert_eq!(
            find_logged_in_rep(&reps, " robert keller (l2 network) ").unwrap().id,
            "17"
        );
        assert_eq!(find_logged_in_rep(&reps, "alice martin").unwrap().id, "12");
        assert!(find_logged_in_rep(&reps, "Sam").is_none());
    }

    #[test]
    fn one_rep_none_and_error_child_are_all_handled() {
        let one =
            r#"<logged_in_reps><rep id="3"><public_display_name>Solo</public_display_name></rep></logged_in_reps>"#;
        assert_eq!(LoggedInRep::list_from_xml(one).unwrap().len(), 1);
        assert!(LoggedInRep::list_from_xml("<logged_in_reps/>").unwrap().is_empty());
        let no_id = "<logged_in_reps><rep><display_name>?</display_name></rep></logged_in_reps>";
        assert!(LoggedInRep::list_from_xml(no_id).unwrap().is_empty());
        let err = "<logged_in_reps><error>Access denied</error></logged_in_reps>";
        assert_eq!(LoggedInRep::list_from_xml(err), Err(Error::Api("Access denied".into())));
    }

    #[test]
    fn support_teams_fixture_has_members_and_issues() {
        let teams = SupportTeam::list_from_xml(fixtures::SUPPORT_TEAMS).unwrap();
        assert_eq!(teams.len(), 2);
        let sd = &teams[0];
        assert_eq!((sd.id.as_str(), sd.name.as_str()), ("3", "Service Desk"));
        assert_eq!(sd.code_name.as_deref(), Some("service_desk"));
        assert_eq!(sd.issues[0].code_name.as_deref(), Some("password_reset"));
        let ids: Vec<&str> = sd.members.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["12", "21"]);
        assert_eq!(
            sd.members[1].names.private_display_name.as_deref(),
            Some("Samuel Ortiz (Tier 1)")
        );
        assert_eq!(teams[1].members.len(), 1);
    }

    #[test]
    fn teams_without_members_or_name_still_parse() {
        let xml = r#"<support_teams><support_team id="9"><code_name>night</code_name></support_team></support_teams>"#;
        let teams = SupportTeam::list_from_xml(xml).unwrap();
        assert_eq!(teams[0].name, "night");
        assert!(teams[0].members.is_empty() && teams[0].issues.is_empty());
    }

    #[test]
    fn session_key_fixtures_parse_with_expiry_and_mail() {
        let k = SessionKey::from_xml(fixtures::SESSION_KEY_TEAM).unwrap();
        assert_eq!(k.short_key, "4825913");
        assert_eq!(
            k.key_url.as_deref(),
            Some("https://support.example.com/?ak=7c1e9b04d2f84a6e93b05d1a8e6f2c47")
        );
        assert_eq!(k.expires.unwrap().timestamp(), 1795425002);
        assert_eq!(
            k.mail_subject.as_deref(),
            Some("Remote support invitation from Example IT Services")
        );
        let body = k.mail_body.unwrap();
        assert!(body.starts_with("Hello,\n\nA support representative"), "{body}");
        assert!(body.ends_with("09:10 UTC."));

        let rep = SessionKey::from_xml(fixtures::SESSION_KEY_REP).unwrap();
        assert_eq!(rep.short_key, "7360248");
        assert_eq!(rep.expires.unwrap().timestamp(), 1795425902);
    }

    #[test]
    fn session_key_expiry_falls_back_to_iso_text_and_link_to_start_session() {
        let xml = "<session_key><short_key>1234567</short_key><expires>2026-11-23T09:10:02Z</expires></session_key>";
        let k = SessionKey::from_xml(xml).unwrap();
        assert_eq!(k.expires.unwrap().timestamp(), 1795425002);
        let invite = k.invite_key("https://support.example.com/");
        assert_eq!(
            invite.key_url,
            "https://support.example.com/api/start_session?short_key=1234567"
        );
        assert!(matches!(
            SessionKey::from_xml("<session_key><key_url>x</key_url></session_key>"),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn rep_unavailable_fixture_is_an_api_error() {
        assert_eq!(
            SessionKey::from_xml(fixtures::ERROR_REP_UNAVAILABLE),
            Err(Error::Api(
                "Unable to generate a session key: representative 21 is not logged in.".into()
            ))
        );
    }

    #[test]
    fn session_key_request_builds_the_documented_form() {
        let form = SessionKeyRequest::new(QueueId::Team("3".into()))
            .ttl_secs(1800)
            .external_key(crate::domain::remote::ExternalKey::Ticket(1042))
            .form()
            .unwrap();
        assert_eq!(
            serde_urlencoded::to_string(&form).unwrap(),
            "action=generate_session_key&type=support&queue_id=team%3A3&ttl=1800&session.custom.external_key=T1042"
        );
        assert_eq!(QueueId::from(InviteQueue::Rep("12".into())).to_string(), "rep:12");
        assert_eq!(QueueId::General.to_string(), "general");
        for (req, why) in [
            (SessionKeyRequest::new(QueueId::Rep(" ".into())), "blank rep id"),
            (SessionKeyRequest::new(QueueId::Team("3:4".into())), "colon in id"),
            (SessionKeyRequest::new(QueueId::General).ttl_secs(0), "zero ttl"),
            (
                SessionKeyRequest::new(QueueId::General).external_key("x".repeat(1025)),
                "key too long",
            ),
        ] {
            assert!(matches!(req.form(), Err(Error::Invalid(_))), "{why}");
        }
    }
}
