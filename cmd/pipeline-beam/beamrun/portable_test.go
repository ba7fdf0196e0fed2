package beamrun

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/internal/videotest"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
)

// buildBinary builds cmd/pipeline-beam once per test binary.
func buildBinary(t *testing.T) string {
	t.Helper()
	if binPath != "" {
		return binPath
	}
	dir, err := os.MkdirTemp("", "pipeline-beam-test-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "pipeline-beam")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/timelapse-ml/pipeline/cmd/pipeline-beam")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	binPath = bin
	return bin
}

var binPath string

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// service is a background process of the test, stopped at its end.
type service struct {
	cmd   *exec.Cmd
	lines chan string
}

func startService(t *testing.T, bin string, args ...string) *service {
	t.Helper()
	cmd := exec.Command(bin, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &service{cmd: cmd, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		pw.Close()
	})
	return s
}

// waitLine waits (bounded) for a line holding want and returns it.
func (s *service) waitLine(t *testing.T, want string, within time.Duration) string {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case l := <-s.lines:
			if strings.Contains(l, want) {
				return l
			}
		case <-deadline:
			t.Fatalf("no line with %q within %s", want, within)
		}
	}
}

// waitListening waits (bounded) until addr accepts connections.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	for range 100 {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

// The portable path: a standalone prism job server and an external worker
// pool, started by the test, and `pipeline-beam run --runner=flink
// --environment_type=EXTERNAL`: the same outputs as the local engine.
func TestPortableEqualsLocal(t *testing.T) {
	bin := buildBinary(t)
	src := videotest.Folder(t, 21)
	// The reference: the local engine in the same binary (a test binary
	// records no module versions, and shards record arrow-go's).
	local := pipelinetest.New(t, kinds, videotest.Config(src))
	runBinary(t, bin, local.Workdir, src, "--runner=local")

	jobPort, poolPort := freePort(t), freePort(t)
	startService(t, bin, "job-server", "--port", fmt.Sprint(jobPort))
	startService(t, bin, "worker-pool", "--listen", fmt.Sprintf("127.0.0.1:%d", poolPort))
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", jobPort))
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", poolPort))

	p := pipelinetest.New(t, kinds, videotest.Config(src))
	out := runBinary(t, bin, p.Workdir, src, "--runner=flink", fmt.Sprintf("--endpoint=localhost:%d", jobPort),
		"--environment_type=EXTERNAL", fmt.Sprintf("--environment_config=127.0.0.1:%d", poolPort))
	if !strings.Contains(out, "0 extracted, 3 cached") || !strings.Contains(out, "5 videos on flink") {
		t.Errorf("run output:\n%s", out)
	}
	pipelinetest.SameTrees(t, local.Workdir, p.Workdir, "ingest", "frames", "pack")
	if _, err := os.Stat(filepath.Join(p.Workdir, ".staged")); err == nil {
		t.Error("the staging folder is left after a successful run")
	}
}

// runBinary runs `pipeline-beam run` over the videos in src with workdir
// and the flags, bounded, and returns its output.
func runBinary(t *testing.T, bin, workdir, src string, flags ...string) string {
	t.Helper()
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, []byte("workdir: "+workdir+"\n"+videotest.Config(src)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"run", cfgFile}, flags...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("pipeline-beam run %v: %v\n%s", flags, err, out)
	}
	return string(out)
}

// Faults on the portable path: the test kills the SDK worker process while
// it extracts a video (its temporary folder exists in the staging folder).
// The job fails (prism does not retry the bundle) and pipeline-beam runs it
// again, which redoes only the unfinished videos: the one run succeeds, its
// outputs verify and equal the local engine's. The broken file is
// quarantined as locally.
func TestPortableWorkerKilledMidVideo(t *testing.T) {
	bin := buildBinary(t)
	src := videotest.Folder(t, 21)
	local := pipelinetest.New(t, kinds, videotest.Config(src))
	runBinary(t, bin, local.Workdir, src, "--runner=local")

	jobPort, poolPort := freePort(t), freePort(t)
	startService(t, bin, "job-server", "--port", fmt.Sprint(jobPort))
	pool := startService(t, bin, "worker-pool", "--listen", fmt.Sprintf("127.0.0.1:%d", poolPort))
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", jobPort))
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", poolPort))
	flags := []string{"--runner=flink", fmt.Sprintf("--endpoint=localhost:%d", jobPort),
		"--environment_type=EXTERNAL", fmt.Sprintf("--environment_config=127.0.0.1:%d", poolPort)}

	p := pipelinetest.New(t, kinds, videotest.Config(src))
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, []byte("workdir: "+p.Workdir+"\n"+videotest.Config(src)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	first := exec.CommandContext(ctx, bin, append([]string{"run", cfgFile}, flags...)...)
	var firstOut strings.Builder
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	line := pool.waitLine(t, "worker started", time.Minute)
	var pid int
	if _, err := fmt.Sscanf(line[strings.Index(line, "pid=")+4:], "%d", &pid); err != nil {
		t.Fatalf("no pid in %q", line)
	}
	framesStaging := filepath.Join(p.Workdir, ".staged", "frames")
	killed := false
	for range 6000 { // bounded: 60 s
		if tmp, _ := filepath.Glob(filepath.Join(framesStaging, ".tmp-*")); len(tmp) > 0 {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !killed {
		t.Fatal("never saw a video being extracted")
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("the run did not recover from the killed worker: %v\n%s", err, firstOut.String())
	}
	out := firstOut.String()
	if !strings.Contains(out, "beam job failed, running it again") {
		t.Errorf("the job was not run again after the kill:\n%s", out)
	}
	if !strings.Contains(out, "5 videos: 3 ok, 2 quarantined") {
		t.Errorf("run output:\n%s", out)
	}
	rep, err := pipeline.New(p.Config, pipeline.Options{}).Verify(context.Background())
	if err != nil || len(rep.Findings) > 0 || len(rep.Stages) != 3 {
		t.Errorf("verify after the kill: %+v, %v", rep, err)
	}
	pipelinetest.SameTrees(t, local.Workdir, p.Workdir, "ingest", "frames", "pack")
}
