//! The API's routes: a request's method and path to the operation it asks for. Paths may end with or without
//! `/`. [`ROUTES`] lists every (method, path template) pair; the OpenAPI document (`openapi.yaml`) describes
//! the same set, which a test keeps true.

use super::error::ApiError;

/// Every route, as `(method, path template)`.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/projects/{team_id}/"),
    ("GET", "/api/projects/{team_id}/batch_exports/"),
    ("POST", "/api/projects/{team_id}/batch_exports/"),
    ("GET", "/api/projects/{team_id}/batch_exports/{id}/"),
    ("PATCH", "/api/projects/{team_id}/batch_exports/{id}/"),
    ("DELETE", "/api/projects/{team_id}/batch_exports/{id}/"),
    ("POST", "/api/projects/{team_id}/batch_exports/{id}/pause/"),
    ("POST", "/api/projects/{team_id}/batch_exports/{id}/unpause/"),
    ("GET", "/api/projects/{team_id}/batch_exports/{id}/backfills/"),
    ("POST", "/api/projects/{team_id}/batch_exports/{id}/backfills/"),
    ("GET", "/api/projects/{team_id}/batch_exports/{id}/backfills/{backfill_id}/"),
    ("POST", "/api/projects/{team_id}/batch_exports/{id}/backfills/{backfill_id}/cancel/"),
    ("GET", "/api/projects/{team_id}/batch_exports/{id}/runs/"),
    ("GET", "/api/projects/{team_id}/batch_exports/{id}/runs/{run_id}/"),
    ("POST", "/api/projects/{team_id}/batch_exports/{id}/runs/{run_id}/retry/"),
    ("POST", "/api/projects/{team_id}/batch_exports/{id}/runs/{run_id}/cancel/"),
];

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The project: its id and its project token (capture's `api_token`).
    GetProject,
    ListExports,
    CreateExport,
    GetExport(String),
    PatchExport(String),
    DeleteExport(String),
    Pause(String),
    Unpause(String),
    ListBackfills(String),
    CreateBackfill(String),
    GetBackfill(String, String),
    CancelBackfill(String, String),
    ListRuns(String),
    GetRun(String, String),
    RetryRun(String, String),
    CancelRun(String, String),
}

/// The project (team) and the operation of a request.
pub fn route(method: &str, path: &str) -> Result<(i64, Route), ApiError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let not_found = || ApiError::NotFound(format!("no route for {path}"));
    if let ["api", "projects", team] = segments.as_slice() {
        let team: i64 = team.parse().map_err(|_| not_found())?;
        return match method {
            "GET" => Ok((team, Route::GetProject)),
            _ => Err(ApiError::MethodNotAllowed(method.to_string())),
        };
    }
    let ["api", "projects", team, "batch_exports", rest @ ..] = segments.as_slice() else { return Err(not_found()) };
    let team: i64 = team.parse().map_err(|_| not_found())?;
    // Ids are UUIDs (or names made of them): anything else cannot exist, and must not reach DynamoDB's key rules.
    if !rest.iter().all(|segment| is_id_like(segment)) {
        return Err(not_found());
    }
    if let Some(route) = match_route(method, rest) {
        return Ok((team, route));
    }
    // A known path with another method is a 405, an unknown path a 404.
    if ["GET", "POST", "PATCH", "DELETE"].iter().any(|m| match_route(m, rest).is_some()) {
        return Err(ApiError::MethodNotAllowed(method.to_string()));
    }
    Err(not_found())
}

/// The longest path segment served (ids are 36-character UUIDs; run ids and execution names are longer).
const MAX_SEGMENT: usize = 128;

fn is_id_like(segment: &str) -> bool {
    (1..=MAX_SEGMENT).contains(&segment.len())
        && segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The route of a method and the path segments after `batch_exports`.
fn match_route(method: &str, rest: &[&str]) -> Option<Route> {
    let s = |v: &&str| v.to_string();
    Some(match (method, rest) {
        ("GET", []) => Route::ListExports,
        ("POST", []) => Route::CreateExport,
        ("GET", [id]) => Route::GetExport(s(id)),
        ("PATCH", [id]) => Route::PatchExport(s(id)),
        ("DELETE", [id]) => Route::DeleteExport(s(id)),
        ("POST", [id, "pause"]) => Route::Pause(s(id)),
        ("POST", [id, "unpause"]) => Route::Unpause(s(id)),
        ("GET", [id, "backfills"]) => Route::ListBackfills(s(id)),
        ("POST", [id, "backfills"]) => Route::CreateBackfill(s(id)),
        ("GET", [id, "backfills", b]) => Route::GetBackfill(s(id), s(b)),
        ("POST", [id, "backfills", b, "cancel"]) => Route::CancelBackfill(s(id), s(b)),
        ("GET", [id, "runs"]) => Route::ListRuns(s(id)),
        ("GET", [id, "runs", r]) => Route::GetRun(s(id), s(r)),
        ("POST", [id, "runs", r, "retry"]) => Route::RetryRun(s(id), s(r)),
        ("POST", [id, "runs", r, "cancel"]) => Route::CancelRun(s(id), s(r)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_route_is_served() {
        for (method, template) in ROUTES {
            let path = template
                .replace("{team_id}", "7")
                .replace("{id}", "e")
                .replace("{backfill_id}", "b")
                .replace("{run_id}", "r");
            let (team, _) = route(method, &path).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            assert_eq!(team, 7);
            assert!(route(method, path.trim_end_matches('/')).is_ok(), "without the final slash");
        }
    }

    #[test]
    fn unknown_paths_and_methods() {
        assert_eq!(route("GET", "/api/projects/7/batch_exports/e/other/").unwrap_err().status(), 404);
        assert_eq!(route("GET", "/api/projects/x/batch_exports/").unwrap_err().status(), 404);
        assert_eq!(route("PUT", "/api/projects/7/batch_exports/e/").unwrap_err().status(), 405);
        assert_eq!(route("GET", "/api/projects/7/batch_exports/e/pause/").unwrap_err().status(), 405);
        assert_eq!(route("DELETE", "/api/projects/7/").unwrap_err().status(), 405);
        assert_eq!(route("GET", "/api/projects/7").unwrap(), (7, Route::GetProject));
        // Ids that cannot exist never reach the tables.
        let long = format!("/api/projects/7/batch_exports/{}/", "x".repeat(129));
        assert_eq!(route("GET", &long).unwrap_err().status(), 404);
        assert_eq!(route("GET", "/api/projects/7/batch_exports/e%00x/").unwrap_err().status(), 404);
    }
}
