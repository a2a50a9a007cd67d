package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/embedd-dev/embedd/bindings"
	"github.com/embedd-dev/embedd/gguf"
	"github.com/embedd-dev/embedd/internal/reference"
	"github.com/embedd-dev/embedd/model"
)

func init() {
	register("bench-engine", "benchmark the inference engine in process (throughput, latency, accuracy, memory)", runBenchEngine)
}

// Formulas of the derived figures, stated in the table and the JSON so readers can check them.
const (
	intOpsFormula   = "int ops = 2 x MACs of the linear layers = 2 * layers * (4*E*E + 2*E*F) per token (Q,K,V,output projections and both FFN matrices)"
	floatOpsFormula = "float ops = attention only = layers * 4 * n*n * E per sequence of n tokens (QK^T and PV, 2 ops per MAC; softmax, norms, GELU not counted)"
)

// benchEngineConfig is everything one bench-engine run needs; flags fill it in.
type benchEngineConfig struct {
	ModelPath   string
	Corpus      []string // bulk corpus, in order
	CorpusName  string
	Queries     []string // short-query corpus for latency
	QueriesName string
	Threads     []int
	Budgets     []int
	Runs        int
	Loads       int      // model loads timed for the load-time median
	SIMD        []string // levels to run bulk and latency on
	Sorted      bool     // add a length-sorted row per budget
	AccuracyN   int      // corpus sentences compared with the float64 reference; 0 skips accuracy
	// ReferenceOut, when set, receives the accuracy sentences and their float64 reference embeddings
	// (JSON), so other paths (the HTTP server) can be checked against the same vectors.
	ReferenceOut string
}

// referenceFile is what --reference-out writes.
type referenceFile struct {
	Model   string      `json:"model"`
	Texts   []string    `json:"texts"`
	Vectors [][]float64 `json:"vectors"` // L2-normalised
}

// engineReport is the JSON document bench-engine writes.
type engineReport struct {
	Date     string            `json:"date"`
	Commit   string            `json:"commit,omitempty"`
	Machine  machineInfo       `json:"machine"`
	Model    modelReport       `json:"model"`
	Corpus   corpusReport      `json:"corpus"`
	Formulas map[string]string `json:"formulas"`
	Load     loadReport        `json:"load"`
	Bulk     []bulkRow         `json:"bulk"`
	Latency  []latencyRow      `json:"latency"`
	Memory   memoryReport      `json:"memory"`
	Accuracy []accuracyRow     `json:"accuracy"`
	Seconds  float64           `json:"seconds"` // wall time of the whole benchmark
}

type machineInfo struct {
	CPUModel     string     `json:"cpu_model"`
	CPUs         int        `json:"cpus"`
	OS           string     `json:"os"`
	Arch         string     `json:"arch"`
	GoVersion    string     `json:"go_version"`
	DetectedSIMD string     `json:"detected_simd"`
	ActiveSIMD   string     `json:"active_simd"` // at start (EMBEDD_SIMD or detected)
	SIMDLevels   []string   `json:"simd_levels"`
	LoadAvgStart [3]float64 `json:"loadavg_start"`
	LoadAvgEnd   [3]float64 `json:"loadavg_end"`
}

type modelReport struct {
	Path         string `json:"path"`
	Name         string `json:"name"`
	Quantization string `json:"quantization"`
	Layers       int    `json:"layers"`
	Embd         int    `json:"embd"`
	FF           int    `json:"ff"`
	Heads        int    `json:"heads"`
	Pooling      string `json:"pooling"`
	FileBytes    int64  `json:"file_bytes"`
	MemoryBytes  int64  `json:"memory_bytes"` // what the core holds for the weights
}

type corpusReport struct {
	Source        string `json:"source"`
	Sentences     int    `json:"sentences"`
	Tokens        int    `json:"tokens"` // including [CLS] and [SEP]
	MaxTokens     int    `json:"max_tokens"`
	QueriesSource string `json:"queries_source"`
	Queries       int    `json:"queries"`
	QueryTokens   int    `json:"query_tokens"`
}

type loadReport struct {
	Runs     int     `json:"runs"`
	MedianMS float64 `json:"median_ms"`
	MinMS    float64 `json:"min_ms"`
	MaxMS    float64 `json:"max_ms"`
}

type bulkRow struct {
	SIMD            string  `json:"simd"`
	Threads         int     `json:"threads"`
	Budget          int     `json:"budget"`
	Order           string  `json:"order"` // "corpus" or "sorted"
	Batches         int     `json:"batches"`
	Sentences       int     `json:"sentences"`
	Tokens          int     `json:"tokens"`
	Runs            int     `json:"runs"`
	MedianSeconds   float64 `json:"median_seconds"`
	MinSeconds      float64 `json:"min_seconds"`
	TokensPerSec    float64 `json:"tokens_per_sec"`
	SentencesPerSec float64 `json:"sentences_per_sec"`
	IntOpsPerSec    float64 `json:"int_ops_per_sec"`
	FloatOpsPerSec  float64 `json:"float_ops_per_sec"`
}

type latencyRow struct {
	SIMD    string  `json:"simd"`
	Threads int     `json:"threads"`
	Queries int     `json:"queries"`
	Tokens  int     `json:"tokens"`
	P50MS   float64 `json:"p50_ms"`
	P90MS   float64 `json:"p90_ms"`
	P99MS   float64 `json:"p99_ms"`
	MeanMS  float64 `json:"mean_ms"`
	MaxMS   float64 `json:"max_ms"`
}

type memoryReport struct {
	VmRSSBytes int64 `json:"vmrss_bytes"`
	VmHWMBytes int64 `json:"vmhwm_bytes"`
}

type accuracyRow struct {
	SIMD       string  `json:"simd"`
	WeightMode string  `json:"weight_mode"` // "auto" (int8 rows) or "blocks" (GGUF blocks)
	Sentences  int     `json:"sentences"`
	MeanCosine float64 `json:"mean_cosine"`
	MinCosine  float64 `json:"min_cosine"`
	// NonFinite counts embeddings with NaN/Inf values; their cosine is counted as -1.
	NonFinite int `json:"non_finite"`
}

func runBenchEngine(args []string) error {
	fs := flag.NewFlagSet("bench-engine", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("model", "", "path of the GGUF model (required)")
	corpusFile := fs.String("corpus", "", "bulk corpus: a JSON array of strings or one text per line (default: the benchmark corpus rule over /usr/share/common-licenses)")
	queriesFile := fs.String("queries", "", "short-query corpus, same formats (default: the corpus cut to its first 8 words)")
	threads := fs.String("threads", "1,2", "comma-separated thread counts")
	budgets := fs.String("budgets", "512,2048,8192", "comma-separated token budgets of one packed batch")
	runs := fs.Int("runs", 3, "timed passes over the corpus per row (the median is reported)")
	loads := fs.Int("loads", 5, "model loads timed for the load-time median")
	simd := fs.String("simd", "", "comma-separated SIMD levels for bulk and latency, or \"all\" (default: the active level)")
	sorted := fs.Bool("sorted", true, "also time length-sorted batches for each budget")
	accuracyN := fs.Int("accuracy", 32, "corpus sentences compared with the float64 reference (0 skips accuracy)")
	jsonFile := fs.String("json", "", "write the full report as JSON to this file")
	referenceOut := fs.String("reference-out", "", "write the accuracy sentences and their float64 reference embeddings as JSON to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printFlagHelp(os.Stderr, fs, "usage: embedd bench-engine --model PATH [--corpus FILE] [--threads 1,2] [--budgets 512,2048,8192] [--runs N] [--simd LEVELS] [--json FILE]")
			return nil
		}
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	cfg := benchEngineConfig{ModelPath: *path, Runs: *runs, Loads: *loads, Sorted: *sorted, AccuracyN: *accuracyN, ReferenceOut: *referenceOut}
	if cfg.ModelPath == "" {
		return usagef("--model is required")
	}
	var err error
	if cfg.Threads, err = parsePositiveList("--threads", *threads, 4096); err != nil {
		return usagef("%v", err)
	}
	if cfg.Budgets, err = parsePositiveList("--budgets", *budgets, 1<<24); err != nil {
		return usagef("%v", err)
	}
	if cfg.Runs < 1 || cfg.Runs > 1000 {
		return usagef("--runs must be in 1..1000")
	}
	if cfg.Loads < 1 || cfg.Loads > 1000 {
		return usagef("--loads must be in 1..1000")
	}
	if cfg.AccuracyN < 0 {
		return usagef("--accuracy must be >= 0")
	}
	if cfg.ReferenceOut != "" && cfg.AccuracyN == 0 {
		return usagef("--reference-out needs --accuracy > 0")
	}
	if cfg.SIMD, err = parseSIMDList(*simd); err != nil {
		return usagef("%v", err)
	}
	if *corpusFile != "" {
		if cfg.Corpus, err = readTextsFile(*corpusFile); err != nil {
			return err
		}
		cfg.CorpusName = *corpusFile
	} else {
		if cfg.Corpus, err = licenseCorpus(licenseDir, 0); err != nil {
			return err
		}
		cfg.CorpusName = "corpus.py rule over " + licenseDir
	}
	if *queriesFile != "" {
		if cfg.Queries, err = readTextsFile(*queriesFile); err != nil {
			return err
		}
		cfg.QueriesName = *queriesFile
	} else {
		cfg.Queries = firstWords(cfg.Corpus, 8)
		cfg.QueriesName = "corpus cut to its first 8 words"
	}
	rep, err := benchEngine(cfg, os.Stderr)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(os.Stdout)
	printEngineReport(w, rep)
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	if *jsonFile != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("encode report: %w", err)
		}
		if err := os.WriteFile(*jsonFile, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

// parsePositiveList parses "1,2,4" into distinct integers in 1..limit, in the given order.
func parsePositiveList(name, s string, limit int) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		v, err := strconv.Atoi(part)
		if err != nil || v < 1 || v > limit {
			return nil, fmt.Errorf("%s: %q is not an integer in 1..%d", name, part, limit)
		}
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty list", name)
	}
	return out, nil
}

// parseSIMDList checks the named levels against what this CPU can run. "" means the active level,
// "all" every runnable level.
func parseSIMDList(s string) ([]string, error) {
	runnable := bindings.SIMDLevels()
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return []string{bindings.ActiveSIMD()}, nil
	case "all":
		return runnable, nil
	}
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		ok := false
		for _, l := range runnable {
			ok = ok || l == part
		}
		if !ok {
			return nil, fmt.Errorf("--simd: this CPU cannot run %q (it can run %s)", part, strings.Join(runnable, ", "))
		}
		out = append(out, part)
	}
	if len(out) == 0 {
		return nil, errors.New("--simd: empty list")
	}
	return out, nil
}

// maxCorpusBytes bounds a corpus file read into memory.
const maxCorpusBytes = 256 << 20

// readTextsFile reads a JSON array of strings, or else one text per line (empty lines skipped).
func readTextsFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read corpus: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCorpusBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read corpus %s: %w", path, err)
	}
	if len(data) > maxCorpusBytes {
		return nil, fmt.Errorf("read corpus %s: larger than %d bytes", path, maxCorpusBytes)
	}
	var texts []string
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &texts); err != nil {
			return nil, fmt.Errorf("read corpus %s: not a JSON array of strings: %w", path, err)
		}
	} else {
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimRight(line, "\r"); strings.TrimSpace(line) != "" {
				texts = append(texts, line)
			}
		}
	}
	for i, t := range texts {
		if strings.TrimSpace(t) == "" {
			return nil, fmt.Errorf("read corpus %s: text %d is empty", path, i)
		}
	}
	if len(texts) == 0 {
		return nil, fmt.Errorf("read corpus %s: no texts", path)
	}
	return texts, nil
}

// licenseDir and licenseFiles are the sources of the benchmark corpus (see
// /work/shared/bench/corpus.py, whose rule licenseCorpus reimplements so bench-engine runs alone).
const licenseDir = "/usr/share/common-licenses"

var licenseFiles = []string{"GPL-3", "Apache-2.0", "LGPL-3", "MPL-2.0", "GFDL-1.3"}

// licenseCorpus builds the benchmark corpus: the license texts concatenated with newlines, split
// after '.', ';' or ':' followed by whitespace, whitespace runs collapsed to one space, stripped,
// pieces of 20 to 400 characters kept; words > 0 cuts each to its first words words.
func licenseCorpus(dir string, words int) ([]string, error) {
	parts := make([]string, 0, len(licenseFiles))
	for _, name := range licenseFiles {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("benchmark corpus: %w", err)
		}
		parts = append(parts, string(data))
	}
	out := splitSentences(strings.Join(parts, "\n"))
	if len(out) == 0 {
		return nil, fmt.Errorf("benchmark corpus: no sentences in %s", dir)
	}
	if words > 0 {
		out = firstWords(out, words)
	}
	return out, nil
}

// splitSentences applies the corpus rule to txt.
func splitSentences(txt string) []string {
	var out []string
	keep := func(piece string) {
		s := strings.Join(strings.Fields(piece), " ")
		if n := utf8.RuneCountInString(s); n >= 20 && n <= 400 {
			out = append(out, s)
		}
	}
	start := 0
	var prev rune
	for i := 0; i < len(txt); {
		r, size := utf8.DecodeRuneInString(txt[i:])
		if unicode.IsSpace(r) && (prev == '.' || prev == ';' || prev == ':') {
			end := i
			for i < len(txt) {
				r2, s2 := utf8.DecodeRuneInString(txt[i:])
				if !unicode.IsSpace(r2) {
					break
				}
				i += s2
			}
			keep(txt[start:end])
			start = i
			prev = ' '
			continue
		}
		prev = r
		i += size
	}
	keep(txt[start:])
	return out
}

// firstWords cuts each text to its first n whitespace-separated words.
func firstWords(texts []string, n int) []string {
	out := make([]string, len(texts))
	for i, t := range texts {
		f := strings.Fields(t)
		if len(f) > n {
			f = f[:n]
		}
		out[i] = strings.Join(f, " ")
	}
	return out
}

// packBatches groups sequences, in the order of idx, into consecutive batches whose token count
// stays within budget; a sequence longer than the budget runs alone.
func packBatches(inputs []model.Input, idx []int, budget int) [][]model.Input {
	var batches [][]model.Input
	var cur []model.Input
	tokens := 0
	for _, i := range idx {
		n := len(inputs[i].IDs)
		if len(cur) > 0 && tokens+n > budget {
			batches = append(batches, cur)
			cur, tokens = nil, 0
		}
		cur = append(cur, inputs[i])
		tokens += n
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches
}

// shapes are the model dimensions the op counts need, read from the file's metadata.
type shapes struct {
	Layers, Embd, FF, Heads int
}

// intOpsPerToken is 2 x the MACs of one token through the linear layers.
func (s shapes) intOpsPerToken() float64 {
	e, f := float64(s.Embd), float64(s.FF)
	return 2 * float64(s.Layers) * (4*e*e + 2*e*f)
}

// attentionOps is the float ops of attention over one sequence of n tokens.
func (s shapes) attentionOps(n int) float64 {
	return float64(s.Layers) * 4 * float64(n) * float64(n) * float64(s.Embd)
}

func readShapes(path string) (shapes, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return shapes{}, fmt.Errorf("model shapes: %w", err)
	}
	defer f.Close()
	var s shapes
	for _, k := range []struct {
		key string
		dst *int
	}{
		{"bert.block_count", &s.Layers}, {"bert.embedding_length", &s.Embd},
		{"bert.feed_forward_length", &s.FF}, {"bert.attention.head_count", &s.Heads},
	} {
		v, ok := f.Uint(k.key)
		if !ok || v == 0 || v > 1<<20 {
			return shapes{}, fmt.Errorf("model shapes: %s: metadata %s missing or out of range", path, k.key)
		}
		*k.dst = int(v)
	}
	return s, nil
}

// percentile is the nearest-rank p-th percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// median of values (sorted in place).
func median(values []float64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	sort.Float64s(values)
	n := len(values)
	if n%2 == 1 {
		return values[n/2]
	}
	return (values[n/2-1] + values[n/2]) / 2
}

// benchEngine runs the whole benchmark, logging progress to progress.
func benchEngine(cfg benchEngineConfig, progress io.Writer) (*engineReport, error) {
	began := time.Now()
	if len(cfg.Corpus) == 0 || len(cfg.Queries) == 0 {
		return nil, errors.New("bench-engine: empty corpus")
	}
	if len(cfg.Threads) == 0 || len(cfg.Budgets) == 0 || len(cfg.SIMD) == 0 || cfg.Runs < 1 || cfg.Loads < 1 {
		return nil, errors.New("bench-engine: threads, budgets, SIMD levels, runs and loads must not be empty")
	}
	logf := func(format string, args ...any) { fmt.Fprintf(progress, "bench-engine: "+format+"\n", args...) }
	startSIMD := bindings.ActiveSIMD()
	defer func() {
		if err := bindings.SetSIMD(startSIMD); err != nil {
			logf("restoring SIMD level: %v", err)
		}
	}()
	rep := &engineReport{
		Date:     time.Now().UTC().Format(time.RFC3339),
		Commit:   gitCommit(),
		Machine:  machine(startSIMD),
		Formulas: map[string]string{"int_ops": intOpsFormula, "float_ops": floatOpsFormula},
		Bulk:     []bulkRow{},
		Latency:  []latencyRow{},
		Accuracy: []accuracyRow{},
	}
	shp, err := readShapes(cfg.ModelPath)
	if err != nil {
		return nil, err
	}

	// Load time: each load builds the tokenizer, copies/repacks the weights and starts the pool.
	loadMS := make([]float64, 0, cfg.Loads)
	for i := 0; i < cfg.Loads; i++ {
		t0 := time.Now()
		m, err := model.Load(cfg.ModelPath, model.Options{Kind: model.KindEmbeddings, Threads: cfg.Threads[0]})
		if err != nil {
			return nil, fmt.Errorf("bench-engine: %w", err)
		}
		loadMS = append(loadMS, msSince(t0))
		if i == 0 {
			info := m.Info()
			rep.Model = modelReport{
				Path: cfg.ModelPath, Name: info.Name, Quantization: info.Quantization, Layers: shp.Layers,
				Embd: shp.Embd, FF: shp.FF, Heads: shp.Heads, Pooling: info.Pooling,
				FileBytes: info.FileBytes, MemoryBytes: info.MemoryBytes,
			}
		}
		m.Close()
	}
	sort.Float64s(loadMS)
	rep.Load = loadReport{Runs: len(loadMS), MedianMS: median(loadMS), MinMS: loadMS[0], MaxMS: loadMS[len(loadMS)-1]}
	logf("load: median %.1f ms over %d loads", rep.Load.MedianMS, rep.Load.Runs)

	// The timed runs' pools are made first, so that their threads keep the normal scheduling policy
	// while the rest of the process gets SCHED_BATCH, as in embedd serve.
	pools := make([]*bindings.Pool, len(cfg.Threads))
	var keep []int
	for i, threads := range cfg.Threads {
		p, err := bindings.NewPool(threads)
		if err != nil {
			return nil, fmt.Errorf("bench-engine: %w", err)
		}
		defer p.Close()
		pools[i] = p
		keep = append(keep, p.ThreadIDs()...)
	}
	batchRuntimeThreads(keep)
	for i, threads := range cfg.Threads {
		m, err := model.Load(cfg.ModelPath, model.Options{Kind: model.KindEmbeddings, Pool: pools[i]})
		if err != nil {
			return nil, fmt.Errorf("bench-engine: %w", err)
		}
		err = benchThreads(cfg, rep, m, shp, threads, logf)
		m.Close()
		if err != nil {
			return nil, err
		}
	}
	// Memory after the bulk and latency runs, before the float64 reference inflates the heap.
	rep.Memory, err = readMemory("/proc/self/status")
	if err != nil {
		logf("%v", err)
	}
	if cfg.AccuracyN > 0 {
		if err := benchAccuracy(cfg, rep, logf); err != nil {
			return nil, err
		}
	}
	rep.Machine.LoadAvgEnd = loadAvg()
	rep.Seconds = time.Since(began).Seconds()
	return rep, nil
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Nanoseconds()) / 1e6 }

// tokenize encodes texts with the model's tokenizer (truncating to its maximum).
func tokenize(m *model.Model, texts []string) []model.Input {
	inputs := make([]model.Input, len(texts))
	for i, t := range texts {
		enc := m.Tokenizer().Encode(t)
		inputs[i] = model.Input{IDs: enc.IDs, TypeIDs: enc.TypeIDs}
	}
	return inputs
}

// benchThreads runs the bulk rows and the latency row of one thread count on every SIMD level.
func benchThreads(cfg benchEngineConfig, rep *engineReport, m *model.Model, shp shapes, threads int, logf func(string, ...any)) error {
	inputs := tokenize(m, cfg.Corpus)
	corpusOrder := make([]int, len(inputs))
	tokens := 0
	attnOps := 0.0
	maxLen := 0
	for i, in := range inputs {
		corpusOrder[i] = i
		tokens += len(in.IDs)
		attnOps += shp.attentionOps(len(in.IDs))
		maxLen = max(maxLen, len(in.IDs))
	}
	sortedOrder := append([]int(nil), corpusOrder...)
	sort.SliceStable(sortedOrder, func(a, b int) bool { return len(inputs[sortedOrder[a]].IDs) < len(inputs[sortedOrder[b]].IDs) })
	queryTokens := 0
	for _, q := range cfg.Queries {
		queryTokens += len(m.Tokenizer().Encode(q).IDs)
	}
	rep.Corpus = corpusReport{
		Source: cfg.CorpusName, Sentences: len(inputs), Tokens: tokens, MaxTokens: maxLen,
		QueriesSource: cfg.QueriesName, Queries: len(cfg.Queries), QueryTokens: queryTokens,
	}
	intOps := float64(tokens) * shp.intOpsPerToken()

	orders := []struct {
		name string
		idx  []int
	}{{"corpus", corpusOrder}}
	if cfg.Sorted {
		orders = append(orders, struct {
			name string
			idx  []int
		}{"sorted", sortedOrder})
	}
	for _, level := range cfg.SIMD {
		if err := bindings.SetSIMD(level); err != nil {
			return fmt.Errorf("bench-engine: %w", err)
		}
		for _, budget := range cfg.Budgets {
			for _, order := range orders {
				batches := packBatches(inputs, order.idx, budget)
				// Warm-up: the largest batch once, so scratch buffers have grown before timing.
				largest := 0
				for i, b := range batches {
					if batchTokens(b) > batchTokens(batches[largest]) {
						largest = i
					}
				}
				if _, err := m.Run(batches[largest], true); err != nil {
					return fmt.Errorf("bench-engine: warm-up: %w", err)
				}
				secs := make([]float64, 0, cfg.Runs)
				for r := 0; r < cfg.Runs; r++ {
					t0 := time.Now()
					for _, b := range batches {
						if _, err := m.Run(b, true); err != nil {
							return fmt.Errorf("bench-engine: bulk: %w", err)
						}
					}
					secs = append(secs, time.Since(t0).Seconds())
				}
				sort.Float64s(secs)
				med := median(secs)
				row := bulkRow{
					SIMD: level, Threads: threads, Budget: budget, Order: order.name, Batches: len(batches),
					Sentences: len(inputs), Tokens: tokens, Runs: cfg.Runs, MedianSeconds: med, MinSeconds: secs[0],
				}
				if med > 0 {
					row.TokensPerSec = float64(tokens) / med
					row.SentencesPerSec = float64(len(inputs)) / med
					row.IntOpsPerSec = intOps / med
					row.FloatOpsPerSec = attnOps / med
				}
				rep.Bulk = append(rep.Bulk, row)
				logf("bulk %s threads=%d budget=%d %s: %.0f tokens/s (median of %d, %.3f s)", level, threads, budget, order.name, row.TokensPerSec, cfg.Runs, med)
			}
		}
		lat, err := benchLatency(m, cfg.Queries)
		if err != nil {
			return err
		}
		lat.SIMD, lat.Threads, lat.Tokens = level, threads, queryTokens
		rep.Latency = append(rep.Latency, lat)
		logf("latency %s threads=%d: p50 %.3f ms p99 %.3f ms", level, threads, lat.P50MS, lat.P99MS)
	}
	return nil
}

func batchTokens(b []model.Input) int {
	n := 0
	for _, in := range b {
		n += len(in.IDs)
	}
	return n
}

// latencyWarmup is how many queries run untimed before the latency pass.
const latencyWarmup = 20

// benchLatency embeds the queries one at a time, tokenization included (what a caller waits for).
func benchLatency(m *model.Model, queries []string) (latencyRow, error) {
	for i := 0; i < latencyWarmup; i++ {
		if _, err := m.Embed([]string{queries[i%len(queries)]}, true); err != nil {
			return latencyRow{}, fmt.Errorf("bench-engine: latency warm-up: %w", err)
		}
	}
	ms := make([]float64, 0, len(queries))
	one := make([]string, 1)
	for _, q := range queries {
		one[0] = q
		t0 := time.Now()
		if _, err := m.Embed(one, true); err != nil {
			return latencyRow{}, fmt.Errorf("bench-engine: latency: %w", err)
		}
		ms = append(ms, msSince(t0))
	}
	sort.Float64s(ms)
	sum := 0.0
	for _, v := range ms {
		sum += v
	}
	return latencyRow{
		Queries: len(ms), P50MS: percentile(ms, 50), P90MS: percentile(ms, 90), P99MS: percentile(ms, 99),
		MeanMS: sum / float64(len(ms)), MaxMS: ms[len(ms)-1],
	}, nil
}

// accuracySample picks n sentences spread evenly over the corpus.
func accuracySample(corpus []string, n int) []string {
	if n >= len(corpus) {
		return append([]string(nil), corpus...)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = corpus[i*len(corpus)/n]
	}
	return out
}

// benchAccuracy compares the engine's embeddings on every runnable SIMD level and both weight modes
// with the float64 reference, computed once.
func benchAccuracy(cfg benchEngineConfig, rep *engineReport, logf func(string, ...any)) error {
	texts := accuracySample(cfg.Corpus, cfg.AccuracyN)
	threads := slicesMax(cfg.Threads)
	auto, err := model.Load(cfg.ModelPath, model.Options{Kind: model.KindEmbeddings, Threads: threads})
	if err != nil {
		return fmt.Errorf("bench-engine: accuracy: %w", err)
	}
	inputs := tokenize(auto, texts)
	pooling := map[string]int{"mean": reference.PoolMean, "cls": reference.PoolCLS, "last": reference.PoolLast}[auto.Info().Pooling]
	auto.Close()
	if pooling == 0 {
		return fmt.Errorf("bench-engine: accuracy: the reference has no %q pooling", rep.Model.Pooling)
	}
	t0 := time.Now()
	want, err := referenceEmbeddings(cfg.ModelPath, inputs, pooling)
	if err != nil {
		return err
	}
	logf("accuracy: float64 reference of %d sentences in %.1f s", len(inputs), time.Since(t0).Seconds())
	if cfg.ReferenceOut != "" {
		data, err := json.Marshal(referenceFile{Model: cfg.ModelPath, Texts: texts, Vectors: want})
		if err != nil {
			return fmt.Errorf("bench-engine: encode reference: %w", err)
		}
		if err := os.WriteFile(cfg.ReferenceOut, data, 0o644); err != nil {
			return fmt.Errorf("bench-engine: write reference: %w", err)
		}
	}
	for _, mode := range []struct {
		name string
		mode bindings.WeightMode
	}{{"auto", bindings.WeightsAuto}, {"blocks", bindings.WeightsBlocks}} {
		m, err := model.Load(cfg.ModelPath, model.Options{Kind: model.KindEmbeddings, Threads: threads, WeightMode: mode.mode})
		if err != nil {
			return fmt.Errorf("bench-engine: accuracy (%s weights): %w", mode.name, err)
		}
		for _, level := range bindings.SIMDLevels() {
			if err := bindings.SetSIMD(level); err != nil {
				m.Close()
				return fmt.Errorf("bench-engine: accuracy: %w", err)
			}
			got, err := m.Run(inputs, true)
			if err != nil {
				m.Close()
				return fmt.Errorf("bench-engine: accuracy (%s, %s weights): %w", level, mode.name, err)
			}
			row := compareEmbeddings(want, got)
			row.SIMD, row.WeightMode = level, mode.name
			rep.Accuracy = append(rep.Accuracy, row)
			logf("accuracy %s %s: mean cosine %.6f min %.6f", level, mode.name, row.MeanCosine, row.MinCosine)
		}
		m.Close()
	}
	return nil
}

func slicesMax(v []int) int {
	m := v[0]
	for _, x := range v[1:] {
		m = max(m, x)
	}
	return m
}

// referenceEmbeddings runs the float64 reference over inputs, spread over the CPUs.
func referenceEmbeddings(path string, inputs []model.Input, pooling int) ([][]float64, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bench-engine: reference: %w", err)
	}
	ref, err := reference.Load(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("bench-engine: %w", err)
	}
	out := make([][]float64, len(inputs))
	errs := make([]error, len(inputs))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = ref.Embed(inputs[i].IDs, inputs[i].TypeIDs, pooling, true)
			}
		}()
	}
	for i := range inputs {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("bench-engine: reference of sentence %d: %w", i, err)
		}
	}
	return out, nil
}

// compareEmbeddings is the mean and minimum cosine of got against want; a non-finite embedding
// counts as cosine -1 so it cannot pass unnoticed.
func compareEmbeddings(want [][]float64, got [][]float32) accuracyRow {
	row := accuracyRow{Sentences: len(want), MinCosine: math.Inf(1)}
	sum := 0.0
	for i := range want {
		c := reference.Cosine(want[i], got[i])
		finite := !math.IsNaN(c) && !math.IsInf(c, 0)
		for _, v := range got[i] {
			finite = finite && !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0)
		}
		if !finite {
			row.NonFinite++
			c = -1
		}
		sum += c
		row.MinCosine = math.Min(row.MinCosine, c)
	}
	if len(want) > 0 {
		row.MeanCosine = sum / float64(len(want))
	} else {
		row.MinCosine = 0
	}
	return row
}

// readMemory reads VmRSS and VmHWM (kB) from a /proc/PID/status file.
func readMemory(path string) (memoryReport, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return memoryReport{}, fmt.Errorf("resident memory: %w", err)
	}
	var mem memoryReport
	for _, line := range strings.Split(string(data), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return memoryReport{}, fmt.Errorf("resident memory: %s: malformed %s line %q", path, key, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 || kb > math.MaxInt64/1024 {
			return memoryReport{}, fmt.Errorf("resident memory: %s: malformed %s value %q", path, key, f[0])
		}
		if key == "VmRSS" {
			mem.VmRSSBytes = kb * 1024
		} else {
			mem.VmHWMBytes = kb * 1024
		}
	}
	if mem.VmRSSBytes == 0 {
		return memoryReport{}, fmt.Errorf("resident memory: no VmRSS in %s", path)
	}
	return mem, nil
}

// machine describes the CPU and the SIMD levels.
func machine(active string) machineInfo {
	return machineInfo{
		CPUModel: cpuModel(), CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		GoVersion: runtime.Version(), DetectedSIMD: bindings.DetectedSIMD(), ActiveSIMD: active,
		SIMDLevels: bindings.SIMDLevels(), LoadAvgStart: loadAvg(),
	}
}

// cpuModel is the "model name" of /proc/cpuinfo (arm64 kernels may only give "CPU part"; then the
// architecture is all we say).
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			key, val, ok := strings.Cut(line, ":")
			if ok && strings.TrimSpace(key) == "model name" {
				return strings.TrimSpace(val)
			}
		}
	}
	return runtime.GOARCH + " (model unknown)"
}

// loadAvg is the 1, 5 and 15 minute load averages (zeros where /proc/loadavg is missing): the
// figures are only comparable between runs on an equally idle machine.
func loadAvg() [3]float64 {
	var out [3]float64
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return out
	}
	f := strings.Fields(string(data))
	for i := 0; i < 3 && i < len(f); i++ {
		out[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return out
}

// gitCommit is the commit the binary was built from (with "+dirty" for a modified tree), or else
// the work tree's HEAD, or "" outside a repository.
func gitCommit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if dirty {
				rev += "+dirty"
			}
			return rev
		}
	}
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// printEngineReport writes the human-readable tables.
func printEngineReport(w io.Writer, r *engineReport) {
	fmt.Fprintf(w, "embedd bench-engine  %s  commit %s\n", r.Date, orDash(r.Commit))
	fmt.Fprintf(w, "machine: %s, %d CPUs, %s/%s, SIMD detected %s, active %s; load average %.2f %.2f %.2f at start, %.2f at end\n",
		r.Machine.CPUModel, r.Machine.CPUs, r.Machine.OS, r.Machine.Arch, r.Machine.DetectedSIMD, r.Machine.ActiveSIMD,
		r.Machine.LoadAvgStart[0], r.Machine.LoadAvgStart[1], r.Machine.LoadAvgStart[2], r.Machine.LoadAvgEnd[0])
	fmt.Fprintf(w, "model: %s (%s, %s), %d layers, E=%d, F=%d, %d heads; file %.1f MB, engine weights %.1f MB; load median %.1f ms (min %.1f, max %.1f, %d loads)\n",
		r.Model.Name, r.Model.Quantization, r.Model.Pooling, r.Model.Layers, r.Model.Embd, r.Model.FF, r.Model.Heads,
		mb(r.Model.FileBytes), mb(r.Model.MemoryBytes), r.Load.MedianMS, r.Load.MinMS, r.Load.MaxMS, r.Load.Runs)
	fmt.Fprintf(w, "corpus: %d sentences, %d tokens (longest %d) from %s; queries: %d, %d tokens, from %s\n",
		r.Corpus.Sentences, r.Corpus.Tokens, r.Corpus.MaxTokens, r.Corpus.Source, r.Corpus.Queries, r.Corpus.QueryTokens, r.Corpus.QueriesSource)
	fmt.Fprintf(w, "%s\n%s\n\n", intOpsFormula, floatOpsFormula)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "simd\tthreads\tbudget\torder\tbatches\tmedian s\ttokens/s\tbest tokens/s\tsentences/s\tint GOPS\tfloat GFLOPS\t")
	for _, b := range r.Bulk {
		best := 0.0
		if b.MinSeconds > 0 {
			best = float64(b.Tokens) / b.MinSeconds
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%.3f\t%.0f\t%.0f\t%.0f\t%.1f\t%.2f\t\n", b.SIMD, b.Threads, b.Budget, b.Order, b.Batches,
			b.MedianSeconds, b.TokensPerSec, best, b.SentencesPerSec, b.IntOpsPerSec/1e9, b.FloatOpsPerSec/1e9)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "simd\tthreads\tqueries\tp50 ms\tp90 ms\tp99 ms\tmean ms\tmax ms\t")
	for _, l := range r.Latency {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", l.SIMD, l.Threads, l.Queries, l.P50MS, l.P90MS, l.P99MS, l.MeanMS, l.MaxMS)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nresident memory after the bulk runs: VmRSS %.1f MB, VmHWM %.1f MB\n", mb(r.Memory.VmRSSBytes), mb(r.Memory.VmHWMBytes))
	if len(r.Accuracy) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "simd\tweights\tsentences\tmean cosine\tmin cosine\tnon-finite\t")
		for _, a := range r.Accuracy {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.6f\t%.6f\t%d\t\n", a.SIMD, a.WeightMode, a.Sentences, a.MeanCosine, a.MinCosine, a.NonFinite)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\n(%.1f s)\n", r.Seconds)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
