//! The object-safe companions of the stream traits.
//!
//! Each `Dyn…` trait mirrors a plain trait with methods that return a
//! [`BoxFuture`]; a blanket impl makes every implementation of the plain
//! trait an implementation of its companion, and the `dyn` types implement
//! the plain traits again (so `Box<dyn DynStream>` is a [`Stream`]). Nothing
//! is boxed unless a `dyn` form is used.

use super::{AsyncResource, Listener, ReceiveStream, SendStream, Stream};
use crate::error::Result;
use std::future::Future;
use std::pin::Pin;

/// A boxed, not necessarily `Send`, future: what the `Dyn…` traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A boxed [`SendStream`] of any type.
pub type BoxSendStream = Box<dyn DynSendStream>;
/// A boxed [`ReceiveStream`] of any type.
pub type BoxReceiveStream = Box<dyn DynReceiveStream>;
/// A boxed [`Stream`] of any type.
pub type BoxStream = Box<dyn DynStream>;
/// A boxed [`Listener`] of any type; it accepts [`BoxStream`]s.
pub type BoxListener = Box<dyn DynListener>;

/// The object-safe form of [`AsyncResource`], implemented for every
/// `AsyncResource`.
pub trait DynAsyncResource {
    /// [`AsyncResource::aclose`], boxed.
    fn dyn_aclose(&self) -> BoxFuture<'_, Result<()>>;
}

impl<T: AsyncResource> DynAsyncResource for T {
    fn dyn_aclose(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.aclose())
    }
}

/// The object-safe form of [`SendStream`], implemented for every
/// `SendStream`.
pub trait DynSendStream: DynAsyncResource {
    /// [`SendStream::send_all`], boxed.
    fn dyn_send_all<'a>(&'a self, data: &'a [u8]) -> BoxFuture<'a, Result<()>>;
    /// [`SendStream::wait_send_all_might_not_block`], boxed.
    fn dyn_wait_send_all_might_not_block(&self) -> BoxFuture<'_, Result<()>>;
}

impl<T: SendStream> DynSendStream for T {
    fn dyn_send_all<'a>(&'a self, data: &'a [u8]) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.send_all(data))
    }
    fn dyn_wait_send_all_might_not_block(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.wait_send_all_might_not_block())
    }
}

/// The object-safe form of [`ReceiveStream`], implemented for every
/// `ReceiveStream`.
pub trait DynReceiveStream: DynAsyncResource {
    /// [`ReceiveStream::receive_some`], boxed.
    fn dyn_receive_some<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize>>;
}

impl<T: ReceiveStream> DynReceiveStream for T {
    fn dyn_receive_some<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, Result<usize>> {
        Box::pin(self.receive_some(buf))
    }
}

/// The object-safe form of [`Stream`], implemented for every `Stream`.
pub trait DynStream: DynSendStream + DynReceiveStream {
    /// [`Stream::send_eof`], boxed.
    fn dyn_send_eof(&self) -> BoxFuture<'_, Result<()>>;
}

impl<T: Stream> DynStream for T {
    fn dyn_send_eof(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.send_eof())
    }
}

/// The object-safe form of [`Listener`], implemented for every `Listener`
/// whose streams are `'static`; it accepts [`BoxStream`]s.
pub trait DynListener: DynAsyncResource {
    /// [`Listener::accept`], boxed, with the stream boxed too.
    fn dyn_accept(&self) -> BoxFuture<'_, Result<BoxStream>>;
}

impl<L: Listener> DynListener for L
where
    L::Stream: 'static,
{
    fn dyn_accept(&self) -> BoxFuture<'_, Result<BoxStream>> {
        Box::pin(async move {
            let s = self.accept().await?;
            Ok(Box::new(s) as BoxStream)
        })
    }
}

// ----- the `dyn` types implement the plain traits -----------------------------------

macro_rules! dyn_async_resource {
    ($($t:ty),*) => {$(
        impl AsyncResource for $t {
            fn aclose(&self) -> impl Future<Output = Result<()>> {
                self.dyn_aclose()
            }
        }
    )*};
}

dyn_async_resource!(
    dyn DynAsyncResource + '_,
    dyn DynSendStream + '_,
    dyn DynReceiveStream + '_,
    dyn DynStream + '_,
    dyn DynListener + '_
);

macro_rules! dyn_send_stream {
    ($($t:ty),*) => {$(
        impl SendStream for $t {
            fn send_all(&self, data: &[u8]) -> impl Future<Output = Result<()>> {
                async move { self.dyn_send_all(data).await }
            }
            fn wait_send_all_might_not_block(&self) -> impl Future<Output = Result<()>> {
                self.dyn_wait_send_all_might_not_block()
            }
        }
    )*};
}

dyn_send_stream!(dyn DynSendStream + '_, dyn DynStream + '_);

macro_rules! dyn_receive_stream {
    ($($t:ty),*) => {$(
        impl ReceiveStream for $t {
            fn receive_some(&self, buf: &mut [u8]) -> impl Future<Output = Result<usize>> {
                async move { self.dyn_receive_some(buf).await }
            }
        }
    )*};
}

dyn_receive_stream!(dyn DynReceiveStream + '_, dyn DynStream + '_);

impl Stream for dyn DynStream + '_ {
    fn send_eof(&self) -> impl Future<Output = Result<()>> {
        self.dyn_send_eof()
    }
}

impl Listener for dyn DynListener + '_ {
    type Stream = BoxStream;
    fn accept(&self) -> impl Future<Output = Result<BoxStream>> {
        self.dyn_accept()
    }
}
