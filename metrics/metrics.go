// Package metrics defines embedd's Prometheus collectors: per-model request, input and token counters,
// queue gauges and latency histograms, plus the Go runtime, process and build-info collectors. Every
// name carries the embedd_ prefix and follows Prometheus' unit conventions (_seconds, _total).
package metrics

import (
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Outcome labels of requests and inputs.
const (
	OutcomeOK          = "ok"
	OutcomeBadRequest  = "bad_request"
	OutcomeNotFound    = "not_found"
	OutcomeTooLarge    = "too_large"
	OutcomeOverloaded  = "overloaded"
	OutcomeTimeout     = "timeout"
	OutcomeCanceled    = "canceled"
	OutcomeUnavailable = "unavailable"
	OutcomeError       = "error"
)

// latencyBuckets resolve from 50µs to about 20s: single short queries cost well under a
// millisecond of server overhead, and large batches take seconds on two cores.
var latencyBuckets = prometheus.ExponentialBucketsRange(50e-6, 20, 24)

// Metrics holds the collectors. Its methods are safe for concurrent use; a nil *Metrics records
// nothing, so packages can be tested without one.
type Metrics struct {
	registry *prometheus.Registry

	Requests       *prometheus.CounterVec   // model, endpoint, outcome
	Inputs         *prometheus.CounterVec   // model, outcome
	Tokens         *prometheus.CounterVec   // model
	QueueLength    *prometheus.GaugeVec     // model
	QueueWait      *prometheus.HistogramVec // model
	BatchInputs    *prometheus.HistogramVec // model
	BatchTokens    *prometheus.HistogramVec // model
	BatchDuration  *prometheus.HistogramVec // model
	RequestLatency *prometheus.HistogramVec // model, endpoint
	ModelLoaded    *prometheus.GaugeVec     // model
	Reloads        *prometheus.CounterVec   // outcome
}

// New creates the collectors on a fresh registry (never the global one, so that tests can run
// several servers in one process). version and simd label the build-info gauge.
func New(version, simd string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		registry: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "embedd_requests_total",
			Help: "HTTP inference requests by model, endpoint and outcome.",
		}, []string{"model", "endpoint", "outcome"}),
		Inputs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "embedd_inputs_total",
			Help: "Inputs (texts or token sequences) of inference requests by model and outcome.",
		}, []string{"model", "outcome"}),
		Tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "embedd_tokens_total",
			Help: "Tokens run through the engine, including [CLS] and [SEP].",
		}, []string{"model"}),
		QueueLength: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "embedd_queue_requests",
			Help: "Requests waiting in a model's queue.",
		}, []string{"model"}),
		QueueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "embedd_queue_wait_seconds",
			Help:    "Time from a request's queueing until its first batch starts.",
			Buckets: latencyBuckets,
		}, []string{"model"}),
		BatchInputs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "embedd_batch_inputs",
			Help:    "Inputs per engine batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}, []string{"model"}),
		BatchTokens: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "embedd_batch_tokens",
			Help:    "Tokens per engine batch.",
			Buckets: prometheus.ExponentialBuckets(4, 2, 16),
		}, []string{"model"}),
		BatchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "embedd_batch_duration_seconds",
			Help:    "Engine inference latency of one batch.",
			Buckets: latencyBuckets,
		}, []string{"model"}),
		RequestLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "embedd_request_duration_seconds",
			Help:    "End-to-end latency of inference requests, from arrival to the written answer.",
			Buckets: latencyBuckets,
		}, []string{"model", "endpoint"}),
		ModelLoaded: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "embedd_model_loaded",
			Help: "1 when the model is loaded and ready, else 0.",
		}, []string{"model"}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "embedd_config_reloads_total",
			Help: "Configuration reloads by outcome.",
		}, []string{"outcome"}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "embedd_build_info",
		Help: "Build information; the value is always 1.",
	}, []string{"version", "goversion", "simd"})
	buildInfo.WithLabelValues(version, runtime.Version(), simd).Set(1)
	reg.MustRegister(
		m.Requests, m.Inputs, m.Tokens, m.QueueLength, m.QueueWait, m.BatchInputs, m.BatchTokens,
		m.BatchDuration, m.RequestLatency, m.ModelLoaded, m.Reloads, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the registry in Prometheus' exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Registry is the underlying Prometheus registry (for tests and extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// ObserveBatch records one engine batch of a model.
func (m *Metrics) ObserveBatch(model string, inputs, tokens int, seconds float64) {
	if m == nil {
		return
	}
	m.BatchInputs.WithLabelValues(model).Observe(float64(inputs))
	m.BatchTokens.WithLabelValues(model).Observe(float64(tokens))
	m.BatchDuration.WithLabelValues(model).Observe(seconds)
	m.Tokens.WithLabelValues(model).Add(float64(tokens))
}

// ObserveQueueWait records how long a request waited for its first batch.
func (m *Metrics) ObserveQueueWait(model string, seconds float64) {
	if m == nil {
		return
	}
	m.QueueWait.WithLabelValues(model).Observe(seconds)
}

// SetQueueLength sets a model's queue gauge.
func (m *Metrics) SetQueueLength(model string, n int) {
	if m == nil {
		return
	}
	m.QueueLength.WithLabelValues(model).Set(float64(n))
}

// ObserveRequest records a finished inference request.
func (m *Metrics) ObserveRequest(model, endpoint, outcome string, inputs int, seconds float64) {
	if m == nil {
		return
	}
	m.Requests.WithLabelValues(model, endpoint, outcome).Inc()
	if inputs > 0 {
		m.Inputs.WithLabelValues(model, outcome).Add(float64(inputs))
	}
	m.RequestLatency.WithLabelValues(model, endpoint).Observe(seconds)
}

// SetModelLoaded sets a model's loaded gauge.
func (m *Metrics) SetModelLoaded(model string, loaded bool) {
	if m == nil {
		return
	}
	v := 0.0
	if loaded {
		v = 1
	}
	m.ModelLoaded.WithLabelValues(model).Set(v)
}

// ObserveReload counts a configuration reload.
func (m *Metrics) ObserveReload(ok bool) {
	if m == nil {
		return
	}
	outcome := OutcomeOK
	if !ok {
		outcome = OutcomeError
	}
	m.Reloads.WithLabelValues(outcome).Inc()
}

// CountIdleGC exports the number of garbage collections the server ran while idle (package
// idlegc), read from count at each scrape. The runtime's own cycles are in go_gc_duration_seconds.
func (m *Metrics) CountIdleGC(count func() uint64) {
	if m == nil {
		return
	}
	m.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "embedd_idle_gc_total",
		Help: "Garbage collections run while the server was idle, to keep them out of requests.",
	}, func() float64 { return float64(count()) }))
}
