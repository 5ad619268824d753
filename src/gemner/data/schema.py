"""Label schemas as data: the GMNER types, the FMNERG coarse/fine tree, and BIO vocabularies.

A schema names its *main* label set (what MNER is scored on: the 4 GMNER types, or the 51 FMNERG
fine types) and, when the benchmark is hierarchical, the coarse set and the fine -> coarse map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

OUTSIDE = "O"

# NUSTM/FMNERG data_utils.py `coarse_fine_tree` (lower-case, as in the txt files).
FMNERG_TREE: dict[str, tuple[str, ...]] = {
    "location": ("city", "country", "state", "continent", "location_other", "park", "road"),
    "building": ("building_other", "cultural_place", "entertainment_place", "sports_facility"),
    "organization": (
        "company", "educational_institution", "band", "government_agency", "news_agency",
        "organization_other", "political_party", "social_organization", "sports_league", "sports_team",
    ),
    "person": (
        "politician", "musician", "actor", "artist", "athlete", "author", "businessman", "character",
        "coach", "director", "intellectual", "journalist", "person_other",
    ),
    "other": ("animal", "award", "medical_thing", "website", "ordinance"),
    "art": ("art_other", "film_and_television_works", "magazine", "music", "written_work"),
    "event": ("event_other", "festival", "sports_event"),
    "product": ("brand_name_products", "game", "product_other", "software"),
}

# `more_eval.py` maps this legacy label onto person_other; it never occurs in the released files.
FMNERG_LEGACY_ALIASES = {"common_person": "person_other"}

GMNER_TYPES: tuple[str, ...] = ("PER", "ORG", "LOC", "OTHER")


def bio_vocabulary(labels: Sequence[str]) -> tuple[str, ...]:
    """`O` first, then `B-x`, `I-x` for each label in order (so tag ids are stable across runs)."""
    tags = [OUTSIDE]
    for label in labels:
        tags += [f"B-{label}", f"I-{label}"]
    return tuple(tags)


@dataclass(frozen=True)
class LabelSchema:
    """The label sets of one benchmark.

    `labels` are the main (finest) types. For a hierarchical schema `coarse_of` maps each main label to
    its coarse parent; for a flat one it is the identity and `coarse_labels == labels`.
    """

    name: str
    labels: tuple[str, ...]
    coarse_labels: tuple[str, ...]
    coarse_of: Mapping[str, str] = field(hash=False, compare=False)
    aliases: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def hierarchical(self) -> bool:
        return self.labels != self.coarse_labels

    @cached_property
    def tags(self) -> tuple[str, ...]:
        return bio_vocabulary(self.labels)

    @cached_property
    def coarse_tags(self) -> tuple[str, ...]:
        return bio_vocabulary(self.coarse_labels)

    def canonical(self, label: str) -> str | None:
        """The schema's spelling of `label` (aliases resolved), or None when it is unknown."""
        label = self.aliases.get(label, label)
        return label if label in self.coarse_of else None

    def fine_labels_of(self, coarse: str) -> tuple[str, ...]:
        return tuple(label for label in self.labels if self.coarse_of[label] == coarse)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "labels": list(self.labels),
            "coarse_labels": list(self.coarse_labels),
            "coarse_of": dict(self.coarse_of),
            "aliases": dict(self.aliases),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> LabelSchema:
        return cls(
            name=data["name"],
            labels=tuple(data["labels"]),
            coarse_labels=tuple(data["coarse_labels"]),
            coarse_of=dict(data["coarse_of"]),
            aliases=dict(data.get("aliases", {})),
        )


def flat_schema(name: str, labels: Sequence[str]) -> LabelSchema:
    labels = tuple(labels)
    return LabelSchema(name, labels, labels, {label: label for label in labels})


GMNER_SCHEMA = flat_schema("gmner", GMNER_TYPES)

FMNERG_SCHEMA = LabelSchema(
    name="fmnerg",
    labels=tuple(fine for fines in FMNERG_TREE.values() for fine in fines),
    coarse_labels=tuple(FMNERG_TREE),
    coarse_of={fine: coarse for coarse, fines in FMNERG_TREE.items() for fine in fines},
    aliases=FMNERG_LEGACY_ALIASES,
)

SCHEMAS: dict[str, LabelSchema] = {"gmner": GMNER_SCHEMA, "fmnerg": FMNERG_SCHEMA}
