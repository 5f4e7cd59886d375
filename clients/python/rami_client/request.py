"""Requests from keyword arguments named as the proto's fields (GenerateRequest's nested ones
flattened: temperature is sampling.temperature, max_tokens is stopping.max_tokens, ...).

Only Python types are checked here (protobuf itself rejects a wrong type with TypeError): the
server validates values, and its INVALID_ARGUMENT names the field, so the rules live in one
place. An argument left as None leaves its field unset: the server's default applies.
"""
import datetime
import json
import time
from typing import Iterable, Mapping, Optional, Sequence, Union

from rami_client import pb

ChatInput = Union[Mapping[str, str], "pb.ChatMessage"]
Deadline = Union[float, datetime.datetime]


def generate_request(
        prompt: Optional[str] = None, *,
        messages: Optional[Sequence[ChatInput]] = None,
        token_ids: Optional[Iterable[int]] = None,
        model: Optional[str] = None,
        n: Optional[int] = None,
        temperature: Optional[float] = None, top_p: Optional[float] = None,
        top_k: Optional[int] = None, min_p: Optional[float] = None, seed: Optional[int] = None,
        max_tokens: Optional[int] = None, stop: Union[str, Iterable[str], None] = None,
        stop_token_ids: Optional[Iterable[int]] = None, ignore_eos: Optional[bool] = None,
        logprobs: Optional[int] = None,
        aggregation: Union[str, int, None] = None, answer_regex: Optional[str] = None,
        pruning: Union[bool, Mapping[str, object], "pb.EarlyPruning", None] = None,
        chat_template_kwargs: Optional[Mapping[str, object]] = None,
        priority: Optional[int] = None, deadline: Optional[Deadline] = None,
        stream_deltas: Optional[bool] = None,
        prompt_logprobs: Optional[int] = None, score_only: bool = False,
        cache_salt: Optional[str] = None, skip_prefix_cache: Optional[bool] = None,
        cache_boundaries: Optional[Iterable[int]] = None) -> "pb.GenerateRequest":
    """One GenerateRequest. The input is one of prompt (text), messages (chat, rendered with the
    model's template: {"role": ..., "content": ...} dicts or pb.ChatMessage) or token_ids.

    aggregation: the policy, by name ("majority_vote", case-insensitive) or pb value.
    answer_regex: aggregation.extractor.regex. pruning: DeepConf early pruning, True (server
    defaults) or its fields as a dict / pb.EarlyPruning (enabled unless it says otherwise).
    chat_template_kwargs: values are JSON text, or Python values that are turned into it.
    deadline: seconds from now, or a datetime (naive = local time, as datetime.timestamp()).
    stop: a string or a list of them. prompt_logprobs: score the prompt with that many top
    alternatives; score_only: with prompt_logprobs, score the prompt and generate nothing.
    Prefix caching (docs/prefix-cache.md): cache_salt scopes the job's cache entries,
    skip_prefix_cache opts out, cache_boundaries are extra snapshot points (token offsets).
    """
    request = pb.GenerateRequest()
    _set_input(request, prompt, messages, token_ids)
    _set(request, model=model, n=n, logprobs=logprobs, priority=priority,
         stream_deltas=stream_deltas, prompt_logprobs=prompt_logprobs,
         score_only=score_only or None, cache_salt=cache_salt,
         skip_prefix_cache=skip_prefix_cache)
    if cache_boundaries is not None:
        request.cache_boundaries.extend(cache_boundaries)
    _set(request.sampling, temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
         seed=seed)
    _set(request.stopping, max_tokens=max_tokens, ignore_eos=ignore_eos)
    if stop is not None:
        request.stopping.stop.extend([stop] if isinstance(stop, str) else stop)
    if stop_token_ids is not None:
        request.stopping.stop_token_ids.extend(stop_token_ids)
    if isinstance(aggregation, str):
        aggregation = pb.AggregationPolicy.Value(aggregation.upper())
    _set(request.aggregation, policy=aggregation)
    _set(request.aggregation.extractor, regex=answer_regex)
    _set_pruning(request.aggregation.pruning, pruning)
    _set_template_kwargs(request.chat_template_kwargs, chat_template_kwargs)
    if deadline is not None:
        request.deadline.FromNanoseconds(_deadline_ns(deadline))
    return request


def tokenize_request(prompt: Optional[str] = None, *,
                     messages: Optional[Sequence[ChatInput]] = None, model: Optional[str] = None,
                     chat_template_kwargs: Optional[Mapping[str, object]] = None
                     ) -> "pb.TokenizeRequest":
    """What a GenerateRequest's prompt or messages would become (same arguments)."""
    request = pb.TokenizeRequest()
    _set_input(request, prompt, messages, None)
    _set(request, model=model)
    _set_template_kwargs(request.chat_template_kwargs, chat_template_kwargs)
    return request


def _set(message, **fields) -> None:
    for name, value in fields.items():
        if value is not None:
            setattr(message, name, value)


def _set_input(request, prompt, messages, token_ids) -> None:
    given = [name for name, value in
             (("prompt", prompt), ("messages", messages), ("token_ids", token_ids))
             if value is not None]
    if len(given) > 1:
        raise TypeError(f"one input, not {' and '.join(given)}")
    if prompt is not None:
        request.prompt = prompt
    if messages is not None:
        request.messages.SetInParent()  # an empty list is still the messages input
        for m in messages:
            if isinstance(m, pb.ChatMessage):
                request.messages.messages.append(m)
            else:
                request.messages.messages.add(role=m["role"], content=m["content"])
    if token_ids is not None:
        request.token_ids.SetInParent()
        request.token_ids.ids.extend(token_ids)


def _set_pruning(message: "pb.EarlyPruning", pruning) -> None:
    if pruning is None:
        return
    if isinstance(pruning, bool):
        message.enabled = pruning
    elif isinstance(pruning, pb.EarlyPruning):
        message.CopyFrom(pruning)
    else:
        message.enabled = True
        _set(message, **pruning)


def _set_template_kwargs(target, kwargs: Optional[Mapping[str, object]]) -> None:
    for key, value in (kwargs or {}).items():
        target[key] = value if isinstance(value, str) else json.dumps(value)


def _deadline_ns(deadline: Deadline) -> int:
    if isinstance(deadline, datetime.datetime):
        return int(deadline.timestamp() * 1e9)
    if isinstance(deadline, (int, float)) and not isinstance(deadline, bool):
        return time.time_ns() + int(deadline * 1e9)
    raise TypeError(f"deadline: seconds or a datetime, not {type(deadline).__name__}")
