package shards

import (
	"fmt"
	"path/filepath"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// LatentDataset is an opened latents folder: verified shards held in
// memory (as stored, float16 or float32) and the split.
type LatentDataset struct {
	Dir   string
	Index *LatentIndex
	// Metadata is the schema metadata of the first shard.
	Metadata map[string]string

	videos map[string]*latentVideo
	recs   []arrow.RecordBatch
	unmaps []func() error
}

// latentVideo locates one video's rows.
type latentVideo struct {
	LatentVideoEntry
	text       arrow.Array // the text embedding list values of the first row
	textOff    int
	mean, lvar []latentRow // per frame
}

type latentRow struct {
	vals arrow.Array // the list's child values
	off  int         // first element
}

// OpenLatents reads dir/index.json, verifies every shard's size and SHA-256
// (an error names the shard), parses it and checks that it holds exactly
// the index's videos and frames with the index's shapes and dtype.
func OpenLatents(dir string) (*LatentDataset, error) {
	ix, err := ReadLatentIndex(dir)
	if err != nil {
		return nil, err
	}
	d := &LatentDataset{Dir: dir, Index: ix, videos: map[string]*latentVideo{}}
	for _, v := range ix.Videos {
		d.videos[v.ID] = &latentVideo{LatentVideoEntry: v}
	}
	want, err := latentFields(ix.Dtype, ix.LatentShape, ix.TextShape)
	if err != nil {
		return nil, err
	}
	for si, info := range ix.Shards {
		if err := d.readShard(si, info, want); err != nil {
			d.Close()
			return nil, err
		}
	}
	for _, v := range d.videos {
		if len(v.mean) != v.Frames || v.text == nil {
			d.Close()
			return nil, fmt.Errorf("shards: %s: video %s has %d frames (want %d) in its shard", dir, v.ID, len(v.mean), v.Frames)
		}
	}
	return d, nil
}

func (d *LatentDataset) readShard(si int, info LatentShardInfo, want []arrow.Field) (err error) {
	name := info.File
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("shards: %s: malformed latent shard: %v", name, r)
		}
	}()
	data, unmap, err := mapFile(filepath.Join(d.Dir, name))
	if err != nil {
		return fmt.Errorf("shards: open %s: %w", name, err)
	}
	d.unmaps = append(d.unmaps, unmap)
	if err := checkBytes(info.ShardInfo, data); err != nil {
		return err
	}
	if err := checkFooterDepth(data, 1); err != nil {
		return fmt.Errorf("shards: %s: %w", name, err)
	}
	rd, err := ipc.NewMappedFileReader(data, ipc.WithBodySizeLimit(maxBatchBody), ipc.WithAllocator(boundedAllocator{memory.NewGoAllocator()}))
	if err != nil {
		return fmt.Errorf("shards: %s: %w", name, err)
	}
	defer rd.Close()
	s := rd.Schema()
	if s.NumFields() != len(want) {
		return fmt.Errorf("shards: %s: %d columns, want %d", name, s.NumFields(), len(want))
	}
	for i, f := range want {
		if g := s.Field(i); g.Name != f.Name || !arrow.TypeEqual(g.Type, f.Type) {
			return fmt.Errorf("shards: %s: column %d is %s %s, want %s %s", name, i, g.Name, g.Type, f.Name, f.Type)
		}
	}
	if si == 0 {
		d.Metadata = map[string]string{}
		md := s.Metadata()
		for i, k := range md.Keys() {
			d.Metadata[k] = md.Values()[i]
		}
	}
	rows := 0
	for b := 0; b < rd.NumRecords(); b++ {
		rec, err := rd.RecordBatchAt(b)
		if err != nil {
			return fmt.Errorf("shards: %s: record batch %d: %w", name, b, err)
		}
		d.recs = append(d.recs, rec)
		if err := d.addLatentBatch(si, name, rec); err != nil {
			return err
		}
		rows += int(rec.NumRows())
	}
	if rows != info.Rows {
		return fmt.Errorf("shards: %s: %d rows, index.json says %d", name, rows, info.Rows)
	}
	return nil
}

func (d *LatentDataset) addLatentBatch(si int, name string, rec arrow.RecordBatch) error {
	ids := rec.Column(0).(*array.String)
	frames := rec.Column(1).(*array.Int32)
	mean := rec.Column(2).(*array.FixedSizeList)
	lvar := rec.Column(3).(*array.FixedSizeList)
	caps := rec.Column(4).(*array.String)
	text := rec.Column(5).(*array.FixedSizeList)
	n := prod(d.Index.LatentShape)
	tn := prod(d.Index.TextShape)
	for r := 0; r < int(rec.NumRows()); r++ {
		if ids.IsNull(r) || frames.IsNull(r) || mean.IsNull(r) || lvar.IsNull(r) {
			return fmt.Errorf("shards: %s: row %d has nulls", name, r)
		}
		id := ids.Value(r)
		v := d.videos[id]
		if v == nil || v.Shard != si {
			return fmt.Errorf("shards: %s: video %s is not listed in index.json for this shard", name, id)
		}
		if int(frames.Value(r)) != len(v.mean)+1 {
			return fmt.Errorf("shards: %s: video %s: frame %d out of order", name, id, frames.Value(r))
		}
		if len(v.mean) == 0 {
			if caps.IsNull(r) || text.IsNull(r) {
				return fmt.Errorf("shards: %s: video %s: first row lacks its caption or text embedding", name, id)
			}
			if caps.Value(r) != v.Caption {
				return fmt.Errorf("shards: %s: video %s: caption differs from index.json", name, id)
			}
			v.text, v.textOff = text.ListValues(), (text.Offset()+r)*tn
		}
		v.mean = append(v.mean, latentRow{mean.ListValues(), (mean.Offset() + r) * n})
		v.lvar = append(v.lvar, latentRow{lvar.ListValues(), (lvar.Offset() + r) * n})
	}
	return nil
}

// Close releases the shards.
func (d *LatentDataset) Close() error {
	for _, r := range d.recs {
		r.Release()
	}
	d.recs = nil
	var first error
	for _, u := range d.unmaps {
		if err := u(); err != nil && first == nil {
			first = err
		}
	}
	d.unmaps = nil
	return first
}

// Videos returns the entries of a split (SplitTrain, SplitVal or "" for
// all), sorted by ID.
func (d *LatentDataset) Videos(split string) []LatentVideoEntry {
	var out []LatentVideoEntry
	for _, v := range d.videos {
		if split == "" || v.Split == split {
			out = append(out, v.LatentVideoEntry)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Text copies video id's text embedding into dst (TextShape elements).
func (d *LatentDataset) Text(dst []float32, id string) error {
	v := d.videos[id]
	if v == nil {
		return fmt.Errorf("shards: latents: no video %s", id)
	}
	copyValues(dst, v.text, v.textOff)
	return nil
}

// Latent copies frame (1-based) of video id's mean and log-variance into
// mean and logvar (LatentShape elements each).
func (d *LatentDataset) Latent(mean, logvar []float32, id string, frame int) error {
	v := d.videos[id]
	if v == nil {
		return fmt.Errorf("shards: latents: no video %s", id)
	}
	if frame < 1 || frame > len(v.mean) {
		return fmt.Errorf("shards: latents: video %s has no frame %d (1..%d)", id, frame, len(v.mean))
	}
	copyValues(mean, v.mean[frame-1].vals, v.mean[frame-1].off)
	copyValues(logvar, v.lvar[frame-1].vals, v.lvar[frame-1].off)
	return nil
}

func copyValues(dst []float32, a arrow.Array, off int) {
	switch x := a.(type) {
	case *array.Float16:
		vals := x.Values()[off : off+len(dst)]
		for i, h := range vals {
			dst[i] = h.Float32()
		}
	case *array.Float32:
		copy(dst, x.Float32Values()[off:off+len(dst)])
	}
}

// VerifyLatents checks a latents folder (every shard's size, SHA-256 and
// structure against index.json): the latents kind's Verify.
func VerifyLatents(dir string) error {
	d, err := OpenLatents(dir)
	if err != nil {
		return err
	}
	return d.Close()
}
