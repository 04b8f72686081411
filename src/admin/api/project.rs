//! `POST /v1/job/project/permission` (seed: codearts-build-project-permission; docs/contract.md §7):
//! `{project_id, project_switch}` turns a project's own rules on (`project_level: true`, they
//! replace the tenant's, docs/contract.md §4 step 3) or off → `{status:"success", result:"true"|"false"}`,
//! `result` being whether project-level rules are in force afterwards. Without `project_switch`
//! nothing changes and the current setting is reported (the seed's "determine if a task uses
//! project-level permissions"). The seed's `job_id` is accepted (32 letters and digits) and not
//! used. An unknown project is 404 `UC.00011005`; errors are flat.

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::params::{check_id, json_body};
use super::{AdminState, flat, ok_json, read_body};
use crate::admin::error::ApiError;
use crate::policy::{IdKind, PolicyFile};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionBody {
    project_id: Option<String>,
    project_switch: Option<bool>,
    job_id: Option<String>,
}

/// `POST /v1/job/project/permission`.
pub(super) async fn permission(State(st): State<AdminState>, body: Body) -> Response {
    flat(
        async {
            let b: PermissionBody = json_body(&read_body(body).await?)?;
            let project_id = b
                .project_id
                .ok_or_else(|| ApiError::bad_param("project_id is required"))?;
            check_id(IdKind::ProjectId, &project_id)?;
            if let Some(job) = &b.job_id {
                if !(job.len() == 32 && job.chars().all(|c| c.is_ascii_alphanumeric())) {
                    return Err(ApiError::bad_param(format!(
                        "job_id {job:?} is invalid: must be exactly 32 characters of A-Z, a-z and 0-9"
                    )));
                }
            }
            let on = match b.project_switch {
                Some(on) => {
                    st.writer
                        .mutate(move |f| switch(f, &project_id, Some(on)))
                        .await??
                }
                None => project_level(st.shared.current().policy.file(), &project_id)?,
            };
            Ok(ok_json(
                json!({"status": "success", "result": if on { "true" } else { "false" }}),
            ))
        }
        .await,
    )
}

/// Whether `project_id`'s own rules are in force (404 if it is not in the policy).
pub(super) fn project_level(file: &PolicyFile, project_id: &str) -> Result<bool, ApiError> {
    file.projects
        .iter()
        .find(|p| *p.project_id.get() == project_id)
        .map(|p| p.project_level)
        .ok_or_else(|| unknown_project(project_id))
}

fn unknown_project(project_id: &str) -> ApiError {
    ApiError::not_found(format!("no project {project_id:?} in the policy"))
}

/// Set (or, with `None`, read) `project_level` of `project_id`; returns the value in force after.
pub(super) fn switch(
    file: &mut PolicyFile,
    project_id: &str,
    on: Option<bool>,
) -> Result<bool, ApiError> {
    let p = file
        .projects
        .iter_mut()
        .find(|p| *p.project_id.get() == project_id)
        .ok_or_else(|| unknown_project(project_id))?;
    if let Some(on) = on {
        p.project_level = on;
    }
    Ok(p.project_level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::error::ErrorKind;
    use crate::policy::parse_policy;

    const P: &str = "0f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e";

    #[test]
    fn switch_sets_reads_and_needs_a_known_project() {
        let mut f = parse_policy(&format!(
            "tenants:\n  - enterprise_id: t1\nprojects:\n  - {{ project_id: {P}, enterprise_id: t1 }}\n"
        ))
        .unwrap();
        assert!(!switch(&mut f, P, None).unwrap());
        assert!(!project_level(&f, P).unwrap());
        assert!(switch(&mut f, P, Some(true)).unwrap());
        assert!(f.projects[0].project_level);
        assert!(switch(&mut f, P, None).unwrap());
        assert!(!switch(&mut f, P, Some(false)).unwrap());
        let other = "1f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e";
        assert_eq!(
            switch(&mut f, other, Some(true)).unwrap_err().kind,
            ErrorKind::NotFound
        );
    }
}
