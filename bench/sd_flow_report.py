"""Prints bench/sd_flow_gpu.sh's table: each GPU stage's wall time, the allocator's peak (the SD executor's
live buffers, library workspaces included), nvidia-smi's peak (the whole process: CUDA context and the
allocator's cache too) and `pipeline plan`'s estimate beside it; then the sampling comparison.

  python3 bench/sd_flow_report.py LOGS OUT PART MODE
"""
import json, os, sys

logs, out, part, mode = sys.argv[1:5]
GiB = 2 ** 30


def records(path):
    recs = []
    if os.path.exists(path):
        for line in open(path):
            if line.startswith("{"):
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    pass
    return recs


def first(recs, msg):
    return next((r for r in recs if r.get("msg") == msg), None)


walls = {}
if os.path.exists(os.path.join(logs, "walls.txt")):
    for line in open(os.path.join(logs, "walls.txt")):
        f = line.split()
        if len(f) >= 3:
            walls[f[0]] = (float(f[1]), int(f[2]))
plan = {}
try:
    plan = {s["stage"]: s for s in json.load(open(os.path.join(out, "plan.json")))["stages"]}
except (OSError, ValueError, KeyError):
    pass
gpu = open(os.path.join(logs, "gpu.txt")).read().strip() if os.path.exists(os.path.join(logs, "gpu.txt")) else "?"
model_t = open(os.path.join(logs, "model.time")).read().strip() if os.path.exists(os.path.join(logs, "model.time")) else ""
print(f"## SD flow on the GPU ({part}, {mode}): {gpu}; {model_t}\n")
print("| stage | wall s | what | GPU peak (allocator) | nvidia-smi peak | plan | plan / peak |")
print("|---|---:|---|---:|---:|---:|---:|")
for st in ("latents", "train", "sample"):
    recs = records(os.path.join(logs, st + ".log"))
    if st not in walls:
        continue
    wall, rc = walls[st]
    what = "FAILED (rc %d)" % rc if rc else ""
    r = first(recs, "latents done")
    if r:
        el = r.get("elapsed", 0)
        el = el / 1e9 if isinstance(el, (int, float)) else el
        what = f"{r.get('frames')} frames, {r.get('videos')} videos: {el:.1f} s" if isinstance(el, float) else f"{r.get('frames')} frames, {el}"
    r = first(recs, "training done")
    if r:
        what = f"{r.get('steps')} steps, {r.get('s_per_step', 0):.3f} s/step, loss {r.get('loss', 0):.4f}, val {r.get('val_loss', 0):.4f}"
    r, d = first(recs, "denoised"), first(recs, "decoded")
    if r:
        what = f"{r.get('frames')} frames x {r.get('steps')} DDIM steps: {r.get('seconds', 0):.1f} s ({1000 * r.get('s_per_step', 0):.0f} ms/step)"
        if d:
            what += f", VAE decode {d.get('seconds', 0):.1f} s"
    mem = first(recs, "gpu memory")
    peak = mem.get("peak_bytes") if mem else None
    smi = 0
    try:
        vals = [int(x) for x in open(os.path.join(logs, f"smi-{st}.txt")).read().split() if x.isdigit()]
        smi = max(vals) if vals else 0
    except OSError:
        pass
    est = plan.get(st, {}).get("device_bytes")
    ratio = f"{est / peak:.2f}" if est and peak else "-"
    fmt = lambda b: f"{b / GiB:.2f} GiB" if b else "-"
    print(f"| {st} | {wall:.1f} | {what} | {fmt(peak)} | {smi / 1024:.2f} GiB | {fmt(est)} | {ratio} |")
if "total" in walls:
    print(f"\ntotal {walls['total'][0]:.1f} s (unpacking, model, plan, stages, comparison)")
tp = os.path.join(out, "torch.json")
if os.path.exists(tp) and os.path.getsize(tp) > 0:
    t = json.loads(open(tp).read().strip().splitlines()[-1])
    recs = records(os.path.join(logs, "sample.log"))
    r, d, mem = first(recs, "denoised"), first(recs, "decoded"), first(recs, "gpu memory")
    print(f"\n### Sampling {t['frames']} frames, {t['steps']} DDIM steps, guidance {t['guidance']} ({t['unet_batch']} frames through the UNet per step)\n")
    print("| implementation | loop s | ms/step | VAE decode s | peak GiB |")
    print("|---|---:|---:|---:|---:|")
    if r:
        g = first(recs, "sampling on the GPU") or {}
        print(f"| ours (sample_sd, {g.get('precision', '?')}; the loop includes the executor's build) | "
              f"{r['seconds']:.1f} | {1000 * r['s_per_step']:.0f} | {d['seconds'] if d else 0:.1f} | {mem['peak_bytes'] / GiB if mem else 0:.2f} |")
    print(f"| {t['impl']} (warm-up step excluded) | {t['loop_s']:.1f} | {t['step_ms']:.0f} | {t['decode_s']:.1f} | {t['peak_gib']:.2f} |")
    if r and t["loop_s"] > 0:
        print(f"\nours / PyTorch loop time: {r['seconds'] / t['loop_s']:.2f}x; video UNet weights loaded into PyTorch: {t.get('video_unet_loaded')}; finite frames: {t.get('finite')}")
enc = os.path.join(logs, "encoder-test.txt")
if os.path.exists(enc):
    print("\nTestSDEncoderGPUMatchesCPU:\n```\n" + open(enc).read().strip() + "\n```")
