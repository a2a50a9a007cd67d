package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/embedd-dev/embedd/internal/testmodel"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinary compiles embedd into a temp dir once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "embedd-test-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "embedd")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type result struct {
	stdout, stderr string
	code           int
}

func runBinary(t *testing.T, bin, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

func TestEmbedCommand(t *testing.T) {
	bin := buildBinary(t)
	modelPath, err := testmodel.RealModelPath()
	if err != nil {
		t.Fatal(err)
	}
	decode := func(t *testing.T, r result) [][]float32 {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var v [][]float32
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatalf("output is not a JSON array of vectors: %v\n%.200s", err, r.stdout)
		}
		return v
	}

	hello := decode(t, runBinary(t, bin, "", "embed", "--model", modelPath, "--threads", "1", "--normalize", "hello"))
	if len(hello) != 1 || len(hello[0]) != 384 {
		t.Fatalf("got %d vectors of %d floats, want 1 of 384", len(hello), len(hello[0]))
	}
	var norm float64
	for _, x := range hello[0] {
		norm += float64(x) * float64(x)
	}
	if math.Abs(math.Sqrt(norm)-1) > 1e-4 {
		t.Errorf("--normalize gave norm %.6f", math.Sqrt(norm))
	}

	// stdin: one text per line, same vectors as arguments.
	stdin := decode(t, runBinary(t, bin, "hello\nthe second line\r\nthird\n", "embed", "--model", modelPath, "--normalize"))
	if len(stdin) != 3 {
		t.Fatalf("stdin mode: %d vectors for 3 lines", len(stdin))
	}
	args := decode(t, runBinary(t, bin, "", "embed", "--model", modelPath, "--normalize", "hello", "the second line", "third"))
	for i := range args {
		for j := range args[i] {
			if math.Abs(float64(args[i][j]-stdin[i][j])) > 1e-5 {
				t.Fatalf("text %d: stdin and argument vectors differ at %d", i, j)
			}
		}
	}
	if d := math.Abs(float64(stdin[0][0] - hello[0][0])); d > 1e-5 {
		t.Errorf("\"hello\" differs between runs by %g", d)
	}
}

func TestEmbedCommandErrors(t *testing.T) {
	bin := buildBinary(t)
	modelPath, err := testmodel.RealModelPath()
	if err != nil {
		t.Fatal(err)
	}
	notGGUF := filepath.Join(t.TempDir(), "bad.gguf")
	if err := os.WriteFile(notGGUF, []byte("this is not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantMsg  string
	}{
		{"missing model file", []string{"embed", "--model", "/nonexistent/model.gguf", "hi"}, "", 1, "/nonexistent/model.gguf"},
		{"not a gguf file", []string{"embed", "--model", notGGUF, "hi"}, "", 1, "bad.gguf"},
		{"bad flag", []string{"embed", "--model", modelPath, "--bogus", "hi"}, "", 2, "bogus"},
		{"no model flag", []string{"embed", "hi"}, "", 2, "--model"},
		{"negative threads", []string{"embed", "--model", modelPath, "--threads", "-3", "hi"}, "", 2, "threads"},
		{"empty stdin", []string{"embed", "--model", modelPath}, "", 1, "no texts"},
		{"unknown command", []string{"frobnicate"}, "", 2, "frobnicate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runBinary(t, bin, tc.stdin, tc.args...)
			if r.code != tc.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", r.code, tc.wantCode, r.stderr)
			}
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.Contains(r.stderr, tc.wantMsg) {
				t.Errorf("stderr %q: want one line mentioning %q", r.stderr, tc.wantMsg)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q on error", r.stdout)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	bin := buildBinary(t)
	r := runBinary(t, bin, "", "help")
	if r.code != 0 || !strings.Contains(r.stdout, "embed ") || !strings.Contains(r.stdout, "version") {
		t.Errorf("help: exit %d, output %q", r.code, r.stdout)
	}
	r = runBinary(t, bin, "", "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "embedd ") {
		t.Errorf("version: exit %d, output %q", r.code, r.stdout)
	}
	if r := runBinary(t, bin, ""); r.code != 2 {
		t.Errorf("no arguments: exit %d, want 2", r.code)
	}
}
