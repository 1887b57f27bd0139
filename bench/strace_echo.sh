#!/usr/bin/env bash
# The syscall floor of DESIGN §9, checked: `strace -c` over an echo of N
# messages (default 10 000) on one TCP loopback connection
# (trio/examples/socket_echo.rs: client and server in one process, so each
# message is received and sent twice, once per side). Expects one
# `recvfrom` and one `sendto` per message per side (a little slack for the
# connection's set-up and end) and no `epoll_ctl` per message (sockets
# register once). Needs strace (`.ci/run` installs it if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
if ! command -v strace >/dev/null; then
    echo "error: strace is not installed (apt-get install strace)"
    exit 1
fi
cargo build -q --example socket_echo </dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
strace -f -c -o "$out" target/debug/examples/socket_echo "$n"
cat "$out"
# Columns: % time, seconds, usecs/call, calls, [errors], syscall.
calls() { awk -v s="$1" '$NF == s { print $4 }' "$out" | head -n1; }
recv=$(calls recvfrom); send=$(calls sendto); ctl=$(calls epoll_ctl)
recv=${recv:-0}; send=${send:-0}; ctl=${ctl:-0}
echo "messages: $n; recvfrom: $recv, sendto: $send (both sides), epoll_ctl: $ctl"
slack=10
fail=0
if [ "$recv" -lt $((2 * n)) ] || [ "$recv" -gt $((2 * n + slack)) ]; then
    echo "error: expected about $((2 * n)) recvfrom (one per message per side)"; fail=1
fi
if [ "$send" -lt $((2 * n)) ] || [ "$send" -gt $((2 * n + slack)) ]; then
    echo "error: expected about $((2 * n)) sendto (one per message per side)"; fail=1
fi
if [ "$ctl" -gt $slack ]; then
    echo "error: $ctl epoll_ctl calls: sockets should register once"; fail=1
fi
exit $fail
