"""The recorder: the keyword and what is said after it, to the end of the turn.

    Audio (ring buffer) --32 ms chunks--> SileroVAD (neural_vad.py) --P(speech)-->
        VoiceEndpointer (vad.py) --> Recording            (default: --vad silero)
    Audio (ring buffer) --20 ms frames--> Endpointer (vad.py, energy) --> Recording
                                                                     (fallback: --vad energy)

With the neural VAD the recording holds the keyword too, and keywordtext.py takes it off the
transcript. A cut between the keyword and the sentence cannot be placed right when people run on
without a pause ("Alexa what time is it"): the spotter fires up to ~0.6 s after the keyword
ends (its hop and the decision over several windows), and every rule that guessed the keyword's
end from the model's timing lost the first word of some speakers (bench/e2e.py). So the
recording starts KEYWORD_MARGIN before the first speech inside the window that fired (its own
VAD pass, `_keyword_onset`); the speech model hears "Alexa, what time is it?", as commercial
assistants send the wake word to the cloud and drop it from the text. Where a clear pause
(CLEAR_PAUSE, longer than any inside a phrase) separates the keyword from the words after it,
the cut is safe and the keyword's audio is left out: a speech model hears a lone keyword badly
("IT'S NO BOY" for "snowboy"), and that text would stay in the transcript.

Where the words after the keyword begin (Recording.after_keyword_index) is still found as
before, because the end of the turn is judged on them alone: the spotter says where the keyword is
complete (its score's peak, less the delay the model states, Detection.keyword_end); the VAD,
run from a second before that point, says where the speaker paused: the words start at the start
of the pause that follows the keyword. If the speaker was already quiet at the estimate (a model that fires late), the pause
is followed back to where it began, at most `pre_roll_seconds` before the estimate; a gap of
100 ms or so shows only as a dip of P(speech) below the
start level (the VAD's own hangover): a dip from one chunk before the estimate to 160 ms after
it is taken as the end; if they were still speaking (a model that fires early, a
two-word keyword after its first word), it starts at the first pause of at least
`keyword_pause_seconds` within `keyword_search_seconds` after the estimate; if none comes (the
keyword run straight into the sentence) it starts at the estimate itself. The VAD then decides
where the speech starts and ends (vad.VoiceEndpointer); the recording keeps `trail_seconds` of
the quiet after the last speech, not the whole pause it waited. At each pause that reaches
`trail_seconds` the recording so far (keyword included) is offered to `on_pause` (a speculative
transcription, speculative.py): if that pause turns out to be the end, the final recording is
exactly the audio offered. `on_pause` may hand back a hint, asked once per chunk while the pause
lasts: what the words of that audio say about the end of the turn (turn.py). It moves only the
pause allowed (`silence_seconds` when they look finished or say nothing, `long_pause_seconds`
when they stop mid-phrase or are still on their way), never the audio kept. With the audio
turn model on (TurnConfig.audio, `--turn-model 1`) the same offered audio also goes to Smart
Turn on its own thread (smart_turn.TurnModelWorker: capture never waits for it, a late answer
is none), and turn.fused_pause decides from both hints.

The energy path (the older behaviour, kept as a fallback where onnxruntime is missing):

It reads 20 ms frames straight from the capture stream, so the words said right after the
keyword are already there. The pre-roll (audio before the detection point) is kept for a
sentence said at once, less the keyword's own tail when a pause separates the two; it is not
judged by the endpointer. The background level the endpointer compares against is computed
from the stream's own recent history (vad.noise_floor_dbfs), refreshed every 250 ms, so it
follows a fan switching on during a long recording.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from edgeml.audio import Audio, InputEnded
from edgeml.audioformat import SAMPLE_RATE
from edgeml.neural_vad import CHUNK_SAMPLES, NeuralVadConfig, SileroVAD, VadUnavailable
from edgeml.smart_turn import TurnModelWorker
from edgeml.turn import EndOfTurn, TurnConfig, TurnHint, Verdict
from edgeml.vad import (
    FRAME_SAMPLES,
    NOISE_HISTORY_SECONDS,
    EndpointConfig,
    Endpointer,
    EndReason,
    VoiceEndpointer,
    frame_dbfs,
    keyword_tail_frames,
    noise_floor_dbfs,
    speech_threshold,
    to_frames,
)

log = logging.getLogger("edgeml.recorder")

KEYWORD_OVERHANG = SAMPLE_RATE // 4  # the keyword may end up to one hop after detection
KEYWORD_WINDOW = SAMPLE_RATE  # the model's window when the caller does not say (Studio's 1 s)
KEYWORD_MARGIN = SAMPLE_RATE * 3 // 20  # kept before the keyword's first speech (150 ms)
ONSET_WARMUP = SAMPLE_RATE // 2  # the onset's VAD pass starts this long before the window
ONSET_SLACK = SAMPLE_RATE // 2  # a model may fire with the keyword's start out of its window
KEYWORD_INNER_GAP = SAMPLE_RATE * 3 // 10  # a pause this short is inside the keyword (300 ms)
# a pause at least this long after the keyword (longer than any inside a phrase) is a clean cut:
# the keyword's audio is left out (a speech model hears a lone keyword badly: "IT'S NO BOY")
CLEAR_PAUSE = SAMPLE_RATE * 2 // 5  # 400 ms
FLOOR_REFRESH_FRAMES = 12  # recompute the background level every 240 ms
VAD_KINDS = ("silero", "energy")
VAD_WARMUP = SAMPLE_RATE  # the VAD starts this long before the keyword's estimated end
MAX_CONTINUATIONS = 3  # a chain of continuations ends here (a TV must not go on forever)
DIP_CHUNKS = 5  # a dip in P(speech) up to 5 chunks (160 ms) after the estimate is its end
CONTINUE_GUARD_SECONDS = 0.3  # watch(): resumed speech is judged on its level over this long


@dataclass(frozen=True)
class RecorderConfig:
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    pre_roll_seconds: float = 0.25  # how far before the keyword's end the recording may start
    vad: str = "silero"  # "silero" (neural, neural_vad.py) or "energy" (vad.Endpointer)
    neural: NeuralVadConfig = field(default_factory=NeuralVadConfig)
    keyword_search_seconds: float = 0.6  # an early keyword estimate: look this far for its end
    keyword_pause_seconds: float = 0.096  # still speaking at the estimate: this pause ends it
    turn: TurnConfig = field(default_factory=TurnConfig)  # the transcript hint (turn.py)
    # after a recording ends by silence, speech that starts within this many seconds of the end
    # decision is recorded without a keyword, as its continuation (0: off; main.py, watch()).
    # 0.8 s with the 1 dB guard: the only setting of bench/continuation.py's grid that met the
    # rule stated before the run on the development half (words lost in noise <= 1 %, false
    # continuations <= 2 % per turn with music/TV and another talker at -10 dB)
    continue_seconds: float = 0.8
    # the level guard of a continuation: the speech in its first CONTINUE_GUARD_SECONDS must be
    # no more than this many dB below the turn's own speech (Recording.speech_level_dbfs), so a
    # TV, a radio or another person further away does not continue the turn (0: no guard).
    # 1 dB: chosen with the window (above); on the development half a real continuation's
    # start was louder than the turn's mean, another talker's at -10 dB quieter
    continue_level_db: float = 1.0


# on_pause(the audio so far, whether it begins with the keyword) -> its turn hint
PauseHandler = Callable[[np.ndarray, bool], TurnHint | None]


@dataclass(frozen=True)
class Recording:
    """What was said after the keyword: 16 kHz mono int16, and where it sits in the stream."""

    samples: np.ndarray
    start_index: int  # first sample: where the keyword begins (the energy path: after it)
    keyword_index: int  # where the keyword window ended
    reason: EndReason
    speech_start_index: int | None = None
    speech_end_index: int | None = None
    decided_index: int | None = None  # where the end was decided (past the kept trail)
    verdict: Verdict | None = None  # the transcript hint in force when the end was decided
    turn_probability: float | None = None  # the audio turn model's answer then (None: none)
    after_keyword_index: int | None = None  # where the words after the keyword were judged from
    keyword_kept: bool = False  # the samples begin with the keyword (no clear pause after it)
    # mean power (dBFS) of the chunks the VAD judged speech after the keyword: how loud this
    # speaker is here, the reference of the continuation guard (None: no speech, energy path)
    speech_level_dbfs: float | None = None

    @property
    def end_index(self) -> int:
        return self.start_index + len(self.samples)

    @property
    def resume_index(self) -> int:
        """Where listening for the keyword goes on: after all the audio this recording judged."""
        return max(self.end_index, self.decided_index or 0)

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def has_speech(self) -> bool:
        return self.speech_start_index is not None


class Recorder:
    """Records one utterance at a time from the capture stream."""

    def __init__(self, audio: Audio, config: RecorderConfig | None = None) -> None:
        self.audio = audio
        self.config = config or RecorderConfig()
        if self.config.vad not in VAD_KINDS:
            raise ValueError(f"vad must be one of {VAD_KINDS}, got {self.config.vad!r}")
        self._vad: SileroVAD | None = None
        if self.config.vad == "silero":
            try:
                self._vad = SileroVAD(self.config.neural)
                log.info("end of speech by the neural VAD (Silero, onnxruntime): loaded")
            except VadUnavailable as exc:
                log.warning("%s: ending recordings by energy instead", exc)
        self.turn_model: TurnModelWorker | None = None
        if self._vad is not None and self.config.turn.enabled and self.config.turn.audio.enabled:
            self.turn_model = TurnModelWorker(self.config.turn.audio)  # loads on its thread

    def close(self) -> None:
        """Stop the audio turn model's thread (if any)."""
        if self.turn_model is not None:
            self.turn_model.close()

    @property
    def vad_kind(self) -> str:
        """The VAD in use ("energy" when the neural one could not be loaded)."""
        return "silero" if self._vad is not None else "energy"

    def _floor(self, index: int) -> float:
        return noise_floor_dbfs(self.audio.history(index, NOISE_HISTORY_SECONDS))

    def record(
        self,
        keyword_index: int,
        keyword_end: int | None = None,
        on_pause: PauseHandler | None = None,
        keyword_window: int | None = None,
    ) -> Recording:
        """Record the keyword and what is said after it until silence, max length or no speech.

        `keyword_index` is the detection point, `keyword_end` the spotter's estimate of where
        the keyword is complete (Detection.keyword_end; default: the detection point),
        `keyword_window` the length of the model's window in samples (the keyword lies inside
        the window that fired; default: KEYWORD_WINDOW).
        `on_pause(samples, keyword_in_audio)` is called with the recording so far at each
        pause of trail_seconds (neural VAD only), and whether it begins with the keyword's
        audio; what it returns, if anything, is the turn hint for that pause.
        Raises what Audio.read raises (Stopped, AudioStalled, Overrun),
        except InputEnded, which ends the recording (reason END_OF_INPUT).
        """
        if self._vad is None:
            return self._record_energy(keyword_index)
        window = KEYWORD_WINDOW if keyword_window is None else keyword_window
        return _VoiceRecording(self, keyword_index, keyword_end, on_pause, window).run()

    def watch(self, from_index: int, seconds: float, level_dbfs: float | None = None) -> int | None:
        """Where speech starts within `seconds` after `from_index` (None: it stays quiet, or
        the energy fallback, which has no continuation). The neural VAD runs from VAD_WARMUP
        before `from_index` (the previous recording's pause) so its state is settled; speech is
        `min_voiced_frames` chunks in a row at `speech_probability`, as a recording's start.

        With `level_dbfs` (the turn's own speech level) and `continue_level_db` set, speech
        counts only when its voiced chunks over the first CONTINUE_GUARD_SECONDS are at most
        `continue_level_db` below that level: a TV playing on after the turn, or another person
        across the room, is speech to the VAD but quieter than the person who said the
        keyword. Speech that fails the guard is passed over and the window watched on.
        Raises what Audio.read raises (InputEnded included: the caller's loop handles it)."""
        if self._vad is None or seconds <= 0:
            return None
        cfg = self.config.endpoint
        margin = self.config.continue_level_db
        floor = None if level_dbfs is None or margin <= 0 else level_dbfs - margin
        guard = max(1, round(CONTINUE_GUARD_SECONDS * SAMPLE_RATE / CHUNK_SAMPLES))
        self._vad.reset()
        origin = max(from_index - VAD_WARMUP, self.audio.oldest, 0)
        stop = from_index + int(seconds * SAMPLE_RATE)
        pos, run, onset, voiced = origin, 0, None, []  # voiced: powers of speech chunks
        while pos < stop or onset is not None:
            samples = self.audio.read(pos, CHUNK_SAMPLES)
            p = self._vad.chunk_probability(samples)
            speech = p >= cfg.speech_probability
            if onset is None:
                run = run + 1 if speech and pos >= from_index else 0
                voiced = [*voiced, _power(samples)][-cfg.min_voiced_frames :] if run else []
                if run >= cfg.min_voiced_frames:
                    onset = pos - (run - 1) * CHUNK_SAMPLES
                    if floor is None:
                        return onset
            elif speech:
                voiced.append(_power(samples))
            pos += CHUNK_SAMPLES
            if onset is not None and pos - onset >= guard * CHUNK_SAMPLES:
                if _dbfs(voiced) >= floor:
                    return onset
                log.info("speech after the turn %.1f dB below the speaker's level: not a "
                         "continuation", floor + margin - _dbfs(voiced))  # fmt: skip
                onset, run, voiced = None, 0, []
        return None

    def record_continuation(self, onset: int, on_pause: PauseHandler | None = None) -> Recording:
        """Record speech that resumed at `onset` (watch()) after a recording ended: from
        KEYWORD_MARGIN before it (the VAD's onset lags a soft first consonant), no keyword,
        ending by the usual rules. Speech too short to count (a cough) gives a Recording
        without speech after `continue_seconds` at most, not after no_speech_seconds."""
        return _Continuation(self, onset, on_pause).run()

    def _record_energy(self, keyword_index: int) -> Recording:
        """The energy endpointer from the detection point minus the pre-roll (the fallback)."""
        cfg = self.config.endpoint
        pre_roll = int(self.config.pre_roll_seconds * SAMPLE_RATE)
        start = max(keyword_index - pre_roll, self.audio.oldest, 0)
        floor = self._floor(keyword_index)
        threshold = speech_threshold(cfg, floor)  # before the recording itself moves the floor
        chunks = [self.audio.read(start, keyword_index - start)] if keyword_index > start else []
        ongoing = bool(chunks) and _voiced_at_end(chunks[0], threshold)
        tail = KEYWORD_OVERHANG // FRAME_SAMPLES if ongoing else 0
        endpointer = Endpointer(cfg, floor, keyword_tail_frames=tail)
        pos, reason = keyword_index, None
        while reason is None:
            try:
                frame = self.audio.read(pos, FRAME_SAMPLES)
            except InputEnded:
                reason = EndReason.END_OF_INPUT
                break
            chunks.append(frame)
            pos += FRAME_SAMPLES
            if endpointer.frames % FLOOR_REFRESH_FRAMES == FLOOR_REFRESH_FRAMES - 1:
                endpointer.floor_dbfs = self._floor(pos)
            reason = endpointer.push(frame_dbfs(frame[None, :]))
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        drop = _keyword_tail(samples, keyword_index - start, threshold)
        return _recording(samples[drop:], start + drop, keyword_index, reason, endpointer)


def _recording(
    samples: np.ndarray, start: int, keyword_index: int, reason: EndReason, ep: Endpointer
) -> Recording:
    """The Recording, with the endpointer's speech frames turned into stream indices."""

    def at(frame_no: int | None, offset: int = 0) -> int | None:
        return None if frame_no is None else keyword_index + (frame_no + offset) * FRAME_SAMPLES

    speech_start = at(ep.first_speech_frame)
    speech_end = at(ep.last_speech_frame, 1)
    if speech_end is not None and speech_end <= start:  # all it heard was the keyword's end
        speech_start = speech_end = None
    return Recording(
        samples=samples,
        start_index=start,
        keyword_index=keyword_index,
        reason=reason,
        speech_start_index=None if speech_start is None else max(speech_start, start),
        speech_end_index=speech_end,
    )


def _voiced_at_end(pre_roll: np.ndarray, threshold_dbfs: float) -> bool:
    """Is the last frame before the detection point voiced (the keyword still going on)?"""
    if len(pre_roll) < FRAME_SAMPLES:
        return False
    return bool(frame_dbfs(pre_roll[None, -FRAME_SAMPLES:])[0] >= threshold_dbfs)


def _keyword_tail(samples: np.ndarray, pre_roll: int, threshold_dbfs: float) -> int:
    """Samples at the start of a recording that are the keyword's own tail (often 0).

    Frames are laid from the detection point backwards through the pre-roll and forwards
    after it, on the same grid as the endpointer's; see vad.keyword_tail_frames. The keyword
    may still be going on for up to one hop after the spotter fired.
    """
    head = pre_roll % FRAME_SAMPLES
    frames = keyword_tail_frames(
        frame_dbfs(to_frames(samples[head:])),
        threshold_dbfs,
        search_frames=(pre_roll + KEYWORD_OVERHANG) // FRAME_SAMPLES,
    )
    return head + frames * FRAME_SAMPLES if frames else 0


class _VoiceRecording:
    """One recording decided by the neural VAD (the module docstring says how)."""

    def __init__(
        self,
        recorder: Recorder,
        keyword_index: int,
        keyword_end: int | None,
        on_pause: PauseHandler | None,
        window: int | None = 0,
    ) -> None:
        self.audio = recorder.audio
        self.config = recorder.config
        self.vad = recorder._vad
        self.vad.reset()
        self.keyword_index = keyword_index
        self.estimate = keyword_index if keyword_end is None else keyword_end
        self.look_back = keyword_end is None  # no estimate: the detection may have been late
        self.on_pause = on_pause
        self.turn_model = recorder.turn_model
        # the keyword is inside the window that fired: its audio is kept from where it begins
        # (no window: no keyword, a continuation)
        self.onset = (
            self.estimate
            if window is None
            else self._keyword_onset(max(keyword_index - window - ONSET_SLACK, 0))
        )
        self.vad.reset()
        self.origin = max(self.estimate - VAD_WARMUP, self.audio.oldest, 0)
        self.probs: list[float] = []  # P(speech) of chunk k = [origin + k * CHUNK, ...)
        self.chunks: list[np.ndarray] = []  # the audio of chunk k (kept: the ring moves on)
        self.ended = False
        self.prefix = np.zeros(0, np.int16)  # the keyword's audio, before the judged chunks
        # the speaker was quiet at the keyword's estimated end: only then may the keyword be
        # left out. A pause found later by the forward search is not enough: when the estimate
        # falls inside a short first word said at once ("Alexa one, two, three"), that pause is
        # the one after "one", and cutting there loses it (bench/e2e.py, e2e_delay32.json)
        self.keyword_pause = False

    def _at(self, chunk: int) -> int:
        return self.origin + chunk * CHUNK_SAMPLES

    def _chunk_of(self, index: int) -> int:
        return max(0, -(-(index - self.origin) // CHUNK_SAMPLES))  # ceil

    def _prob(self, chunk: int) -> float | None:
        """P(speech) of chunk `chunk`, reading and judging the audio up to it (None: input ended)."""
        while len(self.probs) <= chunk and not self.ended:
            try:
                samples = self.audio.read(self._at(len(self.probs)), CHUNK_SAMPLES)
            except InputEnded:
                self.ended = True
                break
            self.chunks.append(samples)
            self.probs.append(self.vad.chunk_probability(samples))
        return self.probs[chunk] if chunk < len(self.probs) else None

    def _quiet(self, chunk: int) -> bool | None:
        p = self._prob(chunk)
        return None if p is None else p < self.config.endpoint.pause_probability

    def _below(self, chunk: int) -> bool:
        """P(speech) of `chunk` under the start level: a dip, if not a pause."""
        p = self._prob(chunk)
        return p is not None and p < self.config.endpoint.speech_probability

    def _pause_from(self, chunk: int, limit: int) -> int | None:
        """The first chunk in [chunk, limit) that starts a pause of keyword_pause_seconds."""
        need = max(1, round(self.config.keyword_pause_seconds * SAMPLE_RATE / CHUNK_SAMPLES))
        for c in range(chunk, limit):
            if all(self._quiet(c + k) for k in range(need)):
                return c
            if self.ended:
                return None
        return None

    def start_chunk(self) -> int:
        """Where the recording starts: the pause after the keyword (module docstring)."""
        cfg = self.config
        at = self._chunk_of(self.estimate)
        back = self._chunk_of(self.estimate - int(cfg.pre_roll_seconds * SAMPLE_RATE))
        if self._quiet(at) and not self.ended:  # already quiet: where did this pause begin?
            self.keyword_pause = True
            c = at
            while c > back and self._quiet(c - 1):
                c -= 1
            return c
        if self.look_back:  # no estimate: speech at the detection point may be the sentence
            for c in range(at - 1, back - 1, -1):
                if self._quiet(c):
                    while c > back and self._quiet(c - 1):
                        c -= 1
                    return c
            return back  # no pause in the pre-roll: keep all of it
        # a short gap after the keyword shows only as a dip (the VAD's hangover smears 100 ms)
        dip = [c for c in range(max(at - 1, 0), at + DIP_CHUNKS) if self._below(c)]
        if dip:
            return min(dip, key=lambda c: self.probs[c])
        # still speaking at the estimate: the keyword is not over (with an estimate, never look
        # back: a pause before it may be the one between the words of the keyword)
        ahead = at + int(cfg.keyword_search_seconds * SAMPLE_RATE / CHUNK_SAMPLES)
        found = self._pause_from(at, ahead)
        return at if found is None else found

    def _keyword_onset(self, window_start: int) -> int:
        """Where the keyword's speech begins: walking back from the keyword's end estimate
        through its speech (pauses shorter than KEYWORD_INNER_GAP, such as the one between the
        words of "smart mirror", belong to it) to the pause before it, and KEYWORD_MARGIN
        earlier (the VAD's onset lags a soft first consonant). Never before `window_start`
        (the keyword lies in the window that fired): speech all through the window (someone
        talking up to the keyword, babble) keeps the window, and keywordtext drops the words
        before the keyword. Its own VAD pass (the state is reset after it), so the words after
        the keyword are judged exactly as before."""
        begin = max(window_start - ONSET_WARMUP, self.audio.oldest, 0)
        end = max(self.estimate, begin)
        audio = self.audio.read(begin, end - begin) if end > begin else np.zeros(0, np.int16)
        n = len(audio) // CHUNK_SAMPLES
        speech = [
            self.vad.chunk_probability(audio[k * CHUNK_SAMPLES : (k + 1) * CHUNK_SAMPLES])
            >= self.config.endpoint.pause_probability
            for k in range(n)
        ]
        first = _speech_run_start(speech, KEYWORD_INNER_GAP // CHUNK_SAMPLES)
        if first is None:
            return end
        return max(window_start, begin + first * CHUNK_SAMPLES - KEYWORD_MARGIN, begin)

    def run(self) -> Recording:
        first = self.start_chunk()
        after = self._at(first)
        start = min(self.onset, after)
        self.prefix = self.audio.read(start, after - start) if after > start else self.prefix
        turn = EndOfTurn(self.config.endpoint, self.config.turn, CHUNK_SAMPLES / SAMPLE_RATE)
        reason, c = None, first
        while reason is None:
            p = self._prob(c)
            if p is None:
                reason = EndReason.END_OF_INPUT
                break
            reason = turn.push(p)
            c += 1
            if turn.offer_end is not None:
                turn.hint, turn.audio_hint = self._offer(first, first + turn.offer_end, turn.vad)
        ep = turn.vad
        end = first + turn.kept_frames if reason is EndReason.SILENCE else c
        kept = self._keep_keyword(ep)
        return Recording(
            samples=self._samples(first, end, kept),
            start_index=start if kept else after,
            after_keyword_index=after,
            keyword_kept=kept and start < after,
            keyword_index=self.keyword_index,
            reason=reason,
            speech_start_index=None
            if ep.first_speech_frame is None
            else self._at(first + ep.first_speech_frame),
            speech_end_index=None
            if ep.last_speech_frame is None
            else self._at(first + ep.last_speech_frame + 1),
            decided_index=self._at(c),
            verdict=turn.verdict if reason is EndReason.SILENCE else None,
            turn_probability=turn.probability if reason is EndReason.SILENCE else None,
            speech_level_dbfs=self._speech_level(first, end),
        )

    def _speech_level(self, first: int, end: int) -> float | None:
        """Mean power (dBFS) of the chunks in [first, end) the VAD judged speech."""
        level = self.config.endpoint.speech_probability
        powers = [_power(self.chunks[c]) for c in range(first, min(end, len(self.chunks)))
                  if self.probs[c] >= level]  # fmt: skip
        return _dbfs(powers) if powers else None

    def _keep_keyword(self, ep: VoiceEndpointer) -> bool:
        """Keep the keyword's audio unless a clear pause separates it from the words after it:
        the speaker was quiet where the keyword should end and stayed quiet CLEAR_PAUSE or more
        before speaking again. Then the cut is safe, and a lone keyword, which speech models
        often hear as other words, stays out of the transcript. No speech after the pause
        ("Alexa, stop." and silence): kept, the words said are before it."""
        first_speech = ep.first_speech_frame
        clear = first_speech is not None and first_speech * CHUNK_SAMPLES >= CLEAR_PAUSE
        return not (self.keyword_pause and clear)

    def _samples(self, first: int, end: int, kept: bool = True) -> np.ndarray:
        """The keyword's audio (when kept), then chunks [first, end) (the words after it)."""
        return np.concatenate([self.prefix if kept else self.prefix[:0], *self.chunks[first:end]])

    def _offer(self, first: int, end_chunk: int, ep: VoiceEndpointer):
        """Hand the recording so far to on_pause and to the audio turn model (both answer on
        their own threads); their hints, if any. An error there is logged."""
        kept = self._keep_keyword(ep)
        samples = self._samples(first, end_chunk, kept)
        audio = self.turn_model.offer(samples) if self.turn_model is not None else None
        if self.on_pause is None:
            return None, audio
        try:
            hint = self.on_pause(samples, kept and len(self.prefix) > 0)
        except Exception:  # noqa: BLE001 - a speculation must never break a recording
            log.exception("the pause handler failed; recording goes on")
            return None, audio
        return (hint if callable(hint) else None), audio


class _Continuation(_VoiceRecording):
    """Speech that resumed shortly after a recording ended (Recorder.record_continuation):
    judged from a little before its onset, with nothing before it to keep."""

    def __init__(self, recorder: Recorder, onset: int, on_pause: PauseHandler | None) -> None:
        start = max(onset - KEYWORD_MARGIN, recorder.audio.oldest, 0)
        super().__init__(recorder, start, start, on_pause, window=None)
        wait = max(recorder.config.continue_seconds, CHUNK_SAMPLES * 4 / SAMPLE_RATE)
        endpoint = replace(self.config.endpoint, no_speech_seconds=wait)
        self.config = replace(self.config, endpoint=endpoint)

    def start_chunk(self) -> int:
        return max(0, (self.estimate - self.origin) // CHUNK_SAMPLES)


def _power(samples: np.ndarray) -> float:
    """Mean square of int16 samples, full scale 1."""
    x = samples.astype(np.float64) / 32768.0
    return float(np.mean(x * x)) if len(x) else 0.0


def _dbfs(powers: list[float]) -> float:
    """The level (dBFS) of the mean of `powers`; -120 for none (below anything a chunk gives)."""
    return 10.0 * float(np.log10(np.mean(powers) + 1e-12)) if powers else -120.0


def _speech_run_start(speech: list[bool], max_gap: int) -> int | None:
    """The first chunk of the last run of speech chunks (gaps of at most `max_gap` chunks
    inside it) in `speech`; None when there is no speech at all."""
    k = len(speech) - 1
    while k >= 0 and not speech[k]:
        k -= 1  # quiet between the keyword's end and the estimate
    if k < 0:
        return None
    first, gap = k, 0
    while k >= 0:
        if speech[k]:
            first, gap = k, 0
        else:
            gap += 1
            if gap > max_gap:
                break
        k -= 1
    return first
