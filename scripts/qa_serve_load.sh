#!/usr/bin/env bash
# Questions over HTTP under sustained feedback, then a restart that replays it.
#
#   cargo build -p xtask && scripts/qa_serve_load.sh [N]
#
# Starts `cargo xtask serve` (the intent model of runs/pipeline/assistant and
# the answer model of runs/qa/model) on a fresh SQLite store, sends N
# questions one after another, each followed by feedback drawn at random
# (right / wrong / this_one on a random candidate / none_of_these), reports
# the answer round trip and the answer model version serving at the end.
# Then it kills the server (SIGKILL) and times a start that replays all the
# feedback, stops it with Ctrl-C (which saves the answer model) and times a
# start from that saved version.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
PORT=${PORT:-8091}
work=$(mktemp -d)
trap 'kill -INT "$(cat "$work/pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$work"' EXIT
start() {
  target/debug/xtask serve --addr "127.0.0.1:$PORT" --db "sqlite://$work/feedback.db?mode=rwc" \
    >"$work/server.log" 2>&1 &
  echo $! >"$work/pid"
  until curl -sf "127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.02; done
}
stop() {
  kill "-$1" "$(cat "$work/pid")"
  while kill -0 "$(cat "$work/pid")" 2>/dev/null; do sleep 0.02; done
}
restart() {
  t0=$(date +%s.%N); start; t1=$(date +%s.%N)
  version=$(curl -s -XPOST "127.0.0.1:$PORT/v1/answer" -H 'content-type: application/json' \
    -d '{"text":"how do I pair my phone"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["model_version"])')
  replayed=$(grep -o 'replayed [0-9]* answer feedback after answer model version [0-9]*' "$work/server.log" || echo "replayed nothing")
  echo "start after $1: $(echo "$t1 - $t0" | bc) s ($replayed); serving answer model version $version"
}
t0=$(date +%s.%N); start; t1=$(date +%s.%N)
echo "start: $(echo "$t1 - $t0" | bc) s"
python3 - "$N" "$PORT" <<'PY'
import json, random, sys, time, urllib.request
n, port = int(sys.argv[1]), sys.argv[2]
random.seed(1)
def post(path, body):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                     {"content-type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)
texts = ["how do I pair my phone", "闹钟最多能设几个", "空调的除湿模式怎么开",
         "what does the assistant record", "how do I open the trunk", "导航怎么避开高速"]
latencies, began = [], time.time()
for i in range(n):
    sent = time.time()
    answer = post("/v1/answer", {"text": texts[i % len(texts)] + " please" * (i % 3)})
    latencies.append(time.time() - sent)
    kind = random.choice(["right", "wrong", "this_one", "none_of_these"])
    body = {"answer_id": answer["answer_id"], "feedback": kind}
    if kind == "this_one":
        body["entry_id"] = random.choice(answer["candidates"])["entry_id"]
    post("/v1/answer/feedback", body)
latencies.sort()
print(f"{n} answers, each with feedback, in {time.time() - began:.2f} s; answer round trip "
      f"p50 {latencies[n // 2] * 1e3:.2f} ms, p99 {latencies[int(n * 0.99)] * 1e3:.2f} ms; "
      f"the last answered by answer model version {answer['model_version']}")
PY
stop KILL
restart "a kill"
stop INT
restart "Ctrl-C"
stop INT
