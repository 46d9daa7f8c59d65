//! Repositories of customers (with their main site), sites, users, agents, teams and
//! ticket types; references are checked inside the same transaction as the write.

use super::{sk_id, Listing, PageRequest, Store};
use crate::domain::desk::*;
use crate::domain::{required_text, DomainError};
use crate::error::{Error, Result};
use crate::ports::{Index, StoreError, WriteOp};

pub(crate) const CUSTOMER: &str = "customer";
pub(crate) const SITE: &str = "site";
pub(crate) const USER: &str = "user";
pub(crate) const AGENT: &str = "agent";
pub(crate) const TEAM: &str = "team";
pub(crate) const TICKET_TYPE: &str = "ticket-type";

/// Turn a failed reference check into a `NotFound` naming the field that held it.
pub(crate) fn missing_reference(e: StoreError, refs: &[(&str, &'static str, u64)]) -> Error {
    if let StoreError::ConditionFailed { pk, sk } = &e {
        for (kind, label, id) in refs {
            if pk == kind && *sk == sk_id(*id) {
                return DomainError::not_found(label, id).into();
            }
        }
    }
    e.into()
}

impl Store {
    // ---- customers & sites ------------------------------------------------------------

    /// Create a customer together with its main site.
    pub async fn create_customer(&self, input: NewCustomer) -> Result<Customer> {
        let (name, site_name) = input.validate()?;
        let id = self.next_id(CUSTOMER).await?;
        let site_id = self.next_id(SITE).await?;
        let customer = Customer {
            id,
            name,
            main_site_id: site_id,
        };
        let site = Site {
            id: site_id,
            customer_id: id,
            name: site_name,
            datto_site_uid: None,
        };
        self.records()
            .write(vec![
                Self::put_new(CUSTOMER, id, &customer),
                Self::put_new(SITE, site_id, &site),
            ])
            .await?;
        Ok(customer)
    }

    pub async fn customer(&self, id: u64) -> Result<Customer> {
        Ok(self.fetch(CUSTOMER, "customer", id).await?.0)
    }

    pub async fn customers(&self, page: &PageRequest) -> Result<Listing<Customer>> {
        self.list(Index::Primary, CUSTOMER, false, page, |_: &Customer| true)
            .await
    }

    pub async fn update_customer(&self, id: u64, input: CustomerUpdate) -> Result<Customer> {
        if let Some(site_id) = input.main_site_id {
            let site = self
                .site(site_id)
                .await
                .map_err(|_| DomainError::invalid("main_site_id", format!("site {site_id} does not exist")))?;
            if site.customer_id != id {
                return Err(DomainError::invalid(
                    "main_site_id",
                    format!("site {site_id} belongs to another customer"),
                )
                .into());
            }
        }
        let name = input
            .name
            .as_deref()
            .map(|n| required_text("name", n, 200))
            .transpose()?;
        let (c, ()) = self
            .update(CUSTOMER, "customer", id, |c: &mut Customer, _| {
                if let Some(n) = &name {
                    c.name = n.clone();
                }
                if let Some(s) = input.main_site_id {
                    c.main_site_id = s;
                }
                Ok(())
            })
            .await?;
        Ok(c)
    }

    pub async fn create_site(&self, input: NewSite) -> Result<Site> {
        let (name, datto_site_uid) = input.validate()?;
        let id = self.next_id(SITE).await?;
        let site = Site {
            id,
            customer_id: input.customer_id,
            name,
            datto_site_uid,
        };
        self.records()
            .write(vec![
                Self::must_exist(CUSTOMER, input.customer_id),
                Self::put_new(SITE, id, &site),
            ])
            .await
            .map_err(|e| missing_reference(e, &[(CUSTOMER, "customer", input.customer_id)]))?;
        Ok(site)
    }

    pub async fn site(&self, id: u64) -> Result<Site> {
        Ok(self.fetch(SITE, "site", id).await?.0)
    }

    pub async fn sites(&self, customer_id: Option<u64>, page: &PageRequest) -> Result<Listing<Site>> {
        self.list(Index::Primary, SITE, false, page, |s: &Site| {
            customer_id.is_none_or(|c| s.customer_id == c)
        })
        .await
    }

    pub async fn update_site(&self, id: u64, input: SiteUpdate) -> Result<Site> {
        let name = input
            .name
            .as_deref()
            .map(|n| required_text("name", n, 200))
            .transpose()?;
        Ok(self
            .update(SITE, "site", id, |s: &mut Site, _| {
                if let Some(n) = &name {
                    s.name = n.clone();
                }
                Ok(())
            })
            .await?
            .0)
    }

    /// Store a site as given (used by imports that set fields the API does not expose).
    pub async fn save_site(&self, site: &Site) -> Result<Site> {
        let copy = site.clone();
        Ok(self
            .update(SITE, "site", site.id, move |s: &mut Site, _| {
                *s = copy.clone();
                Ok(())
            })
            .await?
            .0)
    }

    // ---- users ------------------------------------------------------------------------

    pub async fn create_user(&self, input: NewUser) -> Result<User> {
        let (name, email) = input.validate()?;
        let id = self.next_id(USER).await?;
        let user = User {
            id,
            name,
            email,
            customer_id: input.customer_id,
        };
        self.records()
            .write(vec![
                Self::must_exist(CUSTOMER, input.customer_id),
                Self::put_new(USER, id, &user),
            ])
            .await
            .map_err(|e| missing_reference(e, &[(CUSTOMER, "customer", input.customer_id)]))?;
        Ok(user)
    }

    pub async fn user(&self, id: u64) -> Result<User> {
        Ok(self.fetch(USER, "user", id).await?.0)
    }

    pub async fn users(&self, customer_id: Option<u64>, page: &PageRequest) -> Result<Listing<User>> {
        self.list(Index::Primary, USER, false, page, |u: &User| {
            customer_id.is_none_or(|c| u.customer_id == c)
        })
        .await
    }

    pub async fn update_user(&self, id: u64, input: UserUpdate) -> Result<User> {
        let name = input
            .name
            .as_deref()
            .map(|n| required_text("name", n, 200))
            .transpose()?;
        let email = input
            .email
            .as_deref()
            .map(|e| crate::domain::email("email", e))
            .transpose()?;
        Ok(self
            .update(USER, "user", id, |u: &mut User, _| {
                if let Some(n) = &name {
                    u.name = n.clone();
                }
                if let Some(e) = &email {
                    u.email = e.clone();
                }
                Ok(())
            })
            .await?
            .0)
    }

    // ---- agents -----------------------------------------------------------------------

    pub async fn create_agent(&self, input: NewAgent) -> Result<Agent> {
        let id = self.next_id(AGENT).await?;
        let agent = input.into_agent(id)?;
        self.records().write(vec![Self::put_new(AGENT, id, &agent)]).await?;
        Ok(agent)
    }

    pub async fn agent(&self, id: u64) -> Result<Agent> {
        Ok(self.fetch(AGENT, "agent", id).await?.0)
    }

    pub async fn agents(&self, page: &PageRequest) -> Result<Listing<Agent>> {
        self.list(Index::Primary, AGENT, false, page, |_: &Agent| true).await
    }

    /// Every agent, by id.
    pub async fn all_agents(&self) -> Result<Vec<Agent>> {
        self.list_all(Index::Primary, AGENT, false, |_: &Agent| true).await
    }

    pub async fn update_agent(&self, id: u64, input: AgentUpdate) -> Result<Agent> {
        Ok(self
            .update(AGENT, "agent", id, |a: &mut Agent, _| Ok(input.clone().apply(a)?))
            .await?
            .0)
    }

    // ---- teams ------------------------------------------------------------------------

    pub async fn create_team(&self, input: NewTeam) -> Result<Team> {
        let id = self.next_id(TEAM).await?;
        let team = input.into_team(id)?;
        let mut ops = vec![Self::put_new(TEAM, id, &team)];
        if team.is_default {
            ops.extend(
                self.clear_other_defaults::<Team>(TEAM, id, |t| &mut t.is_default)
                    .await?,
            );
        }
        self.records().write(ops).await?;
        Ok(team)
    }

    pub async fn team(&self, id: u64) -> Result<Team> {
        Ok(self.fetch(TEAM, "team", id).await?.0)
    }

    pub async fn teams(&self, page: &PageRequest) -> Result<Listing<Team>> {
        self.list(Index::Primary, TEAM, false, page, |_: &Team| true).await
    }

    /// Every team, by id.
    pub async fn all_teams(&self) -> Result<Vec<Team>> {
        self.list_all(Index::Primary, TEAM, false, |_: &Team| true).await
    }

    pub async fn update_team(&self, id: u64, input: TeamUpdate) -> Result<Team> {
        let becomes_default = input.is_default == Some(true);
        let others = if becomes_default {
            self.clear_other_defaults::<Team>(TEAM, id, |t| &mut t.is_default)
                .await?
        } else {
            Vec::new()
        };
        Ok(self
            .update(TEAM, "team", id, |t: &mut Team, extra| {
                input.clone().apply(t)?;
                extra.extend(others.iter().cloned());
                Ok(())
            })
            .await?
            .0)
    }

    /// The default team, if one is marked.
    pub async fn default_team(&self) -> Result<Option<Team>> {
        self.find_first(TEAM, |t: &Team| t.is_default).await
    }

    // ---- ticket types -----------------------------------------------------------------

    pub async fn create_ticket_type(&self, input: NewTicketType) -> Result<TicketType> {
        let id = self.next_id(TICKET_TYPE).await?;
        let tt = input.into_ticket_type(id)?;
        let mut ops = vec![Self::put_new(TICKET_TYPE, id, &tt)];
        if tt.is_default {
            ops.extend(
                self.clear_other_defaults::<TicketType>(TICKET_TYPE, id, |t| &mut t.is_default)
                    .await?,
            );
        }
        self.records().write(ops).await?;
        Ok(tt)
    }

    pub async fn ticket_type(&self, id: u64) -> Result<TicketType> {
        Ok(self.fetch(TICKET_TYPE, "ticket type", id).await?.0)
    }

    pub async fn ticket_types(&self, page: &PageRequest) -> Result<Listing<TicketType>> {
        self.list(Index::Primary, TICKET_TYPE, false, page, |_: &TicketType| true)
            .await
    }

    pub async fn update_ticket_type(&self, id: u64, input: TicketTypeUpdate) -> Result<TicketType> {
        let others = if input.is_default == Some(true) {
            self.clear_other_defaults::<TicketType>(TICKET_TYPE, id, |t| &mut t.is_default)
                .await?
        } else {
            Vec::new()
        };
        Ok(self
            .update(TICKET_TYPE, "ticket type", id, |t: &mut TicketType, extra| {
                input.clone().apply(t)?;
                extra.extend(others.iter().cloned());
                Ok(())
            })
            .await?
            .0)
    }

    pub async fn default_ticket_type(&self) -> Result<Option<TicketType>> {
        self.find_first(TICKET_TYPE, |t: &TicketType| t.is_default).await
    }

    // ---- shared -----------------------------------------------------------------------

    /// Writes that take the default flag off every other item of `kind`, each conditioned
    /// on the version read, so a concurrent change makes the whole transaction retry.
    async fn clear_other_defaults<T>(
        &self,
        kind: &str,
        keep_id: u64,
        flag: impl Fn(&mut T) -> &mut bool,
    ) -> Result<Vec<WriteOp>>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let mut ops = Vec::new();
        for r in self
            .all_records(crate::ports::Query::partition(Index::Primary, kind))
            .await?
        {
            let mut v: T = Self::decode(&r)?;
            if r.sk != sk_id(keep_id) && *flag(&mut v) {
                *flag(&mut v) = false;
                let version = r.version;
                let mut rec = r;
                rec.data = serde_json::to_value(&v).expect("serializable");
                rec.version = version + 1;
                ops.push(WriteOp::Put {
                    record: rec,
                    condition: crate::ports::Condition::VersionIs(version),
                });
            }
        }
        Ok(ops)
    }

    async fn find_first<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        pick: impl Fn(&T) -> bool,
    ) -> Result<Option<T>> {
        let mut page = PageRequest {
            limit: 1000,
            cursor: None,
        };
        loop {
            let l = self.list(Index::Primary, kind, false, &page, &pick).await?;
            if let Some(first) = l.items.into_iter().next() {
                return Ok(Some(first));
            }
            match l.next {
                Some(n) => page.cursor = Some(n),
                None => return Ok(None),
            }
        }
    }
}
