"""The knowledge-augmentation prompt of paper Table 6, and a forgiving reader of its JSON answer.

The query wording is the paper's, word for word (Table 6). The table prints each example's answer as
plain prose although the query asks for JSON; the few-shot assistant turns here wrap that prose in the
requested JSON object (`{"explanation": "..."}`) so the model sees the format it is asked for.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from ..data.limits import CAPTION_CHARS, KNOWLEDGE_TWEET_CHARS, clip

Message = dict[str, str]

INSTRUCTION = (
    "Please explain the tweet and especially some of the words in it according to your knowledge "
    'and answer in the format of json like: "explanation": ""'
)
QUERY_TEMPLATE = "Here's a tweet content: {tweet}. Accordingly, it is corresponding caption: {caption}. " + INSTRUCTION


@dataclass(frozen=True)
class FewShotExample:
    tweet: str
    caption: str
    explanation: str


# Paper Table 6, examples 1-3 (tweet, BLIP-2 caption, ChatGPT's explanation), verbatim.
TABLE6_EXAMPLES: tuple[FewShotExample, ...] = (
    FewShotExample(
        "Details on our newly announced Federation Business Data Lake Solution",
        "a screen shot of the federation business data lake 10",
        "The tweet is announcing a new solution called Federation Business Data Lake. The solution is likely "
        "designed to help businesses store and manage their data in a central repository, known as a data "
        "lake. A data lake is a large storage system that allows for the collection, storage, and analysis "
        "of large amounts of structured and unstructured data from various sources.",
    ),
    FewShotExample(
        "i gotta feeling by the black eyed peas blocked you belong with me by taylor swift",
        "a screenshot of the youtube app showing the different videos",
        "The tweet is referencing the songs 'I Gotta Feeling' by The Black Eyed Peas and 'You Belong With "
        "Me' by Taylor Swift being blocked on YouTube. 'I Gotta Feeling' is a popular dance-pop song "
        "released in 2009, while 'You Belong With Me' is a country-pop song released in 2008. The tweet "
        "suggests that the user may have tried to access these songs on YouTube but found that they were "
        "blocked.",
    ),
    FewShotExample(
        "Leonardo DiCaprio and Kate Moss on their way to an art show in New York City(1993)",
        "a man and woman standing in the middle of a city street",
        "The tweet is referencing a photograph of Leonardo DiCaprio and Kate Moss attending an art show in "
        "New York City in 1993. Leonardo DiCaprio and Kate Moss are both well-known actors and models. In "
        "the image, a man and woman (presumably Leonardo DiCaprio and Kate Moss) are seen standing in the "
        "middle of a city street, likely on their way to the art show. The tweet is highlighting a moment "
        "from their past where they attended a cultural event together.",
    ),
)


def render_query(tweet: str, caption: str) -> str:
    """Table 6's query for one post; an absent caption stays empty (the template's slot is kept).
    The tweet and caption are cut to `gemner.data.limits` (KNOWLEDGE_TWEET_CHARS, CAPTION_CHARS)."""
    return QUERY_TEMPLATE.format(tweet=clip(tweet.strip(), KNOWLEDGE_TWEET_CHARS),
                                 caption=clip(caption.strip(), CAPTION_CHARS))


def render_answer(explanation: str) -> str:
    return json.dumps({"explanation": explanation}, ensure_ascii=False)


def few_shot_messages(examples: tuple[FewShotExample, ...] = TABLE6_EXAMPLES) -> list[Message]:
    """The shared prefix of every prompt: each example as a user turn and an assistant turn."""
    messages: list[Message] = []
    for example in examples:
        messages.append({"role": "user", "content": render_query(example.tweet, example.caption)})
        messages.append({"role": "assistant", "content": render_answer(example.explanation)})
    return messages


def build_messages(tweet: str, caption: str, *, shots: int = 3) -> list[Message]:
    """Chat messages for one post: `shots` Table 6 examples (paper: 3), then the post's query."""
    if not 0 <= shots <= len(TABLE6_EXAMPLES):
        raise ValueError(f"shots must be between 0 and {len(TABLE6_EXAMPLES)}, got {shots}")
    prefix = few_shot_messages(TABLE6_EXAMPLES[:shots])
    return [*prefix, {"role": "user", "content": render_query(tweet, caption)}]


def prompt_hash(messages: list[Message], settings: dict[str, Any] | None = None) -> str:
    """Stable key of a prompt and the generation settings that shape its answer."""
    payload = json.dumps({"messages": messages, "settings": settings or {}}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ParsedAnswer:
    explanation: str
    parsed: bool  # False: no JSON explanation was found, `explanation` is the cleaned raw text


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.DOTALL)
_KEY = re.compile(r"""["']?explanation["']?\s*:\s*""", re.IGNORECASE)


def _explanation_of(value: Any) -> str | None:
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).strip().lower() == "explanation" and isinstance(item, str):
                return item
    if isinstance(value, str) and value.strip():
        return value
    return None


def _balanced_objects(text: str) -> list[str]:
    """Every top-level `{...}` substring (quotes respected), in order."""
    found, depth, start, quote, escaped = [], 0, -1, "", False
    for index, char in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'" and depth > 0:
            # an apostrophe inside prose ("it's") would open a bogus quote: only JSON-ish quotes count
            if char == '"' or text[index - 1] in "{:,[ ":
                quote = char
        elif char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                found.append(text[start:index + 1])
    return found


def _load_loose(candidate: str) -> Any:
    for loader in (json.loads, ast.literal_eval):
        try:
            return loader(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return None


def _after_key(text: str) -> str | None:
    """The value after an `explanation:` key, when the JSON around it is broken or cut off."""
    match = _KEY.search(text)
    if match is None:
        return None
    rest = text[match.end():].strip()
    if rest[:1] in "\"'":
        quote, rest = rest[0], rest[1:]
        end = re.search(rf"(?<!\\){quote}\s*(?:}}|,|$)", rest)
        rest = rest[: end.start()] if end else rest
        rest = rest.replace(f"\\{quote}", quote)
    rest = rest.rstrip().removesuffix("}").rstrip()
    return rest or None


def parse_answer(raw: str) -> ParsedAnswer:
    """The explanation from an LLM reply: JSON object (fenced, with trailing text, single-quoted),
    a bare JSON string, or a broken object with an `explanation` key; else the raw text, unparsed."""
    text = raw.strip()
    fenced = _FENCE.search(text)
    candidates = [fenced.group(1).strip()] if fenced else []
    candidates.append(text)
    for candidate in candidates:
        whole = _load_loose(candidate)
        if isinstance(whole, (dict, str)) and (value := _explanation_of(whole)) is not None:
            return ParsedAnswer(value.strip(), True)
        for obj in _balanced_objects(candidate):
            value = _explanation_of(_load_loose(obj))
            if value is not None:
                return ParsedAnswer(value.strip(), True)
        value = _after_key(candidate)
        if value is not None:
            return ParsedAnswer(value.strip(), True)
    return ParsedAnswer(text, False)
