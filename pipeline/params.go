package pipeline

import (
	"fmt"
	"time"
)

// Params holds a stage's resolved parameter values (defaults applied), keyed
// by name. Values have the Go type of their ParamSpec: string, int, float64,
// bool, time.Duration or []string. Getters panic only on a programming error
// (asking for an undeclared param or the wrong type), never on user input,
// which validation has already checked.
type Params map[string]any

// Has reports whether the param has a value (set in YAML or defaulted).
func (p Params) Has(name string) bool { _, ok := p[name]; return ok }

func (p Params) get(name string) any {
	v, ok := p[name]
	if !ok {
		panic(fmt.Sprintf("pipeline: param %q has no value (undeclared, or no default)", name))
	}
	return v
}

// String returns a String, Path or enum param.
func (p Params) String(name string) string { return p.get(name).(string) }

// Int returns an Int param.
func (p Params) Int(name string) int { return p.get(name).(int) }

// Float returns a Float param.
func (p Params) Float(name string) float64 { return p.get(name).(float64) }

// Bool returns a Bool param.
func (p Params) Bool(name string) bool { return p.get(name).(bool) }

// Duration returns a Duration param.
func (p Params) Duration(name string) time.Duration { return p.get(name).(time.Duration) }

// Strings returns a StringList param.
func (p Params) Strings(name string) []string { return p.get(name).([]string) }
