package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options control a run.
type Options struct {
	// Stages, when set, re-runs exactly these stages (even if up to date),
	// after running any stale stage they need.
	Stages []string
	// Force re-runs every selected stage.
	Force bool
	// Strict makes quarantining kinds fail instead (StageRun.Strict).
	Strict bool
	// Log receives the engine's and the stages' log lines (default: discard).
	Log *slog.Logger
	// Progress is where progress is drawn; TTY says whether it is a terminal
	// (a redrawn bar) or not (log lines every 10 s). Nil: no progress.
	Progress io.Writer
	TTY      bool
}

// Engine runs one config.
type Engine struct {
	cfg   *Config
	opts  Options
	log   *slog.Logger
	tools toolVersions
	disp  *display

	mu      sync.Mutex
	reports map[string][]string
}

// New prepares an engine for a validated config.
func New(cfg *Config, opts Options) *Engine {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Engine{cfg: cfg, opts: opts, log: log, reports: map[string][]string{}}
}

// Action is what a plan does with a stage.
type Action string

// Plan actions.
const (
	ActRun  Action = "run"
	ActSkip Action = "skip"
)

// Step is one stage in a plan.
type Step struct {
	Stage   string
	Kind    string
	Action  Action
	Reasons []string // why it runs ("up to date" when skipped)
	Key     string   // "" when it depends on a stage that runs first
	Parts   KeyParts
	// Resume is true when an interrupted attempt with the same key is resumed.
	Resume bool
}

// Result is the outcome of one stage in a run.
type Result struct {
	Step
	Duration time.Duration
	Reports  []string
	Err      error
}

func (e *Engine) selected() ([]*Stage, map[string]bool, error) {
	forced := map[string]bool{}
	order := e.cfg.Order()
	if len(e.opts.Stages) == 0 {
		if e.opts.Force {
			for _, s := range order {
				forced[s.Name] = true
			}
		}
		return order, forced, nil
	}
	want := map[string]bool{}
	for _, name := range e.opts.Stages {
		if e.cfg.Stage(name) == nil {
			var names []string
			for _, s := range e.cfg.Stages {
				names = append(names, s.Name)
			}
			return nil, nil, &UsageError{Msg: fmt.Sprintf("--stage %s: no such stage in %s%s", name, e.cfg.File, suggest(name, names))}
		}
		want[name] = true
		forced[name] = true
		for a := range e.cfg.Ancestors(name) {
			want[a] = true
			if e.opts.Force {
				forced[a] = true
			}
		}
	}
	var sel []*Stage
	for _, s := range order {
		if want[s.Name] {
			sel = append(sel, s)
		}
	}
	return sel, forced, nil
}

// UsageError is a mistake on the command line (exit code 2).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Plan says what Run would do, without running anything. Stages below one
// that will run have no key yet (their inputs will change).
func (e *Engine) Plan(ctx context.Context) ([]Step, error) {
	sel, forced, err := e.selected()
	if err != nil {
		return nil, err
	}
	digests := map[string]string{}
	willRun := map[string]bool{}
	var plan []Step
	for _, st := range sel {
		var pending []string
		for _, n := range st.Needs {
			if willRun[n] {
				pending = append(pending, n)
			}
		}
		if len(pending) > 0 {
			step := Step{Stage: st.Name, Kind: st.Kind.Name, Action: ActRun}
			step.Reasons = []string{"input changed: " + strings.Join(pending, ", ") + " runs first"}
			if forced[st.Name] {
				step.Reasons = append([]string{"requested"}, step.Reasons...)
			}
			willRun[st.Name] = true
			plan = append(plan, step)
			continue
		}
		old, err := loadState(e.cfg.Workdir, st.Name)
		if err != nil {
			return nil, err
		}
		for _, n := range st.Needs {
			if digests[n] == "" {
				if s, _ := loadState(e.cfg.Workdir, n); s != nil {
					digests[n] = s.Digest
				}
			}
		}
		step, missing, err := e.assess(ctx, st, old, digests, forced[st.Name])
		if err != nil {
			return nil, err
		}
		if step.Action == ActRun {
			willRun[st.Name] = true
			if missing != nil {
				step.Reasons = append(step.Reasons, "cannot run here: "+missing.Error())
			}
		} else {
			digests[st.Name] = old.Digest
		}
		plan = append(plan, step)
	}
	return plan, nil
}

// assess computes a stage's key and decides whether it runs. missing is
// non-nil when a tool the stage needs is not installed here; that only
// matters if the stage must run.
func (e *Engine) assess(ctx context.Context, st *Stage, old *stageState, digests map[string]string, forced bool) (Step, error, error) {
	step := Step{Stage: st.Name, Kind: st.Kind.Name}
	parts, missing, err := e.keyParts(ctx, st, digests, old)
	if err != nil {
		return step, nil, err
	}
	step.Parts, step.Key = parts, keyOf(parts)
	step.Reasons, step.Resume, err = e.reasons(st, old, step.Key, parts, forced)
	if err != nil {
		return step, nil, err
	}
	step.Action = ActRun
	if len(step.Reasons) == 0 {
		step.Action, step.Reasons = ActSkip, []string{"up to date"}
	}
	return step, errors.Join(missing...), nil
}

// reasons says why a stage must run (none: up to date) and whether the run
// resumes or continues the outputs already there (resume).
func (e *Engine) reasons(st *Stage, old *stageState, key string, parts KeyParts, forced bool) (reasons []string, resume bool, err error) {
	if forced {
		reasons = append(reasons, "requested")
	}
	if old == nil {
		return append(reasons, "never run"), false, nil
	}
	same := sameKey(st.Kind, old.Parts, old.Key, key)
	if old.Status == statusRunning {
		if same && !e.opts.Force {
			return append(reasons, "interrupted (resumes)"), true, nil
		}
		reasons = append(reasons, "interrupted")
	}
	if !same {
		r := staleReasons(old.Parts, parts)
		if len(r) == 0 {
			r = []string{"cache key changed"}
		}
		reasons = append(reasons, r...)
		if !e.opts.Force && continues(st.Kind, old.Parts, parts) {
			return append(reasons, "continues the previous outputs"), true, nil
		}
		return reasons, false, nil
	}
	if old.Status == statusRunning {
		return reasons, false, nil
	}
	problem, err := verifyFiles(filepath.Join(e.cfg.Workdir, st.Name), old.Outputs)
	if err != nil {
		return nil, false, fmt.Errorf("stage %s: checking outputs: %w", st.Name, err)
	}
	if problem != "" {
		reasons = append(reasons, "output missing or altered: "+problem)
	}
	return reasons, false, nil
}

// Run brings the selected stages up to date, in dependency order, stopping
// at the first failure. It holds the workdir lock for its whole duration.
func (e *Engine) Run(ctx context.Context) ([]Result, error) {
	unlock, err := lockWorkdir(e.cfg.Workdir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	sel, forced, err := e.selected()
	if err != nil {
		return nil, err
	}
	if e.opts.Progress != nil {
		e.disp = newDisplay(e.opts.Progress, e.opts.TTY, e.log)
		defer e.disp.close()
	}
	digests := map[string]string{}
	var results []Result
	for _, st := range sel {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		res, digest, err := e.runStage(ctx, st, digests, forced[st.Name])
		results = append(results, res)
		if err != nil {
			return results, err
		}
		digests[st.Name] = digest
	}
	return results, nil
}

func (e *Engine) runStage(ctx context.Context, st *Stage, digests map[string]string, forced bool) (Result, string, error) {
	wd := e.cfg.Workdir
	res := Result{Step: Step{Stage: st.Name, Kind: st.Kind.Name}}
	old, err := loadState(wd, st.Name)
	if err != nil {
		return res, "", err
	}
	step, missing, err := e.assess(ctx, st, old, digests, forced)
	res.Step = step
	if err != nil {
		res.Err = err
		return res, "", err
	}
	log := e.log.With(slog.String("stage", st.Name))
	if res.Action == ActSkip {
		res.Reports = old.Reports
		if missing != nil {
			log.Warn("a tool is missing here; taking the recorded outputs as up to date", slog.Any("err", missing))
		}
		log.Info("up to date, skipped", slog.String("kind", st.Kind.Name))
		return res, old.Digest, nil
	}
	if missing != nil {
		res.Err = fmt.Errorf("stage %s must run (%s) but %w", st.Name, strings.Join(res.Reasons, "; "), missing)
		return res, "", res.Err
	}
	parts := res.Parts
	log.Info("running", slog.String("kind", st.Kind.Name), slog.String("reason", strings.Join(res.Reasons, "; ")), slog.Bool("resume", res.Resume))
	start := time.Now()
	digest, err := e.execute(ctx, st, res.Key, parts, res.Resume, forced, log)
	e.disp.endStage(st.Name)
	res.Duration = time.Since(start)
	e.mu.Lock()
	res.Reports = e.reports[st.Name]
	e.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("stage %s: interrupted: %w", st.Name, ctx.Err())
			log.Warn("interrupted; finished work is kept", slog.Duration("after", res.Duration.Round(time.Millisecond)))
		} else {
			err = fmt.Errorf("stage %s: %w", st.Name, err)
			log.Error("failed", slog.Any("err", err))
		}
		res.Err = err
		return res, "", err
	}
	log.Info("done", slog.Duration("took", res.Duration.Round(time.Millisecond)))
	return res, digest, nil
}

// execute prepares the stage's output folder, runs the kind and records the
// outputs.
func (e *Engine) execute(ctx context.Context, st *Stage, key string, parts KeyParts, resume, forced bool, log *slog.Logger) (string, error) {
	wd := e.cfg.Workdir
	out := filepath.Join(wd, st.Name)
	if st.Kind.KeepPrevious && !resume {
		moved, err := moveAside(wd, st.Name)
		if err != nil {
			return "", fmt.Errorf("moving the previous outputs aside: %w", err)
		}
		if moved != "" {
			log.Warn("previous outputs moved aside", slog.String("path", moved))
		}
	}
	mark, err := claimOutDir(wd, st.Name)
	if err != nil {
		return "", err
	}
	items, err := openItems(wd, st.Name, out)
	if err != nil {
		return "", err
	}
	if err := cleanOutDir(out, items.files(), items.pendingRels(), resume, mark.Created); err != nil {
		return "", fmt.Errorf("preparing %s: %w", out, err)
	}
	state := &stageState{Status: statusRunning, Key: key, Parts: parts, Started: time.Now().UTC()}
	if err := saveState(wd, st.Name, state); err != nil {
		return "", err
	}
	e.mu.Lock()
	e.reports[st.Name] = nil
	e.mu.Unlock()
	inputs := map[string]string{}
	for _, n := range st.Needs {
		inputs[n] = filepath.Join(wd, n)
	}
	r := &StageRun{
		Name: st.Name, Kind: st.Kind.Name, Params: st.Params, OutDir: out,
		Workdir: wd, ConfigDir: e.cfg.Dir, Needs: slices.Clone(st.Needs),
		Resume: resume, Forced: forced, Strict: e.opts.Strict, Log: log,
		Tools:  parts.Tools,
		inputs: inputs, eng: &runEnv{e: e, items: items, itemSalt: itemSalt(parts)},
	}
	if err := st.Kind.Run(ctx, r); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := items.prune(); err != nil {
		return "", fmt.Errorf("pruning items: %w", err)
	}
	known := items.files()
	if old, _ := loadState(wd, st.Name); old != nil {
		for k, v := range old.Outputs {
			if _, ok := known[k]; !ok {
				known[k] = v
			}
		}
	}
	outputs, err := scanTree(out, known)
	if err != nil {
		return "", fmt.Errorf("recording outputs: %w", err)
	}
	state.Status, state.Outputs, state.Digest = statusDone, outputs, treeDigest(outputs)
	state.Finished = time.Now().UTC()
	e.mu.Lock()
	state.Reports = e.reports[st.Name]
	e.mu.Unlock()
	if err := saveState(wd, st.Name, state); err != nil {
		return "", err
	}
	return state.Digest, nil
}

// cleanOutDir removes temporary leftovers and, unless resuming, every file
// that is neither a recorded item's nor under a pending item's path. It
// removes only what the engine could have written: a file last modified
// before the engine created the folder (created) is not the engine's, and
// finding one fails the stage instead.
func cleanOutDir(out string, itemFiles map[string]FileRecord, pending []string, resume bool, created time.Time) error {
	keepDirs := map[string]bool{}
	keepTrees := map[string]bool{}
	for _, rel := range pending {
		keepTrees[rel] = true
		for d := filepath.Dir(rel); d != "." && d != "/"; d = filepath.Dir(d) {
			keepDirs[d] = true
		}
	}
	for rel := range itemFiles {
		for d := filepath.Dir(rel); d != "." && d != "/"; d = filepath.Dir(d) {
			keepDirs[d] = true
		}
	}
	var remove []string
	err := filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == out {
			return nil
		}
		rel, _ := filepath.Rel(out, path)
		rel = filepath.ToSlash(rel)
		switch {
		case IsTemp(d.Name()):
			remove = append(remove, path)
			if d.IsDir() {
				return filepath.SkipDir
			}
		case resume:
		case keepTrees[rel]:
			if d.IsDir() {
				return filepath.SkipDir
			}
		case d.IsDir():
			if !keepDirs[rel] {
				remove = append(remove, path)
				return filepath.SkipDir
			}
		default:
			if _, ok := itemFiles[rel]; !ok {
				remove = append(remove, path)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !created.IsZero() {
		for _, p := range remove {
			if f := olderFile(p, created); f != "" {
				return fmt.Errorf("%s is older than the stage's folder, so the engine did not write it; move it out of %s (the engine would delete it)", f, out)
			}
		}
	}
	for _, p := range remove {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// runEnv is the engine's side of one stage run.
type runEnv struct {
	e        *Engine
	items    *itemStore
	itemSalt string
}

// itemSalt is what every item of a stage depends on besides its own
// fingerprint: the kind's code version and the tools' versions.
func itemSalt(p KeyParts) string {
	b, _ := json.Marshal(struct {
		Kind, Version string
		Tools         map[string]string
	}{p.Kind, p.Version, p.Tools})
	return string(b)
}

func (r *runEnv) kindOf(stage string) string {
	if s := r.e.cfg.Stage(stage); s != nil {
		return s.Kind.Name
	}
	return ""
}

func (r *runEnv) report(stage string, lines ...string) {
	r.e.mu.Lock()
	r.e.reports[stage] = append(r.e.reports[stage], lines...)
	r.e.mu.Unlock()
}

func (r *runEnv) progress(stage, unit string, total int) *Progress {
	if r.e.disp == nil {
		return &Progress{stage: stage, unit: unit, start: time.Now()}
	}
	return r.e.disp.add(stage, unit, total)
}

func (r *runEnv) item(ctx context.Context, _ *StageRun, rel, fp string, build func(string) error) (bool, error) {
	return r.items.build(ctx, rel, fp+"\x00"+r.itemSalt, build)
}

// StageStatus is a stage's recorded state, for `pipeline status`.
type StageStatus struct {
	Stage, Kind string
	State       string // "never run", "running or interrupted", "done"
	Finished    time.Time
	Outputs     int
	Bytes       int64
	Reports     []string
	// Previous lists the folders earlier outputs were moved aside to
	// (Kind.KeepPrevious), oldest first.
	Previous []string
}

// Status reads the recorded state of every stage.
func (e *Engine) Status() ([]StageStatus, error) {
	var out []StageStatus
	for _, st := range e.cfg.Order() {
		s := StageStatus{Stage: st.Name, Kind: st.Kind.Name, State: "never run"}
		old, err := loadState(e.cfg.Workdir, st.Name)
		if err != nil {
			return nil, err
		}
		if old != nil {
			s.State = map[string]string{statusRunning: "running or interrupted", statusDone: "done"}[old.Status]
			s.Finished, s.Reports, s.Outputs = old.Finished, old.Reports, len(old.Outputs)
			for _, f := range old.Outputs {
				s.Bytes += f.Size
			}
		}
		if s.Previous, err = previousOf(e.cfg.Workdir, st.Name); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
