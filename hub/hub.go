// Package hub downloads model files from the Hugging Face Hub (or any server speaking its
// `{endpoint}/{repo}/resolve/{revision}/{file}` protocol, such as a mirror) into a local cache.
//
// Downloads stream into a partial file beside their destination, resume with an HTTP Range request
// after an interruption, are checked against the SHA-256 the hub publishes for LFS files (or one the
// user configured) and are renamed into place atomically, so a file in the cache is always complete.
package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultEndpoint is the Hugging Face Hub; HF_ENDPOINT overrides it.
const DefaultEndpoint = "https://huggingface.co"

// DefaultMaxBytes bounds one downloaded file unless Client.MaxBytes says otherwise.
const DefaultMaxBytes int64 = 64 << 30

// defaultIdleTimeout is how long a download may stall before it is retried.
const defaultIdleTimeout = 60 * time.Second

// defaultAttempts is how many times a download is tried (resuming each time) before giving up.
const defaultAttempts = 4

// Errors a download can wrap; test them with errors.Is.
var (
	ErrUnauthorized = errors.New("access denied")
	ErrNotFound     = errors.New("not found")
	ErrHashMismatch = errors.New("sha256 mismatch")
	ErrTooLarge     = errors.New("file too large")
)

// LookupEnv is os.LookupEnv's signature; tests pass their own.
type LookupEnv func(name string) (string, bool)

// Progress reports a download's advance. Total is -1 when the server did not say.
type Progress struct {
	Repo, File  string
	Done, Total int64
}

// Request names one file of one repository revision.
type Request struct {
	Repo     string // "owner/name"
	File     string // path inside the repository, e.g. "model-q8_0.gguf"
	Revision string // branch, tag or commit; "" means "main"
	SHA256   string // optional expected hex digest; checked on download and on cache hits
}

// Client downloads files into CacheDir. The zero value is not usable: use NewClient.
type Client struct {
	Endpoint string // base URL without a trailing slash
	Token    string // sent as "Authorization: Bearer" to the endpoint (not to redirect targets on other hosts)
	CacheDir string
	MaxBytes int64 // largest accepted file
	Attempts int   // tries per download, each resuming the previous one
	// IdleTimeout aborts (and then resumes) a download that receives nothing for this long.
	IdleTimeout time.Duration
	HTTP        *http.Client
	// Progress, when set, is called as data arrives (often: callers throttle their output).
	Progress func(Progress)
}

// NewClient configures a client from the environment: HF_ENDPOINT (default DefaultEndpoint),
// HF_TOKEN, and the cache directory EMBEDD_CACHE, else $XDG_CACHE_HOME/embedd, else
// $HOME/.cache/embedd. lookup is usually os.LookupEnv.
func NewClient(lookup LookupEnv) (*Client, error) {
	get := func(name string) string {
		v, _ := lookup(name)
		return strings.TrimSpace(v)
	}
	endpoint := get("HF_ENDPOINT")
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("hub: HF_ENDPOINT %q is not an http(s) URL like https://huggingface.co", endpoint)
	}
	cache := get("EMBEDD_CACHE")
	if cache == "" {
		// The XDG spec says relative values are invalid and must be ignored.
		if xdg := get("XDG_CACHE_HOME"); filepath.IsAbs(xdg) {
			cache = filepath.Join(xdg, "embedd")
		} else if home := get("HOME"); filepath.IsAbs(home) {
			cache = filepath.Join(home, ".cache", "embedd")
		} else {
			return nil, errors.New("hub: no cache directory: set EMBEDD_CACHE (or XDG_CACHE_HOME or HOME)")
		}
	}
	if cache, err = filepath.Abs(cache); err != nil {
		return nil, fmt.Errorf("hub: cache directory: %w", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.ResponseHeaderTimeout = 60 * time.Second
	return &Client{
		Endpoint:    strings.TrimRight(endpoint, "/"),
		Token:       get("HF_TOKEN"),
		CacheDir:    cache,
		MaxBytes:    DefaultMaxBytes,
		Attempts:    defaultAttempts,
		IdleTimeout: defaultIdleTimeout,
		HTTP:        &http.Client{Transport: transport},
	}, nil
}

// LocalPath is where a file is cached: {cache}/{owner--name}/{revision}/{file}. A revision with
// slashes (refs/pr/1) is URL-escaped into one directory name.
func (c *Client) LocalPath(repo, revision, file string) (string, error) {
	if revision == "" {
		revision = defaultRevision
	}
	if err := ValidateRepo(repo); err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	if err := ValidateRevision(revision); err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	if err := ValidateFile(file); err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	if c.CacheDir == "" {
		return "", errors.New("hub: no cache directory configured")
	}
	p := filepath.Join(c.CacheDir, strings.ReplaceAll(repo, "/", "--"), url.PathEscape(revision), filepath.FromSlash(file))
	// Validation already rules escapes out; this keeps it true whatever changes above.
	if rel, err := filepath.Rel(c.CacheDir, p); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("hub: %s/%s escapes the cache directory", repo, file)
	}
	return p, nil
}

// URL is the resolve URL of a file: {endpoint}/{repo}/resolve/{revision}/{file}.
func (c *Client) URL(repo, revision, file string) string {
	if revision == "" {
		revision = defaultRevision
	}
	return c.Endpoint + "/" + escapeSegments(repo) + "/resolve/" + url.PathEscape(revision) + "/" + escapeSegments(file)
}

// pathLocks serializes downloads of one destination within the process.
var pathLocks sync.Map // path -> *sync.Mutex

func lockPath(p string) func() {
	v, _ := pathLocks.LoadOrStore(p, new(sync.Mutex))
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// Download returns the local path of the requested file, downloading it unless the cache already
// holds it. A cached file is trusted as is (it was verified before it was renamed into place) unless
// the request names a SHA256, which is then checked; a cached file that fails it is fetched again.
// Pin a commit revision or a sha256 to pick up changes of a branch such as "main": a branch's file
// is not re-fetched while it is cached.
func (c *Client) Download(ctx context.Context, req Request) (string, error) {
	if err := req.validate(); err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	final, err := c.LocalPath(req.Repo, req.Revision, req.File)
	if err != nil {
		return "", err
	}
	name := req.Repo + "/" + req.File + "@" + req.Revision
	unlock := lockPath(final)
	defer unlock()

	if ok, err := cached(final, req.SHA256); ok || err != nil {
		if err != nil {
			return "", fmt.Errorf("hub: %s: %w", name, err)
		}
		return final, nil
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", fmt.Errorf("hub: %s: cache directory: %w", name, err)
	}
	// The lock file stays beside the download: removing it would let another process lock a
	// different inode of the same name.
	unlockFile, err := lockFile(final + lockSuffix)
	if err != nil {
		return "", fmt.Errorf("hub: %s: %w", name, err)
	}
	defer unlockFile()
	// Another process may have finished the download while this one waited for the lock.
	if ok, err := cached(final, req.SHA256); ok || err != nil {
		if err != nil {
			return "", fmt.Errorf("hub: %s: %w", name, err)
		}
		return final, nil
	}

	partial := final + partialSuffix
	attempts := max(c.Attempts, 1)
	var want string
	for i := 1; ; i++ {
		want, err = c.fetch(ctx, req, name, partial)
		if err == nil {
			break
		}
		var re *retryable
		if !errors.As(err, &re) || i >= attempts || ctx.Err() != nil {
			return "", err
		}
		select { // a short, growing pause before resuming
		case <-time.After(time.Duration(i) * 200 * time.Millisecond):
		case <-ctx.Done():
			return "", fmt.Errorf("hub: %s: %w", name, ctx.Err())
		}
	}

	if want != "" {
		got, err := fileSHA256(partial)
		if err != nil {
			return "", fmt.Errorf("hub: %s: %w", name, err)
		}
		if got != want {
			_ = os.Remove(partial)
			return "", fmt.Errorf("hub: %s: %w: downloaded file has %s, expected %s (partial file removed)", name, ErrHashMismatch, got, want)
		}
	}
	if err := os.Rename(partial, final); err != nil {
		return "", fmt.Errorf("hub: %s: %w", name, err)
	}
	return final, nil
}

// cached reports whether final holds the file: it exists and, when sha is given, has that hash. A
// cached file with another hash is removed so that it is downloaded again.
func cached(final, sha string) (bool, error) {
	st, err := os.Stat(final)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("cache: %w", err)
	case !st.Mode().IsRegular():
		return false, fmt.Errorf("cache entry %s is not a regular file", final)
	case sha == "":
		return true, nil
	}
	got, err := fileSHA256(final)
	if err != nil {
		return false, err
	}
	if got == sha {
		return true, nil
	}
	if err := os.Remove(final); err != nil {
		return false, fmt.Errorf("removing cache entry with the wrong sha256: %w", err)
	}
	return false, nil
}

// retryable marks an error after which the download may resume (network trouble, 5xx).
type retryable struct{ err error }

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// fetch makes one attempt at completing partial and returns the SHA-256 the file must have ("" if
// neither the user nor the hub gave one).
func (c *Client) fetch(ctx context.Context, req Request, name, partial string) (string, error) {
	var offset int64
	if st, err := os.Stat(partial); err == nil {
		offset = st.Size()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("hub: %s: partial download: %w", name, err)
	}

	// A stalled transfer would otherwise hang forever: every read pushes the deadline back, and
	// when it passes the request is canceled (and, the parent context being alive, retried).
	idle := c.IdleTimeout
	if idle <= 0 {
		idle = defaultIdleTimeout
	}
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stalled := time.AfterFunc(idle, cancel)
	defer stalled.Stop()

	hreq, err := http.NewRequestWithContext(reqCtx, http.MethodGet, c.URL(req.Repo, req.Revision, req.File), nil)
	if err != nil {
		return "", fmt.Errorf("hub: %s: %w", name, err)
	}
	hreq.Header.Set("User-Agent", "embedd-hub/1")
	if c.Token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if offset > 0 {
		hreq.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	// The hub answers LFS files with a redirect to a CDN; the hash and size are headers of that
	// redirect (X-Linked-Etag, X-Linked-Size), not of the CDN's answer, so keep the first one.
	var hubHeader http.Header
	base := c.HTTP
	if base == nil {
		base = http.DefaultClient
	}
	hc := *base
	hc.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("more than 10 redirects")
		}
		if hubHeader == nil && r.Response != nil {
			hubHeader = r.Response.Header.Clone()
		}
		return nil
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("hub: %s: %w", name, ctx.Err())
		}
		if reqCtx.Err() != nil {
			return "", &retryable{fmt.Errorf("hub: %s: no response for %s", name, idle)}
		}
		return "", &retryable{fmt.Errorf("hub: %s: %w", name, err)}
	}
	defer resp.Body.Close()

	header := func(key string) string {
		if hubHeader != nil && hubHeader.Get(key) != "" {
			return hubHeader.Get(key)
		}
		return resp.Header.Get(key)
	}

	total := int64(-1)
	switch resp.StatusCode {
	case http.StatusOK:
		offset = 0 // the server ignored the range (or there was none): start over
		total = resp.ContentLength
	case http.StatusPartialContent:
		start, size, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || start != offset {
			_ = os.Remove(partial)
			return "", &retryable{fmt.Errorf("hub: %s: server answered the resume at byte %d with Content-Range %q; starting over", name, offset, resp.Header.Get("Content-Range"))}
		}
		total = size
	case http.StatusRequestedRangeNotSatisfiable:
		// The partial file is not a prefix of the remote one (the file changed, or it was complete).
		_ = os.Remove(partial)
		return "", &retryable{fmt.Errorf("hub: %s: partial download does not match the remote file; starting over", name)}
	case http.StatusUnauthorized, http.StatusForbidden:
		return "", fmt.Errorf("hub: %s: %w (HTTP %d): the repository is gated or private, or the revision does not exist; set HF_TOKEN to an access token that may read it", name, ErrUnauthorized, resp.StatusCode)
	case http.StatusNotFound:
		return "", fmt.Errorf("hub: %s: %w (HTTP 404): check the repository id, the file name and the revision", name, ErrNotFound)
	default:
		err := fmt.Errorf("hub: %s: %s from %s", name, resp.Status, resp.Request.URL.Host)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return "", &retryable{err}
		}
		return "", err
	}
	if ls := header("X-Linked-Size"); ls != "" {
		if n, err := strconv.ParseInt(ls, 10, 64); err == nil && n >= 0 {
			total = n
		}
	}
	if total > c.maxBytes() {
		return "", fmt.Errorf("hub: %s: %w: %d bytes, the limit is %d", name, ErrTooLarge, total, c.maxBytes())
	}

	want := req.SHA256
	hubSHA := etagSHA256(header("X-Linked-Etag"))
	if hubSHA == "" {
		hubSHA = etagSHA256(header("ETag"))
	}
	if want != "" && hubSHA != "" && hubSHA != want {
		_ = os.Remove(partial)
		return "", fmt.Errorf("hub: %s: %w: configured sha256 %s but the hub publishes %s", name, ErrHashMismatch, want, hubSHA)
	}
	if want == "" {
		want = hubSHA
	}

	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if offset > 0 {
		flags = os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(partial, flags, 0o644)
	if err != nil {
		return "", fmt.Errorf("hub: %s: %w", name, err)
	}
	done, copyErr := c.copyBody(f, resp.Body, req, offset, total, func() { stalled.Reset(idle) })
	if copyErr == nil {
		copyErr = f.Sync()
	}
	if cerr := f.Close(); copyErr == nil && cerr != nil {
		copyErr = cerr
	}
	if copyErr != nil {
		var re *retryable
		if errors.Is(copyErr, ErrTooLarge) {
			_ = os.Remove(partial)
		}
		if errors.As(copyErr, &re) {
			if ctx.Err() == nil && reqCtx.Err() != nil {
				return "", &retryable{fmt.Errorf("hub: %s: download stalled at byte %d: no data for %s", name, done, idle)}
			}
			if ctx.Err() != nil {
				return "", fmt.Errorf("hub: %s: %w (the partial download is kept and resumed next time)", name, ctx.Err())
			}
			return "", &retryable{fmt.Errorf("hub: %s: %w", name, copyErr)}
		}
		return "", fmt.Errorf("hub: %s: %w", name, copyErr)
	}
	if total >= 0 && done != total {
		return "", &retryable{fmt.Errorf("hub: %s: download ended at byte %d of %d", name, done, total)}
	}
	return want, nil
}

func (c *Client) maxBytes() int64 {
	if c.MaxBytes > 0 {
		return c.MaxBytes
	}
	return DefaultMaxBytes
}

// copyBody appends body to f, enforcing the size cap, and returns the file's size afterwards.
// Read errors are retryable (the connection dropped); write errors are not (the disk is full).
func (c *Client) copyBody(f *os.File, body io.Reader, req Request, done, total int64, alive func()) (int64, error) {
	buf := make([]byte, 256<<10)
	limit := c.maxBytes()
	if total >= 0 && total < limit {
		limit = total
	}
	report := func() {
		if c.Progress != nil {
			c.Progress(Progress{Repo: req.Repo, File: req.File, Done: done, Total: total})
		}
	}
	report()
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			alive()
			if int64(n) > limit-done {
				if total >= 0 {
					return done, fmt.Errorf("server sent more than the announced %d bytes", total)
				}
				return done, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
			}
			if _, werr := f.Write(buf[:n]); werr != nil {
				return done, fmt.Errorf("writing %s: %w", f.Name(), werr)
			}
			done += int64(n)
			report()
		}
		if rerr == io.EOF {
			return done, nil
		}
		if rerr != nil {
			return done, &retryable{fmt.Errorf("download interrupted at byte %d: %w", done, rerr)}
		}
	}
}

// parseContentRange reads "bytes START-END/SIZE" (SIZE may be "*", returned as -1).
func parseContentRange(v string) (start, size int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	rng, sz, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	s, e, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	start, err1 := strconv.ParseInt(s, 10, 64)
	end, err2 := strconv.ParseInt(e, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	size = -1
	if sz != "*" {
		if size, err = strconv.ParseInt(sz, 10, 64); err != nil || size <= end {
			return 0, 0, fmt.Errorf("bad Content-Range %q", v)
		}
	}
	return start, size, nil
}

// fileSHA256 hashes a file.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
