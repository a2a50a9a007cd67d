#!/usr/bin/env bash
# `make bench`: measures embedd against the performance targets and prints one summary table.
#
#   1. bench-engine in process (default SIMD level): load time, bulk tokens/s per thread count and
#      token budget, short-query latency, accuracy of every SIMD level and weight mode against the
#      float64 reference, resident memory;
#   2. bench-engine with EMBEDD_SIMD=avx2 (x86-64 only; one budget): the AVX2-only path, and the
#      AVX-VNNI level beside it where the CPU has it (reported, no target);
#   3. `embedd serve` with models.toml on a free loopback port, loaded by `embedd bench`: bulk
#      (batches of 32, 2 clients, BENCH_RUNS passes) and short queries one at a time; the server's
#      VmRSS after the bulk; the engine run's reference sentences through the server (accuracy).
#
# Before each stage and at the end, native/build/bench/bench_host notes the host's state (host.txt).
# It builds nothing (make bench built bin/embedd and bench_host). Results go to
# bench-results/<date>/. The exit status is 0 when everything ran, even if targets are missed (this
# is a report); non-zero when a step failed to run. Knobs: BENCH_RUNS (timed passes per engine row,
# default 3), BENCH_THREADS (default 1,2), BENCH_BUDGETS (default 512,2048,8192), BENCH_ACCURACY
# (sentences, default 32).
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=bin/embedd
MODEL=models/all-MiniLM-L6-v2-Q4_K_M.gguf
MODEL_ID=all-MiniLM-L6-v2
CONFIG=models.toml
CORPUS_PY=${CORPUS_PY:-../shared/bench/corpus.py}
RUNS=${BENCH_RUNS:-3}
THREADS=${BENCH_THREADS:-1,2}
BUDGETS=${BENCH_BUDGETS:-512,2048,8192}
ACCURACY=${BENCH_ACCURACY:-32}

die() { echo "bench.sh: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "$BIN is missing: run 'make bench' (it builds first)"
[ -f "$MODEL" ] || die "bundled model $MODEL is missing"
[ -f "$CORPUS_PY" ] || die "corpus script $CORPUS_PY is missing (../shared beside the repository)"
command -v python3 >/dev/null || die "python3 is needed (corpus and summary)"
command -v curl >/dev/null || die "curl is needed (server readiness)"

OUT=bench-results/$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$OUT" || die "cannot create $OUT"
ln -sfn "$(basename "$OUT")" bench-results/latest
failed=()
step() { echo; echo "== $*" >&2; }
# The host's state before each stage (bench_host: each CPU's clock and read rate of a 4 MB buffer,
# all at once): on a shared VM it explains a run whose figures all fell together.
PROBE=native/build/bench/bench_host
host_state() {
    if [ -x "$PROBE" ]; then
        "$PROBE" "$1" >>"$OUT/host.txt" || failed+=("bench_host")
    else
        echo "bench.sh: $PROBE is missing (make bench builds it): the host's state is not noted" >&2
    fi
}

python3 "$CORPUS_PY" >"$OUT/corpus.json" || die "corpus.py failed"
python3 "$CORPUS_PY" --words 8 >"$OUT/queries.json" || die "corpus.py --words 8 failed"

host_state "before the engine run"
step "engine, active SIMD level (threads $THREADS, budgets $BUDGETS, $RUNS runs)"
if ! "$BIN" bench-engine --model "$MODEL" --corpus "$OUT/corpus.json" --queries "$OUT/queries.json" \
    --threads "$THREADS" --budgets "$BUDGETS" --runs "$RUNS" --accuracy "$ACCURACY" \
    --reference-out "$OUT/reference.json" --json "$OUT/engine.json" >"$OUT/engine.txt"; then
    failed+=("bench-engine")
fi
cat "$OUT/engine.txt"

if [ "$(uname -m)" = x86_64 ]; then
    levels=avx2
    grep -qw avx_vnni /proc/cpuinfo && levels=avx2,avxvnni
    host_state "before the AVX2 run"
    step "engine, EMBEDD_SIMD=avx2, levels $levels (threads 2, budget 8192)"
    if ! EMBEDD_SIMD=avx2 "$BIN" bench-engine --model "$MODEL" --corpus "$OUT/corpus.json" --simd "$levels" \
        --queries "$OUT/queries.json" --threads 2 --budgets 8192 --sorted=false --runs "$RUNS" --loads 1 \
        --accuracy 0 --json "$OUT/engine-avx2.json" >"$OUT/engine-avx2.txt"; then
        failed+=("bench-engine avx2")
    fi
    cat "$OUT/engine-avx2.txt"
fi

host_state "before the HTTP runs"
step "HTTP: embedd serve + embedd bench"
have_bench=1
# The help text is read whole before grep looks at it: in a pipe, grep -q exits at its match, the
# rest of the help gets SIGPIPE, and pipefail then reported a missing subcommand (one run in 36).
help_text=$("$BIN" help 2>&1)
if ! grep -qE '^ +bench +' <<<"$help_text"; then
    echo "bench.sh: this build has no 'embedd bench' subcommand; HTTP throughput and latency not measured" >&2
    failed+=("embedd bench (missing)")
    have_bench=0
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" serve --config "$CONFIG" --host 127.0.0.1 --port "$PORT" --log-level warn >"$OUT/server.log" 2>&1 &
SERVER=$!
# The server must not outlive the script, whatever happens below.
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
URL=http://127.0.0.1:$PORT
ready=0
for _ in $(seq 1 300); do
    if curl -sf -o /dev/null "$URL/health/ready"; then ready=1; break; fi
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.2
done
if [ "$ready" != 1 ]; then
    echo "bench.sh: server did not become ready; log:" >&2
    cat "$OUT/server.log" >&2
    failed+=("embedd serve")
else
    echo "server pid $SERVER on $URL; RSS when ready: $(awk '/^VmRSS/ {print $2, $3}' "/proc/$SERVER/status")" >&2
    if [ "$have_bench" = 1 ]; then
        if ! "$BIN" bench --url "$URL" --model "$MODEL_ID" --batch 32 --concurrency 2 --rounds "$RUNS" \
            --corpus "$OUT/corpus.json" --json >"$OUT/http-bulk.json"; then
            failed+=("embedd bench (bulk)")
        fi
        cat "$OUT/http-bulk.json"
        # Resident memory after the bulk run: what serving the corpus left resident.
        awk '/^VmRSS|^VmHWM/ {print $1, $2}' "/proc/$SERVER/status" >"$OUT/server-memory.txt"
        cat "$OUT/server-memory.txt"
        if ! "$BIN" bench --url "$URL" --model "$MODEL_ID" --batch 1 --concurrency 1 --warmup 20 \
            --corpus "$OUT/queries.json" --trace "$OUT/http-latency.csv" --json >"$OUT/http-latency.json"; then
            failed+=("embedd bench (latency)")
        fi
        cat "$OUT/http-latency.json"
    fi
    # The HTTP path's accuracy: the engine run's reference sentences through the server.
    if [ -f "$OUT/reference.json" ]; then
        if python3 - "$URL" "$MODEL_ID" "$OUT/reference.json" >"$OUT/http-accuracy.json" <<'PYEOF'
import json, math, sys, urllib.request
url, model, path = sys.argv[1:4]
ref = json.load(open(path))
req = urllib.request.Request(url + "/v1/embeddings", data=json.dumps({"model": model, "input": ref["texts"]}).encode(),
                             headers={"Content-Type": "application/json"})
data = sorted(json.load(urllib.request.urlopen(req, timeout=60))["data"], key=lambda d: d["index"])
if len(data) != len(ref["vectors"]):
    sys.exit("server returned %d embeddings for %d texts" % (len(data), len(ref["vectors"])))
cos = []
for want, got in zip(ref["vectors"], (d["embedding"] for d in data)):
    ab = sum(a * b for a, b in zip(want, got))
    na, nb = math.sqrt(sum(a * a for a in want)), math.sqrt(sum(b * b for b in got))
    c = ab / (na * nb) if na > 0 and nb > 0 and len(want) == len(got) else -1.0
    cos.append(c if math.isfinite(c) else -1.0)
json.dump({"sentences": len(cos), "mean_cosine": sum(cos) / len(cos), "min_cosine": min(cos)}, sys.stdout)
PYEOF
        then
            echo "HTTP accuracy: $(cat "$OUT/http-accuracy.json")"
        else
            rm -f "$OUT/http-accuracy.json"
            failed+=("HTTP accuracy")
        fi
    fi
fi
kill -TERM "$SERVER" 2>/dev/null
if ! wait "$SERVER"; then
    echo "bench.sh: server exited with an error after SIGTERM; log in $OUT/server.log" >&2
    failed+=("embedd serve (shutdown)")
fi
trap - EXIT
host_state "at the end"
step "summary"
python3 - "$OUT" <<'EOF' | tee "$OUT/summary.txt"
import csv, json, os, re, sys

out = sys.argv[1]

def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def text(name):
    try:
        with open(os.path.join(out, name)) as f:
            return f.read()
    except OSError:
        return ""

def http_figures(name):
    """tokens/s, p50 and p99 (ms) from an `embedd bench --json` report."""
    j = load(name)
    if not j:
        return {"note": "no report"}
    if j.get("errors"):
        return {"note": "%d of %d requests failed: %s" % (j["errors"], j["requests"], j.get("first_error", "")[:80])}
    return {"tps": j.get("tokens_per_second"), "p50": j.get("p50_ms"), "p99": j.get("p99_ms"),
            "note": "%d requests" % j["requests"]}

rows = []  # (target, goal, measured, passed or None when not measured)
def add(name, goal, value, fmt, ok, note=""):
    if value is None:
        rows.append((name, goal, "not measured" + (" (" + note + ")" if note else ""), None))
    else:
        rows.append((name, goal, fmt.format(value) + (" (" + note + ")" if note else ""), ok(value)))

eng = load("engine.json")
avx2 = load("engine-avx2.json")
bulk = http_figures("http-bulk.json")
lat = http_figures("http-latency.json")

best = None
if eng:
    cands = [b for b in eng["bulk"] if b["threads"] == 2 and b["order"] == "corpus"]
    if cands:
        best = max(cands, key=lambda b: b["tokens_per_sec"])
add("engine bulk, 2 threads", ">= 30,000 tokens/s", best and best["tokens_per_sec"], "{:,.0f} tokens/s",
    lambda v: v >= 30000, best and "budget %d, %s" % (best["budget"], best["simd"]))
add("HTTP bulk, batch 32, 2 clients", ">= 25,000 tokens/s", bulk.get("tps"), "{:,.0f} tokens/s", lambda v: v >= 25000,
    bulk.get("note", ""))
lbest = None
if eng and eng["latency"]:
    lbest = min(eng["latency"], key=lambda l: l["p50_ms"])
add("engine short query p50", "<= 0.5 ms", lbest and lbest["p50_ms"], "{:.3f} ms", lambda v: v <= 0.5,
    lbest and "%d threads, p99 %.3f ms" % (lbest["threads"], lbest["p99_ms"]))
add("HTTP short query p50", "<= 1 ms", lat.get("p50"), "{:.3f} ms", lambda v: v <= 1, lat.get("note", ""))
add("HTTP short query p99", "<= 2 ms", lat.get("p99"), "{:.3f} ms", lambda v: v <= 2, lat.get("note", ""))
worst = None
if eng and eng["accuracy"]:
    worst = min(eng["accuracy"], key=lambda a: a["min_cosine"])
add("accuracy, every SIMD path and weight mode", "min cosine >= 0.999", worst and worst["min_cosine"], "{:.5f}",
    lambda v: v >= 0.999, worst and "worst: %s/%s weights, %d sentences" % (worst["simd"], worst["weight_mode"], worst["sentences"]))
hacc = load("http-accuracy.json")
add("accuracy, HTTP path", "min cosine >= 0.999", hacc and hacc["min_cosine"], "{:.5f}", lambda v: v >= 0.999,
    hacc and "%d sentences" % hacc["sentences"])
a2 = vnni = None
if avx2 and avx2["machine"]["active_simd"] == "avx2":
    a2 = next((b for b in avx2["bulk"] if b["simd"] == "avx2"), None)
    vnni = next((b for b in avx2["bulk"] if b["simd"] == "avxvnni"), None)
add("engine bulk, EMBEDD_SIMD=avx2, 2 threads", ">= 15,000 tokens/s", a2 and a2["tokens_per_sec"], "{:,.0f} tokens/s",
    lambda v: v >= 15000, "budget %d" % a2["budget"] if a2 else "")
rss = None
m = re.search(r"VmRSS:?\s+(\d+)", text("server-memory.txt"))
if m:
    rss = int(m.group(1)) / 1024
add("server RSS after the HTTP bulk run", "<= 100 MB", rss, "{:.1f} MB", lambda v: v <= 100)
add("model load (median)", "<= 50 ms", eng and eng["load"]["median_ms"], "{:.1f} ms", lambda v: v <= 50)

if eng:
    mc = eng["machine"]
    print("machine: %s, %d CPUs, SIMD %s; commit %s; %s" % (mc["cpu_model"], mc["cpus"], mc["detected_simd"],
          eng.get("commit") or "-", eng["date"]))
    print("load average at the engine run: %.2f at start, %.2f at end (figures are noisy on a busy machine)"
          % (mc["loadavg_start"][0], mc["loadavg_end"][0]))
print("load average now: " + open("/proc/loadavg").read().split(" ", 3)[0] if os.path.exists("/proc/loadavg") else "")
print()
w = [max(len(r[i]) for r in rows + [("target", "goal", "measured")]) for i in range(3)]
print("%-*s  %-*s  %-*s  %s" % (w[0], "target", w[1], "goal", w[2], "measured", "result"))
for name, goal, meas, ok in rows:
    res = "n/a" if ok is None else ("PASS" if ok else "MISS")
    print("%-*s  %-*s  %-*s  %s" % (w[0], name, w[1], goal, w[2], meas, res))
print()
try:
    with open(os.path.join(out, "http-latency.csv")) as f:
        traced = [r for r in csv.DictReader(f) if not r["error"]]
except (OSError, KeyError, csv.Error):
    traced = []
if len(traced) >= 100:
    # The p99 of n requests (nearest rank ceil(0.99 n)) is the k-th slowest: these are the ones that
    # made it, with their token counts (a long text is slow for its length, a short one for a stall).
    traced.sort(key=lambda r: -float(r["latency_ms"]))
    k = len(traced) - -(-99 * len(traced) // 100) + 1
    over = sum(1 for r in traced if float(r["latency_ms"]) > 2)
    print("slowest short queries through HTTP (tokens: ms), the p99 is #%d: %s; %d of %d over 2 ms" % (
        k, ", ".join("%s: %.2f" % (r["tokens"], float(r["latency_ms"])) for r in traced[:k + 2]), over, len(traced)))
if vnni:
    print("AVX-VNNI level (CPUs without AVX-512, e.g. Intel since Alder Lake), 2 threads, budget %d: %s tokens/s"
          % (vnni["budget"], "{:,.0f}".format(vnni["tokens_per_sec"])))
host = text("host.txt").strip()
if host:
    print("host state (bench_host: each CPU's clock in GHz and read rate of a 4 MB buffer, all at once):")
    print("\n".join("  " + l for l in host.splitlines()))
print("competitors on this machine: llama.cpp 4,480 tokens/s, 3.6 ms/query; ONNX Runtime fp32 11,500 tokens/s, 2.1 ms;")
print("ONNX Runtime int8 29,800 tokens/s, 0.64 ms, cosine 0.988-0.995")
print("results: " + out)
EOF

if [ ${#failed[@]} -gt 0 ]; then
    echo "bench.sh: failed to run: ${failed[*]}" >&2
    exit 1
fi
exit 0
