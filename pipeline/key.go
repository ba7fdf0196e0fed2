package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// keyOf hashes key parts (canonical JSON: map keys are sorted).
func keyOf(p KeyParts) string {
	b, _ := json.Marshal(p)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// paramsForKey renders params as JSON-friendly values: durations as strings,
// paths as written relative to the config folder when inside it.
func paramsForKey(st *Stage, cfgDir string) map[string]any {
	out := map[string]any{}
	for _, sp := range st.Kind.Params {
		v, ok := st.Params[sp.Name]
		if !ok || sp.NoKey {
			continue
		}
		switch x := v.(type) {
		case string:
			if sp.Type == Path && x != "" {
				if rel, err := filepath.Rel(cfgDir, x); err == nil && !strings.HasPrefix(rel, "..") {
					x = rel
				}
			}
			out[sp.Name] = x
		case time.Duration:
			out[sp.Name] = x.String()
		default:
			out[sp.Name] = x
		}
	}
	return out
}

// toolVersions memoises `tool -version` first lines for the process.
type toolVersions struct {
	mu   sync.Mutex
	seen map[string]toolResult
}

type toolResult struct {
	version string
	err     error
}

func (t *toolVersions) get(ctx context.Context, tool Tool) (string, error) {
	id := tool.Name + " " + strings.Join(tool.VersionArgs, " ")
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.seen[id]; ok {
		return r.version, r.err
	}
	if t.seen == nil {
		t.seen = map[string]toolResult{}
	}
	var r toolResult
	path, err := exec.LookPath(tool.Name)
	if err != nil {
		r.err = fmt.Errorf("%s not found on PATH (on Debian: apt-get install %s)", tool.Name, tool.Name)
	} else {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		out, err := exec.CommandContext(cctx, path, tool.VersionArgs...).Output()
		cancel()
		if err != nil {
			r.err = fmt.Errorf("%s %s: %w", tool.Name, strings.Join(tool.VersionArgs, " "), err)
		} else {
			line, _, _ := strings.Cut(string(out), "\n")
			r.version = strings.TrimSpace(line)
		}
	}
	t.seen[id] = r
	return r.version, r.err
}

// keyParts computes a stage's key parts given its inputs' digests. A
// required tool that is missing takes the version recorded by the stage's
// last finished run (old), so a stage whose outputs are up to date can be
// skipped on a machine without the tool (shards made elsewhere, trained on a
// GPU box); missing lists those tools' errors, and the caller fails only if
// the stage must run. With no recorded version, a missing tool is an error.
func (e *Engine) keyParts(ctx context.Context, st *Stage, inputDigests map[string]string, old *stageState) (_ KeyParts, missing []error, _ error) {
	p := KeyParts{Kind: st.Kind.Name, Version: st.Kind.Version, Params: paramsForKey(st, e.cfg.Dir)}
	if len(st.Needs) > 0 {
		p.Inputs = map[string]string{}
		for _, n := range st.Needs {
			p.Inputs[n] = inputDigests[n]
		}
	}
	for _, t := range st.Kind.Tools {
		v, err := e.tools.get(ctx, t)
		switch {
		case err != nil && t.Optional:
			v = "not installed"
		case err != nil && old != nil && old.Status == statusDone && old.Parts.Tools[t.Name] != "":
			v = old.Parts.Tools[t.Name]
			missing = append(missing, err)
		case err != nil:
			return p, nil, fmt.Errorf("stage %s: %w", st.Name, err)
		}
		if p.Tools == nil {
			p.Tools = map[string]string{}
		}
		p.Tools[t.Name] = v
	}
	var external []string
	for _, sp := range st.Kind.Params {
		if sp.Type == Path && st.Params.Has(sp.Name) {
			external = append(external, st.Params.String(sp.Name))
		}
	}
	if st.Kind.ExternalInputs != nil {
		external = append(external, st.Kind.ExternalInputs(st.Params)...)
	}
	if st.Kind.InputsFromNeeds != nil {
		needs := map[string]string{}
		for _, n := range st.Needs {
			needs[n] = filepath.Join(e.cfg.Workdir, n)
		}
		external = append(external, st.Kind.InputsFromNeeds(st.Params, needs)...)
	}
	for _, path := range external {
		if path == "" {
			continue
		}
		if p.External == nil {
			p.External = map[string]string{}
		}
		if isURL(path) && st.Kind.ListURL != nil {
			d, err := st.Kind.ListURL(ctx, path)
			if err != nil {
				d = "unreadable: " + err.Error()
			}
			p.External[path] = d
			continue
		}
		p.External[filepath.Clean(path)] = listingDigest(path)
	}
	// Canonicalise through JSON so recorded and fresh parts compare equal.
	b, _ := json.Marshal(p)
	var canon KeyParts
	_ = json.Unmarshal(b, &canon)
	return canon, missing, nil
}

// sameKey reports whether recorded parts match the fresh key. Parts recorded
// before a param became NoKey match once that param is dropped from them.
func sameKey(kind *Kind, old KeyParts, oldKey, key string) bool {
	if oldKey == key {
		return true
	}
	stripped := false
	for _, sp := range kind.Params {
		if _, ok := old.Params[sp.Name]; ok && sp.NoKey {
			if !stripped {
				old.Params = maps.Clone(old.Params)
				stripped = true
			}
			delete(old.Params, sp.Name)
		}
	}
	return stripped && keyOf(old) == key
}

// continues reports whether cur continues the outputs recorded with old:
// only params changed and the kind says the change continues them.
func continues(kind *Kind, old, cur KeyParts) bool {
	if kind.Continues == nil || old.Kind != cur.Kind || old.Version != cur.Version ||
		diffMaps(old.Inputs, cur.Inputs) != "" || diffMaps(old.Tools, cur.Tools) != "" ||
		diffMaps(old.External, cur.External) != "" {
		return false
	}
	oldParams := maps.Clone(old.Params)
	for _, sp := range kind.Params {
		if sp.NoKey {
			delete(oldParams, sp.Name)
		}
	}
	return kind.Continues(oldParams, cur.Params)
}

// staleReasons compares recorded key parts with fresh ones.
func staleReasons(old, cur KeyParts) []string {
	var r []string
	if old.Kind != cur.Kind || old.Version != cur.Version {
		r = append(r, fmt.Sprintf("code version changed (%s %s -> %s %s)", old.Kind, old.Version, cur.Kind, cur.Version))
	}
	if d := diffMaps(old.Params, cur.Params); d != "" {
		r = append(r, "params changed: "+d)
	}
	if d := diffMaps(old.Inputs, cur.Inputs); d != "" {
		r = append(r, "input changed: "+d)
	}
	if d := diffMaps(old.Tools, cur.Tools); d != "" {
		r = append(r, "tool version changed: "+d)
	}
	if d := diffMaps(old.External, cur.External); d != "" {
		r = append(r, "input changed: "+d)
	}
	return r
}

func diffMaps[V any](a, b map[string]V) string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var names []string
	for k := range keys {
		ja, _ := json.Marshal(a[k])
		jb, _ := json.Marshal(b[k])
		_, ina := a[k]
		_, inb := b[k]
		if ina != inb || string(ja) != string(jb) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
