"""The token sequence and its KV cache: one forward per appended chunk, crop for healing."""

from __future__ import annotations

from typing import Any

from llmos_grammar.models import LoadedModel


class KVSequence:
    """All token ids so far, the part already in the KV cache, and the next-token logits."""

    def __init__(self, lm: LoadedModel) -> None:
        from transformers import DynamicCache

        self.lm = lm
        self.ids: list[int] = []
        self.cache: Any = DynamicCache(config=lm.model.config)
        self.cached = 0  # ids[:cached] are in the cache
        self.forward_passes = 0
        self.forward_tokens = 0
        self.logits: Any = None  # float32 logits for the position after ids[cached - 1]
        self._cache_kw = _cache_keyword(lm.model)

    def append(self, tokens: list[int]) -> None:
        """Queue tokens; they enter the cache at the next `flush`."""
        self.ids.extend(tokens)

    def truncate(self, length: int) -> None:
        """Drop ids[length:], cropping the cache if it already holds some of them."""
        del self.ids[length:]
        if self.cached > length:
            self.cache.crop(length - self.cached)  # negative: tokens to remove
            self.cached = length
            self.logits = None

    def flush(self) -> Any:
        """Feed every queued token in one forward pass; return the next-token logits."""
        import torch

        pending = self.ids[self.cached :]
        if not pending:
            if self.logits is None:
                raise RuntimeError("no logits: the sequence is empty")
            return self.logits
        device = self.lm.device
        input_ids = torch.tensor([pending], dtype=torch.long, device=device)
        positions = torch.arange(self.cached, len(self.ids), device=device).unsqueeze(0)
        with torch.inference_mode():
            out = self.lm.model(
                input_ids=input_ids,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_kw: self.cache},
            )
        self.cached = len(self.ids)
        self.forward_passes += 1
        self.forward_tokens += len(pending)
        self.logits = out.logits[0, -1].float()
        return self.logits


def _cache_keyword(model: Any) -> str:
    """`cache` in recent transformers, `past_key_values` before."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def heal_append(seq: KVSequence, table: Any, tokenizer: Any, text: str) -> int:
    """Queue `text` after the sequence so that the model sees a natural tokenization.

    The last token is re-tokenized together with `text` (token healing, as llguidance
    and guidance do at prompt boundaries): "]" followed by "\\n[OUTPUT]" may become
    "]\\n" + "[OUTPUT]". A last token that is special or ends inside a UTF-8
    character is kept as it is. Returns how many tokens were queued.
    """
    if not text:
        return 0
    ids = seq.ids
    last = ids[-1] if ids else None
    if last is not None and last not in table.special and last < len(table.token_bytes):
        try:
            joined: str | None = (table.token_bytes[last] + text.encode()).decode("utf-8")
        except UnicodeDecodeError:
            joined = None
        if joined is not None:
            new = list(tokenizer.encode(joined, add_special_tokens=False))
            if new and new[0] == last:
                seq.append(new[1:])
                return len(new) - 1
            seq.truncate(len(ids) - 1)
            seq.append(new)
            return len(new)
    new = list(tokenizer.encode(text, add_special_tokens=False))
    seq.append(new)
    return len(new)
