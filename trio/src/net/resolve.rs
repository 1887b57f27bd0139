//! Name resolution that never blocks the run loop (DESIGN §9).
//!
//! A literal address (`"127.0.0.1"`, `"::1"`) is parsed in place: no
//! thread. Any other name goes to the system resolver (`getaddrinfo`) in a
//! worker thread; a cancelled lookup returns `Cancelled` at once and the
//! thread's late answer is dropped.

use crate::error::{Error, ErrorKind, Result};
use crate::{cancel_shielded_checkpoint, checkpoint_if_cancelled, to_thread};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Resolves `host` and `port` to socket addresses, in the resolver's order.
///
/// A checkpoint. Literal IPv4 and IPv6 addresses are answered without a
/// thread.
///
/// ```
/// trio::run(async {
///     let addrs = trio::net::getaddrinfo("127.0.0.1", 80).await?;
///     assert_eq!(addrs, ["127.0.0.1:80".parse().unwrap()]);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub async fn getaddrinfo(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    checkpoint_if_cancelled().await?;
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        cancel_shielded_checkpoint().await?;
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let owned = host.to_owned();
    let found = to_thread::Builder::new()
        .abandon_on_cancel(true)
        .run_sync(move || (owned.as_str(), port).to_socket_addrs().map(Vec::from_iter))
        .await?;
    found.map_err(|e| Error::with_kind(ErrorKind::Io, e))
}
