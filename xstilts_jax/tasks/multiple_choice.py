"""Multiple-choice tasks (HellaSwag, CosmosQA, CommonsenseQA): examples, readers, featurization.

One example is a prompt and a fixed number of choices; the model scores each (prompt, choice)
pair and a softmax over the choices picks the answer.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class MCExample:
    guid: str  # "<file relative to data_dir or name>:<line>" (1-based), or a TFDS record id
    prompt: str  # the first segment: context (and question)
    choices: tuple[str, ...]  # the second segment of each pair, one per choice
    label: int  # index of the correct choice
    language: str = "en"
