// Package config reads embedd's models.toml: the server settings, the batching knobs and the set of
// served models. Environment variables override the file and command-line flags override both; every
// value is validated so that a bad file stops start-up (or a reload) with an error naming the file, the
// key and the reason.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/embedd-dev/embedd/hub"
)

// Model kinds, as written in models.toml's `type` key. They match the engine's model.Kind values.
const (
	TypeEmbeddings       = "embeddings"
	TypeSparseEmbeddings = "sparse-embeddings"
	TypeRerank           = "rerank"
)

// Limits that keep a typo from allocating the machine away.
const (
	maxPort          = 65535
	maxThreads       = 1024
	maxModelTokens   = 1 << 16
	maxBatchTokens   = 1 << 22
	maxBatchInputs   = 1 << 16
	maxQueueLength   = 1 << 20
	maxBodyBytes     = 1 << 30
	maxRequestInputs = 1 << 20
)

// Duration is a time.Duration written in TOML as a Go duration string ("250ms", "30s").
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("not a duration like \"250ms\" or \"30s\": %q", text)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration back in Go's notation.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Server holds the HTTP server settings ([server] table).
type Server struct {
	Host string `toml:"host"`
	Port int    `toml:"port"`
	// Threads is the number of compute threads of the one shared engine pool; 0 means one per core.
	// It is capped at the number of cores: the engine never runs more compute threads than that.
	Threads int `toml:"threads"`
	// APIKey, when set, is required as `Authorization: Bearer <key>` on every /v1 call and guards
	// /admin/reload (which is refused when no key is configured).
	APIKey   string `toml:"api_key"`
	LogLevel string `toml:"log_level"`
	// MaxBodyBytes bounds a request body (413 above it).
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// MaxRequestInputs bounds the number of inputs in one request (413 above it).
	MaxRequestInputs int `toml:"max_request_inputs"`
	// RequestTimeout bounds a request's time from arrival to answer (503 after it).
	RequestTimeout Duration `toml:"request_timeout"`
	// ShutdownTimeout bounds how long SIGTERM waits for in-flight requests.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
}

// Batching holds the dynamic batcher's knobs ([batching] table).
type Batching struct {
	// MaxBatchTokens is the token budget of one engine batch (sum of sequence lengths).
	MaxBatchTokens int `toml:"max_batch_tokens"`
	// MaxBatchInputs is the largest number of sequences in one engine batch.
	MaxBatchInputs int `toml:"max_batch_inputs"`
	// MaxWait is how long a batch may wait for more arrivals once the engine is free; 0 runs at once.
	MaxWait Duration `toml:"max_wait"`
	// QueueLength is the number of requests that may wait per model; more are answered 429.
	QueueLength int `toml:"queue_length"`
}

// Model declares one served model ([[models]] entries).
type Model struct {
	ID string `toml:"id"`
	// Path is the local GGUF file. A model gives either Path or Hub + File.
	Path string `toml:"path"`
	// Hub ("owner/repo"), File, Revision (default "main") and SHA256 (optional hex digest) name a
	// GGUF file on the Hugging Face Hub, downloaded into the cache when the model is loaded.
	Hub      string   `toml:"hub"`
	File     string   `toml:"file"`
	Revision string   `toml:"revision"`
	SHA256   string   `toml:"sha256"`
	Type     string   `toml:"type"`
	Aliases  []string `toml:"aliases"`
	// Preload loads the model at start-up (readiness waits for it); otherwise it loads on first use.
	Preload *bool `toml:"preload"`
	// MaxTokens caps a sequence's length including [CLS]/[SEP]; 0 means the model's context length.
	MaxTokens int `toml:"max_tokens"`
	// Normalize L2-normalizes dense embeddings (default true).
	Normalize *bool `toml:"normalize"`
	// QueryPrefix and DocumentPrefix are prepended to texts of requests with "input_type": "query"
	// or "document" (instruction prompts of models such as E5 or BGE).
	QueryPrefix    string `toml:"query_prefix"`
	DocumentPrefix string `toml:"document_prefix"`
}

// FromHub reports whether the model file comes from the Hugging Face Hub rather than a local path.
func (m Model) FromHub() bool { return m.Hub != "" }

// Preloaded reports whether the model loads at start-up (the default).
func (m Model) Preloaded() bool { return m.Preload == nil || *m.Preload }

// Normalized reports whether dense outputs are L2-normalized (the default).
func (m Model) Normalized() bool { return m.Normalize == nil || *m.Normalize }

// Config is a validated models.toml with environment overrides applied.
type Config struct {
	// File is the absolute path of the file it was read from; relative model paths are resolved
	// against its directory.
	File     string   `toml:"-"`
	Server   Server   `toml:"server"`
	Batching Batching `toml:"batching"`
	Models   []Model  `toml:"models"`
}

// Defaults returns the settings used where models.toml and the environment say nothing.
func Defaults() Config {
	return Config{
		Server: Server{
			Host:             "0.0.0.0",
			Port:             7860,
			LogLevel:         "info",
			MaxBodyBytes:     8 << 20,
			MaxRequestInputs: 2048,
			RequestTimeout:   Duration{60 * time.Second},
			ShutdownTimeout:  Duration{30 * time.Second},
		},
		Batching: Batching{
			MaxBatchTokens: 8192,
			MaxBatchInputs: 128,
			QueueLength:    256,
		},
	}
}

// EnvVar documents one environment override.
type EnvVar struct{ Name, Key string }

// EnvVars lists the environment variables that override models.toml (EMBEDD_CONFIG, which names the
// file itself, is read by the command). The order is the order they are applied.
var EnvVars = []EnvVar{
	{"EMBEDD_HOST", "server.host"},
	{"EMBEDD_PORT", "server.port"},
	{"EMBEDD_THREADS", "server.threads"},
	{"EMBEDD_API_KEY", "server.api_key"},
	{"EMBEDD_LOG_LEVEL", "server.log_level"},
	{"EMBEDD_MAX_BODY_BYTES", "server.max_body_bytes"},
	{"EMBEDD_MAX_REQUEST_INPUTS", "server.max_request_inputs"},
	{"EMBEDD_REQUEST_TIMEOUT", "server.request_timeout"},
	{"EMBEDD_SHUTDOWN_TIMEOUT", "server.shutdown_timeout"},
	{"EMBEDD_MAX_BATCH_TOKENS", "batching.max_batch_tokens"},
	{"EMBEDD_MAX_BATCH_INPUTS", "batching.max_batch_inputs"},
	{"EMBEDD_MAX_WAIT", "batching.max_wait"},
	{"EMBEDD_QUEUE_LENGTH", "batching.queue_length"},
}

// LookupEnv is os.LookupEnv's signature; tests pass their own.
type LookupEnv func(name string) (string, bool)

// Load reads, overrides and validates a models.toml. lookup may be nil (no environment overrides).
func Load(path string, lookup LookupEnv) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return Parse(abs, data, lookup)
}

// Parse decodes models.toml content read from file (used for messages and to resolve relative model
// paths), applies environment overrides and validates the result.
func Parse(file string, data []byte, lookup LookupEnv) (*Config, error) {
	cfg := Defaults()
	cfg.File = file
	md, err := toml.Decode(string(data), &cfg)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("config %s: %s: unknown key", file, strings.Join(keys, ", "))
	}
	if lookup != nil {
		if err := cfg.applyEnv(lookup); err != nil {
			return nil, fmt.Errorf("config %s: %w", file, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *Config) applyEnv(lookup LookupEnv) error {
	for _, ev := range EnvVars {
		val, ok := lookup(ev.Name)
		if !ok {
			continue
		}
		if err := c.Set(ev.Key, val); err != nil {
			return fmt.Errorf("environment %s: %w", ev.Name, err)
		}
	}
	return nil
}

// Set overrides one setting by its models.toml key (e.g. "server.port") from a string, as the
// environment and flags give it. Call Validate afterwards.
func (c *Config) Set(key, val string) error {
	atoi := func(dst *int) error {
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil {
			return fmt.Errorf("%s: %q is not an integer", key, val)
		}
		*dst = n
		return nil
	}
	dur := func(dst *Duration) error { return dst.UnmarshalText([]byte(strings.TrimSpace(val))) }
	var err error
	switch key {
	case "server.host":
		c.Server.Host = val
	case "server.port":
		err = atoi(&c.Server.Port)
	case "server.threads":
		err = atoi(&c.Server.Threads)
	case "server.api_key":
		c.Server.APIKey = val
	case "server.log_level":
		c.Server.LogLevel = val
	case "server.max_body_bytes":
		n, perr := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if perr != nil {
			return fmt.Errorf("%s: %q is not an integer", key, val)
		}
		c.Server.MaxBodyBytes = n
	case "server.max_request_inputs":
		err = atoi(&c.Server.MaxRequestInputs)
	case "server.request_timeout":
		err = dur(&c.Server.RequestTimeout)
	case "server.shutdown_timeout":
		err = dur(&c.Server.ShutdownTimeout)
	case "batching.max_batch_tokens":
		err = atoi(&c.Batching.MaxBatchTokens)
	case "batching.max_batch_inputs":
		err = atoi(&c.Batching.MaxBatchInputs)
	case "batching.max_wait":
		err = dur(&c.Batching.MaxWait)
	case "batching.queue_length":
		err = atoi(&c.Batching.QueueLength)
	default:
		return fmt.Errorf("%s: unknown setting", key)
	}
	if err != nil && !strings.HasPrefix(err.Error(), key) {
		err = fmt.Errorf("%s: %w", key, err)
	}
	return err
}

var (
	idPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$`)
	logLevels  = map[string]bool{"debug": true, "info": true, "warn": true, "error": true}
	modelTypes = map[string]bool{TypeEmbeddings: true, TypeSparseEmbeddings: true, TypeRerank: true}
)

// Validate checks every setting and model; the error names the file, the key and the reason.
// It also resolves relative model paths against the config file's directory and checks the files
// exist.
func (c *Config) Validate() error {
	fail := func(key, format string, args ...any) error {
		return fmt.Errorf("config %s: %s: %s", c.File, key, fmt.Sprintf(format, args...))
	}
	s := &c.Server
	if strings.TrimSpace(s.Host) == "" {
		return fail("server.host", "must not be empty")
	}
	if s.Port < 0 || s.Port > maxPort {
		return fail("server.port", "%d is outside 0..%d", s.Port, maxPort)
	}
	if s.Threads < 0 || s.Threads > maxThreads {
		return fail("server.threads", "%d is outside 0..%d (0 = one per core)", s.Threads, maxThreads)
	}
	if !logLevels[strings.ToLower(s.LogLevel)] {
		return fail("server.log_level", "%q is not one of debug, info, warn, error", s.LogLevel)
	}
	if s.MaxBodyBytes < 1024 || s.MaxBodyBytes > maxBodyBytes {
		return fail("server.max_body_bytes", "%d is outside 1024..%d", s.MaxBodyBytes, int64(maxBodyBytes))
	}
	if s.MaxRequestInputs < 1 || s.MaxRequestInputs > maxRequestInputs {
		return fail("server.max_request_inputs", "%d is outside 1..%d", s.MaxRequestInputs, maxRequestInputs)
	}
	if s.RequestTimeout.Duration <= 0 {
		return fail("server.request_timeout", "%s must be positive", s.RequestTimeout)
	}
	if s.ShutdownTimeout.Duration <= 0 {
		return fail("server.shutdown_timeout", "%s must be positive", s.ShutdownTimeout)
	}
	b := &c.Batching
	if b.MaxBatchTokens < 1 || b.MaxBatchTokens > maxBatchTokens {
		return fail("batching.max_batch_tokens", "%d is outside 1..%d", b.MaxBatchTokens, maxBatchTokens)
	}
	if b.MaxBatchInputs < 1 || b.MaxBatchInputs > maxBatchInputs {
		return fail("batching.max_batch_inputs", "%d is outside 1..%d", b.MaxBatchInputs, maxBatchInputs)
	}
	if b.MaxWait.Duration < 0 || b.MaxWait.Duration > time.Second {
		return fail("batching.max_wait", "%s is outside 0s..1s", b.MaxWait)
	}
	if b.QueueLength < 1 || b.QueueLength > maxQueueLength {
		return fail("batching.queue_length", "%d is outside 1..%d", b.QueueLength, maxQueueLength)
	}
	if len(c.Models) == 0 {
		return fail("models", "no [[models]] declared")
	}
	names := map[string]string{} // id or alias -> key that declared it
	dir := filepath.Dir(c.File)
	for i := range c.Models {
		m := &c.Models[i]
		key := fmt.Sprintf("models[%d]", i)
		if !idPattern.MatchString(m.ID) {
			return fail(key+".id", "%q must be 1-128 characters of letters, digits and ._:/@+- starting with a letter or digit", m.ID)
		}
		if prev, dup := names[m.ID]; dup {
			return fail(key+".id", "%q is already declared by %s", m.ID, prev)
		}
		names[m.ID] = key + ".id"
		for j, a := range m.Aliases {
			akey := fmt.Sprintf("%s.aliases[%d]", key, j)
			if !idPattern.MatchString(a) {
				return fail(akey, "%q is not a valid model name", a)
			}
			if prev, dup := names[a]; dup {
				return fail(akey, "%q is already declared by %s", a, prev)
			}
			names[a] = akey
		}
		if !modelTypes[m.Type] {
			return fail(key+".type", "%q is not one of embeddings, sparse-embeddings, rerank", m.Type)
		}
		if m.MaxTokens < 0 || m.MaxTokens > maxModelTokens {
			return fail(key+".max_tokens", "%d is outside 0..%d (0 = the model's context)", m.MaxTokens, maxModelTokens)
		}
		if m.MaxTokens == 1 {
			return fail(key+".max_tokens", "1 leaves no room for [CLS] and [SEP]")
		}
		if m.Hub != "" || m.File != "" || m.Revision != "" || m.SHA256 != "" {
			if err := validateHubSource(m); err != nil {
				return fail(key+"."+err.key, "%s", err.msg)
			}
			continue // the file is fetched when the model loads
		}
		if m.Path == "" {
			return fail(key+".path", "missing (or give hub = \"owner/repo\" and file = \"name.gguf\")")
		}
		if !filepath.IsAbs(m.Path) {
			m.Path = filepath.Join(dir, m.Path)
		}
		st, err := os.Stat(m.Path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fail(key+".path", "%s does not exist", m.Path)
			}
			return fail(key+".path", "%v", err)
		}
		if !st.Mode().IsRegular() {
			return fail(key+".path", "%s is not a regular file", m.Path)
		}
	}
	return nil
}

// keyError is a validation failure of one key of a model entry.
type keyError struct{ key, msg string }

// validateHubSource checks a model's hub, file, revision and sha256 keys: a hub source needs hub
// and file, excludes path, and every name must be safe to use in a URL and a cache path. It
// normalizes the sha256 to lower case.
func validateHubSource(m *Model) *keyError {
	if m.Hub == "" {
		return &keyError{"hub", "missing: file, revision and sha256 only apply to a hub = \"owner/repo\" source"}
	}
	if m.Path != "" {
		return &keyError{"path", "give either path or hub + file, not both"}
	}
	if err := hub.ValidateRepo(m.Hub); err != nil {
		return &keyError{"hub", err.Error()}
	}
	if m.File == "" {
		return &keyError{"file", "missing: a hub source names the GGUF file in the repository"}
	}
	if err := hub.ValidateFile(m.File); err != nil {
		return &keyError{"file", err.Error()}
	}
	if m.Revision != "" {
		if err := hub.ValidateRevision(m.Revision); err != nil {
			return &keyError{"revision", err.Error()}
		}
	}
	if m.SHA256 != "" {
		h, err := hub.NormalizeSHA256(m.SHA256)
		if err != nil {
			return &keyError{"sha256", err.Error()}
		}
		m.SHA256 = h
	}
	return nil
}

// EffectiveThreads is the compute thread count: the configured one, at most one per core.
func (c *Config) EffectiveThreads() int {
	n := c.Server.Threads
	if n <= 0 || n > runtime.NumCPU() {
		n = runtime.NumCPU()
	}
	return n
}

// Addr is host:port for net.Listen.
func (c *Config) Addr() string {
	return net.JoinHostPort(strings.Trim(c.Server.Host, "[]"), strconv.Itoa(c.Server.Port))
}
