// Package frames owns per-video frame extraction: the recipe's ffmpeg
// invocation (built with ffmpeg-go, run under the caller's context), the
// JPEG frames of each video under <dir>/<video-id>/%06d.jpg, damage
// detection (a video that yields a wrong number of frames or makes ffmpeg
// report errors), and the stage's index.jsonl listing every video's frames.
//
// The recipe (the oracle, see TestMatchesRecipe) is one ffmpeg per video:
//
//	ffmpeg -i IN -ss 00:00:02.00 -t $(d - 4) -r 5 \
//	  -vf "scale='if(gt(iw,ih),-1,512)':'if(gt(iw,ih),512,-1)',crop=512:512:exact=1" \
//	  -q 0 -an OUT/%06d.jpg && rm OUT/000001.jpg
//
// It scales every decoded frame and only then lets -r drop most of them.
// Extract runs two processes joined by an OS pipe instead: the first decodes
// with one thread, trims with the same output -ss/-t and chooses frames with
// the same output -r (constant frame rate), and writes the kept frames raw
// (NUT); the second scales, crops and encodes only those. The JPEGs are
// byte-identical to the recipe's with ffmpeg 5.1, provided the second process
// is told the source's colour range (raw frames do not carry it; a full-range
// source otherwise comes out different). Input seeking (-ss before -i) also
// gave identical bytes but makes the decoder print errors on some inputs
// (MPEG-TS), which would read as damage, and it saves nothing when the first
// keyframe after 0 s lies beyond the head, so it is not used.
//
// Several videos run at once (Batch, costliest first); each video's folder
// is built in a temporary folder and renamed into place, so a killed run
// never leaves a partial folder under a video's name.
package frames
