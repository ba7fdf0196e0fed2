package pipeline

import "context"

// Kind is a stage kind: what a `kind:` value in the YAML names. A kind declares
// its params once; that spec validates configs and prints the docs.
type Kind struct {
	// Name is the value of `kind:` in the YAML.
	Name string
	// Version is the kind's code version. Bump it whenever the kind's outputs
	// for the same inputs change; it is part of the cache key.
	Version string
	// Doc is a one-paragraph description shown by `pipeline stages`.
	Doc string
	// Params is the kind's parameter spec, in display order.
	Params []ParamSpec
	// Tools lists external programs whose version is part of the cache key.
	Tools []Tool
	// ExternalInputs, when set, returns more files or folders outside the
	// workdir that the stage reads for these params. Like the value of every
	// Path param (a folder of videos, a still image), their listing (paths,
	// sizes, modification times) enters the cache key, so adding or editing a
	// source file makes the stage stale.
	ExternalInputs func(p Params) []string
	// InputsFromNeeds, when set, returns more files outside the workdir that
	// the stage finds through its needed stages' outputs; needs maps each
	// needed stage's name to its output folder (the caption file beside each
	// source video that a frames index lists, say). Their listing enters the
	// cache key as ExternalInputs' does, so editing one makes the stage stale.
	InputsFromNeeds func(p Params, needs map[string]string) []string
	// ListURL, when set, digests the listing of a bucket location that a
	// Path param holds (ingest's folder: s3://bucket/videos): every object's
	// name, size, ETag and modification time, so adding, removing or
	// rewriting an object makes the stage stale as a local folder's listing
	// does. An error enters the key as "unreadable: ..." (the stage runs and
	// reports it). Without it a location's listing is not part of the key.
	ListURL func(ctx context.Context, url string) (string, error)
	// Run does the stage's work. It writes its outputs under r.OutDir (see
	// StageRun for atomicity) and returns an error to fail the stage.
	Run func(ctx context.Context, r *StageRun) error
	// Verify, when set, checks the integrity of a finished stage's outputs
	// (`pipeline verify`). dir is the stage's output directory.
	Verify func(ctx context.Context, dir string, p Params) error
	// Continues, when set, decides whether a change of params continues the
	// previous outputs instead of invalidating them (raising a trainer's
	// steps). It is asked only when nothing but keyed params changed; old and
	// cur are the recorded and the new params as in the cache key (numbers as
	// float64). When it returns true the stage runs with StageRun.Resume set
	// and its previous outputs in place.
	Continues func(old, cur map[string]any) bool
	// KeepPrevious makes the engine move the stage's previous outputs aside,
	// to <workdir>/.pipeline/previous/<stage>-<UTC time>/, instead of deleting
	// them, whenever the stage runs afresh (not resuming): for outputs that
	// cost hours, like a trainer's checkpoints.
	KeepPrevious bool
}

// Tool is an external program a kind calls. Its version string (the first
// line of `Name VersionArgs...`) enters the cache key.
type Tool struct {
	Name        string
	VersionArgs []string
	// Optional tools may be missing: their version is then "not installed"
	// and the kind must do without (sample skips its MP4 without ffmpeg).
	Optional bool
}

// ParamType is the type of a stage parameter's value.
type ParamType int

// Param types. Durations accept Go durations ("2s", "1m30s") or a number of
// seconds. Paths are strings resolved relative to the config file's folder.
const (
	String ParamType = iota
	Int
	Float
	Bool
	Duration
	StringList
	Path
)

func (t ParamType) String() string {
	switch t {
	case String:
		return "string"
	case Int:
		return "int"
	case Float:
		return "float"
	case Bool:
		return "bool"
	case Duration:
		return "duration"
	case StringList:
		return "list of strings"
	case Path:
		return "path"
	}
	return "unknown"
}

// ParamSpec declares one parameter of a kind.
type ParamSpec struct {
	Name string
	Type ParamType
	// Default is the value used when the YAML omits the param: a string,
	// int, float64, bool, time.Duration or []string matching Type. Nil with
	// Required false means "unset" (Params.Has reports false).
	Default any
	// Required params have no default; omitting one is a validation error.
	Required bool
	// Enum, when non-empty, lists the allowed values of a String param.
	Enum []string
	// Min and Max, when non-nil, bound Int and Float params (inclusive).
	Min, Max *float64
	// NoKey params do not change the stage's outputs beyond floating-point
	// noise (worker counts, log and checkpoint cadence, the device): they are
	// left out of the cache key, like -p and -v in cmd/go's action IDs, so
	// editing one neither re-runs a finished stage nor keeps an interrupted
	// one from resuming.
	NoKey bool
	Doc   string
}

// Bound returns a pointer to v, for ParamSpec.Min and Max.
func Bound(v float64) *float64 { return &v }
