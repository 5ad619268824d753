"""What `gemner reproduce --config paper-tiny | paper` trains: models and settings of each step, in one place.

`paper` is the paper's setting (Appendix C; each stage's `paper` preset). `paper-tiny` is its CPU-sized
stand-in on the synthetic benchmark; every difference is a field here and a line of docs/reproduce.md:

* text encoder: the shipped MiniLM (`minilm`, the lite recogniser preset) instead of BERT-base;
* reranker: a tiny LLaVA (`rerank.tiny.build_tiny_llava`: CLIP tower on 64x64 pixels, 2-layer Llama)
  trained from scratch with LoRA at a from-scratch learning rate, instead of LLaVA-1.5-7B at 5e-6, on the
  gold entities the sample filter sends (not every gold entity), with candidates from the benchmark's labels;
* sample filter: gamma 1.0 (from the dev entropies of the 3-epoch recogniser), not 0.2;
* ITM: a tiny BLIP ITM (`ground.tiny`, the shape `ground.proof` found to learn grounding from scratch)
  trained from scratch, with absent drawn entities of other images as extra "no box" pairs, instead of
  fine-tuning BLIP ITM base COCO at 5e-5 for one epoch; segmenter: weight-free region growing, not SAM;
* captioner: a tiny BLIP captioner trained from scratch on the train split's reference captions
  (`knowledge.captioner_train`) instead of BLIP-2; knowledge text is the caption itself ("The image shows
  <caption>."), no LLM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..ground.config import PAPER_ITM_MODEL, GrounderTrainConfig
from ..ground.tiny import TinyItmSpec
from ..knowledge.captioner import PAPER_CAPTIONER
from ..rerank.config import PAPER_GAMMA, PAPER_MODEL

GEM_CONFIGS = ("paper-tiny", "paper")
QUICK_POSTS = {"train": 210, "dev": 45, "test": 45}  # --quick: at most this many posts per split
REFERENCE_CAPTIONS = "knowledge.jsonl"  # a synthetic benchmark's reference captions (the captioner's targets)


@dataclass(frozen=True)
class GemProfile:
    name: str
    tiny: bool
    encoder: str
    recognizer_preset: str
    recognizer_epochs: int
    reranker_model: str  # the base model (paper-tiny: built from a config by the run)
    reranker: dict[str, Any]  # RerankerConfig settings
    itm_model: str  # the ITM fine-tuned (paper-tiny: built from a config by the run)
    grounder: GrounderTrainConfig
    segmenter: str
    captioner: str | None  # the captioning model; None: one trained by the run (a tiny BLIP)
    llm: bool  # knowledge: an LLM's explanation (paper) or the caption itself
    gamma: float = PAPER_GAMMA  # the sample filter's threshold, in the pipeline folder and for training
    # train the reranker on the gold entities the sample filter sends (the recogniser's train predictions
    # with entropy > gamma) instead of every gold entity (paper)
    rerank_sent_only: bool = False
    itm_spec: TinyItmSpec = field(default_factory=TinyItmSpec)
    # the tiny LLaVA's image side: at 64 pixels an emblem (a quarter to a third of the side) spans 2-3 of its
    # 8-pixel patches; at 48 the reranker told the colours of one family apart only by chance (docs/reproduce.md)
    llava_image_size: int = 64
    limits: dict[str, int] = field(default_factory=dict)  # split -> at most this many posts (--quick)

    @property
    def captions_description(self) -> str:
        source = self.captioner or "the tiny BLIP captioner trained by the run"
        return f"captions of every post, by {source}"

    @property
    def knowledge_description(self) -> str:
        if self.llm:
            return "knowledge: the LLM's explanation of each post from its text and caption (Table 6)"
        return 'knowledge: "The image shows <caption>." for every post (no LLM)'

    def captions_command(self, dataset: str, captions: Any) -> list[str] | None:
        return None  # written by the library (`knowledge.builder.caption_posts`); no command writes captions alone

    def knowledge_command(self, dataset: str, captions: Any) -> list[str] | None:
        if not self.llm:
            return None
        return ["knowledge", "build", "--dataset", dataset, "--split", "all", "--captions", str(captions)]

    def reranker_flags(self, train_predictions: Any) -> list[str]:
        given = self.reranker
        flags = ["--lr", str(given["lr"]), "--epochs", str(given["epochs"]), "--batch-size", str(given["batch_size"]),
                 "--lora-rank", str(given["lora_rank"]), "--dev-max", "0"]
        if given.get("candidate_pool", "schema") != "schema":
            flags += ["--candidate-pool", given["candidate_pool"]]
        if self.rerank_sent_only:
            flags += ["--hard-from", str(train_predictions), "--gamma", str(self.gamma)]
        limit = self.reranker_limit
        return flags + ([] if given.get("bf16") else ["--no-bf16"]) + (["--max-train", str(limit)] if limit else [])

    @property
    def reranker_limit(self) -> int | None:
        """--quick: a seeded subset of about as many training entities as the train posts hold."""
        return 3 * self.limits["train"] if self.limits else None

    def grounder_flags(self) -> list[str]:
        config = self.grounder
        return ["--lr", str(config.lr), "--epochs", str(config.epochs), "--images-per-batch",
                str(config.images_per_batch), "--positive-weight", str(config.positive_weight),
                "--absent-negatives", str(config.absent_negatives)]

    def predict_flags(self, quick: bool) -> list[str]:
        return ["--max-posts", str(self.limits["test"])] if quick and "test" in self.limits else []

    def limit_flags(self, train: str, dev: str | None = None) -> list[str]:
        """--quick's post limits as a command's options."""
        if not self.limits:
            return []
        return [train, str(self.limits["train"]), *([dev, str(self.limits["dev"])] if dev else [])]


def gem_profile(config: str, quick: bool = False) -> GemProfile:
    """The models and settings of `config` (`GEM_CONFIGS`); `quick`: a smoke run's smaller numbers."""
    if config == "paper":
        return GemProfile(
            "paper", False, encoder="bert-base-cased", recognizer_preset="paper", recognizer_epochs=2 if quick else 10,
            reranker_model=PAPER_MODEL, reranker={"lr": 5e-6, "epochs": 3, "batch_size": 4, "lora_rank": 64,
                                                  "bf16": True},
            itm_model=PAPER_ITM_MODEL, grounder=GrounderTrainConfig(), segmenter="sam", captioner=PAPER_CAPTIONER,
            llm=True, limits=QUICK_POSTS if quick else {})
    if config != "paper-tiny":
        raise ValueError(f"unknown configuration {config!r}; choose one of lite, {', '.join(GEM_CONFIGS)}")
    return GemProfile(
        "paper-tiny", True, encoder="minilm", recognizer_preset="lite", recognizer_epochs=6 if quick else 3,
        # from scratch: a far larger lr than the paper's 5e-6 for LLaVA-7B (tests/test_rerank_images.py); at 5e-3
        # one family's colours collapsed onto one type for some seeds, 2e-3 for 20 epochs learnt them for seeds 0-2
        reranker_model="tiny LLaVA", reranker={
            "lr": 2e-3, "epochs": 24 if quick else 20, "batch_size": 4, "lora_rank": 32, "lora_alpha": 64,
            "bf16": False, "candidate_pool": "train"},
        itm_model="tiny BLIP ITM",
        # from scratch: lr 3e-3 as in ground.proof, not the paper's fine-tuning 5e-5
        grounder=GrounderTrainConfig(lr=3e-3, epochs=10 if quick else 15, images_per_batch=16, positive_weight=2.0,
                                     absent_negatives=6, threads=None),
        segmenter="region", captioner=None, llm=False,
        # the 3-epoch recogniser is less sure than the paper's: gamma 1.0 on dev (docs/reproduce.md) sends the
        # entities only the image decides and none of the others, and the reranker is trained on exactly those
        gamma=1.0, rerank_sent_only=True,
        itm_spec=TinyItmSpec(image_size=96, patch_size=4, hidden_size=64, vision_layers=0, text_layers=1, heads=8),
        limits=QUICK_POSTS if quick else {})
