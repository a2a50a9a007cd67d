// Package httpapi is embedd's OpenAI-compatible HTTP API: the routes (under both /v1 and /api/v1),
// the request and response shapes, OpenAI-shaped errors, API-key auth, health and metrics endpoints,
// and the middleware that keeps a panic from ever taking the server down.
//
// Inference handlers (embeddings, rerank, sparse) share their steps: resolve the model and check its
// type (openModel), tokenize in the handler goroutine, queue the inputs on the model's batcher queue
// (submit), and record metrics (finish, fail).
package httpapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"github.com/embedd-dev/embedd/config"
	"github.com/embedd-dev/embedd/metrics"
	"github.com/embedd-dev/embedd/registry"
)

// ReloadFunc re-reads the configuration and switches the registry to it.
type ReloadFunc func(ctx context.Context) error

// Server holds the API's dependencies. Per-request settings (API key, body limit, request timeout)
// are read from the registry's current configuration, so a reload changes them too.
type Server struct {
	reg      *registry.Registry
	met      *metrics.Metrics
	reload   ReloadFunc
	started  time.Time
	draining atomic.Bool
}

// New creates the API for reg. reload may be nil (POST /admin/reload then answers 503).
func New(reg *registry.Registry, met *metrics.Metrics, reload ReloadFunc) *Server {
	return &Server{reg: reg, met: met, reload: reload, started: time.Now()}
}

// SetDraining marks the server as shutting down: readiness then answers 503.
func (s *Server) SetDraining() { s.draining.Store(true) }

func (s *Server) cfg() *config.Config { return s.reg.Config() }

// Handler returns the routed, middleware-wrapped HTTP handler.
func (s *Server) Handler() http.Handler {
	noRoute := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, notFound("", "not_found", "no route for %s %s", req.Method, req.URL.Path))
	})
	badMethod := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Type: typeInvalidRequest,
			Message: "method " + req.Method + " is not allowed on " + req.URL.Path})
	})
	r := mux.NewRouter()
	r.NotFoundHandler, r.MethodNotAllowedHandler = noRoute, badMethod
	// Routes sit on the root router (not a subrouter) so that mux reports wrong methods as 405.
	for _, prefix := range []string{"/v1", "/api/v1"} {
		r.Handle(prefix+"/embeddings", s.authenticate(http.HandlerFunc(s.handleEmbeddings))).Methods(http.MethodPost)
		r.Handle(prefix+"/models", s.authenticate(http.HandlerFunc(s.handleModels))).Methods(http.MethodGet)
		r.Handle(prefix+"/models/{id:.+}", s.authenticate(http.HandlerFunc(s.handleModel))).Methods(http.MethodGet)
	}
	s.routeRerankSparse(r) // /v1/rerank, /rerank, /api/v1/rerank, /api/v1/embed_sparse, /embed_sparse
	s.routeTEI(r)          // /embed, POST /, /similarity, /tokenize, /decode, /info
	r.HandleFunc("/health", s.handleHealth).Methods(http.MethodGet)
	r.HandleFunc("/health/live", s.handleLive).Methods(http.MethodGet)
	r.HandleFunc("/health/ready", s.handleReady).Methods(http.MethodGet)
	r.Handle("/metrics", s.met.Handler()).Methods(http.MethodGet)
	r.HandleFunc("/admin/reload", s.handleReload).Methods(http.MethodPost)
	return recoverer(r)
}

// recoverer is the last line of defence: a panic answers 500 and is logged, never a crash.
func recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				slog.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", p,
					"stack", string(debug.Stack()))
				writeError(w, internal("internal error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// authenticate requires `Authorization: Bearer <api_key>` when a key is configured.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := s.cfg().Server.APIKey
		if key != "" {
			if e := checkKey(r, key); e != nil {
				writeError(w, e)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func checkKey(r *http.Request, key string) *apiError {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return unauthorized("missing API key: send it as `Authorization: Bearer <key>`")
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return unauthorized("malformed Authorization header: want `Bearer <key>`")
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(key)) != 1 {
		return unauthorized("incorrect API key")
	}
	return nil
}

type modelHealth struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	State   string `json:"state"`
	Preload bool   `json:"preload"`
	Error   string `json:"error,omitempty"`
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	list := s.reg.List()
	models := make([]modelHealth, len(list))
	for i, st := range list {
		models[i] = modelHealth{ID: st.Spec.ID, Type: st.Spec.Type, State: st.State,
			Preload: st.Spec.Preloaded(), Error: st.Error}
	}
	status := "ok"
	switch {
	case s.draining.Load():
		status = "draining"
	case !s.reg.Ready():
		status = "starting"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status":         status,
		"uptime_seconds": time.Since(s.started).Seconds(),
		"models":         models,
	})
}

func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.draining.Load():
		writeError(w, unavailable("draining", "the server is shutting down"))
	case !s.reg.Ready():
		writeError(w, unavailable("not_ready", "models are still loading"))
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	key := s.cfg().Server.APIKey
	if key == "" {
		writeError(w, &apiError{Status: http.StatusForbidden, Type: typePermission, Code: strPtr("reload_disabled"),
			Message: "reload over HTTP is disabled: configure server.api_key (or EMBEDD_API_KEY) to enable it"})
		return
	}
	if e := checkKey(r, key); e != nil {
		writeError(w, e)
		return
	}
	if s.reload == nil {
		writeError(w, unavailable("reload_unavailable", "this server cannot reload its configuration"))
		return
	}
	if err := s.reload(r.Context()); err != nil {
		slog.Error("reload rejected", "err", err)
		writeError(w, &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Code: strPtr("invalid_config"),
			Message: "reload rejected, the previous configuration keeps serving: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "reloaded", "models": s.reg.Names()})
}

// modelObject is an entry of /v1/models: OpenAI's fields plus embedd's.
type modelObject struct {
	ID           string   `json:"id"`
	Object       string   `json:"object"`
	Created      int64    `json:"created"`
	OwnedBy      string   `json:"owned_by"`
	Type         string   `json:"type"`
	Aliases      []string `json:"aliases"`
	Loaded       bool     `json:"loaded"`
	State        string   `json:"state"`
	Dimensions   *int     `json:"dimensions"`
	MaxTokens    *int     `json:"max_tokens"`
	Quantization string   `json:"quantization,omitempty"`
}

func (s *Server) modelObject(st registry.Status) modelObject {
	o := modelObject{
		ID: st.Spec.ID, Object: "model", Created: s.started.Unix(), OwnedBy: "embedd",
		Type: st.Spec.Type, Aliases: st.Spec.Aliases, Loaded: st.State == registry.StateReady, State: st.State,
	}
	if o.Aliases == nil {
		o.Aliases = []string{}
	}
	if st.Info != nil {
		dim, maxTok := st.Info.Dim, st.Info.MaxTokens
		o.Dimensions, o.MaxTokens, o.Quantization = &dim, &maxTok, st.Info.Quantization
	} else if st.Spec.MaxTokens > 0 {
		maxTok := st.Spec.MaxTokens
		o.MaxTokens = &maxTok
	}
	return o
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	list := s.reg.List()
	data := make([]modelObject, len(list))
	for i, st := range list {
		data[i] = s.modelObject(st)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["id"]
	spec, ok := s.reg.Lookup(name)
	if !ok {
		writeError(w, notFound("model", "model_not_found", "the model %q does not exist", name))
		return
	}
	for _, st := range s.reg.List() {
		if st.Spec.ID == spec.ID {
			writeJSON(w, http.StatusOK, s.modelObject(st))
			return
		}
	}
	writeError(w, notFound("model", "model_not_found", "the model %q does not exist", name))
}

// errorFromContext maps the end of a request's context: the client left (nil: nothing to answer)
// or the request timed out.
func errorFromContext(r *http.Request, err error) *apiError {
	if r.Context().Err() != nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return unavailable("timeout", "the request timed out")
	}
	return unavailable("canceled", "the request was canceled")
}
