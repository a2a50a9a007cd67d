package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchTestConfig is a small run: warm-up off so that request counts are exact.
func benchTestConfig(url string) *benchConfig {
	return &benchConfig{url: url, model: "m", batch: 3, concurrency: 2, rounds: 2, timeout: 10 * time.Second}
}

// `embedd bench` against the real server: every request succeeds, rounds repeat the corpus and
// the token count is the server's own.
func TestBenchAgainstServe(t *testing.T) {
	bin := buildBinary(t)
	cfgPath := writeServeTestConfig(t, t.TempDir(), "")
	port := serveFreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "serve", "--config", cfgPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "EMBEDD_LOG_LEVEL=warn")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	serveWaitReady(t, base)

	texts := []string{"a short query", "robert smith", "the quick brown fox jumps over the lazy dog",
		"GNU GENERAL PUBLIC LICENSE", "x", "what is deep learning?", "embeddings over HTTP"}
	run := func(rounds int) *benchReport {
		c := benchTestConfig(base)
		c.model, c.rounds, c.warmup = "all-MiniLM-L6-v2", rounds, 1
		rep, err := benchHTTP(c, texts)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Errors != 0 {
			t.Fatalf("%d errors, first: %s", rep.Errors, rep.FirstError)
		}
		return rep
	}
	one, two := run(1), run(2)
	if one.Requests != 3 || one.Inputs != len(texts) || two.Requests != 6 || two.Inputs != 2*len(texts) {
		t.Errorf("requests/inputs %d/%d and %d/%d, want 3/%d and 6/%d", one.Requests, one.Inputs,
			two.Requests, two.Inputs, len(texts), 2*len(texts))
	}
	if one.Tokens < int64(3*len(texts)) || two.Tokens != 2*one.Tokens {
		t.Errorf("tokens %d (1 round) and %d (2 rounds)", one.Tokens, two.Tokens)
	}
	if !(one.P50Ms > 0 && one.P50Ms <= one.P99Ms && one.P99Ms <= one.MaxMs && one.TokensPerS > 0) {
		t.Errorf("latency figures %+v", one)
	}
}

// fakeEmbeddings answers every well-formed request (model "m", key "k") with status and body(number
// of inputs); it counts them.
func fakeEmbeddings(t *testing.T, status int, body func(n int) string) (string, *atomic.Int64) {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model string   `json:"model"`
			Input []string `json:"input"`
		}
		data, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(data, &req); err != nil || r.URL.Path != "/v1/embeddings" || req.Model != "m" ||
			r.Header.Get("Authorization") != "Bearer k" {
			http.Error(w, "bad request: "+string(data), http.StatusBadRequest)
			return
		}
		seen.Add(1)
		w.WriteHeader(status)
		io.WriteString(w, body(len(req.Input)))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &seen
}

// embeddingsAnswer is an OpenAI embeddings answer holding the given number of vectors.
func embeddingsAnswer(vectors, tokens int) string {
	items := make([]string, vectors)
	for i := range items {
		items[i] = fmt.Sprintf(`{"object":"embedding","index":%d,"embedding":[0.1,-0.2]}`, i)
	}
	return fmt.Sprintf(`{"object":"list","data":[%s],"model":"m","usage":{"prompt_tokens":%d,"total_tokens":%d}}`,
		strings.Join(items, ","), tokens, tokens)
}

// Answers are checked: wrong counts, invalid JSON, missing embeddings and error statuses count as
// errors with the first one reported, and a failing warm-up stops the run.
func TestBenchAnswerChecks(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		body    func(n int) string
		warmup  int
		wantErr string // from benchHTTP itself
		errors  int    // failed requests in the report
		first   string // in FirstError
		tokens  int64
	}{
		{name: "good", status: 200, body: func(n int) string { return embeddingsAnswer(n, 5*n) }, tokens: 5 * 2 * 7},
		{name: "too few vectors", status: 200, body: func(n int) string { return embeddingsAnswer(n-1, 5) }, errors: 6, first: "embeddings for"},
		{name: "invalid JSON", status: 200, body: func(int) string { return `{"data":[` }, errors: 6, first: "not valid JSON"},
		{name: "no embedding field", status: 200, body: func(n int) string {
			return strings.ReplaceAll(embeddingsAnswer(n, 1), `"embedding":`, `"vector":`)
		}, errors: 6, first: "0 embeddings for"},
		{name: "server error", status: 500, body: func(int) string { return `{"error":"boom"}` }, errors: 6, first: "status 500"},
		{name: "warm-up fails", status: 503, body: func(int) string { return "down" }, warmup: 1, wantErr: "warm-up request"},
	}
	texts := []string{"one", "two", "three", "four", "five", "six", "seven"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url, seen := fakeEmbeddings(t, tc.status, tc.body)
			c := benchTestConfig(url)
			c.apiKey, c.warmup = "k", tc.warmup
			rep, err := benchHTTP(c, texts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.Requests != 6 || seen.Load() != 6 {
				t.Errorf("%d requests reported, %d seen, want 6", rep.Requests, seen.Load())
			}
			if rep.Errors != tc.errors || !strings.Contains(rep.FirstError, tc.first) {
				t.Errorf("errors %d (first %q), want %d containing %q", rep.Errors, rep.FirstError, tc.errors, tc.first)
			}
			if rep.Tokens != tc.tokens {
				t.Errorf("tokens %d, want %d", rep.Tokens, tc.tokens)
			}
		})
	}
}

// --trace writes one CSV row per timed request, in the order sent, with what it carried, its times
// and its error; the report's figures are those of the same requests.
func TestBenchTrace(t *testing.T) {
	var calls atomic.Int64
	url, _ := fakeEmbeddings(t, http.StatusOK, func(n int) string {
		if calls.Add(1) == 2 { // the second timed request (no warm-up) fails its check
			return embeddingsAnswer(n-1, 5*n)
		}
		return embeddingsAnswer(n, 5*n)
	})
	texts := []string{"one", "two", "three", "four", "five", "six", "seven"}
	c := benchTestConfig(url)
	c.apiKey, c.concurrency, c.trace = "k", 1, filepath.Join(t.TempDir(), "trace.csv")
	rep, err := benchHTTP(c, texts)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(c.trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{ // request, inputs, tokens; the times are checked apart
		{"0", "3", "15"}, {"1", "3", "0"}, {"2", "1", "5"}, {"3", "3", "15"}, {"4", "3", "15"}, {"5", "1", "5"},
	}
	if len(rows) != len(want)+1 || strings.Join(rows[0], ",") != "request,inputs,tokens,start_ms,latency_ms,error" {
		t.Fatalf("trace has %d rows, header %q; want %d and the column names", len(rows), rows[0], len(want)+1)
	}
	var lastStart, sumMs float64
	for i, row := range rows[1:] {
		if !slices.Equal(row[:3], want[i]) {
			t.Errorf("row %d = %q, want %q", i+1, row[:3], want[i])
		}
		start, err1 := strconv.ParseFloat(row[3], 64)
		ms, err2 := strconv.ParseFloat(row[4], 64)
		if err1 != nil || err2 != nil || start < lastStart || ms <= 0 {
			t.Errorf("row %d: start_ms %q, latency_ms %q (previous start %.3f)", i+1, row[3], row[4], lastStart)
		}
		lastStart = start
		if (row[5] != "") != (i == 1) || (i == 1 && !strings.Contains(row[5], "2 embeddings for 3 inputs")) {
			t.Errorf("row %d: error %q", i+1, row[5])
		}
		if i != 1 {
			sumMs += ms
		}
	}
	if rep.Requests != 6 || rep.Errors != 1 || rep.Tokens != 55 || rep.MaxMs > sumMs {
		t.Errorf("report %+v does not match the trace (latencies sum to %.3f ms)", rep, sumMs)
	}
}

// Connections: a server that closes after every answer or drops a request is reconnected to, https
// works, and a URL that is not http(s) is refused up front.
func TestBenchConnections(t *testing.T) {
	good := func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Input []string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, embeddingsAnswer(len(req.Input), 2))
	}
	var calls atomic.Int64
	cases := []struct {
		name        string
		tls         bool
		handler     http.HandlerFunc
		concurrency int
		warmup      int
		errors      int
		inputs      int // batches of 3, 3, 1 twice: 14
		conns       int // connections the server saw: opened before the clock, again only after a close
	}{
		{"keep-alive", false, good, 1, 0, 0, 14, 1},
		{"keep-alive, warm-up on the clients' connections", false, good, 2, 3, 0, 14, 2},
		{"closes after each answer", false, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			good(w, r)
		}, 1, 0, 0, 14, 6},
		{"drops the third request", false, func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 3 {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			}
			good(w, r)
		}, 1, 0, 1, 13, 2},
		{"https", true, good, 1, 0, 0, 14, 1},
	}
	texts := []string{"one", "two", "three", "four", "five", "six", "seven"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(tc.handler)
			var conns atomic.Int64
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			if tc.tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			t.Cleanup(srv.Close)
			c := benchTestConfig(srv.URL)
			c.concurrency, c.warmup = tc.concurrency, tc.warmup
			if tc.tls {
				c.tlsConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig
			}
			rep, err := benchHTTP(c, texts)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Requests != 6 || rep.Errors != tc.errors || rep.Inputs != tc.inputs {
				t.Errorf("requests %d, errors %d (first %q), inputs %d", rep.Requests, rep.Errors, rep.FirstError, rep.Inputs)
			}
			if got := conns.Load(); got != int64(tc.conns) {
				t.Errorf("%d connections, want %d", got, tc.conns)
			}
		})
	}
	for _, bad := range []string{"ftp://127.0.0.1:1", "http://"} {
		if _, err := benchHTTP(benchTestConfig(bad), texts); err == nil {
			t.Errorf("--url %q accepted", bad)
		}
	}
}

// gcSettings reads the collector's target percentage (-1: off) and memory limit.
func gcSettings() (percent int64, limit uint64) {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64()), s[1].Value.Uint64()
}

// The client's collector is off from the warm-up on (the warm-up absorbs what the collection
// pauseGC runs leaves behind; every request sees -1), and as before afterwards.
func TestBenchPausesGC(t *testing.T) {
	percent, limit := gcSettings()
	var mu sync.Mutex
	var seen []int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Input []string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p, _ := gcSettings() // the handler runs in the client's process: the same collector
		mu.Lock()
		seen = append(seen, p)
		mu.Unlock()
		io.WriteString(w, embeddingsAnswer(len(req.Input), 2))
	}))
	t.Cleanup(srv.Close)
	c := benchTestConfig(srv.URL)
	c.warmup = 2
	if _, err := benchHTTP(c, []string{"one", "two", "three", "four", "five", "six", "seven"}); err != nil {
		t.Fatal(err)
	}
	want := []int64{-1, -1, -1, -1, -1, -1, -1, -1} // 2 warm-up requests, then 2 rounds of 3
	if !slices.Equal(seen, want) {
		t.Errorf("GC percent per request %v, want %v", seen, want)
	}
	if p, l := gcSettings(); p != percent || l != limit {
		t.Errorf("after the run: GC percent %d, limit %d; want %d, %d", p, l, percent, limit)
	}
}

// --settle defaults to a second, accepts zero and refuses a negative pause.
func TestBenchSettleFlag(t *testing.T) {
	cases := []struct {
		args    []string
		want    time.Duration
		wantErr string
	}{
		{args: nil, want: time.Second},
		{args: []string{"--settle", "0"}, want: 0},
		{args: []string{"--settle", "250ms"}, want: 250 * time.Millisecond},
		{args: []string{"--settle", "-1s"}, wantErr: "--settle -1s is negative"},
		{args: []string{"--settle", "soon"}, wantErr: "invalid value"},
	}
	for _, tc := range cases {
		c, err := parseBenchFlags(append([]string{"--model", "m"}, tc.args...))
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.wantErr)
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.wantErr == "" && c.settle != tc.want:
			t.Errorf("%q: settle %v, want %v", tc.args, c.settle, tc.want)
		}
	}
}
