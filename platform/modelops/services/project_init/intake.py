"""Reading the input file: its text encoding and its separator, decided before a value is parsed.

A CSV's bytes are checked as UTF-8 first (chunk by chunk, nothing kept). When they are not, the
file is either UTF-8 with stray bytes (refused: the line is named, nothing guesses what the stray
bytes meant) or in another encoding, which ``charset-normalizer`` detects from the lines that hold
non-ASCII bytes; every byte must then decode in that encoding, or the first line that does not is
named. ``--encoding`` replaces the detection and is held to the same rule. The separator is
``--sep`` or what :class:`csv.Sniffer` finds in the first lines (``,`` when it finds nothing).

Nothing is printed: what was decided comes back as notes for the CLI.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from modelops.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pyarrow as pa

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
SEPARATORS = ",;\t|"
CHUNK = 8 << 20  # bytes read at a time when checking the encoding
SAMPLE_LINES = 200  # lines the separator is sniffed from
DETECT_BYTES = 1 << 20  # non-ASCII lines given to the detector, at most
# When the detector finds several encodings that read the bytes equally well (single-byte
# Western text often fits cp1250, cp1252 and cp1257 alike), the most common for CSV exports.
PREFERRED = ("cp1252", "iso8859-15", "iso8859-1")
# A byte sequence UTF-8 would accept as one non-ASCII character: two or more such sequences in a
# file that is not UTF-8 mean UTF-8 with stray bytes, not another encoding.
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


@dataclass(frozen=True)
class TextFormat:
    """How a CSV's bytes become values."""

    encoding: str  # a Python codec name, as pyarrow's reader takes it
    separator: str


def suffix_of(path: Path) -> str:
    """``.csv``, ``.csv.gz``, ``.parquet``: the suffix that decides how the file is read."""
    if path.suffix.lower() == ".gz":
        return "".join(path.suffixes[-2:]).lower()
    return path.suffix.lower()


def read_table(
    path: Path,
    encoding: str | None = None,
    separator: str | None = None,
    notes: list[str] | None = None,
) -> pa.Table:
    """A CSV (``.csv``, ``.csv.gz``, ``.txt``, ``.tsv``) or parquet file as an Arrow table; for a
    CSV, the encoding and separator as given or found (said in ``notes``).

    Raises:
        ConfigError: an unknown ``encoding``, a ``separator`` that is not one character.
        DataError: the file is missing, unreadable, of another kind, or holds bytes its encoding
            cannot decode (the line is named).
    """
    import pyarrow as pa

    if not path.is_file():
        raise DataError(f"--from-csv {path}: file not found")
    suffix = suffix_of(path)
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise DataError(
            f"{path}: expected a .csv or .parquet file, got '{path.suffix or path.name}'"
        )
    try:
        if suffix in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.csv as pacsv

        said = notes if notes is not None else []
        found = text_format(path, encoding, separator, said)
        try:
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(encoding=found.encoding),
                parse_options=pacsv.ParseOptions(delimiter=found.separator),
            )
        except pa.ArrowInvalid as exc:
            hint = header_hint(_header(path, found))
            raise DataError(
                f"{path}: cannot be read: {_first_line(exc)}" + (f"; {hint}" if hint else "")
            ) from exc
        return decimal_commas(table, said) if found.separator != "," else table
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot be read: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _header(path: Path, found: TextFormat) -> list[str]:
    """The first line's fields, split at the separator used."""
    with _open(path) as handle:
        first = handle.readline(1 << 16).decode(found.encoding, errors="replace")
    return next(csv.reader([first.rstrip("\r\n")], delimiter=found.separator), [])


def decimal_commas(table: pa.Table, notes: list[str]) -> pa.Table:
    """Text columns whose every value is a number written with a decimal comma (``1824,11``,
    the way ``;``-separated exports write them) as float64 numbers, noted."""
    import pyarrow as pa
    import pyarrow.compute as pc

    converted = []
    for index, name in enumerate(table.column_names):
        values = table.column(index)
        if not pa.types.is_string(values.type) or values.null_count == len(values):
            continue
        valid = values.drop_null()
        if not pc.all(pc.match_substring_regex(valid, r"^\s*[-+]?\d*,?\d+\s*$")).as_py():
            continue
        if not pc.any(pc.match_substring(valid, ",")).as_py():
            continue
        numbers = pc.cast(pc.replace_substring(values, ",", "."), pa.float64())
        table = table.set_column(index, name, numbers)
        converted.append(name)
    if converted:
        notes.append(
            "numbers with a decimal comma read as numbers: "
            + ", ".join(f"'{c}'" for c in converted[:5])
            + (f" and {len(converted) - 5} more" if len(converted) > 5 else "")
        )
    return table


def text_format(
    path: Path, encoding: str | None, separator: str | None, notes: list[str]
) -> TextFormat:
    """The CSV's encoding and separator: as given (checked), or found (noted)."""
    if separator is not None and len(separator) != 1:
        raise ConfigError(f"--sep {separator!r}: expected one character, e.g. ';' or a tab")
    chosen = _encoding(path, encoding, notes)
    if separator is None:
        separator = _sniff(path, chosen)
        if separator != ",":
            notes.append(f"separator {_shown(separator)} (sniffed; --sep to choose another)")
    return TextFormat(chosen, separator)


def _open(path: Path) -> BinaryIO:
    if suffix_of(path) == ".csv.gz":
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def _chunks(path: Path) -> Iterator[bytes]:
    with _open(path) as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _encoding(path: Path, given: str | None, notes: list[str]) -> str:
    if given is not None:
        try:
            name = codecs.lookup(given).name
        except LookupError as exc:
            raise ConfigError(
                f"--encoding {given!r}: not an encoding Python knows (e.g. utf-8, cp1252, latin-1)"
            ) from exc
        _require_decodes(path, name, f"--encoding {given}")
        return name
    offset = _first_undecodable(path, "utf-8")
    if offset is None:
        return "utf-8"
    return _detected(path, offset, notes)


def _first_undecodable(path: Path, encoding: str) -> int | None:
    """The offset of the first byte ``encoding`` cannot decode, or None when all decode."""
    decoder = codecs.getincrementaldecoder(encoding)()
    done = 0
    try:
        for chunk in _chunks(path):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                # exc.object is what the decoder held back from the last chunk, then this one
                return done - (len(exc.object) - len(chunk)) + exc.start
            done += len(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return done - len(exc.object) + exc.start
    return None


def _line_of(path: Path, offset: int) -> tuple[int, bytes]:
    """The 1-based line holding byte ``offset``, and the bytes there (up to four)."""
    lines, done = 1, 0
    for chunk in _chunks(path):
        if done + len(chunk) > offset:
            inside = offset - done
            return lines + chunk.count(b"\n", 0, inside), chunk[inside : inside + 4]
        lines += chunk.count(b"\n")
        done += len(chunk)
    return lines, b""


def _require_decodes(path: Path, encoding: str, said: str) -> None:
    offset = _first_undecodable(path, encoding)
    if offset is not None:
        line, found = _line_of(path, offset)
        raise DataError(
            f"{path}: line {line}: bytes {_hex(found)} cannot be decoded as {encoding} "
            f"({said}); fix the line, or pass --encoding with the file's encoding"
        )


def _detected(path: Path, offset: int, notes: list[str]) -> str:
    """The encoding of a file that is not UTF-8 (its first non-UTF-8 byte at ``offset``)."""
    from charset_normalizer import from_bytes

    line, found = _line_of(path, offset)
    sample = _non_ascii_lines(path)
    if len(_UTF8_SEQUENCE.findall(sample)) >= 2:
        raise DataError(
            f"{path}: line {line}: bytes {_hex(found)} are not UTF-8, while other lines are; fix "
            "the line, or pass --encoding if the file is in another encoding"
        )
    matches = list(from_bytes(sample))
    if not matches:
        raise DataError(
            f"{path}: line {line}: bytes {_hex(found)} are neither UTF-8 nor text in an encoding "
            "charset-normalizer recognises; pass --encoding if you know the file's encoding"
        )
    best = matches[0]
    tied = [
        codecs.lookup(m.encoding).name
        for m in matches
        if m.chaos == best.chaos and abs(m.coherence - best.coherence) < 1e-9
    ]
    name = next((p for p in PREFERRED if p in tied), tied[0])
    _require_decodes(path, name, "detected")
    others = [t for t in tied if t != name][:3]
    also = f"; {', '.join(others)} read it as well" if others else ""
    notes.append(
        f"encoding {name}, detected: not UTF-8 from line {line} on "
        f"({_example(sample, name)}{also}); pass --encoding if that reads wrong"
    )
    return name


def _non_ascii_lines(path: Path) -> bytes:
    """The lines holding non-ASCII bytes, joined, up to :data:`DETECT_BYTES`."""
    kept: list[bytes] = []
    size = 0
    for chunk in _chunks(path):
        for line in chunk.splitlines(keepends=True):
            if not line.isascii():
                kept.append(line)
                size += len(line)
                if size >= DETECT_BYTES:
                    return b"".join(kept)
    return b"".join(kept)


def _example(sample: bytes, encoding: str) -> str:
    """The first non-ASCII word of ``sample`` as ``encoding`` reads it, e.g. ``'Zürich'``."""
    text = sample[:4096].decode(encoding, errors="replace")
    match = re.search(r"[^\s,;|\"]*[^\x00-\x7f][^\s,;|\"]*", text)
    return f"e.g. {match.group(0)!r}" if match else "non-ASCII text"


def _sniff(path: Path, encoding: str) -> str:
    """What :class:`csv.Sniffer` finds as the separator of the first lines; ``,`` if nothing."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    text = ""
    for chunk in _chunks(path):
        text += decoder.decode(chunk[: 1 << 20])
        break
    lines = text.splitlines()
    sample = "\n".join(lines[: min(SAMPLE_LINES, max(1, len(lines) - 1))])
    try:
        found = csv.Sniffer().sniff(sample, delimiters=SEPARATORS).delimiter
    except csv.Error:
        return ","
    header = lines[0] if lines else ""
    return found if found in header else ","


def header_hint(names: list[str]) -> str:
    """A sentence for a header holding ``;`` or a tab: likely the separator not recognised."""
    for name in names:
        for mark in (";", "\t"):
            if mark in name:
                return (
                    f"the header {name[:60]!r} holds {_shown(mark)}: if that is the separator, "
                    f"pass --sep {_shown(mark, quoted=True)}"
                )
    return ""


def _shown(mark: str, quoted: bool = False) -> str:
    if mark == "\t":
        return "$'\\t'" if quoted else "a tab"
    return f"'{mark}'"


def _hex(found: bytes) -> str:
    return " ".join(f"0x{b:02X}" for b in found[:2]) or "(end of file)"
