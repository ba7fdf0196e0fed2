package shards

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// frameRef is one frame of a shard: its JPEG bytes (a slice of the mapped
// file when uncompressed) and its row values.
type frameRef struct {
	jpeg          []byte
	pts           float64
	width, height int32
}

// shardVideo is one video's frames in a shard, frame 1 first.
type shardVideo struct {
	id     string
	frames []frameRef
}

// shardData is a parsed, validated shard.
type shardData struct {
	name     string
	metadata map[string]string
	videos   []shardVideo // in row order
	rows     int
	byID     map[string]int
}

// find returns the shard's video id, or nil.
func (s *shardData) find(id string) *shardVideo {
	if s.byID == nil {
		s.byID = make(map[string]int, len(s.videos))
		for i, v := range s.videos {
			s.byID[v.id] = i
		}
	}
	if i, ok := s.byID[id]; ok {
		return &s.videos[i]
	}
	return nil
}

// boundedAllocator refuses (by a panic that readShard recovers) the
// allocations a corrupt compressed buffer could ask for.
type boundedAllocator struct{ memory.Allocator }

func (a boundedAllocator) Allocate(n int) []byte {
	if n < 0 || n > maxBatchBody {
		panic(fmt.Sprintf("refusing to allocate %d bytes", n))
	}
	return a.Allocator.Allocate(n)
}

func (a boundedAllocator) Reallocate(n int, b []byte) []byte {
	if n < 0 || n > maxBatchBody {
		panic(fmt.Sprintf("refusing to allocate %d bytes", n))
	}
	return a.Allocator.Reallocate(n, b)
}

// maxBatchBody bounds a record batch body when reading; our writer keeps
// batches near batchBytes, far below it.
const maxBatchBody = 1 << 30

// readShard parses a shard's bytes (name is for errors) and checks its
// structure: the shard schema, no nulls, every video's frames numbered 1..n
// in order, each video in one run of rows. Any malformation is an error
// naming the shard, never a panic.
func readShard(name string, data []byte) (s *shardData, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("shards: %s: malformed shard: %v", name, r)
		}
	}()
	if err := checkFooter(data); err != nil {
		return nil, fmt.Errorf("shards: %s: %w", name, err)
	}
	mem := boundedAllocator{memory.NewGoAllocator()}
	rd, err := ipc.NewMappedFileReader(data, ipc.WithBodySizeLimit(maxBatchBody), ipc.WithAllocator(mem))
	if err != nil {
		return nil, fmt.Errorf("shards: %s: %w", name, err)
	}
	defer rd.Close()
	if err := checkSchema(rd.Schema()); err != nil {
		return nil, fmt.Errorf("shards: %s: %w", name, err)
	}
	s = &shardData{name: name, metadata: map[string]string{}}
	md := rd.Schema().Metadata()
	for i, k := range md.Keys() {
		s.metadata[k] = md.Values()[i]
	}
	seen := map[string]bool{}
	for b := 0; b < rd.NumRecords(); b++ {
		rec, err := rd.RecordBatchAt(b)
		if err != nil {
			return nil, fmt.Errorf("shards: %s: record batch %d: %w", name, b, err)
		}
		err = s.addBatch(rec, seen)
		rec.Release()
		if err != nil {
			return nil, fmt.Errorf("shards: %s: record batch %d: %w", name, b, err)
		}
	}
	return s, nil
}

// addBatch appends the rows of one record batch.
func (s *shardData) addBatch(rec arrow.RecordBatch, seen map[string]bool) error {
	n := int(rec.NumRows())
	for i := 0; i < int(rec.NumCols()); i++ {
		c := rec.Column(i)
		if c.Len() != n {
			return fmt.Errorf("column %s has %d rows, batch %d", rec.ColumnName(i), c.Len(), n)
		}
		if c.NullN() != 0 {
			return fmt.Errorf("column %s has nulls", rec.ColumnName(i))
		}
	}
	vids, ok := rec.Column(colVideoID).(*array.String)
	if !ok {
		return fmt.Errorf("column %s is not strings", ColVideoID)
	}
	if err := vids.ValidateFull(); err != nil {
		return fmt.Errorf("column %s: %w", ColVideoID, err)
	}
	frameNo := int32s(rec.Column(colFrame).(*array.Int32), n)
	pts := rec.Column(colPTS).(*array.Float64).Float64Values()
	width := int32s(rec.Column(colWidth).(*array.Int32), n)
	height := int32s(rec.Column(colHeight).(*array.Int32), n)
	jp := rec.Column(colJPEG).(*array.Binary)
	if err := jp.ValidateFull(); err != nil {
		return fmt.Errorf("column %s: %w", ColJPEG, err)
	}
	if frameNo == nil || len(pts) < n || width == nil || height == nil {
		return fmt.Errorf("a column's buffer is shorter than its %d rows", n)
	}
	for r := 0; r < n; r++ {
		id := vids.Value(r) // points into the mapped file
		var v *shardVideo
		if len(s.videos) > 0 && s.videos[len(s.videos)-1].id == id {
			v = &s.videos[len(s.videos)-1]
		} else {
			if seen[id] {
				return fmt.Errorf("row %d: video %s is split in two runs of rows", r, id)
			}
			id = strings.Clone(id)
			seen[id] = true
			s.videos = append(s.videos, shardVideo{id: id})
			v = &s.videos[len(s.videos)-1]
		}
		if want := len(v.frames) + 1; int(frameNo[r]) != want {
			return fmt.Errorf("video %s: row %d has frame %d, want %d", id, r, frameNo[r], want)
		}
		v.frames = append(v.frames, frameRef{jpeg: jp.Value(r), pts: pts[r], width: width[r], height: height[r]})
		s.rows++
	}
	return nil
}

// int32s returns the first n values of a, or nil if it has fewer.
func int32s(a *array.Int32, n int) []int32 {
	v := a.Int32Values()
	if len(v) < n {
		return nil
	}
	return v[:n]
}
