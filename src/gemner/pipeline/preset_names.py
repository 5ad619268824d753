"""The names of the pipeline presets shipped in `presets/<name>.yaml`: light enough for the CLI's option help,
which must not import the configuration models at start-up."""

PRESET_NAMES = ("lite", "lite-rerank", "lite-gmner", "base", "paper")
PRESET_LIST = ", ".join(PRESET_NAMES)
