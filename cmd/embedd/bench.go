package main

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/tls"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
)

func init() {
	register("bench", "load-test an OpenAI-compatible embeddings server over HTTP", runBench)
}

// benchConfig is `embedd bench`'s flags.
type benchConfig struct {
	url, model, corpus, apiKey string
	trace                      string // CSV file of every timed request, "" for none
	batch, concurrency, words  int
	rounds, warmup             int
	timeout, settle            time.Duration
	jsonOut                    bool
	tlsConfig                  *tls.Config // https settings (tests trust their own server); nil: the system's
}

// benchReport is what one run measured.
type benchReport struct {
	URL          string  `json:"url"`
	Model        string  `json:"model"`
	Started      string  `json:"started"` // when the timed run began (RFC 3339, UTC): --trace's start_ms counts from here
	Batch        int     `json:"batch"`
	Concurrency  int     `json:"concurrency"`
	Requests     int     `json:"requests"`
	Inputs       int     `json:"inputs"`
	Tokens       int64   `json:"tokens"`
	Errors       int     `json:"errors"`
	Seconds      float64 `json:"seconds"`
	RequestsPerS float64 `json:"requests_per_second"`
	InputsPerS   float64 `json:"inputs_per_second"`
	TokensPerS   float64 `json:"tokens_per_second"`
	P50Ms        float64 `json:"p50_ms"`
	P90Ms        float64 `json:"p90_ms"`
	P99Ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	FirstError   string  `json:"first_error,omitempty"`
}

func parseBenchFlags(args []string) (*benchConfig, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	c := &benchConfig{}
	fs.StringVar(&c.url, "url", "http://127.0.0.1:7860", "server base URL (with or without /v1)")
	fs.StringVar(&c.model, "model", "", "model id to request (required)")
	fs.IntVar(&c.batch, "batch", 32, "inputs per request")
	fs.IntVar(&c.concurrency, "concurrency", 2, "concurrent clients")
	fs.StringVar(&c.corpus, "corpus", "", "texts: a JSON array of strings or one text per line (default: the license corpus of /work/shared/bench/corpus.py)")
	fs.IntVar(&c.words, "words", 0, "cut each text to its first N words (8 = the short-query workload)")
	fs.IntVar(&c.rounds, "rounds", 1, "passes over the corpus")
	fs.IntVar(&c.warmup, "warmup", 2, "untimed requests first")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "per-request timeout")
	fs.DurationVar(&c.settle, "settle", time.Second, "pause after start-up, before connecting (a client just started slows a server on its machine)")
	fs.StringVar(&c.apiKey, "api-key", "", "bearer key (default $EMBEDD_API_KEY, else $OPENAI_API_KEY)")
	fs.BoolVar(&c.jsonOut, "json", false, "print the report as JSON")
	fs.StringVar(&c.trace, "trace", "", "write every timed request to this CSV file (request, inputs, tokens, start_ms, latency_ms, error), to see which were slow")
	if err := fs.Parse(args); err != nil {
		return nil, usagef("bench: %v", err)
	}
	switch {
	case fs.NArg() > 0:
		return nil, usagef("bench: unexpected arguments %q", fs.Args())
	case c.model == "":
		return nil, usagef("bench: --model is required")
	case c.batch < 1 || c.batch > 1<<16:
		return nil, usagef("bench: --batch %d is outside 1..65536", c.batch)
	case c.concurrency < 1 || c.concurrency > 4096:
		return nil, usagef("bench: --concurrency %d is outside 1..4096", c.concurrency)
	case c.words < 0, c.rounds < 1, c.warmup < 0, c.timeout <= 0:
		return nil, usagef("bench: --words, --rounds, --warmup and --timeout must be positive")
	case c.settle < 0:
		return nil, usagef("bench: --settle %v is negative", c.settle)
	}
	if c.apiKey == "" {
		c.apiKey = os.Getenv("EMBEDD_API_KEY")
	}
	if c.apiKey == "" {
		c.apiKey = os.Getenv("OPENAI_API_KEY")
	}
	return c, nil
}

// embeddingsURL turns a base URL into the embeddings endpoint.
func embeddingsURL(base string) string {
	base = strings.TrimRight(base, "/")
	if strings.HasSuffix(base, "/v1") {
		return base + "/embeddings"
	}
	return base + "/v1/embeddings"
}

func runBench(args []string) error {
	c, err := parseBenchFlags(args)
	if err != nil {
		return err
	}
	var texts []string
	if c.corpus != "" {
		texts, err = readTextsFile(c.corpus)
		if err == nil && c.words > 0 {
			texts = firstWords(texts, c.words)
		}
	} else {
		texts, err = licenseCorpus(licenseDir, c.words)
	}
	if err != nil {
		return err
	}
	rep, err := benchHTTP(c, texts)
	if err != nil {
		return err
	}
	if c.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Printf("%s model=%s batch=%d concurrency=%d\n", rep.URL, rep.Model, rep.Batch, rep.Concurrency)
	fmt.Printf("  %d requests, %d inputs, %d tokens in %.2fs (%d errors)\n", rep.Requests, rep.Inputs, rep.Tokens, rep.Seconds, rep.Errors)
	fmt.Printf("  %.1f requests/s  %.1f inputs/s  %.0f tokens/s\n", rep.RequestsPerS, rep.InputsPerS, rep.TokensPerS)
	fmt.Printf("  latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", rep.P50Ms, rep.P90Ms, rep.P99Ms, rep.MaxMs)
	if rep.FirstError != "" {
		fmt.Printf("  first error: %s\n", rep.FirstError)
	}
	if rep.Errors > 0 {
		return fmt.Errorf("%d of %d requests failed", rep.Errors, rep.Requests)
	}
	return nil
}

// benchClient sends embeddings requests. Each concurrent client owns one keep-alive connection
// and speaks HTTP/1.1 on it with net/http's own codec (Request.Write, ReadResponse): the
// Transport's per-connection goroutines cost every request two cross-thread hand-offs (~60 us at
// p50 and ~150 us at p99 on a 2-vCPU VM), which the latency figures would charge to the server.
// Connections go straight to the server (no HTTP proxy); https is supported.
type benchClient struct {
	target     *url.URL // the embeddings endpoint
	addr       string   // host:port to dial
	key, model string
	timeout    time.Duration
	tls        *tls.Config
	// post stands for every request when their answers are parsed (ReadResponse reads only its
	// method); the requests themselves go out as bytes encoded before the clock starts.
	post *http.Request
}

func newBenchClient(c *benchConfig) (*benchClient, error) {
	u, err := url.Parse(embeddingsURL(c.url))
	if err != nil {
		return nil, fmt.Errorf("bench: --url: %w", err)
	}
	port := u.Port()
	switch {
	case u.Scheme == "http" && port == "":
		port = "80"
	case u.Scheme == "https" && port == "":
		port = "443"
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, usagef("bench: --url %q: the scheme must be http or https", c.url)
	}
	if u.Hostname() == "" {
		return nil, usagef("bench: --url %q has no host", c.url)
	}
	tc := &tls.Config{ServerName: u.Hostname()}
	if c.tlsConfig != nil {
		tc = c.tlsConfig.Clone()
		tc.ServerName = u.Hostname()
	}
	return &benchClient{target: u, addr: net.JoinHostPort(u.Hostname(), port), key: c.apiKey, model: c.model,
		timeout: c.timeout, tls: tc, post: &http.Request{Method: http.MethodPost, URL: u}}, nil
}

// benchConn is one client's connection (nil until first used, and again after an error) and its
// buffers, reused across requests.
type benchConn struct {
	conn net.Conn
	br   *bufio.Reader
	buf  bytes.Buffer
	// answered is when the last answer was read in full: a request's latency ends there, before
	// the client checks the answer.
	answered time.Time
}

func (bc *benchClient) connect(c *benchConn) error {
	d := net.Dialer{Timeout: bc.timeout}
	var conn net.Conn
	var err error
	if bc.target.Scheme == "https" {
		conn, err = tls.DialWithDialer(&d, "tcp", bc.addr, bc.tls)
	} else {
		conn, err = d.Dial("tcp", bc.addr)
	}
	if err != nil {
		return err
	}
	c.conn, c.br = conn, bufio.NewReaderSize(conn, 64<<10)
	return nil
}

func (c *benchConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// embed sends one encoded request of n inputs (bc.request) on c and returns the prompt tokens the
// server reports. The answer is checked after c.answered is taken, so the check is not charged to
// the server, and without decoding it, so the client takes little CPU from the server beside it
// (json.Unmarshal spent ~45 us per short answer; gjson validates and picks the fields in ~9 us).
func (bc *benchClient) embed(c *benchConn, wire []byte, n int) (int64, error) {
	if c.conn == nil {
		if err := bc.connect(c); err != nil {
			return 0, err
		}
	}
	tokens, keep, err := bc.roundTrip(c, wire, n)
	if !keep {
		c.close()
	}
	return tokens, err
}

// roundTrip is embed on an open connection; keep says whether the connection is still usable.
func (bc *benchClient) roundTrip(c *benchConn, wire []byte, n int) (tokens int64, keep bool, err error) {
	if err := c.conn.SetDeadline(time.Now().Add(bc.timeout)); err != nil {
		return 0, false, err
	}
	if _, err := c.conn.Write(wire); err != nil {
		return 0, false, err
	}
	resp, err := http.ReadResponse(c.br, bc.post)
	if err != nil {
		return 0, false, err
	}
	c.buf.Reset()
	_, err = c.buf.ReadFrom(io.LimitReader(resp.Body, 256<<20))
	resp.Body.Close()
	c.answered = time.Now()
	if err != nil {
		return 0, false, err
	}
	keep = !resp.Close
	data := c.buf.Bytes()
	if resp.StatusCode != http.StatusOK {
		return 0, keep, fmt.Errorf("status %d: %.200s", resp.StatusCode, data)
	}
	if !gjson.ValidBytes(data) {
		return 0, keep, fmt.Errorf("the answer is not valid JSON: %.200s", data)
	}
	// Read in place: GetBytes copies what it returns, and a query over every vector
	// ("data.#.embedding") builds their array anew, ~100 KB an answer of 32 vectors; with the
	// collector paused each copy was fresh memory faulted in page by page, CPU taken from the
	// server beside it. text does not outlive this call, and c.buf is not written while it is in use.
	text := unsafe.String(unsafe.SliceData(data), len(data))
	got := 0
	gjson.Get(text, "data").ForEach(func(_, item gjson.Result) bool {
		if item.Get("embedding").Exists() {
			got++
		}
		return true
	})
	if got != n {
		return 0, keep, fmt.Errorf("%d embeddings for %d inputs", got, n)
	}
	return gjson.Get(text, "usage.prompt_tokens").Int(), keep, nil
}

// request encodes one embeddings request for texts, as sent on the wire. Sending prepared bytes
// allocates nothing per request: the client runs with its collector paused (pauseGC), so every
// allocation would be fresh memory, faulted in while the server works beside it.
func (bc *benchClient) request(texts []string) ([]byte, error) {
	body, err := json.Marshal(map[string]any{"model": bc.model, "input": texts})
	if err != nil {
		return nil, err
	}
	req := &http.Request{Method: http.MethodPost, URL: bc.target, Host: bc.target.Host,
		Header: http.Header{"Content-Type": {"application/json"}}, ContentLength: int64(len(body)),
		Body: io.NopCloser(bytes.NewReader(body))}
	if bc.key != "" {
		req.Header.Set("Authorization", "Bearer "+bc.key)
	}
	var wire bytes.Buffer
	if err := req.Write(&wire); err != nil {
		return nil, err
	}
	return wire.Bytes(), nil
}

// pauseGC collects the heap and turns this process's garbage collector off until the returned
// function restores it; a memory limit 1 GiB above the live heap still bounds a very long run. The
// load generator shares the machine with the server it measures, and a collection's mark phase
// takes one of its CPUs for a millisecond or more: on the 2-vCPU test VM the client collected
// twice in each short-query run, each time beside the server's two compute threads.
func pauseGC() (restore func()) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	limit := debug.SetMemoryLimit(int64(ms.HeapAlloc) + 1<<30)
	percent := debug.SetGCPercent(-1)
	return func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	}
}

// benchRecord is one timed request: its index in the run, what it carried and how long it took
// (start is from the start of the run). err is "" for a request that succeeded.
type benchRecord struct {
	request        int64
	inputs         int
	tokens         int64
	start, latency time.Duration
	err            string
}

// writeBenchTrace writes records to path as CSV, in the order the requests were sent. A request's
// index tells which texts it carried: request i holds texts [i*batch, (i+1)*batch) of the corpus
// (modulo its length when --rounds repeats it).
func writeBenchTrace(path string, records []benchRecord) error {
	sorted := slices.Clone(records)
	slices.SortFunc(sorted, func(a, b benchRecord) int { return cmp.Compare(a.request, b.request) })
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write([]string{"request", "inputs", "tokens", "start_ms", "latency_ms", "error"})
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Nanoseconds())/1e6, 'f', 3, 64) }
	for _, r := range sorted {
		w.Write([]string{strconv.FormatInt(r.request, 10), strconv.Itoa(r.inputs), strconv.FormatInt(r.tokens, 10),
			ms(r.start), ms(r.latency), r.err})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("bench: --trace: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("bench: --trace: %w", err)
	}
	return nil
}

// benchHTTP sends the corpus in requests of c.batch texts from c.concurrency clients.
func benchHTTP(c *benchConfig, texts []string) (*benchReport, error) {
	if len(texts) == 0 {
		return nil, errors.New("bench: no texts")
	}
	bc, err := newBenchClient(c)
	if err != nil {
		return nil, err
	}
	// Requests are encoded before the clock starts: latency is the server's answer time.
	type batch struct {
		wire []byte
		n    int
	}
	var batches []batch
	for i := 0; i < len(texts); i += c.batch {
		part := texts[i:min(i+c.batch, len(texts))]
		wire, err := bc.request(part)
		if err != nil {
			return nil, err
		}
		batches = append(batches, batch{wire, len(part)})
	}
	// For about half a second after this process starts, a server on the same machine answers
	// slowly: on the 2-vCPU test VM its first ~250 short queries took twice their usual time and
	// the bulk run lost 13%, and a pause here, after start-up and before connecting, removed both
	// (docs/performance.md).
	time.Sleep(c.settle)
	// Every client opens its connection and sends its share of the warm-up requests on it before
	// the clock starts, so no timed request pays for a TCP (or TLS) handshake.
	conns := make([]benchConn, c.concurrency)
	defer func() {
		for i := range conns {
			conns[i].close()
		}
	}()
	for i := range conns {
		if err := bc.connect(&conns[i]); err != nil {
			return nil, fmt.Errorf("connecting to %s: %w", bc.target, err)
		}
	}
	// The collector is paused before the warm-up, not after it: the collection pauseGC runs and
	// what the runtime does in its wake slowed the first two timed requests by 1-3 ms in every
	// short-query run on the test VM: two of the five requests that a p99 over 510 may leave above it.
	defer pauseGC()()
	for i := 0; i < c.warmup; i++ {
		b := batches[i%len(batches)]
		if _, err := bc.embed(&conns[i%len(conns)], b.wire, b.n); err != nil {
			return nil, fmt.Errorf("warm-up request to %s: %w", bc.target, err)
		}
	}

	// Clients take the next request by index: a channel fed by another goroutine would cost every
	// request a goroutine hand-off in this process, whose scheduler then competes with the server
	// for the CPUs of a small machine.
	var next atomic.Int64
	total := int64(len(batches) * c.rounds)
	var mu sync.Mutex
	rep := &benchReport{URL: bc.target.String(), Model: c.model, Batch: c.batch, Concurrency: c.concurrency}
	records := make([]benchRecord, 0, total)
	var wg sync.WaitGroup
	start := time.Now()
	rep.Started = start.UTC().Format(time.RFC3339Nano)
	for k := range conns {
		wg.Add(1)
		go func(conn *benchConn) {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				b := batches[i%int64(len(batches))]
				t0 := time.Now()
				tokens, err := bc.embed(conn, b.wire, b.n)
				end := conn.answered
				if end.Before(t0) { // failed before an answer was read: the time until the failure
					end = time.Now()
				}
				r := benchRecord{request: i, inputs: b.n, tokens: tokens, start: t0.Sub(start), latency: end.Sub(t0)}
				if err != nil {
					r.err = err.Error()
				}
				mu.Lock()
				records = append(records, r)
				mu.Unlock()
			}
		}(&conns[k])
	}
	wg.Wait()
	rep.Seconds = time.Since(start).Seconds()
	latencies := make([]float64, 0, len(records))
	for _, r := range records {
		rep.Requests++
		if r.err != "" {
			rep.Errors++
			if rep.FirstError == "" {
				rep.FirstError = r.err
			}
			continue
		}
		rep.Inputs += r.inputs
		rep.Tokens += r.tokens
		latencies = append(latencies, float64(r.latency.Nanoseconds())/1e6)
	}
	ok := float64(rep.Requests - rep.Errors)
	rep.RequestsPerS = ok / rep.Seconds
	rep.InputsPerS = float64(rep.Inputs) / rep.Seconds
	rep.TokensPerS = float64(rep.Tokens) / rep.Seconds
	sort.Float64s(latencies)
	if len(latencies) > 0 {
		rep.P50Ms, rep.P90Ms = percentile(latencies, 50), percentile(latencies, 90)
		rep.P99Ms, rep.MaxMs = percentile(latencies, 99), latencies[len(latencies)-1]
	}
	if c.trace != "" {
		if err := writeBenchTrace(c.trace, records); err != nil {
			return nil, err
		}
	}
	return rep, nil
}
