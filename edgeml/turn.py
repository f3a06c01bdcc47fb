"""End of turn: does the speech so far look finished? A hint that sets how long a pause may be.

    Recorder --on_pause(samples, keyword kept)--> Speculator --answer text--> verdict_of_text --> Verdict
    Recorder: the pause allowed before the recording ends = allowed_pause(verdict, ...)

Why: one fixed pause allowance cannot serve both ends of the trade-off. A speaker reading a
digit string or thinking mid-sentence pauses 1-1.5 s; a speaker who has finished wants the
answer at once. The speculative request (speculative.py) already brings back a transcript of
the recording at its first short pause, before the recorder has decided anything: its words say
which case this is. A transcript that ends a sentence ("...TOMORROW MORNING?") lets the
recording end after `silence_seconds`; one that stops mid-phrase (a trailing comma, an article,
a conjunction or preposition, a digit string) gives the speaker up to `long_pause_seconds`.

The transcript is only a hint, never needed: no answer yet (PENDING) means waiting for it, at
most up to `long_pause_seconds` (the answer is the one that would be printed, so waiting for it
does not delay the printed text); no answer at all, a failed request, an empty text or a text
with no cue either way (a CTC engine writes no punctuation) is UNKNOWN and the fixed
`silence_seconds` applies, as without hints. A wrong "unfinished" costs time, a wrong
"finished" cuts where the fixed pause would have cut anyway; the recording kept always ends
vad.EndpointConfig.trail_seconds after the last speech, whenever the decision is made.

Measured (bench/endpointing.py --hints, docs/benchmarks.md): on real sentences under real
noise, 96.3 % recorded whole instead of 88.9 %, the printed text no later; the end is decided
later (it waits for the answer).

The audio turn model (smart_turn.py, issue 22) is a second opinion on the same pause: Smart
Turn's P(turn complete) of the same offered audio, computed on its own thread. One decision
from the signals (fused_pause): when the words say COMPLETE and the audio model says complete
(P >= complete_probability) the pause allowed shrinks to `early_pause_seconds` (also when the
words are not back yet or carry no cue and P >= alone_probability, if that is set); when either
says it is not (words INCOMPLETE, or P < incomplete_probability) it grows to
`long_pause_seconds`; a signal missing (no answer yet, a late or failed one, a text with no
cue) leaves today's rule (allowed_pause). The audio model never ends a turn alone: it judges
pauses inside sentences incomplete only 16-50 % of the time (issue 22), so an early end waits
for the words to agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from edgeml.smart_turn import SmartTurnConfig, TurnProbability
from edgeml.vad import EndpointConfig, EndReason, VoiceEndpointer


class Verdict(str, Enum):
    COMPLETE = "complete"  # the words so far end a sentence: silence_seconds is enough
    INCOMPLETE = "incomplete"  # they stop mid-phrase: allow long_pause_seconds
    UNKNOWN = "unknown"  # no hint, or none either way: the fixed silence_seconds
    PENDING = "pending"  # the transcript is on its way: wait for it (at most long_pause_seconds)


@dataclass(frozen=True)
class TurnConfig:
    """How the transcript hint moves the end of a recording (the recorder applies it)."""

    enabled: bool = True  # the transcript hint (the speculative answer's words)
    long_pause_seconds: float = 1.5  # allowed pause when the words so far look unfinished
    # the audio turn model (smart_turn.py) and how its P(turn complete) counts (fused_pause).
    # Off by default: with the words back 0.5 s after the offer (the local Whisper tiny.en
    # service) it changed no decision, and on a Pi 4 its answer is estimated to come after
    # the words; with the words back after 0.2 s it ended turns a median 0.16 s sooner at the
    # same cut-offs, as the hints alone do at silence_seconds 0.5 (bench/endpointing.py --turn,
    # docs/benchmarks.md). The values below were chosen on the development half of both runs.
    audio: SmartTurnConfig = field(default_factory=SmartTurnConfig)  # enabled=False
    early_pause_seconds: float = 0.45  # allowed pause when the words and the audio agree
    complete_probability: float = 0.5  # the audio model says "complete" at or above this
    # ... and "not complete" below this (0: never; 0.05 and 0.15 only delayed ends on the
    # development half, no sentence was kept whole by them)
    incomplete_probability: float = 0.0
    # the audio model this sure ends the turn at early_pause_seconds while the words are still
    # on their way or say nothing either way (None: never without the words; 0.9 cut 21 % of
    # the development inputs with the words back after 0.5 s)
    alone_probability: float | None = None


# Words after which an English statement does not end, even when a full stop is written after
# them: articles, coordinating and subordinating conjunctions, prepositions that need their
# object, possessive determiners. Closed classes only, and only the members that do not end
# ordinary sentences ("come in.", "I think so.", "it's his.", "turn it on." are kept out).
CONTINUATION_WORDS = frozenset(
    ("a", "an", "the")
    + ("and", "or", "but", "nor", "because", "if", "unless", "whether", "although", "though")
    + ("whereas", "than")
    + ("of", "to", "for", "with", "from", "by", "at", "into", "onto", "upon", "between")
    + ("through", "during", "without", "within", "among", "via", "per")
    + ("my", "your", "our", "their", "its")
)
# Numbers as Whisper writes them when it spells them out ("ONE ZERO ZERO ZERO ONE" for a digit
# string under noise, "1 0 0 0 1" in quiet): a digit string read out pauses between groups.
NUMBER_WORDS = frozenset(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    + ("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen")
    + ("eighteen", "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy")
    + ("eighty", "ninety", "hundred", "thousand")
)
TERMINAL = ".?!"
TRAILING_OPEN = (",", ";", ":", "-", "\u2014", "\u2013", "...", "\u2026")
_TOKEN = re.compile(r"\d+(?:[.,:]\d+)*|[^\W\d_]+(?:['\u2019][^\W\d_]+)*")  # 10:30 is one number


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _number(token: str) -> bool:
    return token[:1].isdigit() or token in NUMBER_WORDS


def verdict_of_text(text: str | None) -> Verdict:
    """What the words of a transcript say about the end of the turn (the module docstring).

    INCOMPLETE: the text stops on an open punctuation mark (comma, dash, colon, ellipsis), on a
    word after which no statement ends (CONTINUATION_WORDS) even with a full stop written after
    it, or inside a digit string (two numbers, in digits or words, in a row at the end, or a
    lone number: a phone number, a code read out; "ONE, TWO, THREE." is taken for one too, which
    costs that speaker up to long_pause_seconds of waiting, never audio). COMPLETE: a final "?" or "!", or a final "." otherwise.
    UNKNOWN: no text, or no final punctuation (a CTC engine writes none) and no such cue.
    """
    if not text:
        return Verdict.UNKNOWN
    stripped = text.strip().rstrip("\"')]}\u201d\u2019")
    words = _tokens(stripped)
    if not words:
        return Verdict.UNKNOWN
    if stripped.endswith(TRAILING_OPEN):
        return Verdict.INCOMPLETE
    if stripped.endswith(("?", "!")):
        return Verdict.COMPLETE  # a question or an exclamation ends where it is marked
    last = words[-1]
    if last in CONTINUATION_WORDS:
        return Verdict.INCOMPLETE
    if _number(last) and (len(words) == 1 or _number(words[-2])):
        return Verdict.INCOMPLETE  # a digit string read out, or its first digit
    if stripped.endswith(tuple(TERMINAL)):
        return Verdict.COMPLETE
    return Verdict.UNKNOWN


def allowed_pause(verdict: Verdict, silence_seconds: float, config: TurnConfig) -> float:
    """The pause (s) after which the recording ends, given what the words so far say."""
    if not config.enabled:
        return silence_seconds
    long_pause = max(config.long_pause_seconds, silence_seconds)
    if verdict in (Verdict.INCOMPLETE, Verdict.PENDING):
        return long_pause
    return silence_seconds


def fused_pause(
    verdict: Verdict | None, probability: float | None, silence_seconds: float, config: TurnConfig
) -> float:
    """The pause (s) after which the recording ends, from the words' verdict (None: no hint)
    and the audio model's P(turn complete) (None: no answer in time). The module docstring."""
    if not config.enabled:
        return silence_seconds  # turn hints off: the fixed pause, as without them
    long_pause = max(config.long_pause_seconds, silence_seconds)
    if verdict is Verdict.INCOMPLETE:
        return long_pause
    if probability is not None and probability < config.incomplete_probability:
        return long_pause
    agree = probability is not None and probability >= config.complete_probability
    if verdict is Verdict.COMPLETE and agree:
        return min(config.early_pause_seconds, silence_seconds)
    sure = config.alone_probability is not None and probability is not None
    if sure and probability >= config.alone_probability and verdict is not Verdict.COMPLETE:
        return min(config.early_pause_seconds, silence_seconds)  # the words not yet in
    if verdict is None:
        return silence_seconds
    return allowed_pause(verdict, silence_seconds, config)


TurnHint = Callable[[], Verdict]  # the words' verdict on one offered pause, asked while it lasts


class EndOfTurn:
    """The end of one recording, decided chunk by chunk on the VAD's P(speech).

    vad.VoiceEndpointer finds the speech and its pauses; when a pause reaches `trail_seconds`
    the recording up to that point (`offer_end`: last speech + the trail) is due to be offered
    (the recorder hands it to the speculative request and gives back its hint with `hint`);
    from `silence_seconds` of pause on, the hint decides how long the pause may grow
    (allowed_pause). Pure logic, no audio: the recorder drives it from the capture stream, and
    bench/endpointing.py drives the very same object from recorded probabilities.
    """

    def __init__(self, endpoint: EndpointConfig, turn: TurnConfig, frame_seconds: float) -> None:
        self.endpoint = endpoint
        self.turn = turn
        self.frame_seconds = frame_seconds
        self.vad = VoiceEndpointer(endpoint, frame_seconds)
        self.trail = int(round(endpoint.trail_seconds / frame_seconds))
        self.hint: TurnHint | None = None  # set by the driver after an offer
        self.audio_hint: TurnProbability | None = None  # the audio model's, likewise
        self.verdict: Verdict | None = None  # the hint's last verdict in this pause
        self.probability: float | None = None  # the audio model's last answer in this pause
        # from this pause on the signals are asked (the earliest they can end a turn)
        audio_on = turn.audio.enabled and turn.enabled
        self._ask_from = (
            min(turn.early_pause_seconds, endpoint.silence_seconds)
            if audio_on
            else (endpoint.silence_seconds)
        )
        self.offer_end: int | None = None  # frames to offer (from the first), due this frame
        self._offered: int | None = None

    @property
    def frames(self) -> int:
        return self.vad.frames

    @property
    def kept_frames(self) -> int:
        """Frames the recording keeps when it ends by silence: last speech + the trail."""
        return min(self.vad.frames, self.vad.last_speech_frame + 1 + self.trail)

    def push(self, p: float) -> EndReason | None:
        """Feed P(speech) of the next frame; why the recording ends, or None to go on."""
        ep = self.vad
        due = ep.pause_seconds + self.frame_seconds >= self._ask_from - 1e-9
        hinted = self.hint is not None or self.audio_hint is not None
        if hinted and due and self.turn.enabled:  # only where it can matter
            self.verdict = _ask(self.hint) if self.hint is not None else None
            self.probability = _ask_probability(self.audio_hint)
            ep.allowed_pause = fused_pause(
                self.verdict, self.probability, self.endpoint.silence_seconds, self.turn
            )
        last = ep.last_speech_frame
        reason = ep.push(p)
        if ep.last_speech_frame != last:  # speech (again): any hint was for another pause
            self.hint, self.verdict = None, None
            self.audio_hint, self.probability = None, None
            ep.allowed_pause = self.endpoint.silence_seconds
        self.offer_end = None
        if ep.last_speech_frame is not None and ep.frames - 1 - ep.last_speech_frame == self.trail:
            end = ep.last_speech_frame + 1 + self.trail
            if end != self._offered:
                self.offer_end = self._offered = end
        return reason


def _ask(hint: TurnHint) -> Verdict:
    """The hint's verdict; a hint that fails or answers nonsense says nothing (UNKNOWN)."""
    try:
        verdict = hint()
    except Exception:  # noqa: BLE001 - a hint must never break a recording
        return Verdict.UNKNOWN
    return verdict if isinstance(verdict, Verdict) else Verdict.UNKNOWN


def _ask_probability(hint: TurnProbability | None) -> float | None:
    """The audio model's answer so far; None when there is none or it is not a probability."""
    if hint is None:
        return None
    try:
        p = hint()
    except Exception:  # noqa: BLE001 - a hint must never break a recording
        return None
    return float(p) if isinstance(p, float | int) and 0.0 <= p <= 1.0 else None
