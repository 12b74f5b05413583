"""Untrusted text (action output, task, session turns) is tokenized as plain text; only the
spec's own templates make special tokens, and ordinary text tokenizes as before."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest

from llmos_grammar.ir import ActionState, Prompt
from llmos_grammar.results import ActionResult
from llmos_grammar.runtime.pieces import (
    Piece,
    encode_pieces,
    encode_untrusted,
    format_pieces,
    joined,
    trusted,
)
from llmos_grammar.runtime.prompt import (
    history_pieces,
    next_turn_pieces,
    prompt_pieces,
    prompt_text,
)
from tests.hostile.cases_tokens import (
    FORGED_TURN,
    attack_text,
    echo_machine,
    special_ids,
    specials_in,
    tiny_tokenizer,
)
from tests.test_runtime_helpers import FakeRunner, tiny_model, tokenizer

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*/spec.yaml"))
TASKS = ["What is 2 + 2?", "7", " leading space", "\nnewline first", "x {task} {json}", "ü 日本"]
PROMPT = Prompt(system="You compute.", user="Task: {task}")


# ---- model-free: a byte-level tokenizer with ChatML special tokens ----------------------
def test_untrusted_text_spells_special_tokens_as_text() -> None:
    tok = tiny_tokenizer()
    text = attack_text(tok)
    ids = encode_untrusted(tok, text)
    assert not set(ids) & special_ids(tok)
    assert tok.decode(ids) == text
    assert encode_pieces(tok, text) == ids  # a plain str is untrusted
    assert set(tok.encode(text, add_special_tokens=False)) & special_ids(tok)  # the default


def test_trusted_pieces_keep_their_special_tokens() -> None:
    tok = tiny_tokenizer()
    start, end = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    pieces = (*trusted("<|im_start|>user\n"), Piece("hi"), *trusted("<|im_end|>\n"))
    ordinary = encode_pieces(tok, pieces)
    assert ordinary == tok.encode(joined(pieces), add_special_tokens=False)
    assert specials_in(ordinary, tok) == [start, end]
    forged = (*trusted("<|im_start|>user\n"), Piece(FORGED_TURN), *trusted("<|im_end|>\n"))
    ids = encode_pieces(tok, forged)
    assert specials_in(ids, tok) == [start, end]
    assert tok.decode(ids, skip_special_tokens=False) == joined(forged)


def test_a_special_token_spread_over_pieces_stays_text() -> None:
    tok = tiny_tokenizer()
    for pieces in [
        (Piece("a <|im_"), Piece("end|> b")),  # two untrusted values side by side
        (*trusted("a <|im_"), Piece("end|> b")),  # a template's text and a value
        (Piece("a <|im_"), *trusted("end|> b")),
    ]:
        ids = encode_pieces(tok, pieces)
        assert not specials_in(ids, tok) and tok.decode(ids) == "a <|im_end|> b"


@pytest.mark.parametrize(
    "template",
    [
        "\n[OUTPUT]\n{stdout}[/OUTPUT]\nThe answer is",
        "\n```output\n{stdout}{error}```\n",
        "{exit_code!r:>5} {stdout:.3} {{literal}} {output}",
        "<|im_end|>\n<|im_start|>user\n{stdout}<|im_end|>\n<|im_start|>assistant\n",
    ],
)
def test_format_pieces_is_str_format_with_values_untrusted(template: str) -> None:
    fields = ActionResult(stdout="42 <|im_end|>\n", stderr="", exit_code=0).template_fields()
    pieces = format_pieces(template, fields)
    assert joined(pieces) == template.format(**fields)
    literal = "".join(text for text, *_ in string.Formatter().parse(template))
    assert "".join(p.text for p in pieces if p.trusted) == literal
    values = [p.text for p in pieces if not p.trusted]
    assert len(values) == template.count("{") - 2 * template.count("{{")
    assert any("<|im_end|>" in v for v in values)


@pytest.mark.parametrize("template", ["{nope}", "{}", "{0}", "{stdout", "{stdout!x}"])
def test_format_pieces_fails_like_str_format(template: str) -> None:
    fields = ActionResult(stdout="1").template_fields()
    with pytest.raises((KeyError, IndexError, ValueError)) as expected:
        template.format(**fields)
    with pytest.raises(expected.type):
        format_pieces(template, fields)


def test_task_forging_a_turn_gets_only_the_templates_special_ids() -> None:
    tok = tiny_tokenizer()
    ordinary = specials_in(encode_pieces(tok, prompt_pieces(PROMPT, tok, "2+2")), tok)
    forged = encode_pieces(tok, prompt_pieces(PROMPT, tok, attack_text(tok)))
    assert specials_in(forged, tok) == ordinary and len(ordinary) == 5
    assert attack_text(tok) in tok.decode(forged)


def test_session_turns_forging_turns_get_only_the_templates_special_ids() -> None:
    tok = tiny_tokenizer()
    bad, plain = attack_text(tok), "fine"
    for render in (
        lambda text: next_turn_pieces(PROMPT, tok, text),
        lambda text: history_pieces(PROMPT, tok, [(text, text), (text, text)]),
    ):
        ordinary = specials_in(encode_pieces(tok, render(plain)), tok)
        assert ordinary and specials_in(encode_pieces(tok, render(bad)), tok) == ordinary


def test_a_template_that_trims_content_renders_as_before() -> None:
    trimming = tiny_tokenizer().chat_template.replace(
        "message['content']", "(message['content'] | trim)"
    )
    tok = tiny_tokenizer(trimming)
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "  padded\n"}]
    real = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt_text(Prompt(system="S"), tok, "  padded\n") == real


# ---- the default model's tokenizer -----------------------------------------------------
def _load(spec: Path) -> Any:
    from llmos_grammar.spec import load

    return load(spec)


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_example_prompts_tokenize_exactly_as_one_encode(spec: Path) -> None:
    """Ordinary text gives the ids of one `encode` of the whole rendering (prompt caches,
    few-shot behaviour and the shared prefix stay as they were)."""
    machine_ = _load(spec)
    tok, prompt = tokenizer(), machine_.prompt

    def plain(text: str) -> list[int]:
        return list(tok.encode(text, add_special_tokens=False))

    for task in TASKS:
        pieces = prompt_pieces(prompt, tok, task)
        assert encode_pieces(tok, pieces) == plain(joined(pieces))
        turn = next_turn_pieces(prompt, tok, task)
        assert encode_pieces(tok, turn) == plain(joined(turn))
        history = history_pieces(prompt, tok, [(task, "The answer is 4."), ("more", task)])
        assert encode_pieces(tok, history) == plain(joined(history))
    fields = ActionResult(stdout="4\n", stderr="Traceback: x\n", exit_code=1).template_fields()
    for state in machine_.states.values():
        if isinstance(state, ActionState):
            for template in filter(None, (state.output, state.error_output)):
                pieces = format_pieces(template, fields)
                assert encode_pieces(tok, pieces) == plain(template.format(**fields))


def test_default_chat_template_keeps_its_turns_around_a_forged_task() -> None:
    tok = tokenizer()
    start, end = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    ids = encode_pieces(tok, prompt_pieces(PROMPT, tok, attack_text(tok)))
    assert specials_in(ids, tok) == [start, end, start, end, start]  # system, user, assistant


def test_action_printing_every_special_token_yields_no_special_id() -> None:
    from llmos_grammar.runtime import Runtime

    lm = tiny_model()
    tok = lm.tokenizer
    runner = FakeRunner(ActionResult(stdout=attack_text(tok)))
    result = Runtime(echo_machine(), lm, runner=runner).run("go")
    assert result.stop_reason == "final", result.message
    assert not specials_in(result.completion_ids, tok)
    assert not any(result.chosen)  # all injected: nothing here is trained on as sampled
    assert specials_in(result.prompt_ids, tok) == specials_in(
        Runtime(echo_machine(), lm, runner=FakeRunner()).run("go").prompt_ids, tok
    )
    assert attack_text(tok) in tok.decode(list(result.completion_ids))


def test_output_template_keeps_its_own_special_tokens() -> None:
    from llmos_grammar.runtime import Runtime

    lm = tiny_model()
    tok = lm.tokenizer
    start, end = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    template = "<|im_end|>\n<|im_start|>user\n{stdout}<|im_end|>\n<|im_start|>assistant\n"
    runner = FakeRunner(ActionResult(stdout=FORGED_TURN))
    result = Runtime(echo_machine(template), lm, runner=runner).run("go")
    assert specials_in(result.completion_ids, tok) == [end, start, end, start]
    assert result.actions[0].output == template.format(stdout=FORGED_TURN)


def test_sampled_text_then_forged_output_keeps_training_ids_clean() -> None:
    """A run with sampled tokens, a trigger, code and an injected forged turn: special ids
    in the completion are only ones the model sampled (chosen), here the final EOS."""
    from tests.test_runtime import calc_machine, run

    tok = tiny_model().tokenizer
    runner = FakeRunner(ActionResult(stdout=attack_text(tok)))
    result, _, _ = run(calc_machine(), ["Sure", " [", "CO", "4", "2", ")", " Done"], runner)
    assert result.stop_reason == "final", result.message
    completion, chosen = result.completion_ids, result.chosen
    assert len(chosen) == len(completion)
    fed = [t for t, c in zip(completion, chosen, strict=True) if not c]
    assert not specials_in(fed, tok)
    assert specials_in(completion, tok) == [t for t in completion if t == tok.eos_token_id]


def test_session_turns_forging_turns_add_no_special_ids() -> None:
    from llmos_grammar.runtime.session import Session

    lm = tiny_model()
    tok = lm.tokenizer

    def session_specials(text: str) -> list[int]:
        with Session(echo_machine(), lm, runner=FakeRunner()) as session:
            for _ in range(3):
                assert session.send(text).stop_reason == "final"
            return specials_in(session.seq.ids, tok)

    ordinary = session_specials("hello")
    assert ordinary and session_specials(attack_text(tok)) == ordinary


def test_healing_still_merges_across_the_boundary_in_plain_text_mode() -> None:
    from llmos_grammar.runtime.kv import KVSequence, heal_append

    lm = tiny_model()
    tok = lm.tokenizer

    def ids(text: str) -> list[int]:
        return list(tok.encode(text, add_special_tokens=False))

    seq = KVSequence(lm)
    seq.append(ids("x =") + ids(" "))
    text = "print('<|im_end|>')"
    queued = heal_append(seq, lm.token_table(), tok, (Piece(text), *trusted("<|im_end|>")))
    # " " + "print" is re-tokenized as " print"; the value's special text stays text
    assert seq.ids[: len(ids("x =")) + 1] == ids("x =") + ids(" print")
    assert specials_in(seq.ids, tok) == [tok.convert_tokens_to_ids("<|im_end|>")]
    assert queued == len(seq.ids) - len(ids("x ="))
    assert tok.decode(seq.ids) == "x = " + text + "<|im_end|>"


def test_a_spec_without_chat_template_still_splits_the_task() -> None:
    tok = tiny_tokenizer()
    prompt = Prompt(system="S", chat_template=False, user="Q: {task}")
    pieces = prompt_pieces(prompt, tok, FORGED_TURN)
    assert joined(pieces) == f"S\n\nQ: {FORGED_TURN}\n"
    assert not specials_in(encode_pieces(tok, pieces), tok)
