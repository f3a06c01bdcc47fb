"""The threshold a keyword model states: at most N false wakes per hour, from a tail model.

The calibration part of the background is short (about 16 minutes here), far less than the
hours that "1 false wake per hour" speaks of: counting its false wakes can only say "none
above the highest score", and how far above that the threshold must sit is then a guess.
Instead, the scores of the calibration audio are reduced to EVENTS (the peaks that the app
would count as separate wakes: at least its 1 s refractory time apart), and the upper tail of
the event peaks is modelled, in logit units, as exponential (peaks over a high level u: the
excess over u is exponential with mean sigma, the limit law of many light-tailed
distributions). The rate of events above a threshold t is then

    rate(t) = (k / hours) * exp(-(t - u) / sigma)      (k events above u)

and the stated threshold is the t where rate(t) = max_fa_per_hour: it extrapolates the
observed rate of near misses to the rare full ones. sigma is taken at the upper end of its
confidence interval (the mean excess of k exponentials is sigma * Gamma(k, 1/k)), so a short
calibration part errs towards fewer false wakes; with enough audio the empirical count (its 95 %
bound, below) is used instead when it is stricter.

The tail model errs high, and on a model whose scores saturate it can state a threshold above
every score the keyword reaches (snowboy: 0.995, over all 401 real clips' best scores, which
top out at 0.993). So the threshold is also capped by the keyword itself: never above the level
that 80 % of the HELD-OUT synthetic positives the model detects (score > 0.5) reach; real voices
score like the upper part of that distribution (bench/kws_threshold.py). The cap may lower the
threshold only down to what the calibration audio itself allows (no more false wakes there than
`max_fa_per_hour` permits: for a short part, just above its highest event), and never to where
the tail's own best estimate (sigma at its mean) exceeds RATE_FLOOR_FACTOR times the asked rate.

A bound, not a point count (issue 21): a count of n false wakes in T hours says the rate is
below `poisson_upper(n, T)` with 95 % confidence (exact, one-sided: chi2(0.95, 2n + 2) / 2T);
0 in 0.3 h only says "below 10 per hour". Rule "bound" states the highest of
  - the tail model with the rate above u taken at its 95 % Poisson bound (not k / hours) and
    sigma at its upper value, and
  - where the calibration audio is long enough for a count to reach the target at all
    (3.0 / T <= target: 3 h for 1 per hour), the lowest threshold whose count's bound meets it,
so that the rate it promises holds on audio it never saw, within the tail model's assumptions.
The positive cap above is then only reported (`positive_cap`): lowering the threshold to it
breaks the promise. The earlier rule stays available unchanged as rule "capped". Whatever the
rule, the result says whether the stated threshold meets the bound (`meets_bound`) and gives
both bounds at it (`fa_per_hour_upper_95_tail`, `fa_per_hour_upper_95_count`).

Measured (bench/kws_negatives_long.py, six trained models, 0.68 h of calibration audio, 2.41 h
of unseen test audio): the bound rule states 0.988-1.000 and misses 16-100 % of real people at
10 dB (0 false wakes), where the capped rule's thresholds missed 3.6-20 % with 0-5 false wakes
in 2.41 h (the thresholds the models state, from 0.27 h). A tail model bounded twice over
0.68 h is too cautious to use; the count alone needs 3 h of calibration audio before any
threshold can bound 1 per hour. So `kwtrain build` keeps rule "capped" by default
(`--threshold-rule bound` for the other) until there are hours of calibration audio;
docs/benchmarks.md has the table.
"""

from __future__ import annotations

import math

import numpy as np

REFRACTORY_HOPS = 4  # the app's 1 s refractory time at 250 ms hops
MAX_LOGIT = 16.0  # scores are float32 sigmoids: 1 - 1e-7 is as close to 1 as they get
TAIL_EVENTS = 24  # events above u (the tail's size): enough for sigma, still the tail
CONFIDENCE_Z = 1.0  # sigma at its mean + 1 standard error (about the 84th percentile)
CAP_QUANTILE = 0.2  # the cap: the level 80 % of the detected held-out positives reach...
DETECTED = 0.5  # ...counting the positives the model detects at all (the training boundary)
MIN_POSITIVES = 30  # fewer detected positives than this: no cap (too few to place it)
RATE_FLOOR_FACTOR = 3.0  # the cap stops where the fitted rate (point estimate) is 3x the asked
CONFIDENCE = 0.95  # one-sided, for every false-wake rate bound


def poisson_upper(count: int, hours: float, confidence: float = CONFIDENCE) -> float:
    """Exact one-sided upper confidence bound of a Poisson rate, per hour: the rate at which
    seeing `count` or fewer events in `hours` has probability 1 - confidence (Garwood's
    chi-square form). 0 events: -ln(0.05) = 3.0 per hour of audio."""
    from scipy.stats import chi2

    if hours <= 0:
        return math.inf
    return float(chi2.ppf(confidence, 2 * (int(count) + 1)) / 2.0 / hours)


def poisson_lower(count: int, hours: float, confidence: float = CONFIDENCE) -> float:
    """The matching one-sided lower bound (0 for no events)."""
    from scipy.stats import chi2

    if count <= 0 or hours <= 0:
        return 0.0
    return float(chi2.ppf(1 - confidence, 2 * int(count)) / 2.0 / hours)


def rate_with_bound(count: int, hours: float) -> dict:
    """A false-wake figure as every report states it: count, hours, rate and its 95 % bound."""
    return {
        "false_wakes": int(count),
        "hours": round(float(hours), 4),
        "fa_per_hour": round(count / hours, 3) if hours > 0 else None,
        "fa_per_hour_upper_95": round(poisson_upper(count, hours), 3),
    }


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + math.exp(-z)))


def event_peaks(hops: np.ndarray, refractory: int = REFRACTORY_HOPS) -> np.ndarray:
    """Peak scores of the separate events of one stream, highest first: the highest hop, then
    the highest hop not within `refractory` hops of a kept one, and so on (how the app counts
    wakes: a wake at most once per refractory time)."""
    h = np.nan_to_num(np.asarray(hops, dtype=np.float64), nan=0.0)
    order = np.argsort(-h, kind="stable")
    taken = np.zeros(len(h), bool)
    peaks = []
    for i in order:
        if taken[i]:
            continue
        peaks.append(h[i])
        taken[max(0, i - refractory + 1) : i + refractory] = True
    return np.asarray(peaks)


def tail_fit(hop_lists: list[np.ndarray], hours: float, k: int = TAIL_EVENTS) -> dict:
    """Exponential tail of the event peaks (logit units): level u, scale sigma, the rate of
    events above u per hour, and sigma's upper confidence value."""
    peaks = np.sort(np.concatenate([event_peaks(h) for h in hop_lists] or [np.zeros(0)]))[::-1]
    z = logit(peaks)
    k = int(min(k, len(z) - 1))
    if k < 3 or hours <= 0:
        return {"events": int(len(z)), "k": max(k, 0)}
    u = float(z[k])
    excess = z[:k] - u
    sigma = float(max(excess.mean(), 1e-3))
    return {
        "events": int(len(z)),
        "k": k,
        "u": u,
        "sigma": sigma,
        "sigma_upper": sigma * (1 + CONFIDENCE_Z / math.sqrt(k)),
        "rate_above_u": float(k / hours),
        "rate_above_u_upper": poisson_upper(k, hours),
        "top": [float(x) for x in z[: min(5, len(z))]],
    }


def tail_threshold(fit: dict, max_fa_per_hour: float, upper: bool = True) -> float | None:
    """The score at which the fitted rate of events falls to `max_fa_per_hour`."""
    if "sigma" not in fit:
        return None
    sigma = fit["sigma_upper"] if upper else fit["sigma"]
    rate = fit.get("rate_above_u_upper", fit["rate_above_u"]) if upper else fit["rate_above_u"]
    ratio = rate / max(max_fa_per_hour, 1e-9)
    t = fit["u"] + sigma * math.log(max(ratio, 1.0))
    return sigmoid(min(t, MAX_LOGIT))


def count_events(hop_lists: list[np.ndarray], threshold: float) -> int:
    return int(sum((event_peaks(h) >= threshold).sum() for h in hop_lists))


def positive_cap(positive_peaks: np.ndarray | None) -> float | None:
    """The highest threshold the keyword allows: the CAP_QUANTILE of the held-out synthetic
    positives' best scores, among those over DETECTED (None with too few of them)."""
    if positive_peaks is None:
        return None
    p = np.asarray(positive_peaks, dtype=np.float64).ravel()
    p = p[np.isfinite(p) & (p > DETECTED)]
    if len(p) < MIN_POSITIVES:
        return None
    return float(np.quantile(p, CAP_QUANTILE))


def bound_floor(hop_lists: list[np.ndarray], hours: float, max_fa_per_hour: float) -> float | None:
    """The lowest threshold whose count on the calibration audio has a 95 % bound at or under
    `max_fa_per_hour` (just above the highest event it must exclude); None when the audio is
    too short for any count, even 0, to bound the rate that low."""
    if poisson_upper(0, hours) > max_fa_per_hour:
        return None
    peaks = np.sort(np.concatenate([event_peaks(h) for h in hop_lists] or [np.zeros(0)]))[::-1]
    n = 0
    while n < len(peaks) and poisson_upper(n + 1, hours) <= max_fa_per_hour:
        n += 1
    if len(peaks) <= n:
        return 0.0
    return float(np.nextafter(np.float32(peaks[n]), np.float32(2)))


def count_floor(hop_lists: list[np.ndarray], hours: float, max_fa_per_hour: float) -> float:
    """The lowest threshold the calibration audio allows by counting: just above its
    (allowed + 1)-th highest event, so that at most `allowed` events reach it."""
    allowed = math.floor(max_fa_per_hour * hours + 1e-9)
    peaks = np.sort(np.concatenate([event_peaks(h) for h in hop_lists] or [np.zeros(0)]))[::-1]
    if len(peaks) <= allowed:
        return 0.0
    return float(np.nextafter(np.float32(peaks[allowed]), np.float32(2)))


RULES = ("bound", "capped")


def calibrate(
    hop_lists: list[np.ndarray],
    hours: float,
    max_fa_per_hour: float,
    floor: float = 0.5,
    positive_peaks: np.ndarray | None = None,
    rule: str = "bound",
) -> dict:
    """The stated threshold (see the module docstring) and what it rests on. `positive_peaks`:
    the best score of each held-out synthetic positive (for the cap; None: no cap).

    rule "bound": the threshold at which the 95 % bound of the rate meets the target (the tail
    model's bounded rate; the count's bound where the audio is long enough); the cap is only
    reported. rule "capped": the rule before issue 21, unchanged (the tail model with the
    observed rate above u, the point count, the positive cap), for comparison and for models
    whose calibration audio is too short for the bound to leave the keyword detectable."""
    if rule not in RULES:
        raise ValueError(f"unknown threshold rule {rule!r} (choose from {', '.join(RULES)})")
    fit = tail_fit(hop_lists, hours)
    capped = rule == "capped"
    point_rate = {k: v for k, v in fit.items() if k != "rate_above_u_upper"}
    t = tail_threshold(point_rate if capped else fit, max_fa_per_hour)
    method = "tail"
    if t is None:  # too few events to model (very little audio): just over the highest one
        peaks = [event_peaks(h) for h in hop_lists]
        top = max((float(p[0]) for p in peaks if len(p)), default=floor)
        t = sigmoid(min(float(logit(top)) + 1.0, MAX_LOGIT))
        method = "max+1logit"
    by_bound = bound_floor(hop_lists, hours, max_fa_per_hour)
    by_count = count_floor(hop_lists, hours, max_fa_per_hour)
    if not capped and by_bound is not None and by_bound > t:  # enough audio for the count to
        t, method = by_bound, "count bound"  # bound the rate: never state one it refutes
    allowed = math.floor(max_fa_per_hour * hours + 1e-9)
    if capped and allowed >= 1 and by_count > t:  # the earlier rule: the point count
        t, method = by_count, "count"
    stated_by_rate = t
    cap = positive_cap(positive_peaks)
    by_point = tail_threshold(fit, RATE_FLOOR_FACTOR * max_fa_per_hour, upper=False) or 0.0
    cap_applied = bool(capped and cap is not None and cap < t)
    if cap_applied:  # the keyword's own level, but not below the count nor where the fitted
        lowest = max(by_count, by_point)  # rate is far over the asked one
        t = max(cap, lowest)
        if cap >= lowest:
            method = "positive cap"
        else:
            method = "calibration count" if by_count >= by_point else "tail point estimate"
    t = float(max(t, floor))
    return {
        "threshold": t,
        "method": method,
        "threshold_by_rate": float(max(stated_by_rate, floor)),
        "positive_cap": cap,
        "positive_cap_applied": cap_applied,
        "rule": rule,
        "positives_detected": None
        if positive_peaks is None
        else int((np.asarray(positive_peaks) > DETECTED).sum()),
        "count_floor": by_count,
        "rate_floor": by_point,
        "bound_floor": by_bound,
        "false_wakes": count_events(hop_lists, t),
        "hours": float(hours),
        "max_fa_per_hour": max_fa_per_hour,
        "expected_fa_per_hour": expected_rate(fit, t),
        **_bounds(hop_lists, hours, fit, t, max_fa_per_hour),
        "tail": fit,
    }


def _bounds(hop_lists, hours: float, fit: dict, t: float, target: float) -> dict:
    """The 95 % bounds at the stated threshold: of the calibration count, of the tail model
    (bounded rate, sigma's upper value), and whether the threshold meets the target."""
    count_upper = poisson_upper(count_events(hop_lists, t), hours)
    tail_upper = expected_rate(fit, t, upper=True)
    ok = tail_upper is not None and tail_upper <= target * (1 + 1e-6)
    if poisson_upper(0, hours) <= target:  # long enough for the count to bound it: it must too
        ok = ok and count_upper <= target * (1 + 1e-6)
    return {
        "confidence": CONFIDENCE,
        "fa_per_hour_upper_95_count": round(count_upper, 3) if math.isfinite(count_upper) else None,
        "fa_per_hour_upper_95_tail": tail_upper,
        "meets_bound": bool(ok),
    }


def expected_rate(fit: dict, threshold: float, upper: bool = False) -> float | None:
    """The fitted rate of false wakes per hour at `threshold`."""
    if "sigma" not in fit:
        return None
    sigma = fit["sigma_upper"] if upper else fit["sigma"]
    rate = fit.get("rate_above_u_upper", fit["rate_above_u"]) if upper else fit["rate_above_u"]
    return float(rate * math.exp(-(float(logit(threshold)) - fit["u"]) / sigma))
