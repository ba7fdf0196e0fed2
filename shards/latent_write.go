package shards

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// LatentShardSpec is what every latent shard of a folder shares.
type LatentShardSpec struct {
	Dtype       string
	LatentShape []int
	TextShape   []int
	// Metadata is added to the schema metadata (format, shapes and dtype
	// are set from the fields above).
	Metadata map[string]string
}

// LatentWriter writes one latent shard, a video at a time (one record
// batch each), through a temporary file renamed into place by Close.
type LatentWriter struct {
	file   string
	spec   LatentShardSpec
	f      *atomicfile.File
	bw     *bufio.Writer
	cw     *countingWriter
	hash   hash.Hash
	w      *ipc.FileWriter
	schema *arrow.Schema
	mem    memory.Allocator
	info   ShardInfo
}

// CreateLatentShard starts shard file under out.
func CreateLatentShard(out Output, file string, spec LatentShardSpec) (*LatentWriter, error) {
	fields, err := latentFields(spec.Dtype, spec.LatentShape, spec.TextShape)
	if err != nil {
		return nil, err
	}
	md := map[string]string{MetaFormat: LatentFormat, MetaLatentDtype: spec.Dtype,
		MetaLatentShape: jsonInts(spec.LatentShape), MetaTextShape: jsonInts(spec.TextShape)}
	for k, v := range spec.Metadata {
		md[k] = v
	}
	m := arrow.MetadataFrom(md)
	schema := arrow.NewSchema(fields, &m)
	f, err := out.Create(file)
	if err != nil {
		return nil, fmt.Errorf("shards: create %s: %w", file, err)
	}
	lw := &LatentWriter{file: file, spec: spec, f: f, schema: schema, mem: memory.NewGoAllocator(), info: ShardInfo{File: file}}
	lw.bw = bufio.NewWriterSize(f, 1<<20)
	lw.hash = sha256.New()
	lw.cw = &countingWriter{w: lw.bw, h: lw.hash}
	lw.w, err = ipc.NewFileWriter(lw.cw, ipc.WithSchema(schema), ipc.WithAllocator(lw.mem))
	if err != nil {
		f.Abort()
		return nil, fmt.Errorf("shards: %s: %w", file, err)
	}
	return lw, nil
}

func jsonInts(v []int) string {
	s := "["
	for i, x := range v {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprint(x)
	}
	return s + "]"
}

// Add writes one video's rows.
func (lw *LatentWriter) Add(v LatentVideo) error {
	n, tn := prod(lw.spec.LatentShape), prod(lw.spec.TextShape)
	if len(v.Mean) == 0 || len(v.Mean) != len(v.LogVar) {
		return fmt.Errorf("shards: %s: video %s: %d means and %d log-variances", lw.file, v.ID, len(v.Mean), len(v.LogVar))
	}
	if len(v.Text) != tn {
		return fmt.Errorf("shards: %s: video %s: text embedding has %d values, want %d", lw.file, v.ID, len(v.Text), tn)
	}
	b := array.NewRecordBuilder(lw.mem, lw.schema)
	defer b.Release()
	ids := b.Field(0).(*array.StringBuilder)
	frames := b.Field(1).(*array.Int32Builder)
	caps := b.Field(4).(*array.StringBuilder)
	text := b.Field(5).(*array.FixedSizeListBuilder)
	for i := range v.Mean {
		if len(v.Mean[i]) != n || len(v.LogVar[i]) != n {
			return fmt.Errorf("shards: %s: video %s frame %d: %d and %d values, want %d", lw.file, v.ID, i+1, len(v.Mean[i]), len(v.LogVar[i]), n)
		}
		ids.Append(v.ID)
		frames.Append(int32(i + 1))
		appendList(b.Field(2).(*array.FixedSizeListBuilder), v.Mean[i])
		appendList(b.Field(3).(*array.FixedSizeListBuilder), v.LogVar[i])
		if i == 0 {
			caps.Append(v.Caption)
			appendList(text, v.Text)
		} else {
			caps.AppendNull()
			text.AppendNull()
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	if err := lw.w.Write(rec); err != nil {
		return fmt.Errorf("shards: write %s: %w", lw.file, err)
	}
	lw.info.Rows += len(v.Mean)
	lw.info.Videos = append(lw.info.Videos, v.ID)
	return nil
}

func appendList(b *array.FixedSizeListBuilder, vals []float32) {
	b.Append(true)
	switch vb := b.ValueBuilder().(type) {
	case *array.Float16Builder:
		for _, x := range vals {
			vb.Append(float16.New(x))
		}
	case *array.Float32Builder:
		vb.AppendValues(vals, nil)
	}
}

// Close finishes the shard and renames it into place; it returns the
// shard's rows, videos, size and SHA-256.
func (lw *LatentWriter) Close() (ShardInfo, error) {
	if err := lw.w.Close(); err != nil {
		lw.f.Abort()
		return lw.info, fmt.Errorf("shards: close %s: %w", lw.file, err)
	}
	if err := lw.bw.Flush(); err != nil {
		lw.f.Abort()
		return lw.info, fmt.Errorf("shards: write %s: %w", lw.file, err)
	}
	if err := lw.f.Commit(); err != nil {
		return lw.info, fmt.Errorf("shards: %w", err)
	}
	lw.info.Bytes = lw.cw.n
	lw.info.SHA256 = hex.EncodeToString(lw.hash.Sum(nil))
	return lw.info, nil
}

// Abort discards the shard.
func (lw *LatentWriter) Abort() { lw.f.Abort() }
