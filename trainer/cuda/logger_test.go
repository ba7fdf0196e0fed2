package cuda

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Records go to the logger the caller hands down (Options.Logger), never to
// slog's global default, which --log-format json and --quiet do not reach.
func TestNoGlobalLogger(t *testing.T) {
	if _, err := os.Stat("logger_test.go"); err != nil {
		t.Skip("not run from the package folder")
	}
	global := regexp.MustCompile(`\bslog\.(Debug|Info|Warn|Error|Log|LogAttrs|Default|SetDefault)\b|\blog\.(Print|Fatal|Panic)`)
	for _, dir := range []string{".", "../gpu"} {
		paths, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, p := range paths {
			if strings.HasSuffix(p, "_test.go") {
				continue
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if m := global.Find(b); m != nil {
				t.Errorf("%s logs through the global logger (%s)", p, m)
			}
		}
	}
}
