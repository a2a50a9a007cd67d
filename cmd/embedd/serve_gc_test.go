package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The server's GC default applies only when GOGC is not in the environment.
func TestSetGCDefault(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	cases := []struct {
		name string
		env  map[string]string
		want int
	}{
		{"no GOGC", map[string]string{}, serveGCPercent},
		{"GOGC set", map[string]string{"GOGC": "50"}, 100},
		{"GOGC set empty", map[string]string{"GOGC": ""}, serveGCPercent},
		{"GOGC off", map[string]string{"GOGC": "off"}, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			setGCDefault(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if got := debug.SetGCPercent(100); got != tc.want {
				t.Errorf("GC percent %d, want %d", got, tc.want)
			}
		})
	}
}

// The real server collects its heap once idle after enough garbage, and counts it in /metrics;
// GOGC=off in the environment turns the idle collections off with the runtime's.
func TestServeCollectsWhenIdle(t *testing.T) {
	bin := buildBinary(t)
	for _, tc := range []struct {
		name string
		env  []string
		want bool
	}{{"default", nil, true}, {"GOGC=off", []string{"GOGC=off"}, false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath := writeServeTestConfig(t, t.TempDir(), "")
			port := serveFreePort(t)
			base := "http://127.0.0.1:" + strconv.Itoa(port)
			cmd := exec.Command(bin, "serve", "--config", cfgPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
			cmd.Env = append(append(os.Environ(), "EMBEDD_LOG_LEVEL=warn"), tc.env...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			serveWaitReady(t, base)
			// Garbage until the heap holds 8 MB, half the server's first heap goal (GOGC 400 on a
			// heap of 1-2 MB live): past the quarter of the way an idle collection waits for.
			inputs := make([]string, 64)
			for i := range inputs {
				inputs[i] = fmt.Sprintf("sentence number %d of the garbage the server makes", i)
			}
			body, _ := json.Marshal(map[string]any{"model": "all-MiniLM-L6-v2", "input": inputs})
			for metricValue(t, base, "go_memstats_heap_alloc_bytes") < 8<<20 {
				resp, err := http.Post(base+"/v1/embeddings", "application/json", bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d", resp.StatusCode)
				}
			}
			deadline := time.Now().Add(3 * time.Second)
			for {
				n := metricValue(t, base, "embedd_idle_gc_total")
				if tc.want && n >= 1 {
					return
				}
				if time.Now().After(deadline) {
					if tc.want {
						t.Fatal("no idle collection within 3 s of the last request")
					}
					if n != 0 {
						t.Fatalf("%v idle collections with GOGC=off", n)
					}
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// metricValue scrapes the value of an unlabelled metric from the server's /metrics.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s %q", name, v)
			}
			return n
		}
	}
	t.Fatalf("no %s in /metrics:\n%.2000s", name, data)
	return 0
}
