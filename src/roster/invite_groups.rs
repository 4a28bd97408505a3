//! Groups an invitation names: checked when the invitation is made (the group exists, no SCIM
//! client or source keeps it, the org's "every invitation names a group" rule), remembered with
//! the invited member (`invitation_groups`) and joined when the invitation is accepted.

use uuid::Uuid;

use super::audit::{Actor, record};
use super::{FieldError, Result, Roster};
use crate::store::orgs::Org;
use crate::store::{self, Tx};

impl Roster {
    /// Resolves the group names of one invitation (`field` is where they sit in the request).
    /// Problems are pushed to `errors`; the ids and names found are returned.
    pub(crate) async fn invitation_groups(
        &self,
        tx: &mut Tx,
        org: &Org,
        names: &[String],
        field: &str,
        errors: &mut Vec<FieldError>,
    ) -> Result<Vec<(Uuid, String)>> {
        if names.is_empty() && org.invite_requires_group {
            errors.push(FieldError::new(
                format!("{field}.groups"),
                "this organization requires every invitation to name at least one group",
            ));
        }
        let mut found: Vec<(Uuid, String)> = Vec::with_capacity(names.len());
        for (j, name) in names.iter().enumerate() {
            let at = format!("{field}.groups[{j}]");
            let Some(group) = store::groups::by_name(tx, org.id, name).await? else {
                errors.push(FieldError::new(
                    at,
                    format!("no group `{name}` in this organization"),
                ));
                continue;
            };
            if let Some(keeper) = self.group_keeper(org, &group) {
                errors.push(FieldError::new(
                    at,
                    format!(
                        "group `{}` is kept by {keeper}; its members come from there",
                        group.name
                    ),
                ));
                continue;
            }
            if !found.iter().any(|(id, _)| *id == group.id) {
                found.push((group.id, group.name));
            }
        }
        Ok(found)
    }

    /// Puts a member into groups now (acceptance, or access restored), one audit entry each.
    pub(crate) async fn join_groups(
        &self,
        tx: &mut Tx,
        org_id: Uuid,
        actor: &Actor,
        member_id: Uuid,
        groups: &[(Uuid, String)],
    ) -> Result<()> {
        let now = self.clock.now();
        for (group_id, name) in groups {
            if !store::groups::add_member(tx, *group_id, member_id, now).await? {
                continue;
            }
            store::groups::touch(tx, org_id, *group_id, now).await?;
            store::members::bump_versions(tx, org_id, &[member_id], now).await?;
            record(
                tx,
                now,
                Some(org_id),
                actor,
                "group.members_changed",
                ("group", Some(group_id.to_string())),
                Some(&serde_json::json!({"removed": []})),
                Some(&serde_json::json!({"added": [member_id], "group": name, "by": "invitation"})),
            )
            .await?;
        }
        Ok(())
    }

    /// Joins the groups a member's invitation named, then forgets them (on acceptance).
    pub(crate) async fn join_invitation_groups(
        &self,
        tx: &mut Tx,
        org_id: Uuid,
        actor: &Actor,
        member_id: Uuid,
    ) -> Result<()> {
        let groups = store::invitations::groups_of(tx, org_id, member_id).await?;
        self.join_groups(tx, org_id, actor, member_id, &groups)
            .await?;
        store::invitations::clear_groups(tx, org_id, member_id).await?;
        Ok(())
    }
}
