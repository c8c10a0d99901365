"""Every prompt SEO sends, in one place.

Two templates:

* the **generator** prompt: the task instruction, the experience E (when
  there is one) as a numbered list of rules, then the example;
* the **optimizer** prompt (the paper's update step): the task, one
  training example with its gold answer, the current experience E_t, the
  generator's answer with E_t and, with comparison trials on, its answer
  without E_t and the performance effect

      delta_E = metric(answer with E_t) - metric(answer without E_t)

  and a request for a revised experience of at most ``max_rules`` rules.
  With ``comparison_trials=False`` (the paper's ablation) the second answer
  and delta are left out.

Edit the strings here to change what every notebook and run sends; the
experience block and the input stay in the user turn because small models
attend to it far more than to a system prompt.
"""
from __future__ import annotations

from .experience import Experience

GENERATOR_SYSTEM = "You are a careful assistant. Follow the instructions and rules exactly."

EXPERIENCE_HEADER = "Rules learned from experience (follow them):"

GENERATOR_USER = "{instruction}\n\n{experience_block}{input}"

OPTIMIZER_SYSTEM = (
    "You write rules that help a language model solve a task. Good rules are short and "
    "concrete: each names a clue in the input, or which answer such inputs need.")

# The trials are described in words (right / wrong), not as numbers: a small
# optimizer shown "(score 0.00)" copies it into rules ("the answer must have a
# score of 0.00").  delta stays in the prompt, as the paper's update input.
OPTIMIZER_USER = """Task: {instruction}

Example:
{input}
Correct answer: {gold}

Current rules:
{experience}

With the current rules, the model answered: {with_text} ({with_verdict}).
{comparison}
Write at most {max_rules} short rules that lead the model to the correct answer \
("{gold}") for examples like this one. Keep rules that help, fix or drop rules that hurt. \
Reply with a numbered list of rules only."""

COMPARISON = """Without any rules, the model answered: {without_text} ({without_verdict}).
So on this example the current rules {verdict} (effect {effect:+.2f}).
"""


def verdict(score: float) -> str:
    """A trial's metric in words: 1 is right, 0 is wrong, anything else partly right."""
    if score >= 1.0:
        return "right"
    if score <= 0.0:
        return "wrong"
    return f"partly right, {score:.2f} of 1"


def experience_block(experience: Experience | None) -> str:
    if not experience:
        return ""
    return f"{EXPERIENCE_HEADER}\n{experience.render()}\n\n"


def generator_messages(instruction: str, input_text: str,
                       experience: Experience | None = None) -> list[dict]:
    """Chat messages for the generator; ``experience=None`` is the trial without E."""
    user = GENERATOR_USER.format(instruction=instruction.strip(),
                                 experience_block=experience_block(experience),
                                 input=input_text.strip())
    return [{"role": "system", "content": GENERATOR_SYSTEM},
            {"role": "user", "content": user}]


def optimizer_messages(*, instruction: str, input_text: str, gold: str,
                       experience: Experience, with_text: str, with_score: float,
                       max_rules: int, without_text: str | None = None,
                       without_score: float | None = None,
                       effect: float | None = None) -> list[dict]:
    """Chat messages for the optimizer.  Leave ``without_text`` None to drop the
    comparison trial and delta (the ``comparison_trials=False`` ablation)."""
    comparison = ""
    if without_text is not None:
        effect_words = ("helped" if effect > 0 else "hurt" if effect < 0 else "made no difference")
        comparison = COMPARISON.format(without_text=without_text or "(empty answer)",
                                       without_verdict=verdict(without_score), effect=effect,
                                       verdict=effect_words)
    user = OPTIMIZER_USER.format(
        instruction=instruction.strip(), input=input_text.strip(), gold=gold,
        experience=experience.render() if experience else "(none yet)",
        with_text=with_text or "(empty answer)", with_verdict=verdict(with_score),
        comparison=comparison, max_rules=max_rules)
    return [{"role": "system", "content": OPTIMIZER_SYSTEM},
            {"role": "user", "content": user}]
