"""A mixlab checkpoint as a :class:`mixlab.eval.tasks.LanguageModel`.

Contract:
- ``MixlabLM.from_checkpoint(path, tokenizer)`` loads the model with :func:`mixlab.train.checkpoint.load_model`
  (a ``.pt`` file or a phase folder; the configuration comes from the checkpoint) and the encoding with
  :func:`mixlab.eval.encoding.resolve_encoding`, eval's one tokenizer seam.
- ``MixlabLM(model, encoding)``: text is encoded with :func:`mixlab.tokenizer.encode_document` (special-token
  text stays ordinary text). Every sequence starts with the end-of-text token (``prefix_eot``): packed training
  data separates documents with it, so this is how the model saw the start of a document.
- ``loglikelihood_batch([(context, continuation)])``: whitespace that ends the context is moved to the start of
  the continuation (lm-evaluation-harness convention); context and continuation are encoded separately and
  concatenated, so the scored tokens are exactly the continuation's. Returns the sum of natural-log
  probabilities of the continuation tokens. A sequence longer than the model's ``seq_len`` + 1 loses context
  tokens from the left; a continuation longer than ``seq_len`` tokens is an error. Requests are sorted by
  length and run ``batch_size`` at a time, right-padded (causal attention: padding never changes a scored
  position); logits are built only at scored positions.
- ``generate_batch(prompts, max_new_tokens, stop, temperature, seed)``: temperature 0 is greedy (argmax, ties to
  the lowest id), otherwise sampling from ``softmax(logits / temperature)`` with a ``torch.Generator`` seeded by
  ``seed``. A row stops at the end-of-text token, when its decoded completion contains a stop string (the
  returned text is cut before it) or after ``max_new_tokens``. Prompts run ``batch_size`` at a time (sorted by
  length), left-padded, through the model's own cached forward (:class:`mixlab.train.model.KVCache`): padding
  keys are masked and rotary attention depends only on query-key distances, so a row's tokens equal those of
  greedy decoding it alone with the full forward pass (up to float rounding). A prompt longer than ``seq_len``
  keeps its last ``seq_len`` tokens; when the batch's cache reaches ``seq_len`` positions (the longest row, or
  a finished row's padding), the window is rebuilt from each row's last ``3/4 * seq_len`` tokens.
- CPU threads are left as the caller set them. On a shared 2-core machine under load, 2 torch threads made
  tiny-model generation ~100x slower than 1 (measured: 21 s vs 0.2 s for 4 prompts x 40 tokens):
  :func:`mixlab.eval.run.evaluate_checkpoint` runs with 1 thread unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mixlab.eval.encoding import resolve_encoding
from mixlab.eval.records import BaseLM, truncate_at_stop
from mixlab.tokenizer import encode_document
from mixlab.train.checkpoint import load_model
from mixlab.train.model import GPT, KVCache, ModelConfig


class MixlabLM(BaseLM):
    """Log-likelihoods and generations of a mixlab GPT (module contract)."""

    def __init__(self, model: GPT, encoding: Any, *, device: str | torch.device | None = None, batch_size: int = 16,
                 prefix_eot: bool = True) -> None:
        if encoding.n_vocab > model.cfg.vocab_size:
            raise ValueError(f"tokenizer has {encoding.n_vocab} ids but the model only {model.cfg.vocab_size}")
        self.model = model.eval()
        self.enc = encoding
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)
        self.batch_size = max(1, batch_size)
        self.prefix = [encoding.eot_token] if prefix_eot else []
        self.seq_len = model.cfg.seq_len

    @classmethod
    def from_checkpoint(cls, path: Path | str, encoding_spec: Any = None, *, device: str = "cpu",
                        batch_size: int = 16, model_config: ModelConfig | dict | None = None) -> MixlabLM:
        """Load ``path`` (see :func:`mixlab.train.checkpoint.load_model`) and its tokenizer: the one the checkpoint
        recorded, or ``encoding_spec`` checked against it (see :func:`mixlab.eval.encoding.resolve_encoding`)."""
        model, _ = load_model(path, device, model_config)
        return cls(model, resolve_encoding(encoding_spec, checkpoint=path), device=device, batch_size=batch_size)

    def encode(self, text: str) -> list[int]:
        return encode_document(self.enc, text) if text else []

    # ------------------------------------------------------------------------------ log-likelihood

    def _request_tokens(self, context: str, continuation: str) -> tuple[list[int], int]:
        stripped = context.rstrip()
        if len(stripped) < len(context):
            continuation = context[len(stripped):] + continuation
            context = stripped
        ctx, cont = self.encode(context), self.encode(continuation)
        if len(cont) > self.seq_len:
            raise ValueError(f"continuation of {len(cont)} tokens exceeds the model's seq_len {self.seq_len}")
        tokens = (self.prefix + ctx + cont)[-(self.seq_len + 1):]
        return tokens, len(cont)

    @torch.no_grad()
    def loglikelihood_batch(self, requests: Sequence[tuple[str, str]]) -> list[float]:
        encoded = [self._request_tokens(c, x) for c, x in requests]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]))
        out = [0.0] * len(encoded)
        for lo in range(0, len(order), self.batch_size):
            rows = [i for i in order[lo : lo + self.batch_size] if encoded[i][1] > 0]
            if not rows:
                continue
            width = max(len(encoded[i][0]) for i in rows) - 1
            idx = torch.zeros(len(rows), width, dtype=torch.long)
            pos_b, pos_t, targets, owner = [], [], [], []
            for b, i in enumerate(rows):
                tokens, n_cont = encoded[i]
                n_in = len(tokens) - 1
                idx[b, :n_in] = torch.tensor(tokens[:-1])
                for t in range(n_in - n_cont, n_in):  # position t predicts token t + 1
                    pos_b.append(b)
                    pos_t.append(t)
                    targets.append(tokens[t + 1])
                    owner.append(b)
            h = self.model.hidden(idx.to(self.device))  # [B, T, d]
            sel = h[torch.tensor(pos_b, device=self.device), torch.tensor(pos_t, device=self.device)]  # [N, d]
            logp = F.log_softmax(self.model.lm_head(sel).float(), dim=-1)  # [N, V]
            tok_lp = logp.gather(1, torch.tensor(targets, device=self.device)[:, None])[:, 0].double().cpu()
            sums = torch.zeros(len(rows), dtype=torch.float64).index_add_(0, torch.tensor(owner), tok_lp)
            for b, i in enumerate(rows):
                out[i] = float(sums[b])
        return out

    # ----------------------------------------------------------------------------------- generation

    def _prefill(self, seqs: list[list[int]]) -> tuple[torch.Tensor, KVCache]:
        """Left-padded prefill of ``seqs``: (last hidden state of each row [B,d], the cache holding them)."""
        width = max(map(len, seqs))
        idx = torch.zeros(len(seqs), width, dtype=torch.long)
        valid = torch.zeros(len(seqs), width, dtype=torch.bool)
        for b, s in enumerate(seqs):
            idx[b, width - len(s):] = torch.tensor(s)
            valid[b, width - len(s):] = True
        cache = KVCache()
        h = self.model.hidden(idx.to(self.device), cache=cache, valid=valid.to(self.device))  # [B,T,d]
        return h[:, -1], cache

    @torch.no_grad()
    def generate_batch(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = (),
                       temperature: float = 0.0, seed: int = 0) -> list[str]:
        gen = torch.Generator(device=self.device).manual_seed(seed) if temperature > 0 else None
        rows = [self.prefix + self.encode(p) for p in prompts]
        if any(not r for r in rows):
            raise ValueError("empty prompt with prefix_eot=False: nothing to condition on")
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        texts = [""] * len(rows)
        for lo in range(0, len(order), self.batch_size):
            chunk = order[lo : lo + self.batch_size]
            for i, text in zip(chunk, self._generate_chunk([rows[i] for i in chunk], max_new_tokens, stop,
                                                           temperature, gen), strict=True):
                texts[i] = text
        return texts

    def _generate_chunk(self, rows: list[list[int]], max_new_tokens: int, stop: Sequence[str], temperature: float,
                        gen: torch.Generator | None) -> list[str]:
        keep = max(1, (3 * self.seq_len) // 4)  # context kept when a window is rebuilt
        eot, n_vocab = self.enc.eot_token, self.enc.n_vocab
        new: list[list[int]] = [[] for _ in rows]
        texts = [""] * len(rows)
        active = list(range(len(rows)))  # row index of each batch slot
        last, cache = self._prefill([r[-self.seq_len:] for r in rows])
        for step in range(max_new_tokens):
            logits = self.model.lm_head(last).float()[:, :n_vocab]  # [b, V]
            if gen is None:
                tok = logits.argmax(-1)
            else:
                tok = torch.multinomial(F.softmax(logits / temperature, dim=-1), 1, generator=gen)[:, 0]
            keep_slots = []
            for b, i in enumerate(active):
                t = int(tok[b])
                if t == eot:
                    continue
                new[i].append(t)
                texts[i] = self.enc.decode(new[i])
                if stop and truncate_at_stop(texts[i], stop) != texts[i]:
                    continue
                keep_slots.append(b)
            if not keep_slots or step == max_new_tokens - 1:
                break
            if len(keep_slots) < len(active):
                sel = torch.tensor(keep_slots, device=self.device)
                cache.select(sel)
                tok = tok.index_select(0, sel)
                active = [active[b] for b in keep_slots]
            if len(cache) >= self.seq_len:  # window full: rebuild it from the last `keep` tokens
                last, cache = self._prefill([(rows[i] + new[i])[-keep:] for i in active])
                continue
            last = self.model.hidden(tok[:, None], cache=cache)[:, -1]
        return [truncate_at_stop(t, stop) for t in texts]

