//! Groups inside an org and their membership. Membership changes touch one row each, so adding
//! or removing one member never reads or rewrites the rest of a large group.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Result, Tx, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Group {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub external_id: Option<String>,
    /// The SCIM resource as the client last wrote it (without members).
    pub scim_data: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, org_id, name, external_id, scim_data, version, created_at, updated_at";

pub async fn insert(tx: &mut Tx, g: &Group) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO groups (id, org_id, name, name_key, external_id, scim_data, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(g.id).bind(g.org_id).bind(&g.name).bind(g.name.to_lowercase()).bind(&g.external_id)
        .bind(&g.scim_data).bind(g.version).bind(g.created_at).bind(g.updated_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Writes a group's attributes and bumps its version.
pub async fn update(tx: &mut Tx, g: &mut Group) -> Result<()> {
    g.version += 1;
    let g = &*g;
    on_tx!(tx, c => sqlx::query(
        "UPDATE groups SET name = $3, name_key = $4, external_id = $5, scim_data = $6, version = $7,
            updated_at = $8
         WHERE org_id = $1 AND id = $2")
        .bind(g.org_id).bind(g.id).bind(&g.name).bind(g.name.to_lowercase()).bind(&g.external_id)
        .bind(&g.scim_data).bind(g.version).bind(g.updated_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Bumps a group's version and modification time (after a membership change).
pub async fn touch(tx: &mut Tx, org_id: Uuid, id: Uuid, at: DateTime<Utc>) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE groups SET version = version + 1, updated_at = $3 WHERE org_id = $1 AND id = $2")
        .bind(org_id).bind(id).bind(at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn delete(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<bool> {
    on_tx!(tx, c => sqlx::query(
        "DELETE FROM group_members
         WHERE group_id = (SELECT id FROM groups WHERE org_id = $1 AND id = $2)")
        .bind(org_id).bind(id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    // Open invitations that named the group no longer join it.
    on_tx!(tx, c => sqlx::query("DELETE FROM invitation_groups WHERE org_id = $1 AND group_id = $2")
        .bind(org_id).bind(id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    super::invite_links::forget_group(tx, org_id, id).await?;
    // Its entitlements go with it.
    super::entitlements::delete_for_group(tx, org_id, id).await?;
    let n = on_tx!(tx, c => sqlx::query("DELETE FROM groups WHERE org_id = $1 AND id = $2")
        .bind(org_id).bind(id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

pub async fn by_id(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<Option<Group>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM groups WHERE org_id = $1 AND id = $2"
    ));
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, Group>(sql).bind(org_id).bind(id).fetch_optional(&mut *c).await)?,
    )
}

pub async fn by_name(tx: &mut Tx, org_id: Uuid, name: &str) -> Result<Option<Group>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM groups WHERE org_id = $1 AND name_key = $2"
    ));
    let key = name.to_lowercase();
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, Group>(sql).bind(org_id).bind(key).fetch_optional(&mut *c).await)?,
    )
}

pub async fn list(tx: &mut Tx, org_id: Uuid) -> Result<Vec<Group>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM groups WHERE org_id = $1 ORDER BY id"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as::<_, Group>(sql).bind(org_id).fetch_all(&mut *c).await)?)
}

/// Adds one member; false if they were already in the group.
pub async fn add_member(
    tx: &mut Tx,
    group_id: Uuid,
    member_id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "INSERT INTO group_members (group_id, member_id, added_at) VALUES ($1, $2, $3)
         ON CONFLICT (group_id, member_id) DO NOTHING")
        .bind(group_id).bind(member_id).bind(at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Removes one member; false if they were not in the group.
pub async fn remove_member(tx: &mut Tx, group_id: Uuid, member_id: Uuid) -> Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "DELETE FROM group_members WHERE group_id = $1 AND member_id = $2")
        .bind(group_id).bind(member_id)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Every member of a group with their access (removed members too).
pub async fn member_access(
    tx: &mut Tx,
    org_id: Uuid,
    group_id: Uuid,
) -> Result<Vec<(Uuid, crate::domain::Access)>> {
    let rows: Vec<(Uuid, String)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT m.id, m.access FROM group_members gm JOIN members m ON m.id = gm.member_id
         WHERE gm.group_id = $1 AND m.org_id = $2")
        .bind(group_id).bind(org_id).fetch_all(&mut *c).await)?;
    rows.into_iter()
        .map(|(id, a)| {
            a.parse::<crate::domain::Access>()
                .map(|access| (id, access))
                .map_err(|_| super::StoreError::Corrupt(format!("member access `{a}`")))
        })
        .collect()
}

/// Each group of an org with its members who are not removed.
pub async fn active_member_counts(tx: &mut Tx, org_id: Uuid) -> Result<Vec<(Uuid, i64)>> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, (Uuid, i64)>(
        "SELECT gm.group_id, COUNT(*) FROM group_members gm
         JOIN members m ON m.id = gm.member_id
         WHERE m.org_id = $1 AND m.access NOT IN ('removed', 'cancelled')
         GROUP BY gm.group_id")
        .bind(org_id).fetch_all(&mut *c).await)?)
}

/// One member of a group, as the admin API lists them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupMemberRow {
    pub id: Uuid,
    pub member_email: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub access: String,
}

/// A page of a group's members by member id, after `after`.
pub async fn member_page(
    tx: &mut Tx,
    org_id: Uuid,
    group_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<GroupMemberRow>> {
    let sql = |cond: &str| {
        sqlx::AssertSqlSafe(format!(
            "SELECT m.id, m.member_email, m.display_name, m.given_name, m.family_name, m.access
             FROM group_members gm JOIN members m ON m.id = gm.member_id
             WHERE gm.group_id = $1 AND m.org_id = $2 {cond}
             ORDER BY gm.member_id LIMIT $3"
        ))
    };
    Ok(match after {
        None => on_tx!(tx, c => sqlx::query_as::<_, GroupMemberRow>(sql(""))
            .bind(group_id).bind(org_id).bind(limit).fetch_all(&mut *c).await)?,
        Some(a) => {
            on_tx!(tx, c => sqlx::query_as::<_, GroupMemberRow>(sql("AND gm.member_id > $4"))
            .bind(group_id).bind(org_id).bind(limit).bind(a).fetch_all(&mut *c).await)?
        }
    })
}

pub async fn clear_members(tx: &mut Tx, group_id: Uuid) -> Result<u64> {
    Ok(
        on_tx!(tx, c => sqlx::query("DELETE FROM group_members WHERE group_id = $1")
        .bind(group_id).execute(&mut *c).await.map(|r| r.rows_affected()))?,
    )
}

type MemberNameRow = (Uuid, Option<String>, Option<String>, Option<String>, String);

/// The members of a group that are visible over SCIM: `(member id, display name or email)`.
pub async fn members_of(tx: &mut Tx, group_id: Uuid) -> Result<Vec<(Uuid, String)>> {
    let rows: Vec<MemberNameRow> = on_tx!(tx, c => sqlx::query_as(
        "SELECT m.id, m.display_name, m.given_name, m.family_name, m.user_name
         FROM group_members gm JOIN members m ON m.id = gm.member_id
         WHERE gm.group_id = $1 AND m.scim_deleted = FALSE
         ORDER BY m.id")
        .bind(group_id).fetch_all(&mut *c).await)?;
    Ok(rows
        .into_iter()
        .map(|(id, d, g, f, u)| {
            let name = crate::domain::display_name_of(d.as_deref(), g.as_deref(), f.as_deref());
            (id, name.unwrap_or(u))
        })
        .collect())
}

/// The members of several groups of one org at once: `(group id, member id, display name)`,
/// by group then member id. One statement per 500 groups, however many groups there are.
pub async fn members_of_groups(
    tx: &mut Tx,
    org_id: Uuid,
    group_ids: &[Uuid],
) -> Result<Vec<(Uuid, Uuid, String)>> {
    type Row = (
        Uuid,
        Uuid,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
    );
    let mut out = Vec::new();
    for chunk in group_ids.chunks(500) {
        let placeholders: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT gm.group_id, m.id, m.display_name, m.given_name, m.family_name, m.user_name
             FROM group_members gm JOIN members m ON m.id = gm.member_id
             WHERE m.org_id = $1 AND m.scim_deleted = FALSE AND gm.group_id IN ({})
             ORDER BY gm.group_id, m.id",
            placeholders.join(", ")
        ));
        let rows: Vec<Row> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(sql).bind(org_id);
            for id in chunk {
                q = q.bind(*id);
            }
            q.fetch_all(&mut *c).await
        })?;
        out.extend(rows.into_iter().map(|(g, id, d, gn, f, u)| {
            let name = crate::domain::display_name_of(d.as_deref(), gn.as_deref(), f.as_deref());
            (g, id, name.unwrap_or(u))
        }));
    }
    Ok(out)
}

/// The groups each of `member_ids` belongs to: `(member id, group id, group name)`.
pub async fn groups_of(
    tx: &mut Tx,
    org_id: Uuid,
    member_ids: &[Uuid],
) -> Result<Vec<(Uuid, Uuid, String)>> {
    let mut out = Vec::new();
    // Bounded batches keep the parameter count well inside both backends' limits.
    for chunk in member_ids.chunks(500) {
        let placeholders: Vec<String> = (2..=chunk.len() + 1).map(|i| format!("${i}")).collect();
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT gm.member_id, g.id, g.name FROM group_members gm JOIN groups g ON g.id = gm.group_id
             WHERE g.org_id = $1 AND gm.member_id IN ({}) ORDER BY g.name",
            placeholders.join(", ")
        ));
        let rows: Vec<(Uuid, Uuid, String)> = on_tx!(tx, c => {
            let mut q = sqlx::query_as(sql).bind(org_id);
            for id in chunk {
                q = q.bind(*id);
            }
            q.fetch_all(&mut *c).await
        })?;
        out.extend(rows);
    }
    Ok(out)
}

/// Takes a member out of every group; those groups' versions move on (their members changed).
pub async fn remove_member_everywhere(
    tx: &mut Tx,
    org_id: Uuid,
    member_id: Uuid,
    at: DateTime<Utc>,
) -> Result<u64> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE groups SET version = version + 1, updated_at = $3
         WHERE org_id = $1 AND id IN (SELECT group_id FROM group_members WHERE member_id = $2)")
        .bind(org_id).bind(member_id).bind(at).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(on_tx!(tx, c => sqlx::query(
        "DELETE FROM group_members
         WHERE member_id = $2 AND group_id IN (SELECT id FROM groups WHERE org_id = $1)")
        .bind(org_id).bind(member_id).execute(&mut *c).await.map(|r| r.rows_affected()))?)
}

/// Moves on the version of every member of a group (their `groups` attribute changes).
pub async fn bump_member_versions(
    tx: &mut Tx,
    org_id: Uuid,
    group_id: Uuid,
    at: DateTime<Utc>,
) -> Result<u64> {
    Ok(on_tx!(tx, c => sqlx::query(
        "UPDATE members SET version = version + 1, updated_at = $3
         WHERE org_id = $1 AND id IN (SELECT member_id FROM group_members WHERE group_id = $2)")
        .bind(org_id).bind(group_id).bind(at).execute(&mut *c).await.map(|r| r.rows_affected()))?)
}
