"""Public real audio for the background, downloaded when the user allows it: a user's machine has
no ../shared, and a model whose threshold was calibrated on no real audio states a guess.

`kwtrain fetch-background` (or `kwtrain build --fetch-background`, or KWTRAIN_FETCH_BACKGROUND=1)
downloads the sources of CATALOGUE into the cache (KWTRAIN_CACHE, else $XDG_CACHE_HOME/kwtrain,
else ~/.cache/kwtrain) and lays them out as the trainer reads a background folder
(`<cache>/fetched/noise_bed/demand_kitchen__DKITCHEN__ch01.wav`, `.../speech_long/...`), where
`negatives.background` splits them by file into train / calibration / test like ../shared.

A download is streamed into `<name>.part` with a deadline on every read and a size bound, and
resumed with an HTTP Range request when a `.part` is there (a cut connection or Ctrl-C loses
nothing fetched). The finished file is checked against the catalogue's published checksum
(md5 or sha256: what the source publishes) before anything is extracted; a mismatch deletes it
and says so. An entry without a published checksum is verified by its size only, and says so.
Archives are extracted member by member with a bound on every member and on the total, and
members whose path leaves the target folder (`..`, absolute paths, links) are refused.

Sources (sizes and checksums as published; the checksums are taken from the sources' own
listings as quoted by public download scripts, since this project's machine cannot reach them):

    demand_kitchen, demand_living, demand_washing: DEMAND (Thiemann, Ito, Vincent 2013), real
        multi-channel recordings of a kitchen, a living room and a laundry room, 16 kHz, 5 min
        per room and channel; CC BY-SA 3.0; Zenodo record 1227121 publishes the md5 of each zip.
    librispeech_dev_clean: LibriSpeech dev-clean, 5.4 h of read English speech by 40 people, a
        quarter of its files kept (by a hash of the name: 1.3 h; the trainer holds its train part
        in memory); CC BY 4.0; openslr.org/12 (sha256 as torchaudio pins it). Read speech can
        contain any word, the keyword too: a rare false "false wake" in the calibration part
        errs towards a higher threshold, not a lower one.
    musan: MUSAN (Snyder, Chen, Povey 2015) music, speech and noise, 109 h, 11 GB; CC BY 4.0;
        openslr.org/17 (md5 as Kaldi/WeNet recipes pin it); 5 % of its files kept. Over the
        default 2 GB size bound: only when named and with --max-bytes raised.

Not included: ESC-50 (GitHub archive with no published checksum, and CC BY-NC), Speech Commands'
noise clips (inside a 2.3 GB archive).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import stat
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

CHUNK = 1 << 16
READ_TIMEOUT_S = 30.0  # a read that waits longer than this fails (then: resume later)
CONNECT_TIMEOUT_S = 15.0
DEFAULT_MAX_BYTES = 2_000_000_000  # a source larger than this is refused unless raised
MAX_EXTRACT_RATIO = 3.0  # extracted bytes may be at most this many times the archive's
AUDIO_SUFFIXES = (".wav", ".flac")
FETCHED = "fetched"  # the folder under the cache that holds the extracted background


class FetchError(RuntimeError):
    """A download or extraction that failed, worded as what the user can do next."""


@dataclass(frozen=True)
class Source:
    name: str
    url: str
    group: str  # the background group it fills: noise_bed, speech_long, music_tv
    licence: str
    what: str
    size: int | None = None  # bytes as published (exact); None: unknown, max_size bounds it
    checksum: str | None = None  # "md5:<hex>" or "sha256:<hex>" as published; None: size only
    max_size: int = DEFAULT_MAX_BYTES
    members: tuple[str, ...] = ()  # glob patterns of the members to keep (empty: all audio)
    keep_fraction: float = 1.0  # of those, the share kept (by a hash of the name: every part
    # of a large corpus, not its first speakers; the trainer holds its train part in memory)
    default: bool = True  # fetched when no source is named

    @property
    def archive_name(self) -> str:
        return self.url.rstrip("/").split("/")[-1].split("?")[0]


_ZENODO = "https://zenodo.org/records/1227121/files"
CATALOGUE: tuple[Source, ...] = (
    Source("demand_kitchen", f"{_ZENODO}/DKITCHEN_16k.zip", "noise_bed", "CC BY-SA 3.0",
           "DEMAND: a real kitchen (16 channels, 5 min each; channels 1 and 9 kept)",
           size=110_501_049, checksum="md5:7ffbf52d7f4699f96927846103dc8788",
           members=("*/ch01.wav", "*/ch09.wav")),
    Source("demand_living", f"{_ZENODO}/DLIVING_16k.zip", "noise_bed", "CC BY-SA 3.0",
           "DEMAND: a real living room (channels 1 and 9 kept)",
           checksum="md5:46741384d9e434a0bd8b3ec1830b6052", max_size=300_000_000,
           members=("*/ch01.wav", "*/ch09.wav")),
    Source("demand_washing", f"{_ZENODO}/DWASHING_16k.zip", "noise_bed", "CC BY-SA 3.0",
           "DEMAND: a real laundry room with a washing machine (channels 1 and 9 kept)",
           checksum="md5:7e5ee9437ce9409c5f9a779b6212a240", max_size=300_000_000,
           members=("*/ch01.wav", "*/ch09.wav")),
    Source("librispeech_dev_clean", "https://www.openslr.org/resources/12/dev-clean.tar.gz",
           "speech_long", "CC BY 4.0",
           "LibriSpeech dev-clean: read English, 40 people (a quarter of its 5.4 h kept)",
           checksum="sha256:76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
           max_size=400_000_000, members=("*.flac",), keep_fraction=0.25),
    Source("musan", "https://www.openslr.org/resources/17/musan.tar.gz", "music_tv",
           "CC BY 4.0", "MUSAN: 109 h of music, speech and noise (11 GB)",
           checksum="md5:0c472d4fc0c5141eca47ad1ffeb2a7df", default=False, keep_fraction=0.05),
)  # fmt: skip


def cache_dir() -> Path:
    """KWTRAIN_CACHE, else $XDG_CACHE_HOME/kwtrain, else ~/.cache/kwtrain."""
    if os.environ.get("KWTRAIN_CACHE"):
        return Path(os.environ["KWTRAIN_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kwtrain"


def fetched_dir(cache: Path | None = None) -> Path:
    """The background folder the fetched sources are laid out in."""
    return (cache or cache_dir()) / FETCHED


def by_name(names: list[str] | None, catalogue: tuple[Source, ...] = CATALOGUE) -> list[Source]:
    if not names:
        return [s for s in catalogue if s.default]
    if names == ["all"]:
        return list(catalogue)
    known = {s.name: s for s in catalogue}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise FetchError(
            f"unknown source {', '.join(unknown)} (known: {', '.join(known)}; "
            "`kwtrain fetch-background --list` describes them)"
        )
    return [known[n] for n in names]


@dataclass
class Progress:
    """Progress on stderr, at most every `every` seconds."""

    name: str
    total: int | None
    every: float = 2.0
    out: Callable[[str], None] = field(default=lambda m: print(m, file=sys.stderr, flush=True))
    _last: float = 0.0

    def __call__(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < self.every:
            return
        self._last = now
        of = (
            f" of {self.total / 1e6:.1f} MB ({100 * done / self.total:.0f} %)" if self.total else ""
        )
        self.out(f"fetch {self.name}: {done / 1e6:.1f} MB{of}")


# ----------------------------------------------------------------------------- download
def download(src: Source, dest: Path, session=None, log=None) -> Path:
    """`src` into `dest` (a file path), resuming `dest.part`; verified. Returns `dest`."""
    import requests

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    limit = src.size or src.max_size
    have = part.stat().st_size if part.is_file() else 0
    if have > limit:
        part.unlink()
        have = 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    http = session or requests.Session()
    try:
        with http.get(src.url, headers=headers, stream=True,
                      timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) as r:  # fmt: skip
            if r.status_code == 416 and have:  # the .part already holds the whole file
                pass
            elif r.status_code not in (200, 206):
                raise FetchError(f"{src.name}: {src.url} answered HTTP {r.status_code}")
            else:
                if r.status_code == 200 and have:  # the server ignored the Range: start over
                    have = 0
                total = _total(r, have)
                if total is not None and total > limit:
                    raise FetchError(
                        f"{src.name}: {total / 1e6:.0f} MB is over the bound of "
                        f"{limit / 1e6:.0f} MB (raise it with --max-bytes if that is right)"
                    )
                if have:
                    log(f"fetch {src.name}: resuming at {have / 1e6:.1f} MB")
                _stream(r, part, have, limit, Progress(src.name, total or src.size, out=log))
    except (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
    ) as exc:
        raise FetchError(
            f"{src.name}: download cut off or unreachable ({type(exc).__name__}); what was "
            f"fetched is kept in {part}: run the same command again to resume"
        ) from exc
    verify(src, part)
    os.replace(part, dest)
    return dest


def _total(r, have: int) -> int | None:
    """The whole file's size from Content-Range (a 206) or Content-Length (a 200)."""
    cr = r.headers.get("Content-Range", "")
    if r.status_code == 206 and "/" in cr and cr.rsplit("/", 1)[1].isdigit():
        return int(cr.rsplit("/", 1)[1])
    cl = r.headers.get("Content-Length", "")
    return (int(cl) + (have if r.status_code == 206 else 0)) if cl.isdigit() else None


def _stream(r, part: Path, have: int, limit: int, progress: Progress) -> None:
    done = have
    with part.open("ab" if have else "wb") as fh:
        for chunk in r.iter_content(CHUNK):
            done += len(chunk)
            if done > limit:
                fh.close()
                part.unlink(missing_ok=True)
                raise FetchError(
                    f"{progress.name}: the download went past its bound of {limit / 1e6:.0f} MB "
                    "and was stopped (the server sends more than the source should be)"
                )
            fh.write(chunk)
            progress(done)
    progress(done, final=True)


def verify(src: Source, path: Path) -> None:
    """The published checksum, else the published size; a mismatch deletes the file."""
    size = path.stat().st_size
    if src.size is not None and size != src.size:
        path.unlink()
        raise FetchError(
            f"{src.name}: got {size} bytes, the source publishes {src.size}: deleted; "
            "run again to download it anew"
        )
    if src.checksum is None:
        return
    algo, want = src.checksum.split(":", 1)
    h = hashlib.new(algo)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != want.lower():
        path.unlink()
        raise FetchError(
            f"{src.name}: {algo} checksum mismatch (got {h.hexdigest()}, published {want}): "
            "the file was deleted and nothing of it is used; run again, or use another source"
        )


# ----------------------------------------------------------------------------- extraction
def _safe_relpath(name: str) -> PurePosixPath | None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts or ":" in p.parts[0]:
        return None
    return p


def _wanted(rel: PurePosixPath, src: Source) -> bool:
    if rel.suffix.lower() not in AUDIO_SUFFIXES:
        return False
    if src.members and not any(rel.match(pat) for pat in src.members):
        return False
    if src.keep_fraction >= 1.0:
        return True
    rank = int(hashlib.sha256(rel.as_posix().encode()).hexdigest()[:12], 16) / 16**12
    return rank < src.keep_fraction


def _members(archive: Path) -> Iterator[tuple[str, int, bool, Callable]]:
    """(name, size, is a plain file, opener) of each member of a zip or tar archive."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                plain = not info.is_dir() and not stat.S_ISLNK(info.external_attr >> 16)
                yield info.filename, info.file_size, plain, (lambda i=info: z.open(i))
        return
    with tarfile.open(archive, "r:*") as t:
        for m in t:
            yield m.name, m.size, m.isfile(), (lambda m=m: t.extractfile(m))


def extract(src: Source, archive: Path, target: Path, log=None) -> list[Path]:
    """The wanted audio members of `archive` into the group folder `target`, flat (named
    `<source>__<path parts joined by __>`, so that `negatives.background` finds them), each
    bounded by its declared size, all by MAX_EXTRACT_RATIO times the archive. Members whose
    path leaves the folder, or that are links, are refused (then nothing of it is used)."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    budget = int(MAX_EXTRACT_RATIO * archive.stat().st_size) + (1 << 20)
    tmp = target.with_name(f".{src.name}.extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    written, total = [], 0
    try:
        for name, size, plain, opener in _members(archive):
            rel = _safe_relpath(name)
            if rel is None:
                raise FetchError(f"{src.name}: archive member {name!r} leaves its folder: refused")
            if not plain or not _wanted(rel, src):
                continue
            total += size
            if total > budget:
                raise FetchError(f"{src.name}: the archive unpacks to over {budget / 1e6:.0f} MB")
            out = tmp / f"{src.name}__{'__'.join(rel.parts)}"
            _copy_bounded(opener(), out, size)
            written.append(target / out.name)
        if not written:
            raise FetchError(f"{src.name}: no audio files found in {archive.name}")
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob(f"{src.name}__*"):  # an earlier, interrupted layout
            old.unlink()
        for f in tmp.iterdir():
            os.replace(f, target / f.name)
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        raise FetchError(f"{src.name}: {archive.name} is not a readable archive ({exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"fetch {src.name}: {len(written)} audio files in {target}")
    return written


def _copy_bounded(fh, out: Path, size: int) -> None:
    got = 0
    with fh, out.open("wb") as dst:
        while block := fh.read(CHUNK):
            got += len(block)
            if got > size:  # a member larger than its header says
                raise FetchError(f"{out.name}: larger than the archive declares; refused")
            dst.write(block)


# ----------------------------------------------------------------------------- the command
def fetch(
    names: list[str] | None = None,
    cache: Path | None = None,
    max_bytes: int | None = None,
    catalogue: tuple[Source, ...] | None = None,
    log=None,
) -> dict:
    """Download, verify and lay out the sources; returns what is where. A source already laid
    out is not fetched again. Raises FetchError on the first source that fails."""
    from dataclasses import replace

    cache = cache or cache_dir()
    root = fetched_dir(cache)
    done = {}
    for src in by_name(names, CATALOGUE if catalogue is None else catalogue):
        if max_bytes is not None:
            src = replace(src, max_size=max_bytes)
        target = root / src.group
        marker = root / f".complete-{src.name}"
        if not marker.is_file():
            archive = download(src, cache / "downloads" / src.archive_name, log=log)
            extract(src, archive, target, log=log)
            marker.write_text(f"{src.url}\n{src.checksum or 'size only'}\n")
        done[src.name] = {
            "folder": str(target),
            "files": sum(1 for _ in target.glob(f"{src.name}__*")),
            "licence": src.licence,
            "verified_by": src.checksum.split(":")[0] if src.checksum else "size only",
        }
    return {"background": str(root), "sources": done}


OFFLINE_ADVICE = (
    "without real background the threshold is a guess. Either record your room (the best "
    "negatives there are: ten minutes with the TV and the kitchen going): "
    "`kwtrain record --label background --seconds 600 --out DATA`, then "
    "`kwtrain build --data DATA ...`; or point `--background DIR` at a folder of real audio "
    "(noise_bed/, speech_long/, music_tv/ subfolders of WAV/FLAC); or fetch public audio when "
    "online: `kwtrain fetch-background` (see --list)"
)


def describe(catalogue: tuple[Source, ...] = CATALOGUE) -> list[dict]:
    return [
        {"name": s.name, "what": s.what, "licence": s.licence, "url": s.url, "group": s.group,
         "bytes": s.size, "max_bytes": s.max_size,
         "verified_by": s.checksum.split(":")[0] if s.checksum else "size only",
         "default": s.default}
        for s in catalogue
    ]  # fmt: skip


def fetched_sources(cache: Path | None = None) -> list[str]:
    """Names of the sources laid out completely in the cache (usable without a network)."""
    root = fetched_dir(cache)
    return sorted(p.name[len(".complete-") :] for p in root.glob(".complete-*"))


def add_parser(sub) -> argparse.ArgumentParser:
    """`kwtrain fetch-background` (its options live here; the CLI only wires it in)."""
    p = sub.add_parser("fetch-background", help="download public real background audio")
    p.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME",
        help="a source of --list (repeatable; default: the default ones; 'all')",
    )
    p.add_argument("--list", action="store_true", help="describe the sources, download nothing")
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="cache folder (default $KWTRAIN_CACHE, else $XDG_CACHE_HOME/kwtrain)",
    )
    p.add_argument("--catalogue", type=Path, default=None,
                   help="a JSON list of sources (the fields of fetch.Source) instead of the "
                        "built-in one: a mirror, or a local server")  # fmt: skip
    p.add_argument("--max-bytes", type=int, default=None,
                   help=f"size bound of one download (default {DEFAULT_MAX_BYTES / 1e9:g} GB, "
                        "less where a source publishes its size)")  # fmt: skip
    return p


def load_catalogue(path: Path) -> tuple[Source, ...]:
    """Sources from a JSON file: a list of objects with Source's fields (at most 1 MB)."""
    import json

    try:
        with Path(path).open("rb") as fh:
            rows = json.loads(fh.read(1 << 20))
        return tuple(Source(**{**r, "members": tuple(r.get("members", ()))}) for r in rows)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise FetchError(f"{path}: not a catalogue (a JSON list of sources: {exc})") from exc


def run_command(a: argparse.Namespace) -> dict:
    catalogue = load_catalogue(a.catalogue) if a.catalogue else CATALOGUE
    if a.list:
        return {"cache": str(a.cache or cache_dir()), "sources": describe(catalogue),
                "fetched": fetched_sources(a.cache)}  # fmt: skip
    try:
        return fetch(a.source or None, a.cache, a.max_bytes, catalogue)
    except FetchError as exc:
        raise FetchError(f"{exc}\nNo network? {OFFLINE_ADVICE}") from exc
