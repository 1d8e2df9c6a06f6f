//! `GET /api-doc/openapi.json`: the OpenAPI 3 document of every route (`openapi.json`
//! beside this file, kept by hand with the routes; the server tests request every path it
//! lists and every route the router has).

use axum::http::header;
use axum::response::{IntoResponse, Response};

pub(super) const DOCUMENT: &str = include_str!("openapi.json");

pub async fn document() -> Response {
    let body = DOCUMENT.replacen(
        "\"VERSION\"",
        &format!("\"{}\"", env!("CARGO_PKG_VERSION")),
        1,
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_json_with_paths() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.0.3");
        assert!(doc["paths"]["/embed"]["post"].is_object());
        assert!(doc["paths"]["/"]["get"].is_object());
    }
}
