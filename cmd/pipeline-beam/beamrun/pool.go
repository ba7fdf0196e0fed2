package beamrun

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/apache/beam/sdks/v2/go/container/tools"
	fnpb "github.com/apache/beam/sdks/v2/go/pkg/beam/model/fnexecution_v1"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/util/grpcx"
	"google.golang.org/grpc"
)

// Pool is an external worker pool (Beam's BeamFnExternalWorkerPool service)
// for EXTERNAL environments: for each StartWorker it runs its own binary as
// an SDK worker process (--worker), given the pipeline options from the
// runner's provision service. It plays the part of Beam's `boot
// --worker_pool` for a container that ships the worker binary itself, and
// binds the address it is given (boot binds :50000 on every interface).
// The launcher and the pool must run the same build of the binary.
type Pool struct {
	fnpb.UnimplementedBeamFnExternalWorkerPoolServer

	bin string
	log *slog.Logger
	lis net.Listener
	srv *grpc.Server
	tmp string

	mu      sync.Mutex
	workers map[string]*exec.Cmd
	closed  bool
}

// ListenPool listens on addr (host:port; port 0 picks one) for a pool
// that starts bin as its workers.
func ListenPool(addr, bin string, log *slog.Logger) (*Pool, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("worker pool: %w", err)
	}
	tmp, err := os.MkdirTemp("", "pipeline-beam-pool-")
	if err != nil {
		lis.Close()
		return nil, err
	}
	p := &Pool{bin: bin, log: log, lis: lis, srv: grpc.NewServer(), tmp: tmp, workers: map[string]*exec.Cmd{}}
	fnpb.RegisterBeamFnExternalWorkerPoolServer(p.srv, p)
	return p, nil
}

// Addr is the address the pool listens on (the environment_config).
func (p *Pool) Addr() string { return p.lis.Addr().String() }

// Serve serves until Stop.
func (p *Pool) Serve() error { return p.srv.Serve(p.lis) }

// StartWorker starts one SDK worker process.
func (p *Pool) StartWorker(ctx context.Context, req *fnpb.StartWorkerRequest) (*fnpb.StartWorkerResponse, error) {
	id := req.GetWorkerId()
	fail := func(format string, args ...any) (*fnpb.StartWorkerResponse, error) {
		msg := fmt.Sprintf(format, args...)
		p.log.Warn("worker not started", "id", id, "error", msg)
		return &fnpb.StartWorkerResponse{Error: msg}, nil
	}
	if req.GetControlEndpoint() == nil || req.GetLoggingEndpoint() == nil {
		return fail("worker %s: missing control or logging endpoint", id)
	}
	env := os.Environ()
	if ep := req.GetProvisionEndpoint().GetUrl(); ep != "" {
		info, err := tools.ProvisionInfo(grpcx.WriteWorkerID(ctx, id), ep)
		if err != nil {
			return fail("worker %s: provision info: %v", id, err)
		}
		opts, err := tools.ProtoToJSON(info.GetPipelineOptions())
		if err != nil {
			return fail("worker %s: pipeline options: %v", id, err)
		}
		file := filepath.Join(p.tmp, "options-"+safeName(id)+".json")
		if err := os.WriteFile(file, []byte(opts), 0o600); err != nil {
			return fail("worker %s: %v", id, err)
		}
		env = append(env, "PIPELINE_OPTIONS_FILE="+file)
		if s := info.GetStatusEndpoint().GetUrl(); s != "" {
			env = append(env, "STATUS_ENDPOINT="+s)
		}
		if c := info.GetRunnerCapabilities(); len(c) > 0 {
			env = append(env, "RUNNER_CAPABILITIES="+strings.Join(c, " "))
		}
	}
	cmd := exec.Command(p.bin, "--worker=true", "--id="+id,
		"--logging_endpoint="+req.GetLoggingEndpoint().GetUrl(),
		"--control_endpoint="+req.GetControlEndpoint().GetUrl(),
		"--semi_persist_dir="+p.tmp)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fail("worker pool is shutting down")
	}
	if _, dup := p.workers[id]; dup {
		return fail("worker %s exists", id)
	}
	if err := cmd.Start(); err != nil {
		return fail("worker %s: %v", id, err)
	}
	p.workers[id] = cmd
	p.log.Info("worker started", "id", id, "pid", cmd.Process.Pid)
	go func() {
		err := cmd.Wait()
		p.log.Info("worker exited", "id", id, "pid", cmd.Process.Pid, "error", fmt.Sprint(err))
		p.mu.Lock()
		delete(p.workers, id)
		p.mu.Unlock()
	}()
	return &fnpb.StartWorkerResponse{}, nil
}

// StopWorker stops one worker process.
func (p *Pool) StopWorker(_ context.Context, req *fnpb.StopWorkerRequest) (*fnpb.StopWorkerResponse, error) {
	p.mu.Lock()
	cmd := p.workers[req.GetWorkerId()]
	p.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
	}
	return &fnpb.StopWorkerResponse{}, nil
}

// Stop kills the workers and stops serving.
func (p *Pool) Stop() {
	p.mu.Lock()
	p.closed = true
	for _, cmd := range p.workers {
		_ = cmd.Process.Kill()
	}
	p.mu.Unlock()
	p.srv.Stop()
	os.RemoveAll(p.tmp)
}

// safeName keeps the letters, digits, '-' and '_' of s.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}
