//! List and search parameters (filter, sortBy, sortOrder, startIndex, count, attributes,
//! excludedAttributes), from a query string or a `.search` body, and list responses.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::error::ScimError;
use super::filter::{self, AttrPath, Filter};
use super::schema::{LIST, SEARCH};
use super::{MAX_RESULTS, ScimBody, ScimClient, read_json, scim_response};
use crate::web::AppState;

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrPath>,
    pub descending: bool,
    /// 1-based.
    pub start_index: i64,
    pub count: i64,
    pub attributes: Vec<String>,
    pub excluded: Vec<String>,
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl ListQuery {
    fn build(
        filter: Option<&str>,
        sort_by: Option<&str>,
        sort_order: Option<&str>,
        start_index: Option<i64>,
        count: Option<i64>,
        attributes: Vec<String>,
        excluded: Vec<String>,
    ) -> Result<ListQuery, ScimError> {
        let filter = match filter.map(str::trim).filter(|f| !f.is_empty()) {
            Some(f) => Some(
                filter::parse(f).map_err(|e| ScimError::invalid_filter(format!("filter: {e}")))?,
            ),
            None => None,
        };
        let sort_by = match sort_by.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => Some(
                filter::parse_attr_path(s)
                    .map_err(|e| ScimError::invalid_value(format!("sortBy: {e}")))?,
            ),
            None => None,
        };
        let descending = match sort_order.map(str::to_ascii_lowercase).as_deref() {
            None | Some("ascending") | Some("") => false,
            Some("descending") => true,
            Some(other) => {
                return Err(ScimError::invalid_value(format!(
                    "sortOrder must be ascending or descending, not `{other}`"
                )));
            }
        };
        Ok(ListQuery {
            filter,
            sort_by,
            descending,
            // RFC 7644 §3.4.2.4: values below 1 mean 1; negative counts mean 0.
            start_index: start_index.unwrap_or(1).max(1),
            count: count.unwrap_or(100).clamp(0, MAX_RESULTS),
            attributes,
            excluded,
        })
    }

    pub fn from_query(q: &HashMap<String, String>) -> Result<ListQuery, ScimError> {
        let get = |k: &str| {
            q.iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let int = |k: &str| -> Result<Option<i64>, ScimError> {
            get(k)
                .map(|v| {
                    v.trim()
                        .parse::<i64>()
                        .map_err(|_| ScimError::invalid_value(format!("{k} must be an integer")))
                })
                .transpose()
        };
        Self::build(
            get("filter"),
            get("sortBy"),
            get("sortOrder"),
            int("startIndex")?,
            int("count")?,
            get("attributes").map(split_list).unwrap_or_default(),
            get("excludedAttributes")
                .map(split_list)
                .unwrap_or_default(),
        )
    }

    pub fn from_search(body: &Value) -> Result<ListQuery, ScimError> {
        if !body.is_object() {
            return Err(ScimError::invalid_syntax(
                "a search request must be a JSON object",
            ));
        }
        if let Some(schemas) = filter::get_ci(body, "schemas") {
            let ok = schemas.as_array().is_some_and(|a| {
                a.iter()
                    .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(SEARCH)))
            });
            if !ok {
                return Err(ScimError::invalid_syntax(format!(
                    "schemas must contain {SEARCH}"
                )));
            }
        }
        let s = |k: &str| -> Result<Option<&str>, ScimError> {
            match filter::get_ci(body, k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(v)) => Ok(Some(v.as_str())),
                Some(_) => Err(ScimError::invalid_value(format!("{k} must be a string"))),
            }
        };
        let i = |k: &str| -> Result<Option<i64>, ScimError> {
            match filter::get_ci(body, k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ScimError::invalid_value(format!("{k} must be an integer"))),
                Some(_) => Err(ScimError::invalid_value(format!("{k} must be an integer"))),
            }
        };
        let l = |k: &str| -> Result<Vec<String>, ScimError> {
            match filter::get_ci(body, k) {
                None | Some(Value::Null) => Ok(vec![]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_owned).ok_or_else(|| {
                            ScimError::invalid_value(format!("{k} must list strings"))
                        })
                    })
                    .collect(),
                Some(Value::String(v)) => Ok(split_list(v)),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "{k} must be a list of strings"
                ))),
            }
        };
        Self::build(
            s("filter")?,
            s("sortBy")?,
            s("sortOrder")?,
            i("startIndex")?,
            i("count")?,
            l("attributes")?,
            l("excludedAttributes")?,
        )
    }

    /// Whether `members` should be rendered for groups.
    pub fn wants(&self, attr: &str) -> bool {
        let named = |list: &[String]| {
            list.iter().any(|a| {
                a.eq_ignore_ascii_case(attr)
                    || a.to_ascii_lowercase()
                        .starts_with(&format!("{}.", attr.to_ascii_lowercase()))
                    || a.to_ascii_lowercase()
                        .ends_with(&format!(":{}", attr.to_ascii_lowercase()))
            })
        };
        if named(&self.excluded) {
            return false;
        }
        self.attributes.is_empty() || named(&self.attributes)
    }
}

/// A ListResponse.
pub fn list_response(total: i64, start_index: i64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// A sort key from a resource: the first value at the path, lowercased for case-insensitive
/// attributes; resources without one sort last.
pub fn sort_key(doc: &Value, path: &AttrPath) -> Option<String> {
    let values = filter::values_at(doc, path);
    let v = values.first()?;
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Object(_) => filter::get_ci(v, "value")
            .map(|x| x.to_string())
            .unwrap_or_default(),
        other => other.to_string(),
    };
    if filter::AttrInfo::case_exact(&super::schema::Rules, path) {
        Some(text)
    } else {
        Some(text.to_lowercase())
    }
}

/// Sorts, counts and slices resources that were filtered in memory, and projects the page.
pub fn page_in_memory(docs: Vec<Value>, q: &ListQuery) -> (i64, Vec<Value>) {
    let (total, page) = sort_and_slice(docs, q);
    let page = page
        .into_iter()
        .map(|d| super::resource::project(d, &q.attributes, &q.excluded))
        .collect();
    (total, page)
}

/// [`page_in_memory`] on a blocking thread (sorting up to `scim.filter_budget` documents).
pub async fn page_off_thread(
    docs: Vec<Value>,
    q: &ListQuery,
) -> Result<(i64, Vec<Value>), ScimError> {
    let q = q.clone();
    tokio::task::spawn_blocking(move || page_in_memory(docs, &q))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "SCIM paging failed");
            ScimError::internal()
        })
}

/// Sorts, counts and slices resources that were filtered in memory (the page unprojected).
pub fn sort_and_slice(mut docs: Vec<Value>, q: &ListQuery) -> (i64, Vec<Value>) {
    if let Some(path) = &q.sort_by {
        let mut keyed: Vec<(Option<String>, Value)> =
            docs.into_iter().map(|d| (sort_key(&d, path), d)).collect();
        keyed.sort_by(|(a, _), (b, _)| match (a, b) {
            (Some(a), Some(b)) => {
                if q.descending {
                    b.cmp(a)
                } else {
                    a.cmp(b)
                }
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        docs = keyed.into_iter().map(|(_, d)| d).collect();
    }
    let total = docs.len() as i64;
    let page = docs
        .into_iter()
        .skip((q.start_index - 1) as usize)
        .take(q.count as usize)
        .collect();
    (total, page)
}

/// `POST /.search` at the root: Users and Groups together.
pub async fn root_search(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let q = ListQuery::from_search(&read_json(&body)?)?;
    let mut docs = super::users::filtered_docs(&state, &client, &q).await?;
    docs.extend(super::groups::filtered_docs(&state, &client, &q).await?);
    let (total, page) = page_off_thread(docs, &q).await?;
    Ok(scim_response(
        StatusCode::OK,
        &list_response(total, q.start_index, page),
    ))
}
