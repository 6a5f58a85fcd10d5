//! Keyset pagination shared by the list routes: `?limit=&cursor=`, answered with
//! `{"items": [...], "next_cursor": ...}`.

use serde::{Deserialize, Serialize};
use warp::Filter;

use super::problem::Problem;

/// The raw query string, empty if there is none.
pub fn optional_raw_query(
) -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// `?limit=&cursor=`, nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// A page of a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items, in list order.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// Parses the query: the page size (1 to `max`, `default` if absent) and the cursor.
pub fn parse(query: &str, default: i64, max: i64) -> Result<(i64, Option<String>), Problem> {
    let query: PageQuery = serde_urlencoded::from_str(query).map_err(|e| {
        Problem::bad_request(
            "invalid-query",
            format!("invalid query: {e}; use limit and cursor"),
        )
    })?;
    Ok((limit(query.limit.as_deref(), default, max)?, query.cursor))
}

/// A page size: 1 to `max`, `default` if absent.
pub fn limit(raw: Option<&str>, default: i64, max: i64) -> Result<i64, Problem> {
    match raw.map(str::parse::<i64>) {
        None => Ok(default),
        Some(Ok(n)) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(Problem::bad_request(
            "invalid-limit",
            format!("limit must be a whole number from 1 to {max}"),
        )),
    }
}

/// The page of `limit` items out of `items` (fetched with `limit + 1`, so that one more
/// tells there is a next page), its cursor taken from the last item by `cursor_of`.
pub fn page<T>(mut items: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(cursor_of)
    } else {
        None
    };
    Page { items, next_cursor }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(crate::properties())]

        #[test]
        fn any_query_gives_a_page_size_in_bounds_or_a_400(
            query in prop_oneof![".{0,60}", "limit=-?[0-9]{0,20}(&cursor=[a-zA-Z0-9%]{0,20})?"],
        ) {
            match super::parse(&query, 50, 1000) {
                Ok((limit, _)) => prop_assert!((1..=1000).contains(&limit)),
                Err(problem) => prop_assert_eq!(problem.status.as_u16(), 400),
            }
        }
    }
}
