//! Opaque page cursors. A cursor is URL-safe base64 of a small JSON value,
//! so it survives query strings and means nothing to clients.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::StoreError;

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Position {
    /// After this template name (name order).
    AfterName(String),
    /// After this many results (relevance order).
    Offset(u64),
    /// Before this sequence number (newest first).
    BeforeSeq(u32),
    /// After this id (id order).
    AfterId(String),
}

pub fn encode<T: Serialize>(pos: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(pos).unwrap_or_default())
}

pub fn decode<T: DeserializeOwned>(cursor: &str) -> Result<T, StoreError> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| StoreError::InvalidCursor)?;
    serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidCursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let p = Position::AfterName("support/en".into());
        assert_eq!(decode::<Position>(&encode(&p)).unwrap(), p);
        assert!(matches!(decode::<Position>("%%%"), Err(StoreError::InvalidCursor)));
        assert!(matches!(decode::<Position>("e30"), Err(StoreError::InvalidCursor)));
    }
}
