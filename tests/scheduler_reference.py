"""A step-by-step reference of a paged serving engine's scheduler on one static batch.

Written from the vLLM V0 scheduler's documented behaviour (``vllm/core/scheduler.py``,
v0.6), independently of ``hwgrad.cost``: requests wait in FCFS order; a step prefills the
waiting requests whose whole context fits in the free KV blocks (keeping a 1 % watermark)
and decodes nothing else; otherwise every running request appends one token, taking a new
block when it crosses a block boundary, and when no block is free the most recently admitted
running request is preempted: its blocks are freed and it goes back to the front of the
queue, to be prefilled again with its prompt and the tokens it has generated (recompute).
The tests compare `hwgrad.cost.effective_waves` (a closed form) with the decode steps this
counts.
"""

from __future__ import annotations

from collections import deque


def _blocks(tokens: int, block: int) -> int:
    return -(-tokens // block)


def paged_static_batch(n: int, prompt: int, output: int, kv_tokens: int, block: int = 16, watermark: float = 0.01):
    """Run ``n`` requests of ``prompt`` tokens that each generate ``output`` tokens in a KV
    cache of ``kv_tokens`` tokens. Returns ``(decode steps, prefill steps, prefilled
    tokens)`` (the first token of a request comes from its prefill step)."""
    free = kv_tokens // block
    keep = int(watermark * free)
    waiting = deque([prompt, 0] for _ in range(n))  # [tokens in the cache when admitted, generated]
    running: list[list[int]] = []  # [tokens in the cache, generated]
    decode_steps = prefill_steps = prefilled = done = 0
    while done < n:
        admitted = []
        while waiting and free - _blocks(waiting[0][0], block) >= keep:
            tokens, generated = waiting.popleft()
            free -= _blocks(tokens, block)
            prefilled += tokens
            admitted.append([tokens, generated])
        if admitted:
            prefill_steps += 1
            for seq in admitted:  # the prefill samples the next token
                seq[1] += 1
            running += admitted
        else:
            i = 0
            while i < len(running):  # each running request needs a slot for its next token
                tokens = running[i][0]
                extra = _blocks(tokens + 1, block) - _blocks(tokens, block)
                if extra <= free:
                    free -= extra
                    running[i][0] += 1
                    running[i][1] += 1
                    i += 1
                    continue
                victim = running.pop()  # the newest request gives its blocks back
                free += _blocks(victim[0], block)
                waiting.appendleft([victim[0], victim[1]])
            decode_steps += 1
        for seq in [s for s in running if s[1] >= output]:
            running.remove(seq)
            free += _blocks(seq[0], block)
            done += 1
    return decode_steps, prefill_steps, prefilled
