//! Members: one person's access to one org, their role, and the access state machine
//!
//! ```text
//! (new) --add--> invited --accept--> enrolled
//! invited --cancel--> cancelled --re-add--> invited (a new invitation)
//! enrolled --disable--> disabled --enable--> enrolled
//! invited|enrolled|disabled --remove--> removed
//! removed --re-add--> enrolled if they had enrolled before, else invited
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Invited,
    Enrolled,
    Removed,
    /// A pending invitation withdrawn before it was accepted.
    Cancelled,
    /// Access suspended by an admin, reversibly.
    Disabled,
}

/// What an admin asks to see: `all` is everyone with access (invited and enrolled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessView {
    #[default]
    All,
    Invited,
    Enrolled,
    Removed,
    Cancelled,
    Disabled,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Invited => "invited",
            Access::Enrolled => "enrolled",
            Access::Removed => "removed",
            Access::Cancelled => "cancelled",
            Access::Disabled => "disabled",
        }
    }

    /// Whether the member may use the org now (invited members may, by accepting).
    pub fn has_access(self) -> bool {
        matches!(self, Access::Invited | Access::Enrolled)
    }

    /// Whether the member is gone: removed or their invitation cancelled. Adding such a person
    /// again starts over; nothing else brings them back.
    pub fn is_gone(self) -> bool {
        matches!(self, Access::Removed | Access::Cancelled)
    }
}

impl AccessView {
    /// The access states this view shows.
    pub fn states(self) -> &'static [Access] {
        match self {
            AccessView::All => &[Access::Invited, Access::Enrolled],
            AccessView::Invited => &[Access::Invited],
            AccessView::Enrolled => &[Access::Enrolled],
            AccessView::Removed => &[Access::Removed],
            AccessView::Cancelled => &[Access::Cancelled],
            AccessView::Disabled => &[Access::Disabled],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`; expected one of: {expected}")]
pub struct UnknownVariant {
    what: &'static str,
    value: String,
    expected: &'static str,
}

impl FromStr for Role {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => Err(UnknownVariant {
                what: "role",
                value: s.to_owned(),
                expected: "owner, admin, member",
            }),
        }
    }
}

impl FromStr for Access {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "invited" => Ok(Access::Invited),
            "enrolled" => Ok(Access::Enrolled),
            "removed" => Ok(Access::Removed),
            "cancelled" => Ok(Access::Cancelled),
            "disabled" => Ok(Access::Disabled),
            _ => Err(UnknownVariant {
                what: "access",
                value: s.to_owned(),
                expected: "invited, enrolled, removed, cancelled, disabled",
            }),
        }
    }
}

impl FromStr for AccessView {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(AccessView::All),
            "invited" => Ok(AccessView::Invited),
            "enrolled" => Ok(AccessView::Enrolled),
            "removed" => Ok(AccessView::Removed),
            "cancelled" => Ok(AccessView::Cancelled),
            "disabled" => Ok(AccessView::Disabled),
            _ => Err(UnknownVariant {
                what: "access view",
                value: s.to_owned(),
                expected: "all, invited, enrolled, removed, cancelled, disabled",
            }),
        }
    }
}

impl TryFrom<String> for Role {
    type Error = UnknownVariant;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for Access {
    type Error = UnknownVariant;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Member {
    pub id: Uuid,
    pub org_id: Uuid,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub member_email: String,
    pub login_email: Option<String>,
    #[sqlx(try_from = "String")]
    pub role: Role,
    #[sqlx(try_from = "String")]
    pub access: Access,
    pub added_at: DateTime<Utc>,
    pub invited_at: Option<DateTime<Utc>>,
    pub invite_count: i64,
    pub reminders_sent: i64,
    pub enrolled_at: Option<DateTime<Utc>>,
    pub last_active_at: Option<DateTime<Utc>>,
    pub removed_at: Option<DateTime<Utc>>,
    pub activity_at: DateTime<Utc>,
    pub ever_enrolled: bool,
    pub updated_at: DateTime<Utc>,
    /// The SCIM userName (the member email for members added by hand).
    pub user_name: String,
    /// The SCIM externalId, as the identity provider set it.
    pub external_id: Option<String>,
    /// The SCIM resource as the identity provider last wrote it (JSON), for the attributes
    /// rosterd keeps but does not interpret.
    pub scim_data: Option<String>,
    /// Bumped on every change: the SCIM ETag.
    pub version: i64,
    /// Deleted over SCIM: removed, and answered 404 on the SCIM side from then on.
    pub scim_deleted: bool,
    /// When the pending invitation was cancelled (while `cancelled`).
    pub cancelled_at: Option<DateTime<Utc>>,
    /// When access was suspended (while `disabled`).
    pub disabled_at: Option<DateTime<Utc>>,
    /// Points held (kept by `roster::ledger` together with its ledger row; never written by
    /// the member store's `insert`/`update`).
    pub points: i64,
    /// Monthly fee in minor units of `currency` (kept by `roster::ledger`, like `points`).
    pub monthly_fee: Option<i64>,
    /// The ISO 4217 code of the member's fee and payments, set by the first of them.
    pub currency: Option<String>,
    /// Sum of the member's payments, in minor units of `currency`.
    pub total_paid: i64,
    /// Where the person can still be reached, as the admin who removed them recorded it.
    /// Shown only while `removed`.
    pub contact_email: Option<String>,
}

/// The "activity" column admins see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// Invited: when the last invitation was sent.
    InviteSent,
    /// Enrolled: when they were last active (or enrolled, if never active since).
    LastActive,
    /// Removed: when they were removed.
    Removed,
    /// Cancelled: when the invitation was cancelled.
    Cancelled,
    /// Disabled: when access was suspended.
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Activity {
    pub kind: ActivityKind,
    pub at: DateTime<Utc>,
}

impl Member {
    /// A member who joined by themselves just now (an invite link, the join page): enrolled,
    /// with `email` as member email, login email and SCIM userName, and nothing else known.
    pub fn joined(org_id: Uuid, email: &str, role: Role, now: DateTime<Utc>) -> Member {
        Member {
            id: Uuid::now_v7(),
            org_id,
            given_name: None,
            family_name: None,
            display_name: None,
            member_email: email.to_owned(),
            login_email: Some(email.to_owned()),
            role,
            access: Access::Enrolled,
            added_at: now,
            invited_at: None,
            invite_count: 0,
            reminders_sent: 0,
            enrolled_at: Some(now),
            last_active_at: None,
            removed_at: None,
            activity_at: now,
            ever_enrolled: true,
            updated_at: now,
            user_name: email.to_owned(),
            external_id: None,
            scim_data: None,
            version: 1,
            scim_deleted: false,
            cancelled_at: None,
            disabled_at: None,
            points: 0,
            monthly_fee: None,
            currency: None,
            total_paid: 0,
            contact_email: None,
        }
    }

    /// The name to show: the display name, else given + family, else the email.
    pub fn name(&self) -> String {
        display_name_of(
            self.display_name.as_deref(),
            self.given_name.as_deref(),
            self.family_name.as_deref(),
        )
        .unwrap_or_else(|| self.member_email.clone())
    }

    /// The login email, only where it differs from the member email.
    pub fn distinct_login_email(&self) -> Option<&str> {
        self.login_email
            .as_deref()
            .filter(|l| !l.eq_ignore_ascii_case(&self.member_email))
    }

    pub fn activity(&self) -> Activity {
        let kind = match self.access {
            Access::Invited => ActivityKind::InviteSent,
            Access::Enrolled => ActivityKind::LastActive,
            Access::Removed => ActivityKind::Removed,
            Access::Cancelled => ActivityKind::Cancelled,
            Access::Disabled => ActivityKind::Disabled,
        };
        Activity {
            kind,
            at: self.activity_at,
        }
    }

    /// The value the `activity_at` column must hold for this member's current state.
    pub fn computed_activity_at(&self) -> DateTime<Utc> {
        match self.access {
            Access::Invited => self.invited_at.unwrap_or(self.added_at),
            Access::Enrolled => self
                .last_active_at
                .or(self.enrolled_at)
                .unwrap_or(self.added_at),
            Access::Removed => self.removed_at.unwrap_or(self.updated_at),
            Access::Cancelled => self.cancelled_at.unwrap_or(self.updated_at),
            Access::Disabled => self.disabled_at.unwrap_or(self.updated_at),
        }
    }

    /// The key the name sort and search use.
    pub fn name_key(&self) -> String {
        self.name().to_lowercase()
    }

    /// What the admin search looks in: name, member email and login email, lowercased.
    pub fn search_key(&self) -> String {
        let mut k = self.name_key();
        k.push('\n');
        k.push_str(&self.member_email.to_lowercase());
        if let Some(l) = &self.login_email {
            k.push('\n');
            k.push_str(&l.to_lowercase());
        }
        k
    }
}

/// The display form of a name from its parts, if there is any.
pub fn display_name_of(
    display: Option<&str>,
    given: Option<&str>,
    family: Option<&str>,
) -> Option<String> {
    if let Some(d) = display.map(str::trim).filter(|d| !d.is_empty()) {
        return Some(d.to_owned());
    }
    let parts: Vec<&str> = [given, family]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}
