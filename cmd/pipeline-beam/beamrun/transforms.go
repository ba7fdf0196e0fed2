package beamrun

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/timelapse-ml/pipeline/frames"
	"github.com/timelapse-ml/pipeline/ingest"
	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/stages"
)

func init() {
	register.DoFn3x1[context.Context, string, func(string, string), error](&inspectFn{})
	register.DoFn3x0[string, func(*string) bool, func(string)](&firstByPathFn{})
	register.DoFn3x1[context.Context, string, func(string), error](&extractFn{})
	register.DoFn3x1[int, func(*string) bool, func(int, string), error](&planShardsFn{})
	register.DoFn3x1[context.Context, int, func(*string) bool, error](&writeShardFn{})
	register.Emitter1[string]()
	register.Emitter2[int, string]()
	register.Emitter2[string, string]()
	register.Iter1[string]()
}

// Build adds the per-video steps for the videos at paths to s and returns
// the frames index rows (JSON) of the extracted videos:
//
//	paths -> inspect (probe, hash; staged) -> group by content -> first by path
//	      -> extract (frames; staged) -> rows
func Build(s beam.Scope, w stages.VideoWork, paths []string) beam.PCollection {
	s = s.Scope("preprocess")
	col := beam.CreateList(s, paths)
	byContent := beam.ParDo(s, &inspectFn{Work: w}, col)
	usable := beam.ParDo(s, &firstByPathFn{}, beam.GroupByKey(s, byContent))
	return beam.ParDo(s, &extractFn{Work: w}, usable)
}

// BuildPack adds the shard writing of the pack stage pw to s, for the
// frames index rows of the videos whose frames are staged under framesDir:
//
//	rows -> group all -> plan (as pack does) -> (shard, video) -> group by shard -> write shard (staged)
func BuildPack(s beam.Scope, pw stages.PackWork, framesDir string, rows beam.PCollection) {
	s = s.Scope("pack")
	all := beam.GroupByKey(s, beam.AddFixedKey(s, rows))
	byShard := beam.ParDo(s, &planShardsFn{Work: pw, FramesDir: framesDir}, all)
	beam.ParDo0(s, &writeShardFn{Work: pw, FramesDir: framesDir}, beam.GroupByKey(s, byShard))
}

// planShardsFn plans the shards of every video (only index rows and frame
// sizes pass through it) and emits each video keyed by its shard number.
type planShardsFn struct {
	Work      stages.PackWork
	FramesDir string
}

func (f *planShardsFn) ProcessElement(_ int, rows func(*string) bool, emit func(int, string)) error {
	var all []string
	var row string
	for rows(&row) {
		all = append(all, row)
	}
	vs, err := decodeRows(all)
	if err != nil {
		return err
	}
	jobs, err := f.Work.Plan(f.FramesDir, vs)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		for _, v := range j.Videos {
			one := j
			one.Videos = []shards.JobVideo{v}
			b, err := json.Marshal(one)
			if err != nil {
				return err
			}
			emit(j.Shard, string(b))
		}
	}
	return nil
}

// writeShardFn writes one shard from its videos' parts.
type writeShardFn struct {
	Work      stages.PackWork
	FramesDir string
}

func (f *writeShardFn) ProcessElement(ctx context.Context, shard int, parts func(*string) bool) error {
	var job shards.ShardJob
	var part string
	for parts(&part) {
		var one shards.ShardJob
		if err := json.Unmarshal([]byte(part), &one); err != nil {
			return fmt.Errorf("beamrun: shard %d: %w", shard, err)
		}
		if job.Videos == nil {
			job = one
			continue
		}
		job.Videos = append(job.Videos, one.Videos...)
	}
	_, err := f.Work.Write(ctx, f.FramesDir, job)
	return err
}

// inspectFn probes one video (a path) and emits its manifest row keyed by
// its content hash, or by its path when it is quarantined.
type inspectFn struct {
	Work stages.VideoWork
}

func (f *inspectFn) ProcessElement(ctx context.Context, path string, emit func(string, string)) error {
	v, err := f.Work.Inspect(ctx, path)
	if err != nil {
		return err
	}
	row, err := json.Marshal(v)
	if err != nil {
		return err
	}
	key := "bad:" + path
	if v.OK() {
		key = "sha256:" + v.SHA256
	}
	emit(key, string(row))
	return nil
}

// firstByPathFn keeps, of the usable videos with the same content, the
// first by path (ingest.MarkDuplicates's choice) and drops the rest and the
// quarantined ones: only it has frames.
type firstByPathFn struct{}

func (f *firstByPathFn) ProcessElement(key string, rows func(*string) bool, emit func(string)) {
	var vs []ingest.Video
	var row string
	for rows(&row) {
		var v ingest.Video
		if json.Unmarshal([]byte(row), &v) == nil && v.OK() {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return
	}
	slices.SortFunc(vs, func(a, b ingest.Video) int {
		switch {
		case a.Path < b.Path:
			return -1
		case a.Path > b.Path:
			return 1
		}
		return 0
	})
	b, _ := json.Marshal(vs[0])
	emit(string(b))
}

// extractFn extracts the frames of one usable video into the staging
// folder and emits its frames index row.
type extractFn struct {
	Work stages.VideoWork
}

func (f *extractFn) ProcessElement(ctx context.Context, row string, emit func(string)) error {
	var v ingest.Video
	if err := json.Unmarshal([]byte(row), &v); err != nil {
		return fmt.Errorf("beamrun: manifest row: %w", err)
	}
	rows, _, err := f.Work.Extract(ctx, []ingest.Video{v})
	if err != nil {
		return err
	}
	for _, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		emit(string(b))
	}
	return nil
}

// decodeRows turns frames index rows (JSON) back into values.
func decodeRows(rows []string) ([]frames.Video, error) {
	out := make([]frames.Video, 0, len(rows))
	for _, r := range rows {
		var v frames.Video
		if err := json.Unmarshal([]byte(r), &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
