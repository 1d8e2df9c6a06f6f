//! The five services of `tei.v1`, each call the HTTP route's own work on one input. A
//! streaming call answers its requests one after another, in order, each with its own
//! request slot while it runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use wgbert::encoder::ModelTask;

use super::super::classify;
use super::super::state::{AppState, Cut};
use super::calls::{
    cut, decode, direction, embed, embed_all, embed_sparse, predict, predict_pair, ranks, tokenize,
};
use super::pb;
use super::status;

/// The services' state: the HTTP server's.
#[derive(Clone)]
pub struct Tei(pub Arc<AppState>);

type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl Tei {
    /// Runs `f` on one request inside a request slot.
    async fn call<Q, A, F, Fut>(&self, req: Q, f: F) -> Result<A, Status>
    where
        F: FnOnce(Arc<AppState>, Q) -> Fut,
        Fut: Future<Output = Result<A, Status>>,
    {
        let _slot = self.0.slot().map_err(status)?;
        f(self.0.clone(), req).await
    }

    /// Answers a stream of requests with `f`, in order.
    fn each<Q, A, F, Fut>(&self, input: Streaming<Q>, f: F) -> Answers<A>
    where
        Q: Send + 'static,
        A: Send + 'static,
        F: Fn(Arc<AppState>, Q) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = Result<A, Status>> + Send + 'static,
    {
        let me = self.clone();
        Box::pin(input.then(move |req| {
            let (me, f) = (me.clone(), f.clone());
            async move { me.call(req?, f).await }
        }))
    }
}

#[tonic::async_trait]
impl pb::info_server::Info for Tei {
    async fn info(
        &self,
        _: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        let s = &self.0;
        let m = s.model().map_err(status)?;
        let info = s.info.get().cloned().unwrap_or_default();
        let text = |k: &str| info[k].as_str().map(str::to_string);
        let int = |k: &str| info[k].as_u64().and_then(|v| u32::try_from(v).ok());
        let model_type = match m.task() {
            ModelTask::Classifier | ModelTask::TokenClassifier => pb::ModelType::Classifier,
            ModelTask::CrossEncoder => pb::ModelType::Reranker,
            _ => pb::ModelType::Embedding,
        };
        Ok(Response::new(pb::InfoResponse {
            version: text("version").unwrap_or_default(),
            sha: None,
            docker_label: None,
            model_id: text("model_id").unwrap_or_default(),
            model_sha: None,
            model_dtype: text("model_dtype").unwrap_or_default(),
            model_type: model_type as i32,
            max_concurrent_requests: int("max_concurrent_requests").unwrap_or(0),
            max_input_length: int("max_input_length").unwrap_or(0),
            max_batch_tokens: int("max_batch_tokens").unwrap_or(0),
            max_batch_requests: None,
            max_client_batch_size: int("max_client_batch_size").unwrap_or(0),
            tokenization_workers: int("tokenization_workers").unwrap_or(1),
        }))
    }
}

#[tonic::async_trait]
impl pb::embed_server::Embed for Tei {
    async fn embed(
        &self,
        r: Request<pb::EmbedRequest>,
    ) -> Result<Response<pb::EmbedResponse>, Status> {
        self.call(r.into_inner(), embed).await.map(Response::new)
    }

    type EmbedStreamStream = Answers<pb::EmbedResponse>;

    async fn embed_stream(
        &self,
        r: Request<Streaming<pb::EmbedRequest>>,
    ) -> Result<Response<Self::EmbedStreamStream>, Status> {
        Ok(Response::new(self.each(r.into_inner(), embed)))
    }

    async fn embed_sparse(
        &self,
        r: Request<pb::EmbedSparseRequest>,
    ) -> Result<Response<pb::EmbedSparseResponse>, Status> {
        self.call(r.into_inner(), embed_sparse)
            .await
            .map(Response::new)
    }

    type EmbedSparseStreamStream = Answers<pb::EmbedSparseResponse>;

    async fn embed_sparse_stream(
        &self,
        r: Request<Streaming<pb::EmbedSparseRequest>>,
    ) -> Result<Response<Self::EmbedSparseStreamStream>, Status> {
        Ok(Response::new(self.each(r.into_inner(), embed_sparse)))
    }

    async fn embed_all(
        &self,
        r: Request<pb::EmbedAllRequest>,
    ) -> Result<Response<pb::EmbedAllResponse>, Status> {
        self.call(r.into_inner(), embed_all)
            .await
            .map(Response::new)
    }

    type EmbedAllStreamStream = Answers<pb::EmbedAllResponse>;

    async fn embed_all_stream(
        &self,
        r: Request<Streaming<pb::EmbedAllRequest>>,
    ) -> Result<Response<Self::EmbedAllStreamStream>, Status> {
        Ok(Response::new(self.each(r.into_inner(), embed_all)))
    }
}

#[tonic::async_trait]
impl pb::predict_server::Predict for Tei {
    async fn predict(
        &self,
        r: Request<pb::PredictRequest>,
    ) -> Result<Response<pb::PredictResponse>, Status> {
        self.call(r.into_inner(), predict).await.map(Response::new)
    }

    async fn predict_pair(
        &self,
        r: Request<pb::PredictPairRequest>,
    ) -> Result<Response<pb::PredictResponse>, Status> {
        self.call(r.into_inner(), predict_pair)
            .await
            .map(Response::new)
    }

    type PredictStreamStream = Answers<pb::PredictResponse>;

    async fn predict_stream(
        &self,
        r: Request<Streaming<pb::PredictRequest>>,
    ) -> Result<Response<Self::PredictStreamStream>, Status> {
        Ok(Response::new(self.each(r.into_inner(), predict)))
    }

    type PredictPairStreamStream = Answers<pb::PredictResponse>;

    async fn predict_pair_stream(
        &self,
        r: Request<Streaming<pb::PredictPairRequest>>,
    ) -> Result<Response<Self::PredictPairStreamStream>, Status> {
        Ok(Response::new(self.each(r.into_inner(), predict_pair)))
    }
}

#[tonic::async_trait]
impl pb::rerank_server::Rerank for Tei {
    async fn rerank(
        &self,
        r: Request<pb::RerankRequest>,
    ) -> Result<Response<pb::RerankResponse>, Status> {
        let r = r.into_inner();
        let _slot = self.0.slot().map_err(status)?;
        let req = classify::RerankRequest {
            query: r.query,
            texts: super::super::parse::Texts(r.texts),
            raw_scores: r.raw_scores,
            return_text: r.return_text,
            truncate: Some(r.truncate),
            truncation_direction: direction(r.truncation_direction),
        };
        let (t, out) = classify::rerank_with(&self.0, req).await.map_err(status)?;
        Ok(Response::new(ranks(&t, out)))
    }

    /// The pairs the stream sends, ranked together once it ends (`raw_scores`,
    /// `return_text`, `truncate` and the direction from its first message).
    async fn rerank_stream(
        &self,
        r: Request<Streaming<pb::RerankStreamRequest>>,
    ) -> Result<Response<pb::RerankResponse>, Status> {
        let mut input = r.into_inner();
        let mut pairs = Vec::new();
        let mut first: Option<(bool, bool, Cut)> = None;
        while let Some(m) = input.next().await {
            let m = m?;
            first.get_or_insert((
                m.raw_scores,
                m.return_text,
                cut(m.truncate, m.truncation_direction),
            ));
            if pairs.len() >= self.0.limits.max_client_batch {
                return Err(Status::invalid_argument(format!(
                    "batch size > maximum allowed batch size {} (--max-client-batch-size)",
                    self.0.limits.max_client_batch
                )));
            }
            pairs.push((m.query, m.text));
        }
        let (raw, text, c) = first.ok_or_else(|| Status::invalid_argument("no texts"))?;
        let _slot = self.0.slot().map_err(status)?;
        let (t, out) = classify::rank_pairs(&self.0, pairs, raw, text, c)
            .await
            .map_err(status)?;
        Ok(Response::new(ranks(&t, out)))
    }
}

#[tonic::async_trait]
impl pb::tokenize_server::Tokenize for Tei {
    async fn tokenize(
        &self,
        r: Request<pb::EncodeRequest>,
    ) -> Result<Response<pb::EncodeResponse>, Status> {
        self.call(r.into_inner(), tokenize).await.map(Response::new)
    }

    type TokenizeStreamStream = Answers<pb::EncodeResponse>;

    async fn tokenize_stream(
        &self,
        r: Request<Streaming<pb::EncodeRequest>>,
    ) -> Result<Response<Self::TokenizeStreamStream>, Status> {
        Ok(Response::new(self.each(r.into_inner(), tokenize)))
    }

    async fn decode(
        &self,
        r: Request<pb::DecodeRequest>,
    ) -> Result<Response<pb::DecodeResponse>, Status> {
        self.call(r.into_inner(), decode).await.map(Response::new)
    }

    type DecodeStreamStream = Answers<pb::DecodeResponse>;

    async fn decode_stream(
        &self,
        r: Request<Streaming<pb::DecodeRequest>>,
    ) -> Result<Response<Self::DecodeStreamStream>, Status> {
        Ok(Response::new(self.each(r.into_inner(), decode)))
    }
}
