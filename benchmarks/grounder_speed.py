"""Grounding throughput at the paper's model sizes: BLIP-base ITM + eq. 11 trace + SAM point-to-box.

Random weights (no downloads; the arithmetic is the same as with trained ones). The threshold is 0,
so every entity is traced and segmented (the most work a post can cost). Modes, all through
`gemner.ground.Grounder`, all on the same image:

* one full pass per entity: each entity alone (its own BLIP vision pass, text pass, backward, SAM
  image embedding and decode): the naive way, the baseline of the ratios;
* shared within a post: one BLIP vision pass and one SAM embedding per post, all its entities in
  one batched text forward/backward and one batched SAM decode;
* batched across posts: several posts in one call (vision batched, text rows of all posts batched).

The per-entity baseline is measured on the post of the most entities; its passes are independent,
so its rate does not depend on the post size. Memory: peak resident memory above the level before
the mode (CPU, sampled every 5 ms) or peak allocated GPU memory (CUDA).

    python benchmarks/grounder_speed.py                       # CPU, fp32, SAM ViT-B
    python benchmarks/grounder_speed.py --device cuda --bf16 --batch-posts 32
"""

from __future__ import annotations

import argparse
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image

ENTITIES = [("Ted Cruz", "politician"), ("Golden State Warriors", "sports_team"), ("NBA", "sports_league"),
            ("Taylor Swift", "musician"), ("Cleveland", "city"), ("The Edge of the Sea", "written_work")]


def rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@contextmanager
def peak_memory(device: torch.device, out: dict):
    """Peak memory above the starting level while the block runs (bytes in out['peak'])."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        yield
        torch.cuda.synchronize()
        out["peak"] = torch.cuda.max_memory_allocated() - start
        return
    start, peak, running = rss_bytes(), [0], [True]

    def sample() -> None:
        while running[0]:
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        running[0] = False
        sampler.join()
        out["peak"] = max(0, peak[0] - start)


def build_grounder(sam: str, device: torch.device, dtype: torch.dtype):
    from transformers import BlipConfig, BlipForImageTextRetrieval, SamModel

    from gemner.ground.config import GrounderConfig
    from gemner.ground.grounder import Grounder
    from gemner.ground.itm import EntityImageMatcher
    from gemner.ground.processors import sam_image_processor
    from gemner.ground.sam import SamSegmenter, sam_config
    from gemner.ground.tiny import TinyItmSpec, build_image_processor, build_tokenizer

    torch.manual_seed(0)
    with torch.device(device):
        blip = BlipForImageTextRetrieval(BlipConfig())  # BLIP base: ViT-B/16 at 384, BERT-base text
        sam_model = SamModel(sam_config(sam))
    words = {w for entity, category in ENTITIES for w in (*entity.split(), category)}
    matcher = EntityImageMatcher(blip, build_tokenizer(words), build_image_processor(TinyItmSpec(image_size=384)),
                                 device=device, dtype=dtype)
    segmenter = SamSegmenter(sam_model, sam_image_processor()(), device=device, dtype=dtype)
    return Grounder(matcher, segmenter, GrounderConfig(threshold=0.0, segmenter="sam"))


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device: torch.device, run) -> tuple[float, int]:
    memory: dict = {}
    with peak_memory(device, memory):
        synchronise(device)
        start = time.perf_counter()
        run()
        synchronise(device)
        seconds = time.perf_counter() - start
    return seconds, memory["peak"]


def measure(grounder, image: Image.Image, device: torch.device, sizes: list[int], batch_posts: int,
            reps: int) -> list[dict]:
    from gemner.ground.grounder import Query

    queries = [Query(e, c) for e, c in ENTITIES]
    rows = []
    biggest = max(sizes)

    def per_entity() -> None:
        for query in queries[:biggest]:
            grounder.ground([image], [[query]])

    seconds, peak = min((timed(device, per_entity) for _ in range(reps)), key=lambda r: r[0])
    baseline = biggest / seconds
    rows.append({"mode": "one full pass per entity", "posts": 1, "entities": biggest,
                 "ents_per_s": baseline, "peak_mb": peak / 2**20, "ratio": 1.0})
    for size in sizes:
        seconds, peak = min((timed(device, lambda size=size: grounder.ground([image], [queries[:size]]))
                             for _ in range(reps)), key=lambda r: r[0])
        rows.append({"mode": "shared within the post", "posts": 1, "entities": size,
                     "ents_per_s": size / seconds, "peak_mb": peak / 2**20, "ratio": size / seconds / baseline})
    if batch_posts > 1:
        per_post = queries[:3]
        seconds, peak = min((timed(device, lambda: grounder.ground([image] * batch_posts, [per_post] * batch_posts))
                             for _ in range(reps)), key=lambda r: r[0])
        total = 3 * batch_posts
        rows.append({"mode": "batched across posts", "posts": batch_posts, "entities": total,
                     "ents_per_s": total / seconds, "peak_mb": peak / 2**20, "ratio": total / seconds / baseline})
    return rows


def sam_embedding_times(device: torch.device, dtype: torch.dtype, image: Image.Image, reps: int) -> list[dict]:
    from transformers import SamModel

    from gemner.ground.processors import sam_image_processor
    from gemner.ground.sam import SamSegmenter, sam_config

    rows = []
    for name in ("sam-vit-base", "slimsam-50", "slimsam-77"):
        torch.manual_seed(0)
        with torch.device(device):
            model = SamModel(sam_config(name))
        segmenter = SamSegmenter(model, sam_image_processor()(), device=device, dtype=dtype)
        segmenter.embed([image])  # warm-up
        seconds = min(timed(device, lambda s=segmenter: s.embed([image]))[0] for _ in range(reps))
        params = sum(p.numel() for p in model.parameters())
        rows.append({"model": name, "params_m": params / 1e6, "seconds": seconds})
        del model, segmenter
    return rows


def main() -> None:
    from gemner.ground.grounder import Query

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--bf16", action="store_true", help="models in bfloat16")
    parser.add_argument("--sam", default="sam-vit-base", help="sam-vit-base | slimsam-50 | slimsam-77")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 3, 6], help="entities per post")
    parser.add_argument("--batch-posts", type=int, default=None, help="posts batched together (3 entities each)")
    parser.add_argument("--reps", type=int, default=1, help="repetitions per mode (the best is kept)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-sam-table", action="store_true", help="skip the SAM / SlimSAM embedding table")
    args = parser.parse_args()

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    batch_posts = args.batch_posts or (32 if device.type == "cuda" else 4)
    gen = torch.Generator().manual_seed(0)
    image = Image.fromarray((torch.rand(480, 640, 3, generator=gen) * 255).to(torch.uint8).numpy())
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {device} ({where}), "
          f"dtype {dtype}, image 640x480, BLIP-base ITM + {args.sam}, random weights")

    start = time.perf_counter()
    grounder = build_grounder(args.sam, device, dtype)
    print(f"built in {time.perf_counter() - start:.1f} s")
    grounder.ground([image], [[Query(*ENTITIES[0])]])  # warm-up
    rows = measure(grounder, image, device, args.sizes, batch_posts, args.reps)
    print("\n| mode | posts | entities | entities/s | x per-entity | peak memory (MB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['mode']} | {r['posts']} | {r['entities']} | {r['ents_per_s']:.2f} | "
              f"{r['ratio']:.2f} | {r['peak_mb']:.0f} |")
    del grounder
    if not args.skip_sam_table:
        print("\nSAM image embedding (1024x1024 input), one image:\n")
        print("| model | parameters (M) | seconds | x SAM ViT-B |")
        print("| --- | ---: | ---: | ---: |")
        sam_rows = sam_embedding_times(device, dtype, image, args.reps)
        base = sam_rows[0]["seconds"]
        for r in sam_rows:
            print(f"| {r['model']} | {r['params_m']:.1f} | {r['seconds']:.2f} | {base / r['seconds']:.2f} |")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
