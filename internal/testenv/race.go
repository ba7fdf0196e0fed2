//go:build race

package testenv

// Race is true in a -race build.
const Race = true
