package shards

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/timelapse-ml/pipeline/frames"
)

// shardWrite is one shard to write.
type shardWrite struct {
	file        string
	framesDir   string
	videos      []plannedVideo
	metadata    map[string]string
	compression string
	onVideo     func(id string)
}

// countingWriter counts and hashes what passes through it.
type countingWriter struct {
	w io.Writer
	n int64
	h interface{ Write([]byte) (int, error) }
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	return n, err
}

// writeShard writes one shard file atomically and returns its index entry.
func writeShard(ctx context.Context, s shardWrite, out Output) (ShardInfo, error) {
	info := ShardInfo{File: s.file}
	f, err := out.Create(s.file)
	if err != nil {
		return info, fmt.Errorf("shards: create %s: %w", s.file, err)
	}
	defer f.Abort() // no-op after Commit
	h := sha256.New()
	bw := bufio.NewWriterSize(f, 1<<20)
	cw := &countingWriter{w: bw, h: h}

	mem := memory.NewGoAllocator()
	schema := newSchema(s.metadata)
	opts := []ipc.Option{ipc.WithSchema(schema), ipc.WithAllocator(mem)}
	if s.compression == CompressionZstd {
		opts = append(opts, ipc.WithZstd())
	}
	w, err := ipc.NewFileWriter(cw, opts...)
	if err != nil {
		return info, fmt.Errorf("shards: %s: %w", s.file, err)
	}
	bb := newBatchBuilder(mem, schema)
	defer bb.release()
	flush := func() error {
		if bb.rows == 0 {
			return nil
		}
		rec := bb.build()
		defer rec.Release()
		if err := w.Write(rec); err != nil {
			return fmt.Errorf("shards: write %s: %w", s.file, err)
		}
		return nil
	}
	for _, v := range s.videos {
		for fr := 1; fr <= v.Frames; fr++ {
			if err := ctx.Err(); err != nil {
				return info, err
			}
			data, err := os.ReadFile(frames.FramePath(s.framesDir, v.ID, fr))
			if err != nil {
				return info, fmt.Errorf("shards: pack video %s frame %d: %w", v.ID, fr, err)
			}
			wd, ht, err := jpegSize(data)
			if err != nil {
				return info, fmt.Errorf("shards: pack video %s frame %d: not a JPEG: %w", v.ID, fr, err)
			}
			if bb.bytes > 0 && bb.bytes+int64(len(data)) > batchBytes {
				if err := flush(); err != nil {
					return info, err
				}
			}
			bb.add(v.ID, int32(fr), v.PTS(fr), int32(wd), int32(ht), data)
			info.Rows++
		}
		info.Videos = append(info.Videos, v.ID)
		if s.onVideo != nil {
			s.onVideo(v.ID)
		}
	}
	if err := flush(); err != nil {
		return info, err
	}
	if err := w.Close(); err != nil {
		return info, fmt.Errorf("shards: close %s: %w", s.file, err)
	}
	if err := bw.Flush(); err != nil {
		return info, fmt.Errorf("shards: write %s: %w", s.file, err)
	}
	if err := f.Commit(); err != nil {
		return info, fmt.Errorf("shards: %w", err)
	}
	info.Bytes = cw.n
	info.SHA256 = hex.EncodeToString(h.Sum(nil))
	return info, nil
}

// batchBuilder accumulates the rows of one record batch.
type batchBuilder struct {
	schema        *arrow.Schema
	vid           *array.StringBuilder
	frame, wd, ht *array.Int32Builder
	pts           *array.Float64Builder
	jpeg          *array.BinaryBuilder
	rows          int
	bytes         int64
}

func newBatchBuilder(mem memory.Allocator, schema *arrow.Schema) *batchBuilder {
	return &batchBuilder{
		schema: schema,
		vid:    array.NewStringBuilder(mem),
		frame:  array.NewInt32Builder(mem),
		wd:     array.NewInt32Builder(mem),
		ht:     array.NewInt32Builder(mem),
		pts:    array.NewFloat64Builder(mem),
		jpeg:   array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary),
	}
}

func (b *batchBuilder) add(vid string, frame int32, pts float64, w, h int32, data []byte) {
	b.vid.Append(vid)
	b.frame.Append(frame)
	b.pts.Append(pts)
	b.wd.Append(w)
	b.ht.Append(h)
	b.jpeg.Append(data)
	b.rows++
	b.bytes += int64(len(data))
}

// build returns the accumulated rows as a record batch and resets the builder.
func (b *batchBuilder) build() arrow.RecordBatch {
	cols := []arrow.Array{b.vid.NewArray(), b.frame.NewArray(), b.pts.NewArray(), b.wd.NewArray(), b.ht.NewArray(), b.jpeg.NewArray()}
	rec := array.NewRecordBatch(b.schema, cols, int64(b.rows))
	for _, c := range cols {
		c.Release()
	}
	b.rows, b.bytes = 0, 0
	return rec
}

func (b *batchBuilder) release() {
	b.vid.Release()
	b.frame.Release()
	b.wd.Release()
	b.ht.Release()
	b.pts.Release()
	b.jpeg.Release()
}
