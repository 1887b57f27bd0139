//! An echo over one TCP loopback connection, in one run: a client task
//! sends N small messages one at a time and waits for each echo. Run under
//! `strace -c` by `bench/strace_echo.sh` to show the syscall floor of
//! DESIGN §9: one `recvfrom` and one `sendto` per message per side, and no
//! `epoll_ctl` per message.
//!
//! ```text
//! cargo run --example socket_echo -- 10000
//! ```

use trio::socket::{SocketListener, SocketStream};
use trio::stream::{Listener, ReceiveStream, SendStream, Stream};

fn main() -> trio::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(10_000, |a| a.parse().expect("a message count"));
    trio::run(async move {
        let listener = SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?;
        let addr = listener.local_addr()?.as_socket().unwrap();
        let client = SocketStream::connect_tcp(addr).await?;
        let server = listener.accept().await?;
        trio::open_nursery(async |nursery| {
            nursery.start_soon(async {
                let mut buf = [0; 64];
                loop {
                    let got = server.receive_some(&mut buf).await?;
                    if got == 0 {
                        return Ok(());
                    }
                    server.send_all(&buf[..got]).await?;
                }
            });
            let mut buf = [0; 64];
            for i in 0..n {
                let msg = (i as u64).to_le_bytes();
                client.send_all(&msg).await?;
                let mut have = 0;
                while have < msg.len() {
                    have += client.receive_some(&mut buf[have..]).await?;
                }
                assert_eq!(&buf[..msg.len()], &msg);
            }
            client.send_eof().await
        })
        .await?;
        println!("echoed {n} messages");
        Ok(())
    })
}
