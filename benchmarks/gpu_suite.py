"""GEM at the paper's model sizes on one CUDA GPU, random weights built from configs (no network, no weights).

    python benchmarks/gpu_suite.py            # CUDA only; elsewhere it says so and exits with status 2

* recogniser: BERT-base encoder + FMNERG heads and CRFs (`gemner.recognize.Recognizer`), inference
  (Viterbi decode) and training (loss, backward, AdamW step) posts/s on 32-word posts, bf16 autocast;
* reranker: a 7B-class decoder (the LLaMA-7B shape behind LLaVA-1.5-7B's language model: 4096 wide,
  32 layers, 11008 MLP, 32k vocabulary; the vision tower is left out), bf16, entities/s scoring K=5
  candidates one entity at a time (`shared_prefix_logprobs`) vs 64 entities together
  (`batched_prefix_logprobs`), both after a cached shared prefix;
* grounding: BLIP ITM base + eq. 11 trace + SAM ViT-B (`gemner.ground.Grounder`, bf16), entities/s
  with one full pass per entity (naive), shared within a post, and batched across 32 posts.

It prints one table; the whole run fits in a few minutes on one data-centre GPU.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

WORDS, POSTS_PER_BATCH = 32, 32


def timed(run: Callable[[], object], repeats: int = 3) -> float:
    """Best wall-clock seconds of `run` after one warm-up, GPU work included."""
    run()
    best = float("inf")
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def recogniser_rows(device: torch.device) -> list[tuple[str, str, float]]:
    from transformers import BertModel

    from gemner.data.schema import FMNERG_SCHEMA
    from gemner.pipeline.model_configs import bert_base_cased_config
    from gemner.recognize.config import preset
    from gemner.recognize.encoding import EncodedPost, collate
    from gemner.recognize.model import Recognizer

    torch.manual_seed(0)
    encoder = BertModel(bert_base_cased_config(), add_pooling_layer=False)
    model = Recognizer(preset("lite"), FMNERG_SCHEMA, encoder, tokenizer=None).to(device)
    subwords = WORDS + 8  # a tweet's words cut into a few more subwords
    items = [EncodedPost(index=i, input_ids=torch.randint(1000, 28000, (subwords,)).tolist(), token_type_ids=None,
                         word_starts=list(range(1, WORDS + 1)), word_ends=list(range(2, WORDS + 2)), n_words=WORDS,
                         word_shapes=[0] * WORDS, fine_tags=[0] * WORDS,
                         coarse_tags=[0] * WORDS if model.multi_granularity else None) for i in range(POSTS_PER_BATCH)]
    batch = collate(items, 0).to(device)
    model.eval()

    def infer() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            model.decode(batch)

    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def train_step() -> None:
        model.train()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model.loss(batch)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    return [("recogniser (BERT-base)", f"inference, batch {POSTS_PER_BATCH}, bf16", POSTS_PER_BATCH / timed(infer)),
            ("recogniser (BERT-base)", f"training step, batch {POSTS_PER_BATCH}, bf16",
             POSTS_PER_BATCH / timed(train_step))]


def reranker_rows(device: torch.device) -> list[tuple[str, str, float]]:
    from transformers import LlamaForCausalLM

    from gemner.pipeline.model_configs import llama2_7b_config
    from gemner.rerank.scoring import batched_prefix_logprobs, build_static_prefix, shared_prefix_logprobs

    config = llama2_7b_config()
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(default)
    generator = torch.Generator().manual_seed(0)
    static = build_static_prefix(model, torch.randint(100, 32000, (120,), generator=generator).tolist(), device)
    entities = 64
    prompts = [[*static.ids, *torch.randint(100, 32000, (60 + i % 40,), generator=generator).tolist()]
               for i in range(entities)]
    answers = [[torch.randint(100, 32000, (1 + j % 3,), generator=generator).tolist() + [2]  # noqa: RUF005
                for j in range(5)]
               for _ in range(entities)]
    one = 8  # entities timed one at a time (the rate does not depend on how many)

    def one_by_one() -> None:
        for prompt, group in zip(prompts[:one], answers[:one], strict=True):
            ids = torch.tensor([prompt], device=device)
            shared_prefix_logprobs(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, group, 0,
                                   static)

    naive = one / timed(one_by_one, repeats=2)
    batched = entities / timed(lambda: batched_prefix_logprobs(model, prompts, answers, 0, static), repeats=2)
    return [("reranker (7B-class decoder)", "one entity at a time, K=5, bf16", naive),
            ("reranker (7B-class decoder)", f"{entities} entities batched, K=5, bf16 ({batched / naive:.1f}x)",
             batched)]


def grounding_rows(device: torch.device) -> list[tuple[str, str, float]]:
    from PIL import Image

    from grounder_speed import build_grounder, measure

    grounder = build_grounder("sam-vit-base", device, torch.bfloat16)
    image = Image.new("RGB", (640, 480), (120, 160, 200))
    rows = measure(grounder, image, device, [3, 6], POSTS_PER_BATCH, reps=2)
    return [("grounding (BLIP ITM base + eq. 11 + SAM ViT-B)",
             f"{row['mode']}, {row['posts']} post(s), {row['entities']} entities ({row['ratio']:.1f}x naive)",
             row["ents_per_s"]) for row in rows]


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_suite.py measures GEM on a CUDA GPU and none is visible here (torch.cuda.is_available() is "
              "False); run benchmarks/pipeline_speed.py, recognizer_speed.py or scaling.py for the CPU.",
              file=sys.stderr)
        return 2
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, random weights at the paper's sizes")
    rows = []
    for stage in (recogniser_rows, reranker_rows, grounding_rows):
        start = time.perf_counter()
        rows += stage(device)
        torch.cuda.empty_cache()  # the stage's models are gone: leave the memory to the next
        print(f"  {stage.__name__} done in {time.perf_counter() - start:.0f} s", flush=True)
    print("| stage | mode | items/s |")
    print("| --- | --- | ---: |")
    for stage, mode, rate in rows:
        unit = "posts/s" if stage.startswith("recogniser") else "entities/s"
        print(f"| {stage} | {mode} | {rate:.1f} {unit} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
