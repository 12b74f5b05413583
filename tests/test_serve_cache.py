"""Cache reuse in `llmos serve`: kept rows, replies sent back as their own ids, eviction, engines.

Mechanics on tiny random models: the rendering, TTL and LRU eviction (a re-prefill,
never another answer), a regenerated reply copying the kept prefix, a client-side
tool result continuing the calling turn's ids, the prefill a ten-turn conversation
saves. End to end on the default model (calculator, transformers and llama.cpp)
and on vLLM where `.venv-vllm` exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from llmos_grammar.engines.transformers import TransformersEngine
from llmos_grammar.runtime.kv import KVSequence
from llmos_grammar.runtime.pieces import Piece, joined
from llmos_grammar.runtime.prompt import encode
from llmos_grammar.runtime.session import Session
from llmos_grammar.serve.kept import KeptRow, KeptRows, Replies
from llmos_grammar.serve.models import served_on
from llmos_grammar.serve.render import Continuation, render_chat
from llmos_grammar.serve.scheduler import BatchScheduler
from llmos_grammar.serve.toolcalls import GENERIC, NATIVE
from llmos_grammar.serve.types import GenerationRequest, Message, Tool, ToolCall, ToolChoice
from tests.serve_sched_support import ROOT, ask, chat, wait_until
from tests.test_runtime_batch import varied_model
from tests.test_runtime_helpers import FakeRunner, tiny_model, tokenizer

PLAIN = "plain"
TURNS = [f"Tell me fact number {k} about the sea." for k in range(1, 11)]


def scheduler(model: Any = None, **kw: Any) -> BatchScheduler:
    served = served_on(model or varied_model(), [], plain=PLAIN, plain_max_tokens=12)
    return BatchScheduler(served=served, **kw)


def conversation(replies: list[str], upto: int) -> tuple[str, ...]:
    """User turns 0..upto and the replies between them."""
    out: list[str] = []
    for k in range(upto + 1):
        out.append(TURNS[k])
        if k < upto:
            out.append(replies[k])
    return tuple(out)


def kept_ids(s: BatchScheduler) -> list[list[int]]:
    return [list(row.seq.ids) for loop in s.loops.values() for row in loop.kept.rows]


# ---- rendering ----------------------------------------------------------------------------
CALL = ToolCall("call_1", "weather", '{"city": "Paris"}')
TALK = [
    Message("system", "Be brief."),
    Message("user", "What is the weather?"),
    Message("assistant", "", tool_calls=(CALL,)),
    Message("tool", "sunny", tool_call_id="call_1"),
    Message("tool", "22 C", tool_call_id="call_1"),
    Message("assistant", "Sunny, 22 C."),
    Message("user", "And tomorrow?"),
]


@pytest.mark.parametrize("syntax", [GENERIC, NATIVE])
def test_the_ids_spell_the_conversation_through_the_chat_template(syntax: Any) -> None:
    from llmos_grammar.ir import Prompt
    from llmos_grammar.serve.toolcalls import assistant_text, tool_results_text

    prompt, tok = Prompt(system="You answer.\n", user="Q: {task}"), tokenizer()
    ids = render_chat(prompt, tok, TALK, tools_prompt="TOOLS", syntax=syntax).ids
    results = (
        [{"role": "user", "content": tool_results_text(TALK[3:5])}]
        if syntax.tool_role == "user"
        else [{"role": "tool", "content": m.content} for m in TALK[3:5]]
    )
    expected = [
        {"role": "system", "content": "You answer.\n\n\nBe brief.\n\nTOOLS"},
        {"role": "user", "content": "Q: What is the weather?"},
        {"role": "assistant", "content": assistant_text(TALK[2], syntax)},
        *results,
        {"role": "assistant", "content": "Sunny, 22 C."},
        {"role": "user", "content": "Q: And tomorrow?"},
    ]
    text = tok.apply_chat_template(expected, tokenize=False, add_generation_prompt=True)
    assert tok.decode(list(ids)) == text
    assert list(ids) == tok.encode(text, add_special_tokens=False)


def test_without_a_template_the_turns_are_laid_out_as_a_session_does() -> None:
    from llmos_grammar.ir import Prompt
    from llmos_grammar.runtime.prompt import next_turn_pieces, prompt_pieces

    prompt, tok = Prompt(system="Sys\n", user="Q: {task}", chat_template=False), tokenizer()
    talk = [Message("user", "One?"), Message("assistant", "1"), Message("user", "Two?")]
    ids = render_chat(prompt, tok, talk).ids
    session = [
        *prompt_pieces(prompt, tok, "One?"),
        Piece("1"),
        *next_turn_pieces(prompt, tok, "Two?"),
    ]
    assert tok.decode(list(ids)) == joined(session)


def test_a_known_reply_is_its_own_ids_and_its_end_of_turn_is_not_repeated() -> None:
    from llmos_grammar.ir import Prompt

    prompt, tok = Prompt(), tokenizer()
    head = render_chat(prompt, tok, [Message("user", "Hi")]).ids
    made = (*encode(tok, " Hello"), tok.eos_token_id)  # as sampled: another split, then <|im_end|>
    replies = Replies()
    reply = Message("assistant", "Hello")
    replies.put("m", head, reply, Continuation(1, made))
    known = replies.known("m")
    talk = [Message("user", "Hi"), reply, Message("user", "Bye")]
    ids = render_chat(prompt, tok, talk, known=known, eos_ids=frozenset({tok.eos_token_id})).ids
    assert list(ids[: len(head) - 1 + len(made)]) == [*head[:-1], *made]
    rest = tok.decode(list(ids[len(head) - 1 + len(made) :]))
    assert rest.startswith("\n<|im_start|>user\nBye")  # not a second <|im_end|>
    other = render_chat(prompt, tok, talk, known=replies.known("other model")).ids
    assert list(other[: len(head)]) == list(head) and other != ids


def test_replies_are_bounded_by_the_ids_they_hold() -> None:
    replies = Replies(max_ids=10)
    for k in range(5):
        replies.put("m", [k], Message("assistant", str(k)), Continuation(0, (1, 2, 3, 4)))
    assert replies.get("m", [0], Message("assistant", "0")) is None  # the oldest went
    assert replies.get("m", [4], Message("assistant", "4")) == Continuation(0, (1, 2, 3, 4))


# ---- kept rows ------------------------------------------------------------------------------
def test_kept_rows_leave_least_recently_used_first_and_after_their_ttl() -> None:
    now = [0.0]
    engine = TransformersEngine(tiny_model())
    per_id = engine.cache_bytes_per_id()
    kept = KeptRows(engine, ttl_s=5.0, max_bytes=2 * 40 * per_id, clock=lambda: now[0])
    rows = []
    for k in range(3):
        seq = KVSequence(tiny_model(), engine)
        seq.append([100 + k] * 40)
        seq.flush()  # all 40 ids cached
        rows.append(KeptRow(seq, "m"))
    kept.put(rows[0])
    kept.put(rows[1])
    now[0] = 1.0
    kept.touch(rows[0])  # used again: now the most recent
    now[0] = 6.0
    kept.put(rows[2])  # over the budget: the least recently used (rows[1]) goes
    assert kept.rows == [rows[0], rows[2]] and kept.evicted == 1
    assert kept.bytes == 80 * per_id
    found = kept.best([102] * 41 + [7])
    assert found is not None and found[0] is rows[2] and found[1] == 40
    now[0] = 10.5
    assert kept.next_expiry() == 0.0
    assert kept.expire() == 1 and kept.rows == [rows[2]]  # idle 9.5 s, past the TTL
    assert kept.next_expiry() == pytest.approx(0.5)
    kept.close()
    assert not kept.rows and engine.live.sum() == 0  # every row given back


def test_ttl_eviction_costs_a_re_prefill_and_never_another_answer() -> None:
    with scheduler(session_ttl=600) as keeping:
        first = ask(keeping, chat(PLAIN, TURNS[0]))
        warm = ask(keeping, chat(PLAIN, TURNS[0], first.text, TURNS[1]))
    with scheduler(session_ttl=0.3) as forgetting:
        again = ask(forgetting, chat(PLAIN, TURNS[0]))
        wait_until(lambda: forgetting.stats().kept_rows == 0)
        cold = ask(forgetting, chat(PLAIN, TURNS[0], again.text, TURNS[1]))
    assert again.text == first.text
    assert warm.done.usage.cached_tokens > 0 and cold.done.usage.cached_tokens == 0
    assert cold.text == warm.text
    assert cold.done.usage.prompt_tokens == warm.done.usage.prompt_tokens


def test_a_byte_budget_keeps_the_most_recent_row() -> None:
    per_id = TransformersEngine(varied_model()).cache_bytes_per_id()
    with scheduler(kept_bytes=70 * per_id) as s:  # one exchange (about 50 ids) fits, not two
        a = ask(s, chat(PLAIN, "First question about cats?"))
        b = ask(s, chat(PLAIN, "Second question about dogs?"))
        stats = s.stats()
        assert stats.kept_rows == 1 and 0 < stats.kept_bytes <= 70 * per_id
        b2 = ask(s, chat(PLAIN, "Second question about dogs?", b.text, "More?"))
        a2 = ask(s, chat(PLAIN, "First question about cats?", a.text, "More?"))
    assert b2.done.usage.cached_tokens >= b.done.usage.prompt_tokens
    assert a2.done.usage.cached_tokens < a.done.usage.prompt_tokens  # evicted: a re-prefill
    assert s.loops[id(s.served.groups[0])].kept.evicted >= 2


def test_a_regenerated_reply_copies_the_kept_prefix_and_keeps_both() -> None:
    with scheduler() as s:
        one = ask(s, chat(PLAIN, TURNS[0]))
        two = ask(s, chat(PLAIN, TURNS[0]))
        assert s.stats().kept_rows == 2
    assert two.done.usage.cached_tokens == one.done.usage.prompt_tokens
    assert two.text == one.text


def test_a_client_side_tool_result_continues_from_the_calling_turn() -> None:
    tool = Tool(
        "weather",
        "The weather in a city.",
        {
            "type": "object",
            "properties": {"city": {"enum": ["Paris", "Rome"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    )
    user = Message("user", "What is the weather in Paris?")
    required = ToolChoice("required")  # the tools' prompt says which: the same both times
    calling = GenerationRequest(PLAIN, (user,), tools=(tool,), tool_choice=required, max_tokens=40)
    with scheduler(tiny_model()) as s:
        first = ask(s, calling)
        [choice] = first.choices
        assert choice.finish_reason == "tool_calls" and choice.tool_calls
        assert [d.call for d in first.calls()] == list(choice.tool_calls)
        [before] = kept_ids(s)
        answer = Message("assistant", choice.content, tool_calls=choice.tool_calls)
        result = Message("tool", "sunny, 22 C", tool_call_id=choice.tool_calls[0].id)
        follow = GenerationRequest(
            PLAIN, (user, answer, result), tools=(tool,), tool_choice=required, max_tokens=40
        )
        second = ask(s, follow)
        [after] = kept_ids(s)
    assert second.done.usage.cached_tokens >= len(before) - 1
    assert after[: len(before)] == before  # the calling turn's own ids, then the result


def test_a_ten_turn_conversation_prefills_only_what_is_new() -> None:
    fed: dict[bool, list[int]] = {}
    replies: dict[bool, list[str]] = {}
    cached: list[int] = []
    for reuse in (True, False):
        with scheduler(reuse=reuse) as s:
            engine = s.served.groups[0].engine
            said: list[str] = []
            for k in range(len(TURNS)):
                before = engine.counters.tokens_fed
                answer = ask(s, chat(PLAIN, *conversation(said, k)))
                said.append(answer.text)
                fed.setdefault(reuse, []).append(engine.counters.tokens_fed - before)
                if reuse:
                    cached.append(answer.done.usage.cached_tokens)
            replies[reuse] = said
    assert replies[True] == replies[False]  # reuse changes the cost, never the answer
    assert cached[0] == 0 and all(c > 0 for c in cached[1:])
    # turn 10 feeds its new user turn and its reply; without reuse, the whole conversation
    assert fed[True][-1] * 4 < fed[False][-1]
    assert sum(fed[True]) * 2 < sum(fed[False])


# ---- end to end on real models --------------------------------------------------------------
CALC = ROOT / "examples" / "calculator" / "spec.yaml"


@pytest.mark.model
def test_the_calculator_answers_with_its_output_and_continues_as_a_session() -> None:
    from llmos_grammar.engines.select import load_for
    from llmos_grammar.ir import DEFAULT_MODEL, ModelRef
    from llmos_grammar.spec.loader import load

    machine = load(CALC)
    lm = load_for("transformers", ModelRef(DEFAULT_MODEL))
    with BatchScheduler(served=served_on(lm, [machine], plain=DEFAULT_MODEL)) as s:
        first = ask(s, chat("calculator", "What is 48*27?"))
        [action] = [r for r in first.records() if r["type"] == "action"]
        assert action["output"] == "1296\n" and "[OUTPUT]\n1296\n[/OUTPUT]" in first.text
        second = ask(s, chat("calculator", "What is 48*27?", first.text, "What is 12*12?"))
        assert second.done.usage.cached_tokens >= first.done.usage.prompt_tokens
    with Session(machine, lm) as session:
        assert session.send("What is 48*27?").text == first.text
        assert session.send("What is 12*12?").text == second.text


@pytest.mark.model
def test_llamacpp_rows_are_kept_and_continued_as_one_session() -> None:
    pytest.importorskip("llama_cpp")
    from llmos_grammar.engines.select import load_for
    from llmos_grammar.ir import DEFAULT_MODEL, ModelRef
    from llmos_grammar.serve.constrain import plain_machine

    lm = load_for("llamacpp", ModelRef(DEFAULT_MODEL))
    try:
        served = served_on(lm, [], plain="smol", plain_max_tokens=24)
        with BatchScheduler(served=served) as s:
            first = ask(s, chat("smol", "Name a colour."))
            second = ask(s, chat("smol", "Name a colour.", first.text, "Name another."))
            assert second.done.usage.cached_tokens >= first.done.usage.prompt_tokens
            [row] = kept_ids(s)
        machine = plain_machine(
            ModelRef(DEFAULT_MODEL), "smol", served.by_id["smol"].machine.budgets
        )
        with Session(machine, lm, runner=FakeRunner()) as session:
            assert session.send("Name a colour.").text == first.text
            assert session.send("Name another.").text == second.text
            assert list(session.seq.ids) == row
    finally:
        lm.close()


def _vllm_missing() -> str | None:
    from llmos_grammar.engines.vllm.args import VLLMOptions
    from llmos_grammar.engines.vllm.server import find_python
    from llmos_grammar.errors import ModelError

    try:
        find_python(VLLMOptions())
    except ModelError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def vllm_served() -> Iterator[BatchScheduler]:
    missing = _vllm_missing()
    if missing is not None:
        pytest.skip(missing)
    from llmos_grammar.engines.vllm import load_vllm
    from llmos_grammar.ir import DEFAULT_MODEL, ModelRef

    lm = load_vllm(ModelRef(DEFAULT_MODEL), {})
    try:
        with BatchScheduler(served=served_on(lm, [], plain="smol", plain_max_tokens=24)) as s:
            yield s
    finally:
        lm.close()


@pytest.mark.model
@pytest.mark.vllm
def test_vllm_sends_a_continued_conversation_as_the_kept_ids(vllm_served: BatchScheduler) -> None:
    """On a segment engine a kept row is the ids the server last saw: the next request sends
    them unchanged (no re-tokenization), so vLLM's prefix cache can serve them."""
    s = vllm_served

    async def both() -> list[Any]:
        from tests.serve_sched_support import read

        tickets = [s.submit(chat("smol", f"Name colour number {k}.")) for k in range(3)]
        return await asyncio.gather(*(read(t) for t in tickets))

    firsts = asyncio.run(both())
    assert all(a.choices[0].content for a in firsts)
    rows = kept_ids(s)
    second = ask(s, chat("smol", "Name colour number 0.", firsts[0].text, "Another."))
    assert second.done.usage.cached_tokens >= firsts[0].done.usage.prompt_tokens
    assert any(row in [r[: len(row)] for r in kept_ids(s)] for row in rows)
