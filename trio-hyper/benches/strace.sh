#!/bin/bash
# Syscalls per request of benches/hello.rs's servers. Needs strace and wrk.
# usage: strace.sh BIN trio|tokio -> syscalls per request (strace -c -f on the server, wrk -t1 -c64 -d3s)
BIN=$1; NAME=$2; D=$(mktemp -d /tmp/strace.XXXX)
strace -c -f -o $D/sc "$BIN" --serve $NAME >$D/port 2>/dev/null &
SP=$!
for i in $(seq 100); do [ -s $D/port ] && break; sleep 0.2; done
PORT=$(head -1 $D/port)
N=$(wrk -t1 -c64 -d3s http://127.0.0.1:$PORT/ | awk '/requests in/ {print $1}')
kill $(pgrep -P $SP); wait $SP 2>/dev/null
echo "$NAME: $N requests"
awk -v n=$N 'NR>2 && $4 ~ /^[0-9]+$/ && $NF != "total" { printf "  %-16s %8d calls  %.3f/req\n", $NF, $4, $4/n }' $D/sc | sort -k2 -nr | head -12
rm -r $D
