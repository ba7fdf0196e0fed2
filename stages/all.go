package stages

import "github.com/timelapse-ml/pipeline/pipeline"

// All returns every stage kind, in the order `pipeline stages` lists them.
func All() []pipeline.Kind {
	return []pipeline.Kind{
		SynthKind(),
		IngestKind(),
		FramesKind(),
		PackKind(),
		PublishKind(),
		LatentsKind(),
		PretrainKind(),
		TrainKind(),
		SampleKind(),
		TrainSDKind(),
		SampleSDKind(),
		// Each kind's constructor lives in its own file (synth.go, ingest.go, ...).
	}
}
