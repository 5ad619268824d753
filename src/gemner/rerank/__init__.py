"""Paper §3.3: the sample filter (eq. 10) and the MLLM category reranker (Table 7)."""
