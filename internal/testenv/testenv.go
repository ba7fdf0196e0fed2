// Package testenv tells tests about the build they run in. Its one use: the
// heaviest numeric tests skip themselves in a -race build, because the race
// detector makes single-goroutine arithmetic 10-30x slower and finds nothing
// in it; scripts/test.sh runs their packages a second time without -race, so
// each such test still runs once.
package testenv

import "testing"

// SkipUnderRace skips t in a -race build (see the package doc).
func SkipUnderRace(t testing.TB) {
	t.Helper()
	if Race {
		t.Skip("heavy numeric test: runs in the pass without -race (scripts/test.sh)")
	}
}
