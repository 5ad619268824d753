"""Knowledge augmentation (paper §3.2.1, Table 6): captions + LLM explanations as auxiliary knowledge.

* `prompt`: the Table 6 prompt (three few-shot turns) and the lenient reader of its JSON answer;
* `captioner`: captions from an HF image-to-text model, a captions JSONL, or none;
* `local_llm`: batched greedy decoding with a local causal LM, shared few-shot prefix computed once;
* `openai_llm`: OpenAI-compatible chat-completions over HTTP, bounded concurrency, retries, backoff;
* `cache`: the SQLite answer cache (WAL, one commit per answer);
* `job`: the resumable batch job; `export`: the `{"id", "knowledge", "caption"}` JSONL(.gz).

Heavy libraries (torch, transformers) are imported only when a model is loaded.
"""
