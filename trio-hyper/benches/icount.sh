#!/bin/bash
# Instructions per request of benches/hello.rs's servers (see trio_hyper's
# "Performance" docs). Needs valgrind, wrk and curl.
# usage: icount.sh BIN trio|tokio [SHORT LONG] -> callgrind instructions per request
# (BIN: target/release/deps/hello-*, from `cargo bench --no-run -p trio-hyper --bench hello`)
# The server runs under callgrind; wrk -t1 -c64 drives it. Counters are
# zeroed before and dumped after each of two wrk runs (SHORT and LONG
# seconds); marginal = (I_long - I_short) / (N_long - N_short), which
# cancels the per-run constant (64 connections, the pokes).
BIN=$1; NAME=$2; S=${3:-3}; L=${4:-9}
D=$(mktemp -d /tmp/icount.XXXX)
valgrind --tool=callgrind --callgrind-out-file=$D/cg.%p.out "$BIN" --serve $NAME >$D/port 2>$D/vg.err &
VP=$!
for i in $(seq 100); do [ -s $D/port ] && break; sleep 0.2; done
PORT=$(head -1 $D/port)
poke() { curl -s -o /dev/null http://127.0.0.1:$PORT/ ; }
# warm-up
wrk -t1 -c64 -d3s http://127.0.0.1:$PORT/ >/dev/null
ctl() { callgrind_control $1 $VP >/dev/null & local c=$!; sleep 0.3; poke; wait $c; }
one() {
  ctl -z
  local out; out=$(wrk -t1 -c64 -d${1}s http://127.0.0.1:$PORT/)
  local n; n=$(echo "$out" | awk '/requests in/ {print $1}')
  ctl -d
  local f; f=$(ls -t $D/cg.*.out* | head -1)
  local ir; ir=$(grep -E '^(summary|totals):' $f | head -1 | awk '{print $2}')
  echo "$n $ir $f"
}
read n1 i1 f1 < <(one $S)
read n2 i2 f2 < <(one $L)
kill $VP; wait $VP 2>/dev/null
echo "$NAME short: $n1 req $i1 Ir = $((i1 / n1))/req; long: $n2 req $i2 Ir = $((i2 / n2))/req; marginal $(( (i2 - i1) / (n2 - n1) ))/req; profile $f2"
