package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	defer ready.Close()
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer notReady.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	for _, tc := range []struct {
		name      string
		args      []string
		wantErr   bool
		wantUsage bool
	}{
		{"ready", []string{"--url", ready.URL}, false, false},
		{"not ready", []string{"--url", notReady.URL}, true, false},
		{"nothing listening", []string{"--url", closedURL, "--timeout", "1s"}, true, false},
		{"bad flag", []string{"--nope"}, true, true},
		{"stray argument", []string{"--url", ready.URL, "extra"}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runHealthcheck(tc.args)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			var ue *usageError
			if got := errors.As(err, &ue); got != tc.wantUsage {
				t.Fatalf("usage error = %v, want %v (err %v)", got, tc.wantUsage, err)
			}
		})
	}
}
