package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/embedd-dev/embedd/gguf"
)

const modelPath = "../models/all-MiniLM-L6-v2-Q4_K_M.gguf"

var (
	miniLMOnce sync.Once
	miniLM     *WordPiece
	miniLMErr  error
)

// loadMiniLM returns the tokenizer of the bundled model, as the server builds it.
func loadMiniLM(t testing.TB) *WordPiece {
	t.Helper()
	miniLMOnce.Do(func() {
		f, err := gguf.Open(modelPath)
		if err != nil {
			miniLMErr = err
			return
		}
		defer f.Close()
		miniLM, miniLMErr = FromGGUF(f, 0)
	})
	if miniLMErr != nil {
		t.Fatalf("loading %s: %v", modelPath, miniLMErr)
	}
	return miniLM
}

// refOptions are the settings of one reference configuration, as tokref.js takes them.
type refOptions struct {
	Lowercase    bool   `json:"lowercase"`
	StripAccents string `json:"strip_accents"` // "auto", "true" or "false"
	ChineseChars bool   `json:"chinese_chars"`
	MaxTokens    int    `json:"max_tokens"`
}

func (o refOptions) options() Options {
	opts := Options{Lowercase: o.Lowercase, ChineseChars: o.ChineseChars, MaxTokens: o.MaxTokens}
	if o.StripAccents != "auto" {
		b := o.StripAccents == "true"
		opts.StripAccents = &b
	}
	return opts
}

// refInput is a single text (Pair nil) or a query/document pair, marshalled as tokref.js reads it.
type refInput struct {
	Text string
	Pair *[2]string
}

func (in refInput) MarshalJSON() ([]byte, error) {
	if in.Pair != nil {
		return json.Marshal(in.Pair[:])
	}
	return json.Marshal(in.Text)
}

func (in *refInput) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '[' {
		var p [2]string
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		in.Pair = &p
		return nil
	}
	return json.Unmarshal(b, &in.Text)
}

func (in refInput) String() string {
	s := strconv.Quote(in.Text)
	if in.Pair != nil {
		s = strconv.Quote(in.Pair[0]) + " / " + strconv.Quote(in.Pair[1])
	}
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// refOutput is one encoding as tokref.js prints it.
type refOutput struct {
	IDs       []int32  `json:"ids"`
	TypeIDs   []int32  `json:"type_ids"`
	Offsets   [][2]int `json:"offsets"`
	Truncated bool     `json:"truncated"`
}

func encodeInput(w *WordPiece, in refInput) Encoding {
	if in.Pair != nil {
		return w.EncodePair(in.Pair[0], in.Pair[1])
	}
	return w.Encode(in.Text)
}

// compareEncoding reports the first difference between got and want, or "".
func compareEncoding(got Encoding, want refOutput) string {
	if len(got.IDs) != len(want.IDs) || len(got.TypeIDs) != len(want.TypeIDs) || len(got.Offsets) != len(want.Offsets) {
		return fmt.Sprintf("lengths ids/types/offsets %d/%d/%d, want %d/%d/%d\n got ids %v\nwant ids %v",
			len(got.IDs), len(got.TypeIDs), len(got.Offsets), len(want.IDs), len(want.TypeIDs), len(want.Offsets), got.IDs, want.IDs)
	}
	for i := range want.IDs {
		if got.IDs[i] != want.IDs[i] || got.TypeIDs[i] != want.TypeIDs[i] || got.Offsets[i] != want.Offsets[i] {
			return fmt.Sprintf("token %d: id %d type %d offsets %v, want id %d type %d offsets %v\n got ids %v\nwant ids %v",
				i, got.IDs[i], got.TypeIDs[i], got.Offsets[i], want.IDs[i], want.TypeIDs[i], want.Offsets[i], got.IDs, want.IDs)
		}
	}
	if got.Truncated != want.Truncated {
		return fmt.Sprintf("truncated %v, want %v", got.Truncated, want.Truncated)
	}
	return ""
}

// tokrefDir is the Node project running Hugging Face's tokenizers.
const tokrefDir = "../scripts/tokref"

// tokrefAvailable reports whether the reference can run; when it cannot, the reason.
func tokrefAvailable() (bool, string) {
	if _, err := exec.LookPath("node"); err != nil {
		return false, "node is not installed"
	}
	if _, err := os.Stat(filepath.Join(tokrefDir, "node_modules", "tokenizers")); err != nil {
		return false, "scripts/tokref/node_modules is missing (run npm ci there)"
	}
	return true, ""
}

// requireTokref skips the test when the reference cannot run, but fails it in CI (CI=true),
// which installs the reference.
func requireTokref(t *testing.T) {
	t.Helper()
	if ok, why := tokrefAvailable(); !ok {
		if os.Getenv("CI") == "true" {
			t.Fatalf("reference tokenizer unavailable in CI: %s", why)
		}
		t.Skipf("reference tokenizer unavailable: %s", why)
	}
}

// runTokref encodes inputs with Hugging Face's tokenizers using w's vocabulary.
func runTokref(t testing.TB, w *WordPiece, o refOptions, inputs []refInput) []refOutput {
	t.Helper()
	var res []refOutput
	tokref(t, w, inputs, &res, "--lowercase", strconv.FormatBool(o.Lowercase), "--strip-accents", o.StripAccents,
		"--chinese-chars", strconv.FormatBool(o.ChineseChars), "--max-tokens", strconv.Itoa(o.MaxTokens))
	if len(res) != len(inputs) {
		t.Fatalf("tokref.js returned %d encodings for %d inputs", len(res), len(inputs))
	}
	return res
}

// runTokrefDecode decodes id sequences with Hugging Face's tokenizers using w's vocabulary.
func runTokrefDecode(t testing.TB, w *WordPiece, skipSpecial bool, ids [][]int32) []string {
	t.Helper()
	var res []string
	tokref(t, w, ids, &res, "--decode", strconv.FormatBool(skipSpecial))
	if len(res) != len(ids) {
		t.Fatalf("tokref.js returned %d texts for %d id sequences", len(res), len(ids))
	}
	return res
}

// tokref runs scripts/tokref/tokref.js with w's vocabulary and args on input (as JSON) and
// decodes its output into out.
func tokref(t testing.TB, w *WordPiece, input, out any, args ...string) {
	t.Helper()
	dir := t.TempDir()
	vocabPath := filepath.Join(dir, "vocab.txt")
	var vb strings.Builder
	for id := range w.VocabSize() {
		tok, _ := w.Token(int32(id))
		vb.WriteString(tok)
		vb.WriteByte('\n')
	}
	if err := os.WriteFile(vocabPath, []byte(vb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join(tokrefDir, "tokref.js"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", append([]string{script, "--vocab", vocabPath}, args...)...)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("tokref.js: %v: %s", err, stderr.String())
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("tokref.js output: %v", err)
	}
}

// sharedPath finds a file of the shared/ folder that lies beside the repository (as in CI) or at
// /work/shared (the developers' machines).
func sharedPath(t testing.TB, rel string) string {
	t.Helper()
	for _, dir := range []string{"../../shared", "/work/shared"} {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("shared/%s not found beside the repository or at /work/shared", rel)
	return ""
}

// vocabStrings returns w's vocabulary in HF form, index = id, to build variants of w with other
// options.
func vocabStrings(w *WordPiece) []string {
	out := make([]string, w.tokens.len())
	for i := range out {
		out[i] = w.tokens.at(i)
	}
	return out
}
