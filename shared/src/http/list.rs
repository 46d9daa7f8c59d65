//! Paging of every list endpoint: `limit` and `cursor` in, `{"items", "next"?}` out; the
//! cursor is the store's position, opaque to clients (URL-safe base64 of JSON).

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::ports::Cursor;
use crate::services::InputError;
use crate::store::{Listing, PageRequest};

/// `limit` (1..=1000, default 50) and `cursor` (the `next` of the previous page).
#[derive(Debug, Clone, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl ListParams {
    pub fn page(&self) -> Result<PageRequest, InputError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(InputError::invalid("limit", "must be between 1 and 1000"));
        }
        let cursor = match &self.cursor {
            None => None,
            Some(c) => {
                Some(decode_cursor(c).ok_or_else(|| InputError::invalid("cursor", "is not a cursor this API issued"))?)
            }
        };
        Ok(PageRequest { limit, cursor })
    }
}

fn decode_cursor(c: &str) -> Option<Cursor> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn encode_cursor(c: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).expect("serializable"))
}

/// `{"items": [...], "next"?: cursor}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListBody<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl<T> From<Listing<T>> for ListBody<T> {
    fn from(l: Listing<T>) -> Self {
        ListBody {
            items: l.items,
            next: l.next.as_ref().map(encode_cursor),
        }
    }
}
