package shards

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// Format names this shard layout; it is stored in index.json and in every
// shard's schema metadata.
const Format = "timelapse-shards/1"

// Column names, in schema order.
const (
	ColVideoID = "video_id"
	ColFrame   = "frame"
	ColPTS     = "pts_seconds"
	ColWidth   = "width"
	ColHeight  = "height"
	ColJPEG    = "jpeg"
)

// Schema metadata keys. Values are strings; the JSON ones hold objects.
const (
	MetaFormat = "timelapse.format"
	MetaPack   = "timelapse.pack"   // JSON: the pack params
	MetaRecipe = "timelapse.recipe" // JSON: the frames recipe (fps, trims, size)
	MetaTools  = "timelapse.tools"  // JSON: tool versions (ffmpeg, arrow-go)
)

// fields is the shard schema without metadata.
var fields = []arrow.Field{
	// video_id is a plain string, not dictionary-encoded: arrow-go v18.8.0's
	// NewMappedFileReader panics on any dictionary column (its dictionary
	// memo is never initialised), and zero-copy mapping matters more than
	// the few bytes per row a dictionary would save next to a JPEG.
	{Name: ColVideoID, Type: arrow.BinaryTypes.String},
	{Name: ColFrame, Type: arrow.PrimitiveTypes.Int32},
	{Name: ColPTS, Type: arrow.PrimitiveTypes.Float64},
	{Name: ColWidth, Type: arrow.PrimitiveTypes.Int32},
	{Name: ColHeight, Type: arrow.PrimitiveTypes.Int32},
	{Name: ColJPEG, Type: arrow.BinaryTypes.Binary},
}

// column indexes in fields.
const (
	colVideoID = iota
	colFrame
	colPTS
	colWidth
	colHeight
	colJPEG
)

// newSchema returns the shard schema carrying metadata md.
func newSchema(md map[string]string) *arrow.Schema {
	m := arrow.MetadataFrom(md) // sorts keys: deterministic bytes
	return arrow.NewSchema(fields, &m)
}

// checkSchema reports whether s has the shard columns with the shard types.
func checkSchema(s *arrow.Schema) error {
	if s.NumFields() != len(fields) {
		return fmt.Errorf("schema has %d columns, want %d", s.NumFields(), len(fields))
	}
	for i, want := range fields {
		got := s.Field(i)
		if got.Name != want.Name || !arrow.TypeEqual(got.Type, want.Type) {
			return fmt.Errorf("column %d is %s %s, want %s %s", i, got.Name, got.Type, want.Name, want.Type)
		}
	}
	return nil
}
