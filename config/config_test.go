package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeConfig writes a models.toml and a dummy model file beside it in a temp dir.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.gguf"), []byte("GGUF"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "models.toml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const goodModel = `
[[models]]
id = "a"
path = "m.gguf"
type = "embeddings"
aliases = ["alias-a"]
`

// hubModel is a model entry with the given hub keys instead of a path.
func hubModel(keys ...string) string {
	return "[[models]]\nid = \"h\"\ntype = \"embeddings\"\n" + strings.Join(keys, "\n") + "\n"
}

func TestHubSource(t *testing.T) {
	sha := strings.Repeat("AB", 32)
	path := writeConfig(t, goodModel+hubModel(`hub = "org/model"`, `file = "q8/m.gguf"`, `revision = "refs/pr/2"`, `sha256 = "`+sha+`"`, `preload = false`))
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Models[1]
	if !h.FromHub() || cfg.Models[0].FromHub() {
		t.Errorf("FromHub: %v %v", cfg.Models[0].FromHub(), h.FromHub())
	}
	if h.Hub != "org/model" || h.File != "q8/m.gguf" || h.Revision != "refs/pr/2" || h.Path != "" {
		t.Errorf("hub model = %+v", h)
	}
	if h.SHA256 != strings.ToLower(sha) {
		t.Errorf("sha256 %q not normalized to lower case", h.SHA256)
	}
	// A validated config validates again unchanged (flags call Validate after Set).
	if err := cfg.Validate(); err != nil {
		t.Errorf("revalidating: %v", err)
	}
}

func env(vars map[string]string) LookupEnv {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func TestLoadGood(t *testing.T) {
	path := writeConfig(t, `
[server]
port = 9000
api_key = "k"
request_timeout = "5s"
[batching]
max_wait = "2ms"
queue_length = 3
`+goodModel+`
[[models]]
id = "b"
path = "m.gguf"
type = "rerank"
preload = false
normalize = false
max_tokens = 128
query_prefix = "query: "
`)
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Port != 9000 || cfg.Server.APIKey != "k" || cfg.Server.RequestTimeout.Duration != 5*time.Second {
		t.Errorf("server = %+v", cfg.Server)
	}
	if cfg.Server.Host != "0.0.0.0" || cfg.Batching.MaxBatchInputs != 128 {
		t.Errorf("defaults not applied: %+v %+v", cfg.Server, cfg.Batching)
	}
	if cfg.Batching.MaxWait.Duration != 2*time.Millisecond || cfg.Batching.QueueLength != 3 {
		t.Errorf("batching = %+v", cfg.Batching)
	}
	if len(cfg.Models) != 2 {
		t.Fatalf("%d models", len(cfg.Models))
	}
	a, b := cfg.Models[0], cfg.Models[1]
	if !a.Preloaded() || !a.Normalized() || b.Preloaded() || b.Normalized() || b.MaxTokens != 128 || b.QueryPrefix != "query: " {
		t.Errorf("models = %+v", cfg.Models)
	}
	if want := filepath.Join(filepath.Dir(path), "m.gguf"); a.Path != want {
		t.Errorf("path %q not resolved against the config dir (want %q)", a.Path, want)
	}
}

func TestShippedConfig(t *testing.T) {
	cfg, err := Load("../models.toml", nil)
	if err != nil {
		t.Fatalf("the shipped models.toml must load: %v", err)
	}
	if cfg.Server.Port != 7860 || cfg.Server.Host != "0.0.0.0" {
		t.Errorf("shipped defaults changed: %s", cfg.Addr())
	}
	m := cfg.Models[0]
	if m.ID != "all-MiniLM-L6-v2" || m.Type != TypeEmbeddings {
		t.Errorf("first model = %+v", m)
	}
	found := false
	for _, a := range m.Aliases {
		found = found || a == "sentence-transformers/all-MiniLM-L6-v2"
	}
	if !found {
		t.Errorf("alias sentence-transformers/all-MiniLM-L6-v2 missing: %v", m.Aliases)
	}
}

func TestBadConfigs(t *testing.T) {
	cases := []struct {
		name string
		body string
		want []string // substrings of the error: key and reason
	}{
		{"unknown top key", "colour = 1\n" + goodModel, []string{"colour", "unknown key"}},
		{"unknown server key", "[server]\nprot = 1\n" + goodModel, []string{"server.prot", "unknown key"}},
		{"unknown model key", goodModel + "pth = \"x\"\n", []string{"models.pth", "unknown key"}},
		{"missing file", `
[[models]]
id = "a"
path = "nope.gguf"
type = "embeddings"
`, []string{"models[0].path", "does not exist"}},
		{"missing path", "[[models]]\nid = \"a\"\ntype = \"embeddings\"\n", []string{"models[0].path", "missing"}},
		{"bad type", `
[[models]]
id = "a"
path = "m.gguf"
type = "embedding"
`, []string{"models[0].type", "not one of"}},
		{"duplicate id", goodModel + goodModel, []string{"models[1].id", "already declared"}},
		{"alias clashes with id", goodModel + `
[[models]]
id = "b"
path = "m.gguf"
type = "embeddings"
aliases = ["a"]
`, []string{"models[1].aliases[0]", "already declared by models[0].id"}},
		{"bad port", "[server]\nport = 70000\n" + goodModel, []string{"server.port", "outside"}},
		{"port of wrong type", "[server]\nport = \"x\"\n" + goodModel, []string{"port"}},
		{"negative threads", "[server]\nthreads = -1\n" + goodModel, []string{"server.threads"}},
		{"bad log level", "[server]\nlog_level = \"loud\"\n" + goodModel, []string{"server.log_level"}},
		{"bad duration", "[server]\nrequest_timeout = \"soon\"\n" + goodModel, []string{"request_timeout", "duration"}},
		{"zero queue", "[batching]\nqueue_length = 0\n" + goodModel, []string{"batching.queue_length"}},
		{"huge max wait", "[batching]\nmax_wait = \"1h\"\n" + goodModel, []string{"batching.max_wait"}},
		{"bad max tokens", goodModel + "max_tokens = -5\n", []string{"models[0].max_tokens"}},
		{"bad id", "[[models]]\nid = \" x\"\npath = \"m.gguf\"\ntype = \"embeddings\"\n", []string{"models[0].id"}},
		{"no models", "[server]\nport = 1\n", []string{"models", "no [[models]]"}},
		{"syntax error", "[server\n", []string{"models.toml"}},
		{"path and hub", goodModel + "hub = \"org/m\"\nfile = \"m.gguf\"\n", []string{"models[0].path", "either path or hub"}},
		{"hub without file", hubModel(`hub = "org/m"`), []string{"models[0].file", "missing"}},
		{"file without hub", hubModel(`file = "m.gguf"`), []string{"models[0].hub", "missing"}},
		{"sha256 without hub", goodModel + "sha256 = \"" + strings.Repeat("a", 64) + "\"\n", []string{"models[0].hub", "missing"}},
		{"bad hub repo", hubModel(`hub = "../etc"`, `file = "m.gguf"`), []string{"models[0].hub", "repository id"}},
		{"hub repo with three parts", hubModel(`hub = "a/b/c"`, `file = "m.gguf"`), []string{"models[0].hub"}},
		{"hub file escaping", hubModel(`hub = "org/m"`, `file = "../../m.gguf"`), []string{"models[0].file", ".."}},
		{"hub file absolute", hubModel(`hub = "org/m"`, `file = "/etc/m.gguf"`), []string{"models[0].file", "relative"}},
		{"bad revision", hubModel(`hub = "org/m"`, `file = "m.gguf"`, `revision = "a/../b"`), []string{"models[0].revision"}},
		{"bad sha256", hubModel(`hub = "org/m"`, `file = "m.gguf"`, `sha256 = "abc"`), []string{"models[0].sha256", "64 hex"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.body)
			_, err := Load(path, nil)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("error does not name the file %s: %v", path, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q: %v", w, msg)
				}
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	path := writeConfig(t, "[server]\nport = 9000\nhost = \"127.0.0.1\"\n"+goodModel)
	cfg, err := Load(path, env(map[string]string{
		"EMBEDD_PORT":             "9100",
		"EMBEDD_API_KEY":          "secret",
		"EMBEDD_THREADS":          "1",
		"EMBEDD_LOG_LEVEL":        "debug",
		"EMBEDD_MAX_WAIT":         "3ms",
		"EMBEDD_QUEUE_LENGTH":     "7",
		"EMBEDD_MAX_BATCH_TOKENS": "1024",
		"EMBEDD_REQUEST_TIMEOUT":  "9s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Port != 9100 || cfg.Server.Host != "127.0.0.1" || cfg.Server.APIKey != "secret" ||
		cfg.Server.Threads != 1 || cfg.Server.LogLevel != "debug" || cfg.Server.RequestTimeout.Duration != 9*time.Second {
		t.Errorf("server = %+v", cfg.Server)
	}
	if cfg.Batching.MaxWait.Duration != 3*time.Millisecond || cfg.Batching.QueueLength != 7 || cfg.Batching.MaxBatchTokens != 1024 {
		t.Errorf("batching = %+v", cfg.Batching)
	}
	if cfg.Addr() != "127.0.0.1:9100" {
		t.Errorf("addr %s", cfg.Addr())
	}

	bad := []struct{ name, val, want string }{
		{"EMBEDD_PORT", "eighty", "EMBEDD_PORT"},
		{"EMBEDD_PORT", "99999", "server.port"},
		{"EMBEDD_MAX_WAIT", "later", "EMBEDD_MAX_WAIT"},
		{"EMBEDD_QUEUE_LENGTH", "0", "batching.queue_length"},
	}
	for _, b := range bad {
		_, err := Load(path, env(map[string]string{b.name: b.val}))
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s=%s: error %v, want one naming %s", b.name, b.val, err, b.want)
		}
	}
}

func TestSetUnknownKey(t *testing.T) {
	cfg := Defaults()
	if err := cfg.Set("server.nope", "1"); err == nil {
		t.Error("unknown key accepted")
	}
	if err := cfg.Set("server.port", "81"); err != nil || cfg.Server.Port != 81 {
		t.Errorf("set port: %v %d", err, cfg.Server.Port)
	}
}
