// Package stages is the registry of stage kinds: one file per kind binding
// its YAML params to the package that does the work, and one explicit All()
// list.
package stages
