// Package synth renders procedural timelapse videos, the data source of the
// embedded default pipeline, the tests and CI (the real dataset cannot be
// redistributed).
//
// A scene is drawn from the seed: a sky gradient over two or three
// landscape ridges (1-D fractal noise, hazier with distance), clouds from
// two periodic fractal-noise fields seen in perspective on a horizontal
// plane and drifting with a per-video wind (speed and direction vary by
// seed; the two fields drift at different speeds, so shapes change as they
// travel), and light that shifts across the clip (a sunset, a sunrise or a
// day, as the sun's elevation and colour move). The first FrozenHead and
// last FrozenTail seconds hold the motion clock still.
//
// Frames are rendered in Go (rows in parallel, per-pixel geometry
// precomputed once per video, buffers reused) and piped raw (rgb24) to
// ffmpeg, whose command line is built with ffmpeg-go and run under the
// caller's context; no temporary images. Output is written to a temporary
// name and renamed into place.
//
// Determinism: the same Spec (seed included) gives byte-identical files,
// hence identical decoded frames (`ffmpeg -f framemd5`), with the same
// ffmpeg: the renderer uses a fixed generator (SplitMix64), encoders run
// with one thread, and WebM is muxed bit-exact.
//
// Frozen spans decode to exactly identical frames, by construction. H.264
// (the default, CRF 20, veryfast): a keyframe starts each frozen span and
// follows the head, and the rest of each span is an x264 zone at QP 51,
// where every block of an unchanged picture is skipped and copied exactly.
// VP9 offers no such control (libvpx loop-filters skipped blocks), so VP9 is
// encoded lossless.
//
// Variants for the ingest and frames tests: any even size (portrait too),
// 10-bit (yuv420p10le), a display rotation written as an MP4 display matrix
// (ffmpeg 5.1 writes one only when stream-copying, so rotated videos are
// remuxed), and variable frame rate (2 frames in 7 of the motion span
// dropped, timestamps kept).
//
// WriteFaults writes the bad inputs a real folder holds (empty, truncated,
// truncated faststart, too short, audio-only, text named like a video) and
// a good video with spaces and non-ASCII characters in its name. Check
// verifies a rendered video by decoding it.
//
// The stage adapter (kind "synth") lives in stages/synth.go.
package synth
