package main

import (
	"runtime/debug"
	"testing"
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
