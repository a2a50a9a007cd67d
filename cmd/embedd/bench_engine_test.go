package main

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/embedd-dev/embedd/bindings"
	"github.com/embedd-dev/embedd/gguf"
	"github.com/embedd-dev/embedd/internal/testmodel"
	"github.com/embedd-dev/embedd/model"
	"github.com/embedd-dev/embedd/tokenizer"
)

// TestBenchEngineReport runs the benchmark's core on the bundled model with tiny settings and
// checks the report's structure and sanity (not its speed).
func TestBenchEngineReport(t *testing.T) {
	path, err := testmodel.RealModelPath()
	if err != nil {
		t.Fatal(err)
	}
	corpus, err := licenseCorpus(licenseDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	corpus = corpus[:6]
	queries := firstWords(corpus, 8)
	cfg := benchEngineConfig{
		ModelPath: path, Corpus: corpus, CorpusName: "test", Queries: queries, QueriesName: "test",
		Threads: []int{1, 2}, Budgets: []int{64, 4096}, Runs: 1, Loads: 2,
		SIMD: []string{bindings.ActiveSIMD()}, Sorted: true, AccuracyN: 3,
		ReferenceOut: filepath.Join(t.TempDir(), "reference.json"),
	}
	var progress strings.Builder
	rep, err := benchEngine(cfg, &progress)
	if err != nil {
		t.Fatalf("benchEngine: %v\n%s", err, progress.String())
	}

	// Token counts must be the tokenizer's, counted here independently.
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromGGUF(f, 512)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	wantTokens, wantQueryTokens, longest := 0, 0, 0
	for _, s := range corpus {
		n := len(tok.Encode(s).IDs)
		wantTokens += n
		longest = max(longest, n)
	}
	for _, q := range queries {
		wantQueryTokens += len(tok.Encode(q).IDs)
	}
	c := rep.Corpus
	if c.Sentences != len(corpus) || c.Tokens != wantTokens || c.MaxTokens != longest || c.Queries != len(queries) || c.QueryTokens != wantQueryTokens {
		t.Errorf("corpus report %+v; want %d sentences, %d tokens (longest %d), %d queries of %d tokens",
			c, len(corpus), wantTokens, longest, len(queries), wantQueryTokens)
	}

	if rep.Model.Layers != 6 || rep.Model.Embd != 384 || rep.Model.FF != 1536 || rep.Model.Heads != 12 || rep.Model.MemoryBytes <= 0 || rep.Model.FileBytes <= 0 {
		t.Errorf("model report %+v", rep.Model)
	}
	if rep.Load.Runs != 2 || !(rep.Load.MinMS > 0 && rep.Load.MinMS <= rep.Load.MedianMS && rep.Load.MedianMS <= rep.Load.MaxMS) {
		t.Errorf("load report %+v", rep.Load)
	}
	if rep.Machine.CPUModel == "" || !slices.Contains(rep.Machine.SIMDLevels, rep.Machine.DetectedSIMD) {
		t.Errorf("machine report %+v", rep.Machine)
	}

	if len(rep.Bulk) != 2*2*2 {
		t.Fatalf("%d bulk rows, want threads x budgets x orders = 8", len(rep.Bulk))
	}
	intOpsPerToken := 2.0 * 6 * (4*384*384 + 2*384*1536)
	for _, b := range rep.Bulk {
		minBatches := (wantTokens + b.Budget - 1) / b.Budget
		if b.Tokens != wantTokens || b.Sentences != len(corpus) || b.Runs != 1 || b.Batches < minBatches || b.Batches > len(corpus) {
			t.Errorf("bulk row %+v: want %d tokens, %d sentences, %d..%d batches", b, wantTokens, len(corpus), minBatches, len(corpus))
		}
		for name, v := range map[string]float64{"median s": b.MedianSeconds, "tokens/s": b.TokensPerSec,
			"sentences/s": b.SentencesPerSec, "int ops/s": b.IntOpsPerSec, "float ops/s": b.FloatOpsPerSec} {
			if !(v > 0) || math.IsInf(v, 0) {
				t.Errorf("bulk row %s/%d/%s: %s = %v", b.SIMD, b.Budget, b.Order, name, v)
			}
		}
		if got := b.IntOpsPerSec / b.TokensPerSec; math.Abs(got-intOpsPerToken) > 1e-6*intOpsPerToken {
			t.Errorf("int ops per token %g, want %g", got, intOpsPerToken)
		}
	}
	if rep.Bulk[0].Order != "corpus" || rep.Bulk[1].Order != "sorted" {
		t.Errorf("row orders %q, %q; want corpus then sorted", rep.Bulk[0].Order, rep.Bulk[1].Order)
	}

	if len(rep.Latency) != 2 {
		t.Fatalf("%d latency rows, want one per thread count", len(rep.Latency))
	}
	for _, l := range rep.Latency {
		if l.Queries != len(queries) || l.Tokens != wantQueryTokens || !(l.P50MS > 0 && l.P50MS <= l.P90MS && l.P90MS <= l.P99MS && l.P99MS <= l.MaxMS) {
			t.Errorf("latency row %+v", l)
		}
	}

	levels := bindings.SIMDLevels()
	if len(rep.Accuracy) != 2*len(levels) {
		t.Fatalf("%d accuracy rows, want 2 weight modes x %d SIMD levels", len(rep.Accuracy), len(levels))
	}
	for _, a := range rep.Accuracy {
		// Embeddings of the right sentences agree far beyond 0.9; a pairing mistake would not.
		if a.Sentences != 3 || a.NonFinite != 0 || !(a.MinCosine > 0.9 && a.MinCosine <= a.MeanCosine && a.MeanCosine <= 1+1e-9) {
			t.Errorf("accuracy row %+v", a)
		}
	}
	if rep.Memory.VmRSSBytes <= 0 || rep.Memory.VmHWMBytes < rep.Memory.VmRSSBytes {
		t.Errorf("memory report %+v", rep.Memory)
	}
	if bindings.ActiveSIMD() != rep.Machine.ActiveSIMD {
		t.Errorf("SIMD level left at %s, started at %s", bindings.ActiveSIMD(), rep.Machine.ActiveSIMD)
	}

	raw, err := os.ReadFile(cfg.ReferenceOut)
	if err != nil {
		t.Fatal(err)
	}
	var ref referenceFile
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatalf("reference file: %v", err)
	}
	if !reflect.DeepEqual(ref.Texts, accuracySample(corpus, 3)) || len(ref.Vectors) != 3 {
		t.Fatalf("reference file has texts %q and %d vectors", ref.Texts, len(ref.Vectors))
	}
	for i, v := range ref.Vectors {
		norm := 0.0
		for _, x := range v {
			norm += x * x
		}
		if len(v) != 384 || math.Abs(norm-1) > 1e-9 {
			t.Errorf("reference vector %d: %d values, squared norm %g", i, len(v), norm)
		}
	}

	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatalf("report does not encode as JSON: %v", err)
	}
	var back engineReport
	if err := json.Unmarshal(data, &back); err != nil || !reflect.DeepEqual(&back, rep) {
		t.Errorf("JSON round trip differs (err %v)", err)
	}
	var printed strings.Builder
	printEngineReport(&printed, rep)
	for _, want := range []string{"tokens/s", "p99 ms", "min cosine", "VmHWM", intOpsFormula, floatOpsFormula} {
		if !strings.Contains(printed.String(), want) {
			t.Errorf("printed report lacks %q", want)
		}
	}
}

// TestLicenseCorpusMatchesCorpusPy checks the Go corpus rule against the published script.
func TestLicenseCorpusMatchesCorpusPy(t *testing.T) {
	shared, err := testmodel.SharedDir()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(shared, "bench", "corpus.py")
	for _, words := range []int{0, 8} {
		args := []string{script}
		if words > 0 {
			args = append(args, "--words", "8")
		}
		out, err := exec.Command("python3", args...).Output()
		if err != nil {
			t.Fatalf("python3 %v: %v", args, err)
		}
		var want []string
		if err := json.Unmarshal(out, &want); err != nil {
			t.Fatal(err)
		}
		got, err := licenseCorpus(licenseDir, words)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("words=%d: %d sentences, corpus.py has %d", words, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("words=%d: sentence %d\n got %q\nwant %q", words, i, got[i], want[i])
			}
		}
	}
}

func TestSplitSentences(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"This is the first sentence. This  is\tthe second one;  and a third clause here:\nwith  more words at the end", []string{"This is the first sentence.", "This is the second one;", "and a third clause here:", "with more words at the end"}},
		{"version 3.0 of the licence keeps going without a break", []string{"version 3.0 of the licence keeps going without a break"}},
		{"Too short. Also short. " + strings.Repeat("x", 401), nil},
		{"", nil},
	}
	for _, tc := range tests {
		if got := splitSentences(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitSentences(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParsePositiveList(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"1,2", []int{1, 2}, false},
		{" 16 , 512,16", []int{16, 512}, false},
		{"", nil, true},
		{"0", nil, true},
		{"-1", nil, true},
		{"2,x", nil, true},
		{"5000", nil, true},
	}
	for _, tc := range tests {
		got, err := parsePositiveList("--x", tc.in, 4096)
		if (err != nil) != tc.wantErr || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parsePositiveList(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestPackBatches(t *testing.T) {
	lens := []int{5, 3, 9, 2, 12, 1, 4}
	inputs := make([]model.Input, len(lens))
	idx := make([]int, len(lens))
	for i, n := range lens {
		inputs[i] = model.Input{IDs: make([]int32, n)}
		idx[i] = i
	}
	for _, budget := range []int{1, 8, 10, 12, 100} {
		batches := packBatches(inputs, idx, budget)
		var seen []int
		for _, b := range batches {
			if len(b) == 0 {
				t.Fatalf("budget %d: empty batch", budget)
			}
			if len(b) > 1 && batchTokens(b) > budget {
				t.Errorf("budget %d: batch of %d sequences has %d tokens", budget, len(b), batchTokens(b))
			}
			for _, in := range b {
				seen = append(seen, len(in.IDs))
			}
		}
		if !reflect.DeepEqual(seen, lens) {
			t.Errorf("budget %d: sequences %v, want %v in order", budget, seen, lens)
		}
		// Greedy packing: the next sequence would not have fit in the previous batch.
		for i := 1; i < len(batches); i++ {
			if batchTokens(batches[i-1])+len(batches[i][0].IDs) <= budget {
				t.Errorf("budget %d: batch %d could have taken the next sequence", budget, i-1)
			}
		}
	}
}

func TestPercentileAndMedian(t *testing.T) {
	sorted := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct {
		p, want float64
	}{{50, 5}, {90, 9}, {99, 10}, {100, 10}, {0, 1}, {10, 1}, {11, 2}}
	for _, tc := range tests {
		if got := percentile(sorted, tc.p); got != tc.want {
			t.Errorf("percentile(%g) = %g, want %g", tc.p, got, tc.want)
		}
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of nothing is not NaN")
	}
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{7}, 7}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %g, want %g", tc.in, got, tc.want)
		}
	}
}

func TestReadMemory(t *testing.T) {
	tests := []struct {
		name, status string
		want         memoryReport
		wantErr      bool
	}{
		{"ok", "Name:\tembedd\nVmHWM:\t  215344 kB\nVmRSS:\t   96256 kB\nThreads:\t3\n", memoryReport{VmRSSBytes: 96256 * 1024, VmHWMBytes: 215344 * 1024}, false},
		{"no rss", "Name:\tembedd\n", memoryReport{}, true},
		{"bad unit", "VmRSS:\t 12 MB\n", memoryReport{}, true},
		{"bad number", "VmRSS:\t 1x2 kB\n", memoryReport{}, true},
		{"overflow", "VmRSS:\t 99999999999999999999 kB\n", memoryReport{}, true},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		p := filepath.Join(dir, "status")
		if err := os.WriteFile(p, []byte(tc.status), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readMemory(p)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: readMemory = %+v, %v; want %+v, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestReadTextsFile(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string
		wantErr       bool
	}{
		{"json", ` ["a b", "c"]`, []string{"a b", "c"}, false},
		{"lines", "first line\r\n\nsecond line\n", []string{"first line", "second line"}, false},
		{"bad json", `["a", 3]`, nil, true},
		{"empty json text", `["a", " "]`, nil, true},
		{"empty", "\n\n", nil, true},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		p := filepath.Join(dir, "corpus")
		if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readTextsFile(p)
		if (err != nil) != tc.wantErr || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: readTextsFile = %q, %v; want %q, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
	if _, err := readTextsFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestCompareEmbeddings(t *testing.T) {
	want := [][]float64{{1, 0}, {0, 1}, {1, 1}}
	got := [][]float32{{1, 0}, {1, 1}, {float32(math.NaN()), 1}}
	row := compareEmbeddings(want, got)
	if row.Sentences != 3 || row.NonFinite != 1 || row.MinCosine != -1 {
		t.Errorf("compareEmbeddings = %+v; want 3 sentences, 1 non-finite counted as -1", row)
	}
	if wantMean := (1 + math.Sqrt(0.5) - 1) / 3; math.Abs(row.MeanCosine-wantMean) > 1e-9 {
		t.Errorf("mean cosine %g, want %g", row.MeanCosine, wantMean)
	}
}

func TestBenchEngineUsageErrors(t *testing.T) {
	tests := [][]string{
		{},
		{"--model", "m.gguf", "--threads", "0"},
		{"--model", "m.gguf", "--budgets", "x"},
		{"--model", "m.gguf", "--runs", "0"},
		{"--model", "m.gguf", "--simd", "sse9"},
		{"--model", "m.gguf", "extra"},
		{"--model", "m.gguf", "--accuracy", "0", "--reference-out", "r.json"},
	}
	for _, args := range tests {
		err := runBenchEngine(args)
		var ue *usageError
		if err == nil || !errors.As(err, &ue) {
			t.Errorf("runBenchEngine(%q) = %v, want a usage error", args, err)
		}
	}
}
