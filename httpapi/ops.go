package httpapi

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"time"

	"github.com/heraldhq/herald"
)

// pingTimeout bounds the store check of /healthz: a probe wants an answer,
// and a store that takes longer is not healthy.
const pingTimeout = 5 * time.Second

// health answers 200 while the store answers, 503 when it does not.
func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	if s.ping != nil {
		ctx, cancel := context.WithTimeout(r.Context(), pingTimeout)
		defer cancel()
		if err := s.ping(ctx); err != nil {
			ref := herald.NewRandomID("")
			if info := infoFrom(r.Context()); info.err == nil {
				info.err, info.ref = fmt.Errorf("ping store: %w", err), ref
			}
			writeProblem(w, r, kindUnavailable.problem("the store does not answer (ref "+ref+")"))
			return nil
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	s.metrics.handler.ServeHTTP(w, r)
	return nil
}

// openAPIDocument describes every route; a test keeps it true to the route
// table and checks real answers against its schemas.
//
//go:embed openapi.json
var openAPIDocument []byte

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDocument)
	return nil
}
