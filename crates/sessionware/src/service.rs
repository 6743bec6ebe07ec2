//! The service the layer wraps around a handler: it hands each request a lazy session and,
//! once the handler has answered, writes back what changed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::response::Response;
use http::Request;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::config::Shared;
use crate::session::{Session, Slot};

/// The [`Service`] [`SessionLayer`](crate::SessionLayer) wraps around a handler. It touches no store itself: it
/// hands each request a lazy [`Session`] and, after the handler, writes back what changed.
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> SessionService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }
}

impl<S> fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let session = Session::new(self.shared.clone());
        // A private type, so the extractor is the only way to the session: a handler taking
        // `Extension<Session>` would see it unloaded and its writes would be dropped.
        request.extensions_mut().insert(Slot(session.clone()));
        ResponseFuture {
            state: Stage::Handler {
                future: self.inner.call(request),
                session: Some(session),
            },
        }
    }
}

pin_project! {
    /// The response future of [`SessionService`]: the handler's, then the write-back when the
    /// request changed its session.
    pub struct ResponseFuture<F> {
        #[pin]
        state: Stage<F>,
    }
}

pin_project! {
    #[project = StageProj]
    enum Stage<F> {
        Handler {
            #[pin]
            future: F,
            session: Option<Session>,
        },
        // Boxed: only requests that write pay for the store calls' futures.
        WriteBack {
            future: Pin<Box<dyn Future<Output = Response> + Send>>,
        },
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let write_back = match self.as_mut().project().state.project() {
                StageProj::Handler { future, session } => {
                    let response = match future.poll(cx) {
                        Poll::Ready(Ok(response)) => response.map(Body::new),
                        Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                        Poll::Pending => return Poll::Pending,
                    };
                    let pending = session.take().and_then(crate::write_back::prepare);
                    match pending {
                        None => return Poll::Ready(Ok(response)),
                        Some(pending) => Box::pin(crate::write_back::write_back(pending, response)),
                    }
                }
                StageProj::WriteBack { future } => return future.as_mut().poll(cx).map(Ok),
            };
            self.as_mut()
                .project()
                .state
                .set(Stage::WriteBack { future: write_back });
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
