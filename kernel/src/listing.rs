//! Listing a page at a time: offset, limit (default 50, at most 200), order by creation or name, ascending or
//! descending, and the filters of webhook listings.
//!
//! Groups and devices are paged in SQL. Webhooks are filtered and paged here, over their group's rows: the filters
//! read the definition JSON (`name`, `url`, `x-metadata`), which the store keeps as the user wrote it, and a
//! group's webhooks are few enough to be held in memory at once (the webhook index holds them all anyway). Doing it
//! in Rust also makes the case-insensitive match the same, Unicode included, on SQLite and PostgreSQL.

use crate::error::KernelError;
use crate::store::webhooks::WebhookRow;
use serde_json::Value;
use std::collections::BTreeMap;

/// Items per page when the caller does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most items one page holds.
pub const MAX_LIMIT: u32 = 200;
/// The most items one batch call takes.
pub const MAX_BATCH: usize = 200;

/// What a list is ordered by; ties are broken by id, so that pages never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Creation time.
    #[default]
    Created,
    /// Name.
    Name,
}

/// One page of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// How many items to skip.
    pub offset: u32,
    /// How many items to return, 1 to [`MAX_LIMIT`].
    pub limit: u32,
    /// The order.
    pub order: Order,
    /// Last first.
    pub descending: bool,
}

impl Page {
    /// Checks a requested page; `limit` 0 means [`DEFAULT_LIMIT`].
    pub fn new(offset: u32, limit: u32, order: Order, descending: bool) -> Result<Page, KernelError> {
        let limit = match limit {
            0 => DEFAULT_LIMIT,
            1..=MAX_LIMIT => limit,
            _ => return Err(KernelError::InvalidArgument(format!("limit: must be at most {MAX_LIMIT}, got {limit}"))),
        };
        Ok(Page { offset, limit, order, descending })
    }

    /// The SQL `ORDER BY` clause over columns `name`, `created_at` and `id`.
    pub(crate) fn order_by_sql(&self) -> &'static str {
        match (self.order, self.descending) {
            (Order::Created, false) => "ORDER BY created_at, id",
            (Order::Created, true) => "ORDER BY created_at DESC, id DESC",
            (Order::Name, false) => "ORDER BY name, id",
            (Order::Name, true) => "ORDER BY name DESC, id DESC",
        }
    }
}

impl Default for Page {
    fn default() -> Self {
        Page { offset: 0, limit: DEFAULT_LIMIT, order: Order::Created, descending: false }
    }
}

/// The fields of a webhook definition that listings show and filter on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefinitionSummary {
    /// `name`, empty when absent.
    pub name: String,
    /// `event`.
    pub event: String,
    /// `url`.
    pub url: String,
    /// `x-metadata`, each value as text: a string as it is, anything else as JSON.
    pub metadata: BTreeMap<String, String>,
}

impl DefinitionSummary {
    /// Reads a stored definition; fields that are absent or not of the expected type are left empty.
    pub fn of(definition_json: &str) -> DefinitionSummary {
        let Ok(Value::Object(definition)) = serde_json::from_str::<Value>(definition_json) else {
            return DefinitionSummary::default();
        };
        let text = |key: &str| definition.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let metadata = match definition.get("x-metadata") {
            Some(Value::Object(metadata)) => {
                metadata.iter().map(|(key, value)| (key.clone(), metadata_text(value))).collect()
            }
            _ => BTreeMap::new(),
        };
        DefinitionSummary { name: text("name"), event: text("event"), url: text("url"), metadata }
    }
}

/// A metadata value as text: a string as it is, anything else as compact JSON (`3`, `true`, `[1,2]`).
fn metadata_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Which webhooks a listing keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookFilter {
    /// Only names containing this, ignoring case.
    pub name_contains: String,
    /// Only URLs containing this, as written.
    pub url_contains: String,
    /// Only webhooks whose metadata has each of these keys with this value.
    pub metadata: BTreeMap<String, String>,
}

impl WebhookFilter {
    /// Checks the filter's sizes, naming the field at fault.
    pub fn validate(&self) -> Result<(), KernelError> {
        const MAX_TEXT: usize = 2048;
        if self.name_contains.len() > MAX_TEXT {
            return Err(KernelError::InvalidArgument(format!("name_contains: must be at most {MAX_TEXT} bytes")));
        }
        if self.url_contains.len() > MAX_TEXT {
            return Err(KernelError::InvalidArgument(format!("url_contains: must be at most {MAX_TEXT} bytes")));
        }
        if self.metadata.len() > 32 {
            return Err(KernelError::InvalidArgument("metadata: at most 32 key=value filters".into()));
        }
        if let Some(key) = self.metadata.keys().find(|key| key.is_empty()) {
            return Err(KernelError::InvalidArgument(format!("metadata: empty key `{key}`")));
        }
        Ok(())
    }

    /// True when the webhook passes the filter.
    pub fn keeps(&self, summary: &DefinitionSummary) -> bool {
        (self.name_contains.is_empty() || summary.name.to_lowercase().contains(&self.name_contains.to_lowercase()))
            && summary.url.contains(&self.url_contains)
            && self.metadata.iter().all(|(key, value)| summary.metadata.get(key) == Some(value))
    }
}

/// Filters, orders and pages a group's webhooks; returns the page and how many passed the filter.
pub fn page_webhooks(rows: Vec<WebhookRow>, filter: &WebhookFilter, page: &Page) -> (Vec<WebhookRow>, usize) {
    let mut kept: Vec<(String, WebhookRow)> = rows
        .into_iter()
        .filter_map(|row| {
            let summary = DefinitionSummary::of(&row.definition);
            filter.keeps(&summary).then(|| (summary.name.to_lowercase(), row))
        })
        .collect();
    match page.order {
        Order::Created => kept.sort_by(|(_, a), (_, b)| (a.created_at, &a.id).cmp(&(b.created_at, &b.id))),
        Order::Name => kept.sort_by(|(a_name, a), (b_name, b)| (a_name, &a.id).cmp(&(b_name, &b.id))),
    }
    if page.descending {
        kept.reverse();
    }
    let total = kept.len();
    let rows = kept.into_iter().skip(page.offset as usize).take(page.limit as usize).map(|(_, row)| row).collect();
    (rows, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookwire_actors::domain::ids::{GroupId, WebhookId};

    fn row(definition: &str, created_at: i64) -> WebhookRow {
        WebhookRow {
            id: WebhookId::generate(),
            group_id: GroupId::generate(),
            definition: definition.to_owned(),
            created_at,
            updated_at: created_at,
            state: Default::default(),
        }
    }

    #[test]
    fn limits_default_to_50_and_stop_at_200_naming_the_field() {
        assert_eq!(Page::new(0, 0, Order::Created, false).unwrap().limit, 50);
        assert_eq!(Page::new(0, 200, Order::Created, false).unwrap().limit, 200);
        let error = Page::new(0, 201, Order::Created, false).unwrap_err();
        assert!(matches!(error, KernelError::InvalidArgument(_)));
        assert!(error.to_string().starts_with("limit: "), "{error}");
    }

    #[test]
    fn summaries_read_name_url_and_metadata_as_text() {
        let summary =
            DefinitionSummary::of(r#"{"name":"Temp","event":"t","url":"https://x/","x-metadata":{"a":"b","n":3}}"#);
        assert_eq!((summary.name.as_str(), summary.event.as_str(), summary.url.as_str()), ("Temp", "t", "https://x/"));
        assert_eq!(summary.metadata.get("a").map(String::as_str), Some("b"));
        assert_eq!(summary.metadata.get("n").map(String::as_str), Some("3"));
        assert_eq!(DefinitionSummary::of("not json"), DefinitionSummary::default());
    }

    #[test]
    fn filters_match_names_ignoring_case_urls_as_written_and_every_metadata_pair() {
        let summary = DefinitionSummary::of(
            r#"{"name":"Température Salon","event":"t","url":"https://Example.com/in","x-metadata":{"room":"salon","floor":1}}"#,
        );
        let keeps = |filter: WebhookFilter| filter.keeps(&summary);
        assert!(keeps(WebhookFilter { name_contains: "TEMPÉRATURE".into(), ..Default::default() }));
        assert!(!keeps(WebhookFilter { name_contains: "kitchen".into(), ..Default::default() }));
        assert!(keeps(WebhookFilter { url_contains: "Example.com".into(), ..Default::default() }));
        assert!(!keeps(WebhookFilter { url_contains: "example.com".into(), ..Default::default() }));
        let metadata = |pairs: &[(&str, &str)]| WebhookFilter {
            metadata: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        };
        assert!(keeps(metadata(&[("room", "salon"), ("floor", "1")])));
        assert!(!keeps(metadata(&[("room", "salon"), ("floor", "2")])));
        assert!(!keeps(metadata(&[("wing", "")])), "an absent key is not an empty value");
    }

    #[test]
    fn pages_are_ordered_with_ties_broken_by_id_and_counted_before_paging() {
        let rows = vec![
            row(r#"{"name":"b","event":"e","url":"u"}"#, 3),
            row(r#"{"name":"A","event":"e","url":"u"}"#, 2),
            row(r#"{"event":"e","url":"u"}"#, 1),
        ];
        let names = |rows: &[WebhookRow]| -> Vec<String> {
            rows.iter().map(|row| DefinitionSummary::of(&row.definition).name).collect()
        };
        let page = |offset, limit, order, descending| Page { offset, limit, order, descending };
        let (by_created, total) =
            page_webhooks(rows.clone(), &WebhookFilter::default(), &page(0, 2, Order::Created, false));
        assert_eq!((names(&by_created), total), (vec!["".to_owned(), "A".to_owned()], 3));
        let (by_name, _) = page_webhooks(rows.clone(), &WebhookFilter::default(), &page(1, 5, Order::Name, true));
        assert_eq!(names(&by_name), ["A", ""]);
        let (beyond, total) = page_webhooks(rows, &WebhookFilter::default(), &page(9, 5, Order::Name, false));
        assert_eq!((beyond.len(), total), (0, 3));
    }
}
