//! The audit trail: `GET /api/v1/audit` (filtered, cursor-paged) and
//! `GET /api/v1/audit/export` (NDJSON with the chain, streamed in constant memory).
//!
//! Only admins may read it, or tokens granted `audit:read` (an admin's key narrowed to
//! that operation, handed to an auditor).

use std::sync::Arc;

use aurora_projections::audit::{AuditEntry, AuditFilter};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::body::{json, with_request_id};
use super::consistency;
use super::context::{context, RequestContext};
use super::error::{respond, ApiError};
use super::guard::authenticate;
use super::page::{optional_raw_query, Page};
use super::problem::TokenRouteProblems;
use super::problem::{Body as ProblemBody, Problem};
use crate::auth::tokens::Access;
use crate::state::AppState;

/// Largest page.
pub const MAX_PAGE: i64 = 1000;
const DEFAULT_PAGE: i64 = 100;
/// Entries per read while exporting.
const EXPORT_PAGE: i64 = 1000;
/// Longest value of a text filter.
const MAX_FILTER_LEN: usize = 256;

/// The routes.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let list = warp::path!("api" / "v1" / "audit")
        .and(warp::get())
        .and(context())
        .and(with_state.clone())
        .and(warp::header::headers_cloned())
        .and(optional_raw_query())
        .then(list);
    let export = warp::path!("api" / "v1" / "audit" / "export")
        .and(warp::get())
        .and(context())
        .and(with_state)
        .and(warp::header::headers_cloned())
        .and(optional_raw_query())
        .then(export);
    list.or(export).unify()
}

/// The query of both routes; `limit` and `cursor` only page the list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    actor: Option<String>,
    action: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn bad(slug: &'static str, detail: impl Into<String>) -> Problem {
    Problem::bad_request(slug, detail)
}

/// Parses the filters: text of sane length, RFC 3339 times, `from` before `to`.
fn filter(query: &Query) -> Result<AuditFilter, Problem> {
    let text = |name: &str, value: &Option<String>| -> Result<Option<String>, Problem> {
        match value {
            Some(v) if v.is_empty() || v.len() > MAX_FILTER_LEN => Err(bad(
                "invalid-filter",
                format!("{name} must be 1 to {MAX_FILTER_LEN} characters"),
            )),
            other => Ok(other.clone()),
        }
    };
    let time = |name: &str, value: &Option<String>| -> Result<Option<DateTime<Utc>>, Problem> {
        value
            .as_deref()
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        bad(
                            "invalid-time",
                            format!(
                                "{name} is not an RFC 3339 time ({e}), e.g. 2026-11-18T00:00:00Z"
                            ),
                        )
                    })
            })
            .transpose()
    };
    let (from, to) = (time("from", &query.from)?, time("to", &query.to)?);
    if let (Some(from), Some(to)) = (from, to) {
        if from >= to {
            return Err(bad("invalid-range", "from must be before to"));
        }
    }
    let stored = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    Ok(AuditFilter {
        actor: text("actor", &query.actor)?,
        action: text("action", &query.action)?,
        resource_type: text("resource_type", &query.resource_type)?,
        resource_id: text("resource_id", &query.resource_id)?,
        from: from.map(stored),
        to: to.map(stored),
        max_seq: None,
    })
}

fn parse_query(raw: &str) -> Result<Query, Problem> {
    serde_urlencoded::from_str(raw).map_err(|e| {
        bad(
            "invalid-query",
            format!(
                "invalid query: {e}; filters are actor, action, resource_type, resource_id, \
                 from and to (RFC 3339), with limit and cursor to page"
            ),
        )
    })
}

/// A cursor: the last entry of the page and a digest of the filter, with a checksum.
/// Tampered, or used with another filter: 400.
#[derive(Serialize, Deserialize)]
struct Cursor {
    after: i64,
    filter: String,
    check: String,
}

fn filter_digest(filter: &AuditFilter) -> String {
    hex::encode(&Sha256::digest(format!("{filter:?}").as_bytes())[..8])
}

fn checksum(after: i64, filter: &str) -> String {
    hex::encode(&Sha256::digest(format!("aurora-audit-cursor:{after}:{filter}").as_bytes())[..8])
}

fn encode_cursor(after: i64, filter: &AuditFilter) -> String {
    let filter = filter_digest(filter);
    let cursor = Cursor {
        check: checksum(after, &filter),
        after,
        filter,
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&cursor).expect("cursors serialize"))
}

fn decode_cursor(raw: &str, filter: &AuditFilter) -> Result<i64, Problem> {
    let invalid = || {
        bad(
            "invalid-cursor",
            "the cursor is not one this API gave out for this query; start without one",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| invalid())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if cursor.check != checksum(cursor.after, &cursor.filter)
        || cursor.filter != filter_digest(filter)
        || cursor.after < 0
    {
        return Err(invalid());
    }
    Ok(cursor.after)
}

/// Authorizes the reader (first: a request without the right token learns nothing about
/// its query), then parses the query and its filters.
fn authorized_query(
    state: &AppState,
    headers: &HeaderMap,
    raw: &str,
) -> Result<(Query, AuditFilter), Problem> {
    authenticate(state, headers, Access::admin("audit:read", None))?;
    let query = parse_query(raw)?;
    let filter = filter(&query)?;
    Ok((query, filter))
}

/// The audit trail's filters, for the API docs (the handlers parse the query themselves,
/// refusing unknown fields).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Describes parameters; never built.
struct FilterParams {
    /// Who: a username, anonymous, or a part of Aurora.
    actor: Option<String>,
    /// The event type, e.g. RunRequested.
    action: Option<String>,
    /// The aggregate type, e.g. run, user.
    resource_type: Option<String>,
    /// The aggregate's id.
    resource_id: Option<String>,
    /// From this RFC 3339 time (inclusive).
    from: Option<String>,
    /// Before this RFC 3339 time.
    to: Option<String>,
}

/// The audit trail, filtered, oldest first, cursor-paged (admins, or tokens granted
/// `audit:read`).
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    operation_id = "list_audit",
    tag = "audit",
    params(
        FilterParams,
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page (of the same filters)"),
        ("aurora-after-position" = Option<i64>, Header, description = "Wait (at most 2 s) until the trail includes what was stored up to this position (a command's Aurora-Position)"),
    ),
    responses(
        (status = 200, description = "A page of entries", body = Page<AuditEntry>,
            headers(("aurora-consistency" = String, description = "With Aurora-After-Position: caught-up or stale"))),
        (status = 400, description = "A bad query, filter, time, limit or cursor", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow audit:read", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn list(
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
    raw: String,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let (query, filter) = authorized_query(&state, &headers, &raw)?;
        let limit = super::page::limit(query.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
        let after = match &query.cursor {
            Some(raw) => decode_cursor(raw, &filter)?,
            None => 0,
        };
        let reached = consistency::wait(&state, &headers, aurora_projections::audit::NAME).await?;
        let entries = state
            .audit
            .query(&filter, after, limit + 1)
            .await
            .map_err(|e| Problem::unavailable(&e))?;
        let page: Page<AuditEntry> =
            super::page::page(entries, limit, |e| encode_cursor(e.seq, &filter));
        Ok(consistency::mark(
            json(StatusCode::OK, &page, &ctx),
            reached,
        ))
    }
    .await;
    respond(&ctx, result)
}

/// The audit trail as NDJSON, one entry a line, streamed: a time range as the unbroken
/// stretch of the chain it covers, a selection (who/what/which) as its entries.
#[utoipa::path(
    get,
    path = "/api/v1/audit/export",
    operation_id = "export_audit",
    tag = "audit",
    params(
        FilterParams,
    ),
    responses(
        (status = 200, description = "One AuditEntry (JSON) per line", body = AuditEntry, content_type = "application/x-ndjson",
            headers(("x-audit-chain" = String, description = "stretch (verify link by link) or selection (verify entry by entry)"))),
        (status = 400, description = "A bad query, filter or time, or limit/cursor given", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow audit:read", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn export(
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
    raw: String,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let (query, filter) = authorized_query(&state, &headers, &raw)?;
        if query.limit.is_some() || query.cursor.is_some() {
            return Err(bad(
                "invalid-query",
                "an export takes filters only (no limit or cursor): it streams the whole range",
            )
            .into());
        }
        let reached = consistency::wait(&state, &headers, aurora_projections::audit::NAME).await?;
        // A time range is exported as the unbroken stretch of the chain it covers, so that
        // it verifies link by link; a selection by who/what/which is entries apart.
        let selective = filter.is_selective();
        let (filter, start) = if selective {
            (filter, 0)
        } else {
            let stretch = state
                .audit
                .stretch(filter.from.as_deref(), filter.to.as_deref())
                .await
                .map_err(|e| Problem::unavailable(&e))?;
            let (first, last) = stretch.unwrap_or((1, 0));
            let filter = AuditFilter {
                max_seq: Some(last),
                ..Default::default()
            };
            (filter, first - 1)
        };
        // One page at a time through a channel of two: memory stays flat whatever the
        // range, and a client that stops reading stops the reads.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
        let state_for_check = state.clone();
        tokio::spawn(async move {
            let mut after = start;
            loop {
                let entries = match state.audit.query(&filter, after, EXPORT_PAGE).await {
                    Ok(entries) => entries,
                    Err(error) => {
                        tracing::error!(%error, "audit export failed");
                        let _ = tx.send(Err(std::io::Error::other(error))).await;
                        return;
                    }
                };
                let Some(last) = entries.last() else { return };
                after = last.seq;
                let mut lines = Vec::with_capacity(entries.len() * 512);
                for entry in &entries {
                    serde_json::to_writer(&mut lines, entry).expect("entries serialize");
                    lines.push(b'\n');
                }
                let full = entries.len() as i64 == EXPORT_PAGE;
                if tx.send(Ok(lines.into())).await.is_err() || !full {
                    return;
                }
            }
        });
        let pages = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|page| (page, rx))
        });
        // An export ends (cut, never silently complete) when its token stops holding.
        let holds = super::guard::token_holds(
            state_for_check,
            headers,
            "audit:read",
            None,
            Some(String::new()), // as Access::admin: no owner() policy matches
        );
        let pages = super::guard::while_token_holds(pages, holds);
        let mut response = warp::reply::stream(pages).into_response();
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-ndjson"),
        );
        // `aurora audit verify --file` checks links in a stretch, entries in a selection
        // (`--selection`).
        headers.insert(
            "x-audit-chain",
            http::HeaderValue::from_static(if selective { "selection" } else { "stretch" }),
        );
        Ok(consistency::mark(with_request_id(response, &ctx), reached))
    }
    .await;
    respond(&ctx, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_bound_to_its_filter_and_refused_when_altered() {
        let filter = AuditFilter {
            actor: Some("alice".into()),
            ..Default::default()
        };
        let cursor = encode_cursor(42, &filter);
        assert_eq!(decode_cursor(&cursor, &filter).unwrap(), 42);
        assert!(decode_cursor(&cursor, &AuditFilter::default()).is_err());
        let mut forged: Cursor = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&cursor)
                .unwrap(),
        )
        .unwrap();
        forged.after = 7;
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&forged).unwrap());
        assert!(decode_cursor(&forged, &filter).is_err());
        assert!(decode_cursor("not-a-cursor", &filter).is_err());
    }

    #[test]
    fn times_must_parse_and_come_in_order() {
        let query = |from: &str, to: &str| Query {
            from: Some(from.into()),
            to: Some(to.into()),
            ..Default::default()
        };
        let ok = filter(&query("2026-11-18T00:00:00Z", "2026-11-25T00:00:00+01:00")).unwrap();
        assert_eq!(ok.from.as_deref(), Some("2026-11-18T00:00:00.000000Z"));
        assert_eq!(ok.to.as_deref(), Some("2026-11-24T23:00:00.000000Z"));
        let slug = |q| filter(&q).unwrap_err().slug;
        assert_eq!(
            slug(query("yesterday", "2026-11-25T00:00:00Z")),
            "invalid-time"
        );
        assert_eq!(
            slug(query("2026-11-25T00:00:00Z", "2026-11-18T00:00:00Z")),
            "invalid-range"
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(crate::properties())]

        #[test]
        fn any_audit_query_is_a_filter_or_a_400_and_no_cursor_is_forged_by_chance(
            query in prop_oneof![
                ".{0,80}",
                "(actor|action|resource_type|resource_id|from|to|limit|cursor)=[^&]{0,30}(&(actor|from|to|limit)=[^&]{0,30}){0,3}",
            ],
            cursor in ".{0,120}",
        ) {
            if let Ok(query) = parse_query(&query) {
                if let Err(problem) = filter(&query) {
                    prop_assert_eq!(problem.status.as_u16(), 400);
                }
            }
            // A cursor is only ever one this API encoded.
            if let Ok(after) = decode_cursor(&cursor, &AuditFilter::default()) {
                prop_assert_eq!(encode_cursor(after, &AuditFilter::default()), cursor);
            }
        }
    }
}
