//! The routes, in one table: the router is built from [`ROUTES`], and the OpenAPI document's
//! test compares its paths and methods with the same table, so the two cannot drift apart.
//!
//! Layers, from the outside in: metrics, CORS (preflights answer here), auth (401 before the
//! body is read), the declared body size (413 before it is read). The model's routes read
//! their bodies within `--payload-limit` and `--body-timeout` and take a request slot once
//! the body is whole and valid (`body.rs`); the probes (`GET /`, `/health`, `/ping`),
//! `/info`, `/metrics` and the OpenAPI document take none.

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, get, post};
use tower_http::cors::CorsLayer;

use super::state::{self, AppState};
use super::{body, classify, fill, metrics, openai, openapi, root, tei, tokens};

/// Every path the server answers, with its methods.
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/", &["get", "post"]),
    ("/invocations", &["post"]),
    ("/health", &["get"]),
    ("/ping", &["get"]),
    ("/info", &["get"]),
    ("/metrics", &["get"]),
    ("/api-doc/openapi.json", &["get"]),
    ("/embed", &["post"]),
    ("/embed_all", &["post"]),
    ("/embed_sparse", &["post"]),
    ("/similarity", &["post"]),
    ("/predict", &["post"]),
    ("/rerank", &["post"]),
    ("/fill-mask", &["post"]),
    ("/tokenize", &["post"]),
    ("/decode", &["post"]),
    ("/v1/embeddings", &["post"]),
    ("/embeddings", &["post"]),
];

/// The handlers of one path of [`ROUTES`] (`None` for a path it does not list).
fn handlers(path: &str) -> Option<MethodRouter<Arc<AppState>>> {
    Some(match path {
        "/" => get(state::health).post(root::post),
        "/invocations" => post(root::post),
        "/health" | "/ping" => get(state::health),
        "/info" => get(state::info),
        "/metrics" => get(state::metrics),
        "/api-doc/openapi.json" => get(openapi::document),
        "/embed" => post(tei::embed),
        "/embed_all" => post(tei::embed_all),
        "/embed_sparse" => post(tei::embed_sparse),
        "/similarity" => post(tei::similarity),
        "/predict" => post(classify::predict),
        "/rerank" => post(classify::rerank),
        "/fill-mask" => post(fill::fill_mask),
        "/tokenize" => post(tokens::tokenize),
        "/decode" => post(tokens::decode),
        "/v1/embeddings" | "/embeddings" => post(openai::embeddings),
        _ => return None,
    })
}

/// The router of [`ROUTES`], with its layers.
pub fn router(state: Arc<AppState>, cors: CorsLayer) -> Router {
    let mut r = Router::new();
    for (path, _) in ROUTES {
        if let Some(h) = handlers(path) {
            r = r.route(path, h);
        }
    }
    r.layer(from_fn_with_state(state.clone(), body::payload))
        .layer(from_fn_with_state(state.clone(), body::auth))
        .layer(cors)
        .layer(from_fn_with_state(state.metrics.clone(), metrics::track))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_path_has_handlers() {
        for (path, _) in ROUTES {
            assert!(handlers(path).is_some(), "{path}");
        }
        assert!(handlers("/nothing").is_none());
    }

    /// The OpenAPI document lists exactly the router's paths and methods.
    #[test]
    fn the_openapi_document_lists_the_routers_routes() {
        let doc: serde_json::Value = serde_json::from_str(openapi::DOCUMENT).unwrap();
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(|m| (path.clone(), m.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        documented.sort();
        let mut routed: Vec<(String, String)> = ROUTES
            .iter()
            .flat_map(|(path, methods)| methods.iter().map(|m| (path.to_string(), m.to_string())))
            .collect();
        routed.sort();
        assert_eq!(documented, routed);
    }
}
