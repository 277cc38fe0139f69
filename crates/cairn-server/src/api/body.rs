//! A deadline on reading a request's body: a client that sends its headers and then
//! trickles the body (or nothing) would otherwise hold a handler, and the memory of
//! what it sent so far, for as long as it likes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Why a body read stopped.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0} ms (body_read_timeout_ms)")]
pub struct BodyTooSlow(u64);

pin_project_lite::pin_project! {
    /// A body that fails once `deadline` passes before it has all arrived.
    pub struct Deadline {
        #[pin]
        inner: Body,
        #[pin]
        deadline: Sleep,
        limit_ms: u64,
    }
}

impl HttpBody for Deadline {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|result| result.map_err(Into::into)));
        }
        match this.deadline.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTooSlow(*this.limit_ms))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The deadline that stopped a body read, if one did: somewhere in `error`'s sources.
pub fn too_slow<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTooSlow> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(slow) = e.downcast_ref::<BodyTooSlow>() {
            return Some(slow);
        }
        current = e.source();
    }
    None
}

/// Puts a deadline on a request's body, counted from now. Requests without a body
/// (most reads) are left as they are: no timer for them.
pub fn with_deadline(request: Request<Body>, limit: Duration) -> Request<Body> {
    if request.body().is_end_stream() || request.body().size_hint().upper() == Some(0) {
        return request;
    }
    request.map(|inner| {
        Body::new(Deadline {
            inner,
            deadline: tokio::time::sleep_until(Instant::now() + limit),
            limit_ms: limit.as_millis() as u64,
        })
    })
}
