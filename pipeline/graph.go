package pipeline

// findCycle returns the stage names of a dependency cycle (first repeated at
// the end), or nil.
func findCycle(cfg *Config) []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var cycle []string
	var visit func(name string) bool
	visit = func(name string) bool {
		color[name] = grey
		stack = append(stack, name)
		st := cfg.Stage(name)
		for _, n := range st.Needs {
			if cfg.Stage(n) == nil {
				continue
			}
			switch color[n] {
			case grey:
				for i, s := range stack {
					if s == n {
						cycle = append(append([]string{}, stack[i:]...), n)
					}
				}
				return true
			case white:
				if visit(n) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[name] = black
		return false
	}
	for _, s := range cfg.Stages {
		if color[s.Name] == white && visit(s.Name) {
			return cycle
		}
	}
	return nil
}

// Order returns the stages in dependency order, keeping file order among
// independent stages.
func (c *Config) Order() []*Stage {
	done := map[string]bool{}
	var out []*Stage
	var visit func(s *Stage)
	visit = func(s *Stage) {
		if done[s.Name] {
			return
		}
		done[s.Name] = true
		for _, n := range s.Needs {
			if d := c.Stage(n); d != nil {
				visit(d)
			}
		}
		out = append(out, s)
	}
	for _, s := range c.Stages {
		visit(s)
	}
	return out
}

// Ancestors returns the names of every stage that name depends on,
// directly or not.
func (c *Config) Ancestors(name string) map[string]bool {
	seen := map[string]bool{}
	var walk func(n string)
	walk = func(n string) {
		st := c.Stage(n)
		if st == nil {
			return
		}
		for _, d := range st.Needs {
			if !seen[d] {
				seen[d] = true
				walk(d)
			}
		}
	}
	walk(name)
	return seen
}
