package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/embedd-dev/embedd/internal/testmodel"
)

func serveFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func writeServeTestConfig(t *testing.T, dir, aliases string) string {
	t.Helper()
	model, err := testmodel.RealModelPath()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "models.toml")
	body := fmt.Sprintf("[[models]]\nid = \"all-MiniLM-L6-v2\"\npath = %q\ntype = \"embeddings\"\naliases = [%s]\n", model, aliases)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var serveMetricLine = regexp.MustCompile(`(?m)^(embedd_requests_total\{[^}]*outcome="ok"[^}]*\}|embedd_queue_requests\{[^}]*\}) (\S+)$`)

// serveAcceptedCount is the number of requests the server has finished OK plus those in its queue.
func serveAcceptedCount(base string) int {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	total := 0.0
	for _, m := range serveMetricLine.FindAllStringSubmatch(string(body), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		total += v
	}
	return int(total)
}

// The built binary reloads on SIGHUP, and on SIGTERM during load it stops accepting, completes every
// accepted request and exits 0.
func TestServeSignals(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cfgPath := writeServeTestConfig(t, dir, `"minilm"`)
	port := serveFreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)

	cmd := exec.Command(bin, "serve", "--config", cfgPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "EMBEDD_LOG_LEVEL=warn", "EMBEDD_QUEUE_LENGTH=1000")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var logMu sync.Mutex
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			logs.WriteString(sc.Text() + "\n")
			logMu.Unlock()
		}
	}()
	exited := make(chan error, 1)
	go func() { <-logDone; exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	logText := func() string { logMu.Lock(); defer logMu.Unlock(); return logs.String() }

	serveWaitReady(t, base)

	// SIGHUP: a new alias appears without a restart.
	writeServeTestConfig(t, dir, `"minilm", "after-hup"`)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	serveWaitUntil(t, "alias after SIGHUP", func() bool {
		status, _ := servePost(base, map[string]any{"model": "after-hup", "input": "x"})
		return status == 200
	})

	// Load: clients with large requests, all accepted before SIGTERM.
	const clients = 12
	inputs := make([]string, 48)
	for i := range inputs {
		inputs[i] = strings.Repeat(fmt.Sprintf("sentence number %d of the shutdown test ", i), 3)
	}
	before := serveAcceptedCount(base)
	var wg sync.WaitGroup
	statuses := make([]int, clients)
	errs := make([]error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[c], errs[c] = servePost(base, map[string]any{"model": "minilm", "input": inputs})
		}()
	}
	serveWaitUntil(t, "all requests accepted", func() bool { return serveAcceptedCount(base)-before >= clients })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for c := range clients {
		if errs[c] != nil || statuses[c] != 200 {
			t.Errorf("client %d: status %d, err %v", c, statuses[c], errs[c])
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, logText())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not exit after SIGTERM\n%s", logText())
	}
	if _, err := servePost(base, map[string]any{"model": "minilm", "input": "late"}); err == nil {
		t.Error("a request after shutdown was answered")
	}
}

func servePost(base string, body any) (int, error) {
	raw, _ := json.Marshal(body)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 60 * time.Second}
	resp, err := client.Post(base+"/v1/embeddings", "application/json", bytes.NewReader(raw))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Data []struct {
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode == 200 && (len(out.Data) == 0 || len(out.Data[0].Embedding) != 384) {
		return resp.StatusCode, fmt.Errorf("malformed answer")
	}
	return resp.StatusCode, nil
}

// serveWaitReady waits until the server at base answers /health/ready with 200.
func serveWaitReady(t *testing.T, base string) {
	t.Helper()
	serveWaitUntil(t, "ready", func() bool {
		resp, err := http.Get(base + "/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func serveWaitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
