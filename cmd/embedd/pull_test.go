package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pullHub plays the hub for one file, org/m/{revision}/m.gguf, served directly with its sha256 as
// ETag, and counts requests.
func pullHub(t *testing.T, data []byte, revision string) (url string, requests *atomic.Int64) {
	t.Helper()
	sum := sha256.Sum256(data)
	requests = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.URL.Path != "/org/m/resolve/"+revision+"/m.gguf" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, requests
}

func TestPull(t *testing.T) {
	data := bytes.Repeat([]byte("gguf!"), 100_000)
	sum := sha256.Sum256(data)
	goodSHA := hex.EncodeToString(sum[:])
	tests := []struct {
		name      string
		args      []string
		revision  string // the one revision the fake hub has
		wantRel   string // expected path under the cache, "" for an error
		wantUsage bool
		wantErr   string
	}{
		{"default revision", []string{"org/m", "m.gguf"}, "main", "org--m/main/m.gguf", false, ""},
		{"flags after the arguments", []string{"org/m", "m.gguf", "--revision", "v2", "--sha256", goodSHA}, "v2", "org--m/v2/m.gguf", false, ""},
		{"flags first", []string{"--revision=v2", "org/m", "m.gguf"}, "v2", "org--m/v2/m.gguf", false, ""},
		{"missing file argument", []string{"org/m"}, "main", "", true, "REPO and FILE"},
		{"extra argument", []string{"org/m", "m.gguf", "x"}, "main", "", true, "REPO and FILE"},
		{"unknown flag", []string{"--force", "org/m", "m.gguf"}, "main", "", true, "force"},
		{"path escape", []string{"org/m", "../m.gguf"}, "main", "", true, ".."},
		{"bad repo", []string{"a/b/c", "m.gguf"}, "main", "", true, "repository id"},
		{"bad sha256 flag", []string{"org/m", "m.gguf", "--sha256", "xyz"}, "main", "", true, "64 hex"},
		{"not on the hub", []string{"org/m", "other.gguf"}, "main", "", false, "not found"},
		{"wrong sha256", []string{"org/m", "m.gguf", "--sha256", strings.Repeat("0", 64)}, "main", "", false, "sha256 mismatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, requests := pullHub(t, data, tc.revision)
			cache := t.TempDir()
			env := map[string]string{"HF_ENDPOINT": url, "EMBEDD_CACHE": cache}
			lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
			var stdout, stderr bytes.Buffer
			err := pull(context.Background(), tc.args, lookup, &stdout, &stderr, false)
			if tc.wantRel == "" {
				var ue *usageError
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.As(err, &ue) != tc.wantUsage {
					t.Fatalf("err = %v (usage error %v), want one containing %q (usage error %v)", err, errors.As(err, &ue), tc.wantErr, tc.wantUsage)
				}
				if tc.wantUsage && requests.Load() != 0 {
					t.Error("a usage error made requests")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(cache, filepath.FromSlash(tc.wantRel))
			if got := strings.TrimSpace(stdout.String()); got != want {
				t.Errorf("printed %q, want %q", got, want)
			}
			if got, _ := os.ReadFile(want); !bytes.Equal(got, data) {
				t.Error("downloaded content differs")
			}
			if !strings.Contains(stderr.String(), "org/m/m.gguf") || !strings.Contains(stderr.String(), "(100%)") {
				t.Errorf("no progress on stderr: %q", stderr.String())
			}
			// A second pull is answered from the cache.
			n := requests.Load()
			stdout.Reset()
			if err := pull(context.Background(), tc.args, lookup, &stdout, &stderr, false); err != nil {
				t.Fatal(err)
			}
			if requests.Load() != n || strings.TrimSpace(stdout.String()) != want {
				t.Errorf("second pull: %d requests, printed %q", requests.Load()-n, stdout.String())
			}
		})
	}
}

func TestPullCommandExitCodes(t *testing.T) {
	bin := buildBinary(t)
	data := []byte("small file")
	url, _ := pullHub(t, data, "main")
	cache := t.TempDir()
	run := func(args ...string) result {
		t.Helper()
		t.Setenv("HF_ENDPOINT", url)
		t.Setenv("EMBEDD_CACHE", cache)
		return runBinary(t, bin, "", append([]string{"pull"}, args...)...)
	}
	r := run("org/m", "m.gguf")
	if want := filepath.Join(cache, "org--m", "main", "m.gguf"); r.code != 0 || strings.TrimSpace(r.stdout) != want {
		t.Errorf("pull: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r = run("org/m"); r.code != 2 || !strings.Contains(r.stderr, "usage") {
		t.Errorf("missing argument: exit %d, stderr %q", r.code, r.stderr)
	}
	if r = run("org/m", "nope.gguf"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("missing file: exit %d, stderr %q", r.code, r.stderr)
	}
}
