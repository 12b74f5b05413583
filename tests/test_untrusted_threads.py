"""Untrusted text stays plain text while other threads encode trusted text at the same time."""

from __future__ import annotations

import threading

from llmos_grammar.runtime.pieces import Piece, encode_pieces, encode_untrusted, trusted
from tests.hostile.cases_tokens import attack_text, special_ids, tiny_tokenizer


def test_concurrent_encodes_keep_each_mode() -> None:
    tok = tiny_tokenizer()
    forged = attack_text(tok)
    plain = encode_untrusted(tok, forged)
    template = (*trusted("<|im_start|>user\n"), Piece("hi"), *trusted("<|im_end|>\n"))
    kept = encode_pieces(tok, template)
    assert not set(plain) & special_ids(tok) and set(kept) & special_ids(tok)
    wrong: list[str] = []
    start = threading.Barrier(8)

    def untrusted() -> None:
        start.wait()
        for _ in range(300):
            if encode_untrusted(tok, forged) != plain:
                wrong.append("untrusted text parsed special tokens")

    def templates() -> None:
        start.wait()
        for _ in range(300):
            if encode_pieces(tok, template) != kept:
                wrong.append("a template lost its special tokens")

    threads = [threading.Thread(target=f) for f in (untrusted, templates) * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not wrong, f"{len(wrong)} wrong encodes, e.g. {wrong[0]}"
