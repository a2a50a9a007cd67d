package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/embedd-dev/embedd/metrics"
)

// Error types and codes of the OpenAI error shape {"error": {"message", "type", "param", "code"}}.
const (
	typeInvalidRequest = "invalid_request_error"
	typeAuthentication = "authentication_error"
	typePermission     = "permission_error"
	typeRateLimit      = "rate_limit_error"
	typeServer         = "server_error"
)

// apiError is an error answer: HTTP status plus the OpenAI error body.
type apiError struct {
	Status     int     `json:"-"`
	Message    string  `json:"message"`
	Type       string  `json:"type"`
	Param      *string `json:"param"`
	Code       *string `json:"code"`
	RetryAfter int     `json:"-"` // seconds; sets Retry-After when > 0
}

func (e *apiError) Error() string { return e.Message }

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func badRequest(param, code, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Param: strPtr(param),
		Code: strPtr(code), Message: fmt.Sprintf(format, args...)}
}

func notFound(param, code, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: typeInvalidRequest, Param: strPtr(param),
		Code: strPtr(code), Message: fmt.Sprintf(format, args...)}
}

func tooLarge(param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Type: typeInvalidRequest, Param: strPtr(param),
		Code: strPtr("request_too_large"), Message: fmt.Sprintf(format, args...)}
}

func unauthorized(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusUnauthorized, Type: typeAuthentication, Code: strPtr("invalid_api_key"),
		Message: fmt.Sprintf(format, args...)}
}

func overloaded(model string) *apiError {
	return &apiError{Status: http.StatusTooManyRequests, Type: typeRateLimit, Code: strPtr("overloaded"),
		Message: fmt.Sprintf("the queue of model %q is full; retry shortly", model), RetryAfter: 1}
}

func unavailable(code, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: strPtr(code),
		Message: fmt.Sprintf(format, args...), RetryAfter: 1}
}

func internal(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusInternalServerError, Type: typeServer, Code: strPtr("internal_error"),
		Message: fmt.Sprintf(format, args...)}
}

// outcome is the metrics label of an error.
func (e *apiError) outcome() string {
	switch e.Status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusMethodNotAllowed:
		return metrics.OutcomeBadRequest
	case http.StatusNotFound:
		return metrics.OutcomeNotFound
	case http.StatusRequestEntityTooLarge:
		return metrics.OutcomeTooLarge
	case http.StatusTooManyRequests:
		return metrics.OutcomeOverloaded
	case http.StatusServiceUnavailable:
		if e.Code != nil && *e.Code == "timeout" {
			return metrics.OutcomeTimeout
		}
		return metrics.OutcomeUnavailable
	}
	return metrics.OutcomeError
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status, struct {
		Error *apiError `json:"error"`
	}{e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"message":"encoding the response failed","type":"server_error","param":null,"code":"internal_error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
