package pipeline

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is a loaded, validated pipeline file.
type Config struct {
	// File is the config's path as given ("<embedded>/pipeline.yaml" for the default).
	File string
	// Dir is the folder relative paths in the config resolve against.
	Dir string
	// Workdir is the absolute work folder.
	Workdir string
	// Stages in file order.
	Stages []*Stage
}

// Stage is one configured stage.
type Stage struct {
	Name   string
	Kind   *Kind
	Needs  []string
	Params Params
	// Line and Col locate the stage's name in the config file.
	Line, Col int

	paramPos map[string][2]int // param name -> line, column of its value
}

// Stage returns the stage called name, or nil.
func (c *Config) Stage(name string) *Stage {
	for _, s := range c.Stages {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Registry maps kind names to kinds.
type Registry map[string]*Kind

// NewRegistry indexes kinds by name.
func NewRegistry(kinds []Kind) Registry {
	r := make(Registry, len(kinds))
	for i := range kinds {
		r[kinds[i].Name] = &kinds[i]
	}
	return r
}

// Names returns the kind names, sorted.
func (r Registry) Names() []string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// LoadFile reads and validates a config file.
func LoadFile(path string, reg Registry) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return Load(path, filepath.Dir(abs), src, reg)
}

var stageNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Load parses and validates config source. name is used in messages; dir is
// the folder relative paths (workdir, Path params) resolve against. The error,
// if any, is a *ConfigError listing every problem found.
func Load(name, dir string, src []byte, reg Registry) (*Config, error) {
	l := &loader{file: name, dir: dir, reg: reg}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		l.syntaxError(err)
		return nil, l.err()
	}
	cfg := &Config{File: name, Dir: dir}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		l.add(nil, "empty config: want a mapping with `workdir` and `stages`")
		return nil, l.err()
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		l.add(root, "config must be a mapping with `workdir` and `stages`, got %s", describe(root))
		return nil, l.err()
	}
	var stagesNode *yaml.Node
	workdir := "work"
	l.mapping(root, func(k, v *yaml.Node) {
		switch k.Value {
		case "workdir":
			if s, ok := l.str(v, "workdir"); ok {
				if s == "" {
					l.add(v, "workdir must not be empty")
				}
				workdir = s
			}
		case "stages":
			stagesNode = v
		case "description":
			l.str(v, "description")
		default:
			l.add(k, "unknown key %q%s", k.Value, suggest(k.Value, []string{"workdir", "stages", "description"}))
		}
	})
	if filepath.IsAbs(workdir) {
		cfg.Workdir = filepath.Clean(workdir)
	} else {
		cfg.Workdir = filepath.Join(dir, workdir)
	}
	if stagesNode == nil {
		l.add(root, "missing `stages`")
		return nil, l.err()
	}
	if stagesNode.Kind != yaml.MappingNode {
		l.add(stagesNode, "`stages` must be a mapping of stage name to stage, got %s", describe(stagesNode))
		return nil, l.err()
	}
	needPos := map[*Stage][]*yaml.Node{}
	declared := map[string]bool{}
	l.mapping(stagesNode, func(k, v *yaml.Node) {
		declared[k.Value] = true
		st, needs := l.stage(k, v)
		if st != nil {
			cfg.Stages = append(cfg.Stages, st)
			needPos[st] = needs
		}
	})
	if len(cfg.Stages) == 0 && len(l.problems) == 0 {
		l.add(stagesNode, "no stages defined")
	}
	names := make([]string, len(cfg.Stages))
	for i, s := range cfg.Stages {
		names[i] = s.Name
	}
	for _, s := range cfg.Stages {
		for i, n := range s.Needs {
			switch {
			case n == s.Name:
				l.add(needPos[s][i], "stage %q needs itself", s.Name)
			case !declared[n]:
				l.add(needPos[s][i], "stage %q needs unknown stage %q%s", s.Name, n, suggest(n, names))
			}
		}
	}
	if len(l.problems) == 0 {
		if cyc := findCycle(cfg); cyc != nil {
			first := cfg.Stage(cyc[0])
			l.problems = append(l.problems, Problem{File: name, Line: first.Line, Col: first.Col,
				Msg: "dependency cycle: " + strings.Join(cyc, " -> ")})
		}
	}
	if len(l.problems) == 0 {
		overlaps := overlapProblems(cfg)
		named := map[string]bool{}
		for _, p := range overlaps {
			named[p.stage] = true
		}
		l.problems = append(l.problems, overlaps...)
		l.problems = append(l.problems, adoptProblems(cfg, named)...)
	}
	if err := l.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

type loader struct {
	file     string
	dir      string
	reg      Registry
	problems []Problem
}

func (l *loader) err() error {
	if len(l.problems) == 0 {
		return nil
	}
	e := &ConfigError{Problems: l.problems}
	e.sort()
	return e
}

func (l *loader) add(n *yaml.Node, format string, args ...any) {
	p := Problem{File: l.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	l.problems = append(l.problems, p)
}

var yamlLineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

func (l *loader) syntaxError(err error) {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, e := range te.Errors {
			l.problems = append(l.problems, Problem{File: l.file, Msg: e})
		}
		return
	}
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		l.problems = append(l.problems, Problem{File: l.file, Msg: err.Error()})
		return
	}
	line, _ := strconv.Atoi(m[1])
	l.problems = append(l.problems, Problem{File: l.file, Line: line, Col: 1, Msg: "YAML syntax: " + m[2]})
}

// mapping calls f for each key/value pair, reporting duplicate and
// non-scalar keys.
func (l *loader) mapping(n *yaml.Node, f func(k, v *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			l.add(k, "mapping key must be a plain name, got %s", describe(k))
			continue
		}
		if seen[k.Value] {
			l.add(k, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		f(k, v)
	}
}

func (l *loader) str(v *yaml.Node, what string) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
		l.add(v, "%s must be a string, got %s", what, describe(v))
		return "", false
	}
	return v.Value, true
}

func (l *loader) stage(k, v *yaml.Node) (*Stage, []*yaml.Node) {
	st := &Stage{Name: k.Value, Line: k.Line, Col: k.Column}
	if !stageNameRE.MatchString(k.Value) {
		l.add(k, "stage name %q must start with a letter or digit and use only letters, digits, '_', '-', '.'", k.Value)
	}
	if v.Kind != yaml.MappingNode {
		l.add(v, "stage %q must be a mapping with `kind`, `needs`, `params`, got %s", st.Name, describe(v))
		return nil, nil
	}
	var paramsNode *yaml.Node
	var needNodes []*yaml.Node
	kindSeen := false
	l.mapping(v, func(key, val *yaml.Node) {
		switch key.Value {
		case "kind":
			kindSeen = true
			name, ok := l.str(val, "kind")
			if !ok {
				return
			}
			kd, found := l.reg[name]
			if !found {
				l.add(val, "stage %q: unknown kind %q%s", st.Name, name, suggest(name, l.reg.Names()))
				return
			}
			st.Kind = kd
		case "needs":
			needNodes = l.needs(st, val)
		case "params":
			paramsNode = val
		case "description":
			l.str(val, "description")
		default:
			l.add(key, "stage %q: unknown key %q%s", st.Name, key.Value,
				suggest(key.Value, []string{"kind", "needs", "params", "description"}))
		}
	})
	if !kindSeen {
		l.add(k, "stage %q: missing `kind`", st.Name)
	}
	if st.Kind != nil {
		st.Params = l.params(st, k, paramsNode)
	}
	return st, needNodes
}

func (l *loader) needs(st *Stage, v *yaml.Node) []*yaml.Node {
	items := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		items = v.Content
	}
	var nodes []*yaml.Node
	for _, it := range items {
		name, ok := l.str(it, "each of `needs`")
		if !ok {
			continue
		}
		if slices.Contains(st.Needs, name) {
			l.add(it, "stage %q: %q is listed twice in needs", st.Name, name)
			continue
		}
		st.Needs = append(st.Needs, name)
		nodes = append(nodes, it)
	}
	return nodes
}

func (l *loader) params(st *Stage, stageKey, n *yaml.Node) Params {
	p := Params{}
	specs := map[string]*ParamSpec{}
	var names []string
	for i := range st.Kind.Params {
		sp := &st.Kind.Params[i]
		specs[sp.Name] = sp
		names = append(names, sp.Name)
	}
	if n != nil && n.Kind != yaml.MappingNode && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		l.add(n, "stage %q: params must be a mapping, got %s", st.Name, describe(n))
		n = nil
	}
	if n != nil && n.Kind == yaml.MappingNode {
		l.mapping(n, func(k, v *yaml.Node) {
			sp, ok := specs[k.Value]
			if !ok {
				l.add(k, "stage %q: kind %s has no param %q%s", st.Name, st.Kind.Name, k.Value, suggest(k.Value, names))
				return
			}
			val, err := decodeParam(sp, v)
			if err != nil {
				l.add(v, "stage %q: param %s: %v", st.Name, sp.Name, err)
				return
			}
			if s, ok := val.(string); ok && sp.Type == Path && s != "" && !filepath.IsAbs(s) && !isURL(s) {
				val = filepath.Join(l.dir, s)
			}
			p[sp.Name] = val
			if st.paramPos == nil {
				st.paramPos = map[string][2]int{}
			}
			st.paramPos[sp.Name] = [2]int{v.Line, v.Column}
		})
	}
	for _, sp := range st.Kind.Params {
		if _, ok := p[sp.Name]; ok {
			continue
		}
		if sp.Required {
			l.add(stageKey, "stage %q: missing required param %s (%s)", st.Name, sp.Name, sp.Type)
			continue
		}
		if sp.Default != nil {
			p[sp.Name] = sp.Default
		}
	}
	return p
}

// decodeParam converts a YAML value to the Go value of the spec's type.
func decodeParam(sp *ParamSpec, v *yaml.Node) (any, error) {
	want := sp.Type.String()
	if v.Kind == yaml.AliasNode {
		v = v.Alias
	}
	scalar := v.Kind == yaml.ScalarNode
	switch sp.Type {
	case String, Path:
		if !scalar || v.Tag != "!!str" {
			return nil, fmt.Errorf("want %s, got %s", want, describe(v))
		}
		if len(sp.Enum) > 0 && !slices.Contains(sp.Enum, v.Value) {
			return nil, fmt.Errorf("%q is not one of %s", v.Value, strings.Join(sp.Enum, ", "))
		}
		return v.Value, nil
	case Int:
		if !scalar || v.Tag != "!!int" {
			return nil, fmt.Errorf("want %s, got %s", want, describe(v))
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(v.Value, "_", ""), 0, 64)
		if err != nil || i > math.MaxInt32*1024 || i < -math.MaxInt32*1024 {
			return nil, fmt.Errorf("%q is not a usable integer", v.Value)
		}
		if err := checkBounds(sp, float64(i)); err != nil {
			return nil, err
		}
		return int(i), nil
	case Float:
		if !scalar || (v.Tag != "!!int" && v.Tag != "!!float") {
			return nil, fmt.Errorf("want %s, got %s", want, describe(v))
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(v.Value, "_", ""), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%q is not a finite number", v.Value)
		}
		if err := checkBounds(sp, f); err != nil {
			return nil, err
		}
		return f, nil
	case Bool:
		if !scalar || v.Tag != "!!bool" {
			return nil, fmt.Errorf("want %s (true or false), got %s", want, describe(v))
		}
		b, _ := strconv.ParseBool(strings.ToLower(v.Value))
		return b, nil
	case Duration:
		if !scalar {
			return nil, fmt.Errorf("want a duration like 2s or 1.5, got %s", describe(v))
		}
		var d time.Duration
		switch v.Tag {
		case "!!int", "!!float":
			f, err := strconv.ParseFloat(v.Value, 64)
			if err != nil || math.IsNaN(f) || math.Abs(f) > 1e9 {
				return nil, fmt.Errorf("%q is not a usable number of seconds", v.Value)
			}
			d = time.Duration(f * float64(time.Second))
		case "!!str":
			var err error
			if d, err = time.ParseDuration(v.Value); err != nil {
				return nil, fmt.Errorf("%q is not a duration (like 2s, 500ms, 1m30s)", v.Value)
			}
		default:
			return nil, fmt.Errorf("want a duration like 2s or 1.5, got %s", describe(v))
		}
		if d < 0 {
			return nil, fmt.Errorf("duration %s must not be negative", v.Value)
		}
		return d, nil
	case StringList:
		if scalar && v.Tag == "!!str" {
			return []string{v.Value}, nil
		}
		if v.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("want %s, got %s", want, describe(v))
		}
		out := []string{}
		for _, it := range v.Content {
			if it.Kind != yaml.ScalarNode || it.Tag != "!!str" {
				return nil, fmt.Errorf("item at %d:%d: want string, got %s", it.Line, it.Column, describe(it))
			}
			out = append(out, it.Value)
		}
		return out, nil
	}
	return nil, fmt.Errorf("param type %d not supported", sp.Type)
}

func checkBounds(sp *ParamSpec, f float64) error {
	if sp.Min != nil && f < *sp.Min {
		return fmt.Errorf("%v is below the minimum %v", f, *sp.Min)
	}
	if sp.Max != nil && f > *sp.Max {
		return fmt.Errorf("%v is above the maximum %v", f, *sp.Max)
	}
	return nil
}

// describe names a YAML node's type for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return fmt.Sprintf("string %q", n.Value)
		case "!!int":
			return "int " + n.Value
		case "!!float":
			return "float " + n.Value
		case "!!bool":
			return "bool " + n.Value
		case "!!null":
			return "null"
		}
		return fmt.Sprintf("%s %q", strings.TrimPrefix(n.Tag, "!!"), n.Value)
	}
	return "nothing"
}

// isURL reports whether a Path param's value names a bucket location
// (s3://bucket/videos): it is kept as written, not resolved as a path.
func isURL(s string) bool {
	i := strings.Index(s, "://")
	return i > 0 && !strings.ContainsAny(s[:i], `/\`)
}
