"""Image processors that work without torchvision (the PIL back-ends of transformers 5, else the classic)."""

from __future__ import annotations


def blip_image_processor():
    """The class that loads a BLIP image-processor config without needing torchvision."""
    try:
        from transformers import BlipImageProcessorPil

        return BlipImageProcessorPil
    except ImportError:  # transformers 4.x: the classic processor is PIL/numpy based
        from transformers import BlipImageProcessor

        return BlipImageProcessor


def sam_image_processor():
    try:
        from transformers import SamImageProcessorPil

        return SamImageProcessorPil
    except ImportError:
        from transformers import SamImageProcessor

        return SamImageProcessor
