package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"
)

// RerankSparseHandler is Handler with the rerank and sparse routes in front. Temporary, until
// Handler registers them itself.
func (s *Server) RerankSparseHandler() http.Handler {
	r := mux.NewRouter()
	s.routeRerankSparse(r)
	r.NotFoundHandler = s.Handler()
	return recoverer(r)
}
