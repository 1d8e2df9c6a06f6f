//! TEI's gRPC services (`proto/tei.proto`, package `tei.v1`: Info, Embed, Predict, Rerank,
//! Tokenize, with their streaming calls) on `--grpc-port`, served with tonic. Every call runs
//! the HTTP route's own work (`tei.rs`, `classify.rs`), so the answers are equal; it takes a
//! request slot as a route does, checks the API key (`authorization: Bearer KEY` metadata),
//! and its messages are held to `--payload-limit`. Errors map as TEI maps them: Validation
//! and Empty `INVALID_ARGUMENT`, Tokenizer and Backend `FAILED_PRECONDITION`, Overloaded
//! `RESOURCE_EXHAUSTED`, Unhealthy `UNAVAILABLE`; a limit of ours `RESOURCE_EXHAUSTED`.
//!
//! The message and service code (`tei.v1.rs`) is generated from the proto by
//! `scripts/grpc_codegen` (protox and tonic-prost-build, so no `protoc` is needed) and checked
//! in: building the server needs no proto compiler at all.

mod calls;
mod services;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Status};

use super::body::authorized;
use super::error::{ApiError, Kind};
use super::state::AppState;

#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    rustdoc::all,
    unused_qualifications
)]
pub mod pb {
    include!("tei.v1.rs");
}

use pb::embed_server::EmbedServer;
use pb::info_server::InfoServer;
use pb::predict_server::PredictServer;
use pb::rerank_server::RerankServer;
use pb::tokenize_server::TokenizeServer;

/// An error of the routes as a gRPC status.
pub fn status(e: ApiError) -> Status {
    use tonic::Code;
    let code = match (e.kind, e.status.as_u16()) {
        (_, 413) => Code::ResourceExhausted,
        (Kind::Validation | Kind::Empty, _) => Code::InvalidArgument,
        (Kind::Tokenizer | Kind::Backend, 500) => Code::Internal,
        (Kind::Tokenizer | Kind::Backend, _) => Code::FailedPrecondition,
        (Kind::Overloaded, _) => Code::ResourceExhausted,
        (Kind::Unhealthy, _) => Code::Unavailable,
        (Kind::Unauthorized, _) => Code::Unauthenticated,
        (Kind::Timeout, _) => Code::DeadlineExceeded,
    };
    Status::new(code, e.message)
}

/// Serves the five services on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let svc = services::Tei(state.clone());
    let key = state.api_key.clone();
    let auth = move |req: Request<()>| -> Result<Request<()>, Status> {
        let Some(key) = &key else {
            return Ok(req);
        };
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match authorized(given, key) {
            true => Ok(req),
            false => Err(Status::unauthenticated(
                "missing or wrong API key (send authorization: Bearer KEY)",
            )),
        }
    };
    let size = state.limits.payload;
    macro_rules! service {
        ($server:ident) => {
            InterceptedService::new(
                $server::new(svc.clone()).max_decoding_message_size(size),
                auth.clone(),
            )
        };
    }
    Server::builder()
        .concurrency_limit_per_connection(state.limits.max_concurrent)
        .add_service(service!(InfoServer))
        .add_service(service!(EmbedServer))
        .add_service(service!(PredictServer))
        .add_service(service!(RerankServer))
        .add_service(service!(TokenizeServer))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
            super::listen::stopping(&mut stop).await;
        })
        .await
}

#[cfg(test)]
mod tests {
    /// FNV-1a, 64 bits, as `scripts/grpc_codegen` fingerprints the proto.
    fn fnv1a64(bytes: &[u8]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    #[test]
    fn the_generated_code_is_the_protos() {
        let proto = include_bytes!("../../../../proto/tei.proto");
        let code = include_str!("tei.v1.rs");
        let want = format!("fnv1a64 {:016x}", fnv1a64(proto));
        let first = code.lines().next().unwrap_or("");
        assert!(
            first.contains(&want),
            "proto/tei.proto changed: run `cargo run --manifest-path \
             scripts/grpc_codegen/Cargo.toml` ({first} vs {want})"
        );
    }
}
