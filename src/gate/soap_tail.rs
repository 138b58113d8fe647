//! The streamed rest of an unguarded SOAP call, checked chunk by chunk on its way to vCenter.
//!
//! If anything follows the classified method element (a second call hidden in `Body`), the
//! stream fails before that chunk is forwarded, so vCenter never receives a complete body,
//! and the refusal is left in a [`TailVerdict`] for the classify layer to answer with.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::body::{BoxError, ProxyBody};
use crate::vsphere::classify::Refusal;
use crate::vsphere::soap_tail::SoapTailGuard;

/// Where a refused tail leaves its reason; shared between the body and the classify layer.
#[derive(Debug, Clone, Default)]
pub struct TailVerdict(Arc<OnceLock<Refusal>>);

impl TailVerdict {
    /// The refusal, if the tail was refused.
    pub fn get(&self) -> Option<Refusal> {
        self.0.get().cloned()
    }

    fn refuse(&self, refusal: Refusal) {
        let _ = self.0.set(refusal);
    }
}

/// Wraps the rest of a SOAP body so that each chunk passes `guard` before it is forwarded.
pub fn guard_tail(rest: ProxyBody, guard: SoapTailGuard, verdict: TailVerdict) -> ProxyBody {
    GuardedTail {
        rest,
        guard,
        verdict,
        done: false,
    }
    .boxed_unsync()
}

pin_project_lite::pin_project! {
    struct GuardedTail {
        #[pin]
        rest: ProxyBody,
        guard: SoapTailGuard,
        verdict: TailVerdict,
        done: bool,
    }
}

impl Body for GuardedTail {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let frame = ready!(this.rest.poll_frame(cx));
        let checked = match &frame {
            Some(Ok(frame)) => match frame.data_ref() {
                Some(data) => this.guard.feed(data),
                None => Ok(()),
            },
            Some(Err(_)) => Ok(()),
            None => this.guard.finish(),
        };
        if let Err(err) = checked {
            *this.done = true;
            let refusal = Refusal::from(err);
            this.verdict.refuse(refusal.clone());
            return Poll::Ready(Some(Err(Box::new(refusal))));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.rest.size_hint()
    }
}
