"""gemner: fine-grained multimodal named entity recognition and grounding (GEM)."""
__version__ = "0.1.0"
