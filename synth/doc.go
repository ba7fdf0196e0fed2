// Package synth renders procedural timelapse videos: a sky gradient over a
// landscape silhouette, fractal-noise clouds drifting with a per-video wind,
// and light that shifts across the clip, with frozen seconds at the start and
// end. Frames are rendered in Go and piped raw (rgb24) to ffmpeg, built with
// ffmpeg-go and run under the caller's context. Output is deterministic: the
// same Spec (seed included) gives the same decoded frames with the same
// ffmpeg.
//
// It also writes the bad inputs a real folder of videos holds (WriteFaults):
// empty, truncated, too short, audio-only and fake files, and a good video with
// an awkward name, so ingest can be tested against them.
//
// The package owns the renderer, the encoder invocation and the fault files;
// the stage adapter lives in stages/synth.go.
package synth
