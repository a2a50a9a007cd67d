package hub

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeFile is one file the fake hub serves.
type fakeFile struct {
	data []byte
	lfs  bool // served through a redirect to the CDN, with X-Linked-Etag, like the real hub
	// publishedSHA overrides the sha256 the hub publishes (to play a corrupt upload).
	publishedSHA string
}

// seen is one request a fake server received.
type seen struct {
	server, path, rangeHdr, auth string
}

// fakeHub plays huggingface.co and its CDN on two httptest servers. The CDN is addressed as
// "localhost" and the hub as "127.0.0.1" so that they are different hosts.
type fakeHub struct {
	t     *testing.T
	hub   *httptest.Server
	cdn   *httptest.Server
	files map[string]fakeFile // "owner/name/revision/file"
	token string              // required bearer token, if set

	mu       sync.Mutex
	requests []seen
	cutAfter int  // the next CDN or direct responses end the connection after this many bytes...
	cuts     int  // ...this many times
	fail500  int  // the next hub responses are 500 this many times
	noRange  bool // the server ignores Range headers (answers 200 with the whole file)
	stall    bool // a pending cut stalls (sends nothing more) instead of closing the connection
}

func newFakeHub(t *testing.T) *fakeHub {
	f := &fakeHub{t: t, files: map[string]fakeFile{}}
	f.hub = httptest.NewServer(http.HandlerFunc(f.serveHub))
	f.cdn = httptest.NewServer(http.HandlerFunc(f.serveCDN))
	t.Cleanup(func() { f.hub.Close(); f.cdn.Close() })
	return f
}

func sha256Hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func (f *fakeHub) record(server string, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, seen{server, r.URL.Path, r.Header.Get("Range"), r.Header.Get("Authorization")})
}

func (f *fakeHub) seen() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.requests...)
}

func (f *fakeHub) client(t *testing.T) *Client {
	t.Helper()
	c, err := NewClient(mapEnv(map[string]string{"HF_ENDPOINT": f.hub.URL, "EMBEDD_CACHE": t.TempDir(), "HF_TOKEN": f.token}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fakeHub) serveHub(w http.ResponseWriter, r *http.Request) {
	f.record("hub", r)
	f.mu.Lock()
	fail := f.fail500 > 0
	if fail {
		f.fail500--
	}
	f.mu.Unlock()
	if fail {
		http.Error(w, "overloaded", http.StatusInternalServerError)
		return
	}
	if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		w.Header().Set("X-Error-Code", "GatedRepo")
		http.Error(w, "Access to this repository is restricted", http.StatusUnauthorized)
		return
	}
	repo, rest, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/resolve/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	file, ok := f.files[repo+"/"+rest]
	if !ok {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.NotFound(w, r)
		return
	}
	sha := sha256Hex(file.data)
	if file.publishedSHA != "" {
		sha = file.publishedSHA
	}
	if file.lfs {
		w.Header().Set("X-Linked-Etag", `"`+sha+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(file.data)))
		w.Header().Set("ETag", `"`+sha+`"`)
		cdnURL := strings.Replace(f.cdn.URL, "127.0.0.1", "localhost", 1)
		http.Redirect(w, r, cdnURL+"/blobs/"+repo+"/"+rest, http.StatusFound)
		return
	}
	gitSHA := sha1.Sum(file.data) // small files carry their git blob id, not a sha256
	w.Header().Set("ETag", `"`+hex.EncodeToString(gitSHA[:])+`"`)
	f.serveData(w, r, file.data)
}

func (f *fakeHub) serveCDN(w http.ResponseWriter, r *http.Request) {
	f.record("cdn", r)
	file, ok := f.files[strings.TrimPrefix(r.URL.Path, "/blobs/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`) // an S3-style md5, not a sha256
	f.serveData(w, r, file.data)
}

// serveData answers with the data, honoring Range unless noRange, and cuts the connection midway
// when a cut is pending.
func (f *fakeHub) serveData(w http.ResponseWriter, r *http.Request, data []byte) {
	f.mu.Lock()
	cut := f.cuts > 0
	if cut {
		f.cuts--
	}
	cutAfter, noRange, stall := f.cutAfter, f.noRange, f.stall
	f.mu.Unlock()
	if noRange {
		r.Header.Del("Range")
	}
	if !cut {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data[:cutAfter])
	w.(http.Flusher).Flush()
	if stall {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		f.t.Errorf("hijack: %v", err)
		return
	}
	conn.Close()
}

func mapEnv(vars map[string]string) LookupEnv {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok && v != ""
	}
}

func testData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDownload(t *testing.T) {
	big := testData(3<<20 + 17)
	small := []byte(`{"architectures": ["BertModel"]}`)
	tests := []struct {
		name    string
		key     string // repo/revision/file on the fake hub
		file    fakeFile
		req     Request
		wantRel string // path under the cache dir
		wantCDN bool
	}{
		{"lfs file via CDN redirect", "org/model/main/model.gguf", fakeFile{data: big, lfs: true},
			Request{Repo: "org/model", File: "model.gguf"}, "org--model/main/model.gguf", true},
		{"small file served directly", "org/model/main/config.json", fakeFile{data: small},
			Request{Repo: "org/model", File: "config.json"}, "org--model/main/config.json", false},
		{"file in a folder, pinned revision", "org/model/v1.0/q8/model.gguf", fakeFile{data: big, lfs: true},
			Request{Repo: "org/model", File: "q8/model.gguf", Revision: "v1.0"}, "org--model/v1.0/q8/model.gguf", true},
		{"pull-request revision", "org/model/refs%2Fpr%2F3/model.gguf", fakeFile{data: small},
			Request{Repo: "org/model", File: "model.gguf", Revision: "refs/pr/3"}, "org--model/refs%2Fpr%2F3/model.gguf", false},
		{"configured sha256 matches", "model/main/model.gguf", fakeFile{data: small},
			Request{Repo: "model", File: "model.gguf", SHA256: strings.ToUpper(sha256Hex(small))}, "model/main/model.gguf", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeHub(t)
			// The hub receives the revision URL-escaped; the handler sees it decoded in r.URL.Path.
			key := strings.ReplaceAll(tc.key, "%2F", "/")
			f.files[key] = tc.file
			c := f.client(t)
			p, err := c.Download(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(c.CacheDir, filepath.FromSlash(tc.wantRel)); p != want {
				t.Errorf("path %s, want %s", p, want)
			}
			if got := readFile(t, p); !bytes.Equal(got, tc.file.data) {
				t.Errorf("content differs: %d bytes, want %d", len(got), len(tc.file.data))
			}
			if _, err := os.Stat(p + partialSuffix); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("partial file left behind: %v", err)
			}
			cdn := 0
			for _, s := range f.seen() {
				if s.server == "cdn" {
					cdn++
				}
			}
			if (cdn > 0) != tc.wantCDN {
				t.Errorf("CDN requests %d, want CDN use %v", cdn, tc.wantCDN)
			}
		})
	}
}

func TestCacheHit(t *testing.T) {
	data := testData(100_000)
	for _, withSHA := range []bool{false, true} {
		t.Run(fmt.Sprintf("sha256=%v", withSHA), func(t *testing.T) {
			f := newFakeHub(t)
			f.files["org/m/main/m.gguf"] = fakeFile{data: data, lfs: true}
			c := f.client(t)
			req := Request{Repo: "org/m", File: "m.gguf"}
			if withSHA {
				req.SHA256 = sha256Hex(data)
			}
			p1, err := c.Download(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			before := len(f.seen())
			p2, err := c.Download(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if p1 != p2 {
				t.Errorf("paths differ: %s, %s", p1, p2)
			}
			if after := len(f.seen()); after != before {
				t.Errorf("cache hit made %d requests", after-before)
			}
		})
	}
}

func TestCorruptCacheEntryRefetched(t *testing.T) {
	data := testData(50_000)
	f := newFakeHub(t)
	f.files["org/m/main/m.gguf"] = fakeFile{data: data, lfs: true}
	c := f.client(t)
	req := Request{Repo: "org/m", File: "m.gguf", SHA256: sha256Hex(data)}
	p, err := c.Download(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := len(f.seen())
	if _, err := c.Download(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if len(f.seen()) == before {
		t.Error("a cached file with the wrong sha256 was not fetched again")
	}
	if !bytes.Equal(readFile(t, p), data) {
		t.Error("refetched content differs")
	}
}

func TestResume(t *testing.T) {
	data := testData(2<<20 + 5)
	const cutAt = 700_001
	tests := []struct {
		name     string
		lfs      bool
		attempts int // 1: the first Download fails and a second call resumes
	}{
		{"lfs, resumed within one call", true, 4},
		{"direct, resumed within one call", false, 4},
		{"lfs, resumed by the next call", true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeHub(t)
			f.files["org/m/main/m.gguf"] = fakeFile{data: data, lfs: tc.lfs}
			f.cutAfter, f.cuts = cutAt, 1
			c := f.client(t)
			c.Attempts = tc.attempts
			req := Request{Repo: "org/m", File: "m.gguf"}
			p, err := c.Download(context.Background(), req)
			if tc.attempts == 1 {
				if err == nil {
					t.Fatal("a cut connection with one attempt did not fail")
				}
				final, _ := c.LocalPath(req.Repo, "main", req.File)
				st, serr := os.Stat(final + partialSuffix)
				if serr != nil || st.Size() != cutAt {
					t.Fatalf("partial file after the cut: %v, %v (want %d bytes)", st, serr, cutAt)
				}
				p, err = c.Download(context.Background(), req)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readFile(t, p), data) {
				t.Fatal("resumed content differs")
			}
			var ranges []string
			for _, s := range f.seen() {
				if s.rangeHdr != "" {
					ranges = append(ranges, s.server+" "+s.rangeHdr)
				}
			}
			if len(ranges) == 0 || !strings.HasSuffix(ranges[len(ranges)-1], fmt.Sprintf("bytes=%d-", cutAt)) {
				t.Errorf("no resume from byte %d: ranged requests %q", cutAt, ranges)
			}
		})
	}
}

func TestServerIgnoringRangeRestarts(t *testing.T) {
	data := testData(1<<20 + 3)
	f := newFakeHub(t)
	f.files["org/m/main/m.gguf"] = fakeFile{data: data, lfs: true}
	f.cutAfter, f.cuts, f.noRange = 300_000, 1, true
	c := f.client(t)
	p, err := c.Download(context.Background(), Request{Repo: "org/m", File: "m.gguf"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, p), data) {
		t.Fatal("content differs after a server ignored the Range header")
	}
}

func TestRetryOnServerError(t *testing.T) {
	data := []byte("tiny")
	f := newFakeHub(t)
	f.files["org/m/main/t.txt"] = fakeFile{data: data}
	f.fail500 = 1
	c := f.client(t)
	p, err := c.Download(context.Background(), Request{Repo: "org/m", File: "t.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, p), data) {
		t.Fatal("content differs")
	}
	f.fail500 = 10
	c.Attempts = 2
	_, err = c.Download(context.Background(), Request{Repo: "org/m", File: "t.txt", Revision: "other"})
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("persistent 500: err = %v", err)
	}
}

func TestHashMismatch(t *testing.T) {
	data := testData(200_000)
	wrong := sha256Hex([]byte("something else"))
	tests := []struct {
		name string
		file fakeFile
		sha  string // configured
	}{
		{"hub publishes another sha256", fakeFile{data: data, lfs: true, publishedSHA: wrong}, ""},
		{"configured sha256 differs (small file)", fakeFile{data: data}, wrong},
		{"configured sha256 differs from the hub's", fakeFile{data: data, lfs: true}, wrong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeHub(t)
			f.files["org/m/main/m.gguf"] = tc.file
			c := f.client(t)
			_, err := c.Download(context.Background(), Request{Repo: "org/m", File: "m.gguf", SHA256: tc.sha})
			if !errors.Is(err, ErrHashMismatch) {
				t.Fatalf("err = %v, want a sha256 mismatch", err)
			}
			final, _ := c.LocalPath("org/m", "main", "m.gguf")
			for _, p := range []string{final, final + partialSuffix} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s exists after a mismatch (%v)", p, err)
				}
			}
		})
	}
}

func TestAuth(t *testing.T) {
	data := testData(10_000)
	f := newFakeHub(t)
	f.token = "hf_secret"
	f.files["org/gated/main/m.gguf"] = fakeFile{data: data, lfs: true}

	anon := f.client(t)
	anon.Token = ""
	_, err := anon.Download(context.Background(), Request{Repo: "org/gated", File: "m.gguf"})
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Fatalf("without a token: err = %v, want access denied naming HF_TOKEN", err)
	}

	c := f.client(t)
	if c.Token != "hf_secret" {
		t.Fatalf("HF_TOKEN not read: %q", c.Token)
	}
	p, err := c.Download(context.Background(), Request{Repo: "org/gated", File: "m.gguf"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, p), data) {
		t.Fatal("content differs")
	}
	var hubAuth, cdnAuth []string
	for _, s := range f.seen() {
		if s.server == "hub" {
			hubAuth = append(hubAuth, s.auth)
		} else {
			cdnAuth = append(cdnAuth, s.auth)
		}
	}
	if hubAuth[len(hubAuth)-1] != "Bearer hf_secret" {
		t.Errorf("hub saw Authorization %q", hubAuth)
	}
	for _, a := range cdnAuth {
		if a != "" {
			t.Errorf("the token leaked to the CDN host: %q", a)
		}
	}
}

func TestNotFound(t *testing.T) {
	f := newFakeHub(t)
	f.files["org/m/main/m.gguf"] = fakeFile{data: []byte("x")}
	c := f.client(t)
	for _, req := range []Request{
		{Repo: "org/m", File: "missing.gguf"},
		{Repo: "org/other", File: "m.gguf"},
		{Repo: "org/m", File: "m.gguf", Revision: "nope"},
	} {
		_, err := c.Download(context.Background(), req)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), req.Repo) {
			t.Errorf("%+v: err = %v, want not found naming the repo", req, err)
		}
	}
}

func TestTooLarge(t *testing.T) {
	for _, lfs := range []bool{true, false} {
		f := newFakeHub(t)
		f.files["org/m/main/m.gguf"] = fakeFile{data: testData(5000), lfs: lfs}
		c := f.client(t)
		c.MaxBytes = 4096
		_, err := c.Download(context.Background(), Request{Repo: "org/m", File: "m.gguf"})
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("lfs=%v: err = %v, want too large", lfs, err)
		}
	}
}

func TestBadNamesRefused(t *testing.T) {
	f := newFakeHub(t)
	c := f.client(t)
	tests := []struct {
		name string
		req  Request
	}{
		{"empty repo", Request{Repo: "", File: "m.gguf"}},
		{"three-part repo", Request{Repo: "a/b/c", File: "m.gguf"}},
		{"dot-dot repo", Request{Repo: "../etc", File: "m.gguf"}},
		{"repo with ..", Request{Repo: "org/a..b", File: "m.gguf"}},
		{"repo with --", Request{Repo: "org/a--b", File: "m.gguf"}},
		{"repo with space", Request{Repo: "org/a b", File: "m.gguf"}},
		{"empty file", Request{Repo: "org/m", File: ""}},
		{"absolute file", Request{Repo: "org/m", File: "/etc/passwd"}},
		{"file escaping", Request{Repo: "org/m", File: "../../x.gguf"}},
		{"file with inner ..", Request{Repo: "org/m", File: "a/../../x"}},
		{"file with backslash", Request{Repo: "org/m", File: `..\x.gguf`}},
		{"file with NUL", Request{Repo: "org/m", File: "m\x00.gguf"}},
		{"file with empty segment", Request{Repo: "org/m", File: "a//b"}},
		{"file named like a partial", Request{Repo: "org/m", File: "m.gguf.incomplete"}},
		{"file named like a lock", Request{Repo: "org/m", File: "m.gguf.lock"}},
		{"revision escaping", Request{Repo: "org/m", File: "m.gguf", Revision: ".."}},
		{"revision absolute", Request{Repo: "org/m", File: "m.gguf", Revision: "/main"}},
		{"bad sha256", Request{Repo: "org/m", File: "m.gguf", SHA256: "abc"}},
		{"non-hex sha256", Request{Repo: "org/m", File: "m.gguf", SHA256: strings.Repeat("g", 64)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Download(context.Background(), tc.req); err == nil {
				t.Error("accepted")
			}
		})
	}
	if n := len(f.seen()); n != 0 {
		t.Errorf("bad names made %d requests", n)
	}
	entries, _ := os.ReadDir(c.CacheDir)
	if len(entries) != 0 {
		t.Errorf("bad names created cache entries: %v", entries)
	}
}

func TestNewClient(t *testing.T) {
	tests := []struct {
		name                    string
		env                     map[string]string
		wantEndpoint, wantCache string
		wantToken               string
		wantErr                 bool
	}{
		{"defaults", map[string]string{"HOME": "/home/u"}, DefaultEndpoint, "/home/u/.cache/embedd", "", false},
		{"xdg", map[string]string{"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg"}, DefaultEndpoint, "/xdg/embedd", "", false},
		{"relative xdg ignored", map[string]string{"HOME": "/home/u", "XDG_CACHE_HOME": "rel"}, DefaultEndpoint, "/home/u/.cache/embedd", "", false},
		{"explicit", map[string]string{"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg", "EMBEDD_CACHE": "/c", "HF_ENDPOINT": "http://mirror:8080/", "HF_TOKEN": " t "},
			"http://mirror:8080", "/c", "t", false},
		{"no home", map[string]string{}, "", "", "", true},
		{"bad endpoint scheme", map[string]string{"HOME": "/h", "HF_ENDPOINT": "ftp://x"}, "", "", "", true},
		{"endpoint without host", map[string]string{"HOME": "/h", "HF_ENDPOINT": "https://"}, "", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient(mapEnv(tc.env))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("accepted: %+v", c)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Endpoint != tc.wantEndpoint || c.CacheDir != tc.wantCache || c.Token != tc.wantToken {
				t.Errorf("got endpoint %q cache %q token %q", c.Endpoint, c.CacheDir, c.Token)
			}
		})
	}
}

func TestURL(t *testing.T) {
	c := &Client{Endpoint: "https://hf.example"}
	tests := []struct{ repo, rev, file, want string }{
		{"org/m", "", "m.gguf", "https://hf.example/org/m/resolve/main/m.gguf"},
		{"org/m", "refs/pr/1", "dir/a b.gguf", "https://hf.example/org/m/resolve/refs%2Fpr%2F1/dir/a%20b.gguf"},
	}
	for _, tc := range tests {
		if got := c.URL(tc.repo, tc.rev, tc.file); got != tc.want {
			t.Errorf("URL(%q, %q, %q) = %q, want %q", tc.repo, tc.rev, tc.file, got, tc.want)
		}
	}
}

func TestProgressReported(t *testing.T) {
	data := testData(600_000)
	f := newFakeHub(t)
	f.files["org/m/main/m.gguf"] = fakeFile{data: data, lfs: true}
	c := f.client(t)
	var last Progress
	calls := 0
	c.Progress = func(p Progress) { last = p; calls++ }
	if _, err := c.Download(context.Background(), Request{Repo: "org/m", File: "m.gguf"}); err != nil {
		t.Fatal(err)
	}
	if calls < 2 || last.Done != int64(len(data)) || last.Total != int64(len(data)) {
		t.Errorf("%d progress calls, last %+v", calls, last)
	}
}

func TestStalledDownloadResumes(t *testing.T) {
	data := testData(1<<20 + 9)
	f := newFakeHub(t)
	f.files["org/m/main/m.gguf"] = fakeFile{data: data, lfs: true}
	f.cutAfter, f.cuts, f.stall = 123_456, 1, true
	c := f.client(t)
	c.IdleTimeout = 300 * time.Millisecond
	p, err := c.Download(context.Background(), Request{Repo: "org/m", File: "m.gguf"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, p), data) {
		t.Fatal("content differs after a stalled transfer")
	}
	last := f.seen()[len(f.seen())-1]
	if last.rangeHdr != "bytes=123456-" {
		t.Errorf("last request Range %q, want a resume from the stall", last.rangeHdr)
	}
}

func TestCanceledDownloadKeepsPartial(t *testing.T) {
	data := testData(2 << 20)
	f := newFakeHub(t)
	f.files["org/m/main/m.gguf"] = fakeFile{data: data, lfs: true}
	f.cutAfter, f.cuts, f.stall = 500_000, 1, true
	c := f.client(t)
	ctx, cancel := context.WithCancel(context.Background())
	c.Progress = func(p Progress) {
		if p.Done >= 500_000 {
			cancel()
		}
	}
	_, err := c.Download(ctx, Request{Repo: "org/m", File: "m.gguf"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	final, _ := c.LocalPath("org/m", "main", "m.gguf")
	if st, err := os.Stat(final + partialSuffix); err != nil || st.Size() != 500_000 {
		t.Fatalf("partial after cancel: %v %v", st, err)
	}
	c.Progress = nil
	p, err := c.Download(context.Background(), Request{Repo: "org/m", File: "m.gguf"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, p), data) {
		t.Fatal("content differs after resuming a canceled download")
	}
}
