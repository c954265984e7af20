//! An HTTP/1.1 answer given before the request's body was read leaves the
//! connection unusable: the unread body is still in the pipe, so the
//! server closes it. A client that already sent its next request on that
//! connection then sees it closed with no answer ("server disconnected"):
//! a refusal (401, 403, 404, 413) races the client's connection pool. Such
//! answers say `Connection: close`, so the client never reuses the
//! connection. Answers to requests whose body was read, or that had none,
//! keep the connection.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION};
use http::Version;
use http_body::{Frame, SizeHint};

/// Middleware: `Connection: close` on an HTTP/1.x answer to a request
/// whose body was not read to its end.
pub async fn close_if_unread(req: Request, next: Next) -> Response {
    if req.version() >= Version::HTTP_2 || http_body::Body::is_end_stream(req.body()) {
        return next.run(req).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let watched = Arc::clone(&read);
    let req = req.map(|inner| {
        Body::new(Watched {
            inner,
            read: watched,
        })
    });
    let mut res = next.run(req).await;
    if !read.load(Ordering::Acquire) {
        res.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// A request body that notes when it was read to its end.
struct Watched {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.read.store(true, Ordering::Release);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
