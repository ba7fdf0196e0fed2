package stages

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"
)

// s3Server is an in-process S3 server (gofakes3) on 127.0.0.1 holding
// bucket b, which records the object reads it serves.
type s3Server struct {
	url string
	mu  sync.Mutex
	// gets lists every GET of an object: its key and Range header.
	gets []string
}

func startS3(t *testing.T, opts ...s3mem.Option) *s3Server {
	t.Helper()
	backend := s3mem.New(opts...)
	if err := backend.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	s := &s3Server{}
	fake := gofakes3.New(backend).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "" && strings.Count(strings.Trim(r.URL.Path, "/"), "/") > 0 {
			s.mu.Lock()
			s.gets = append(s.gets, strings.TrimPrefix(r.URL.Path, "/b/")+" "+r.Header.Get("Range"))
			s.mu.Unlock()
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return s
}

// loc is the s3:// location of folder in bucket b.
func (s *s3Server) loc(folder string) string {
	return "s3://b/" + folder + "?" + s.query()
}

func (s *s3Server) query() string {
	return "endpoint=" + s.url + "&use_path_style=true&disable_https=true&region=us-east-1"
}

// takeGets returns the object reads served since the last call whose key
// contains sub.
func (s *s3Server) takeGets(sub string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, g := range s.gets {
		if strings.Contains(g, sub) {
			out = append(out, g)
		}
	}
	s.gets = nil
	return out
}

func (s *s3Server) bucket(t *testing.T) *blob.Bucket {
	t.Helper()
	b, err := blob.OpenBucket(context.Background(), "s3://b?"+s.query())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// put writes an object of bucket b; del removes one.
func (s *s3Server) put(t *testing.T, key string, data []byte) {
	t.Helper()
	if err := s.bucket(t).WriteAll(context.Background(), key, data, nil); err != nil {
		t.Fatal(err)
	}
}

func (s *s3Server) del(t *testing.T, key string) {
	t.Helper()
	if err := s.bucket(t).Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
}
