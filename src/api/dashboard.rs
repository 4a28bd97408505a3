//! `GET /api/v1/orgs/{org}/dashboard`: the org's numbers in one call — members per access
//! state, points in the pool and held by members, runs waiting for approval, failing sources.

use axum::extract::State;
use serde::Serialize;

use super::extract::Path;
use crate::domain::Access;
use crate::store::{self};
use crate::web::AppState;
use crate::web::Principal;
use crate::web::problem::ApiError;

#[derive(Debug, Serialize)]
pub struct MemberCounts {
    pub invited: i64,
    pub enrolled: i64,
    pub removed: i64,
    pub cancelled: i64,
    pub disabled: i64,
}

#[derive(Debug, Serialize)]
pub struct PointsCounts {
    pub pool: i64,
    /// Held by members together.
    pub distributed: i64,
}

#[derive(Debug, Serialize)]
pub struct Dashboard {
    pub members: MemberCounts,
    pub points: PointsCounts,
    /// Applications (join requests needing approval) waiting for an admin.
    pub pending_applications: i64,
    /// Sync runs held for approval.
    pub held_runs: i64,
    /// Configured sources of the org whose last run failed (as `failing` on `GET …/sources`).
    pub failing_sources: usize,
    /// Their names.
    pub failing_source_names: Vec<String>,
}

pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<axum::Json<Dashboard>, ApiError> {
    let org = principal.org(&state, &slug).await?;
    // One read transaction: the numbers are of one moment.
    let mut tx = state.roster.store.read().await?;
    let counts = store::members::counts(&mut tx, org.id).await?;
    let pool = store::ledger::pool(&mut tx, org.id).await?.unwrap_or(0);
    let distributed = store::ledger::distributed(&mut tx, org.id).await?;
    let held_runs = store::ledger::held_runs(&mut tx, org.id).await?;
    let pending_applications = store::join::pending_count(&mut tx, org.id).await?;
    let failing = store::ledger::failing_sources(&mut tx, org.id).await?;
    tx.rollback().await?;
    let get = |a: Access| counts.iter().find(|(x, _)| *x == a).map_or(0, |(_, n)| *n);
    // A source dropped from the config keeps its row; only configured ones count.
    let failing_source_names: Vec<String> = failing
        .into_iter()
        .filter(|name| {
            state
                .sync
                .source(name)
                .is_ok_and(|def| def.config.org == org.slug)
        })
        .collect();
    Ok(axum::Json(Dashboard {
        members: MemberCounts {
            invited: get(Access::Invited),
            enrolled: get(Access::Enrolled),
            removed: get(Access::Removed),
            cancelled: get(Access::Cancelled),
            disabled: get(Access::Disabled),
        },
        points: PointsCounts { pool, distributed },
        pending_applications,
        held_runs,
        failing_sources: failing_source_names.len(),
        failing_source_names,
    }))
}
