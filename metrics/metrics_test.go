package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNamesPassPromlint(t *testing.T) {
	m := New("test", "scalar")
	m.ObserveBatch("a", 3, 40, 0.0002)
	m.ObserveQueueWait("a", 0.00001)
	m.SetQueueLength("a", 2)
	m.ObserveRequest("a", "embeddings", OutcomeOK, 3, 0.0004)
	m.SetModelLoaded("a", true)
	m.ObserveReload(true)
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestObservations(t *testing.T) {
	m := New("test", "scalar")
	m.ObserveBatch("a", 3, 40, 0.0002)
	m.ObserveBatch("a", 1, 10, 0.0001)
	m.ObserveRequest("a", "embeddings", OutcomeOverloaded, 5, 0.001)
	cases := []struct {
		name string
		got  float64
		want float64
	}{
		{"tokens", testutil.ToFloat64(m.Tokens.WithLabelValues("a")), 50},
		{"overloaded requests", testutil.ToFloat64(m.Requests.WithLabelValues("a", "embeddings", OutcomeOverloaded)), 1},
		{"overloaded inputs", testutil.ToFloat64(m.Inputs.WithLabelValues("a", OutcomeOverloaded)), 5},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// The smallest latency bucket resolves sub-millisecond times.
	if latencyBuckets[0] > 100e-6 {
		t.Errorf("first latency bucket %g s is too coarse", latencyBuckets[0])
	}
	want := `
# HELP embedd_batch_inputs Inputs per engine batch.
# TYPE embedd_batch_inputs histogram
`
	if err := testutil.CollectAndCompare(m.BatchInputs, strings.NewReader(want+bucketLines()), "embedd_batch_inputs"); err != nil {
		t.Error(err)
	}
}

// bucketLines is the expected exposition of the two batches (3 inputs and 1 input).
func bucketLines() string {
	var b strings.Builder
	bounds := []string{"1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024", "2048"}
	for i, le := range bounds {
		n := 2
		if i < 2 { // 1 input fits le=1 and le=2; 3 inputs needs le=4
			n = 1
		}
		b.WriteString(`embedd_batch_inputs_bucket{model="a",le="` + le + `"} ` + string(rune('0'+n)) + "\n")
	}
	b.WriteString(`embedd_batch_inputs_bucket{model="a",le="+Inf"} 2` + "\n")
	b.WriteString(`embedd_batch_inputs_sum{model="a"} 4` + "\n")
	b.WriteString(`embedd_batch_inputs_count{model="a"} 2` + "\n")
	return b.String()
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.ObserveBatch("a", 1, 1, 1)
	m.ObserveQueueWait("a", 1)
	m.SetQueueLength("a", 1)
	m.ObserveRequest("a", "e", OutcomeOK, 1, 1)
	m.SetModelLoaded("a", true)
	m.ObserveReload(false)
}
