"""Inspect delivered files before Spark reads them: hash, header, encoding, row presence.

One streaming pass per file (bounded memory, whatever the file size) gives what Spark
cannot tell us: the file's sha256 (to skip re-deliveries), whether its bytes decode in
the contract's encoding (and the first line that does not), and its header line.
"""

from __future__ import annotations

import codecs
import csv
import fnmatch
import gzip
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from riskradar.config import Contract, ReaderOptions
from riskradar.errors import UnsafeName

_CHUNK = 1 << 20
_DELIMITER_CANDIDATES = [",", ";", "\t", "|"]


@dataclass
class FileInspection:
    """What one pass over a delivered file found."""

    path: Path
    name: str
    size: int
    sha256: str
    header: list[str] = field(default_factory=list)
    data_lines: int = 0
    encoding_errors: int = 0
    first_encoding_error_line: int | None = None
    problems: list[str] = field(default_factory=list)


def list_landing_files(folder: Path, pattern: str) -> list[Path]:
    """Delivered files matching the contract's pattern, oldest name first; never modified."""
    if not folder.is_dir():
        return []
    files = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not fnmatch.fnmatch(path.name, pattern):
            continue
        check_file_name(path.name)
        files.append(path)
    return files


def check_file_name(name: str) -> str:
    if ".." in name or "/" in name or "\\" in name or "\x00" in name:
        raise UnsafeName(f"delivered file name {name!r} is not allowed: it contains '..' or a path separator")
    return name


def _open_binary(path: Path, fmt: str):
    return gzip.open(path, "rb") if fmt == "csv.gz" or path.suffix == ".gz" else path.open("rb")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _lines(path: Path, reader: ReaderOptions) -> Iterator[tuple[int, bytes]]:
    with _open_binary(path, reader.format) as fh:
        yield from enumerate(fh, start=1)


def inspect_file(path: Path, contract: Contract, sha256: str | None = None) -> FileInspection:
    """Hash the file (unless the hash is given) and, for line-based formats, check header,
    rows and encoding."""
    reader = contract.reader
    result = FileInspection(
        path=path, name=path.name, size=path.stat().st_size, sha256=sha256 or sha256_of(path)
    )
    if result.size == 0:
        result.problems.append("the file is empty (0 bytes)")
        return result
    if reader.format not in ("csv", "csv.gz", "jsonl"):
        return result
    decoder_factory = codecs.getincrementaldecoder(reader.encoding)
    header_text: str | None = None
    try:
        for number, raw in _lines(path, reader):
            try:
                text = decoder_factory(errors="strict").decode(raw, final=True)
            except UnicodeDecodeError:
                result.encoding_errors += 1
                result.first_encoding_error_line = result.first_encoding_error_line or number
                text = raw.decode(reader.encoding, errors="replace")
            if header_text is None and reader.format != "jsonl" and reader.header:
                header_text = text
                continue
            if text.strip():
                result.data_lines += 1
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        result.problems.append(f"the file cannot be read as {reader.format}: {exc}")
        return result
    if reader.format != "jsonl" and reader.header:
        if header_text is None or not header_text.strip():
            result.problems.append("the file has no header line")
            return result
        result.header = next(
            csv.reader(
                io.StringIO(header_text.lstrip("\ufeff")), delimiter=reader.delimiter, quotechar=reader.quote
            )
        )
        result.header = [h.strip("\r\n") for h in result.header]
    if result.data_lines == 0:
        result.problems.append(
            "the file has a header but no data rows" if result.header else "the file has no data rows"
        )
    return result


def header_problems(inspection: FileInspection, contract: Contract) -> tuple[list[str], list[str], list[str]]:
    """(missing required columns, missing optional columns, unknown extra columns)."""
    declared = [c.name for c in contract.columns]
    present = set(inspection.header)
    missing_required = [c for c in contract.required_columns if c not in present]
    missing_optional = [c for c in declared if c not in present and c not in missing_required]
    extra = [h for h in inspection.header if h not in set(declared)]
    return missing_required, missing_optional, extra


def guess_delimiter(header: list[str], expected: str) -> str | None:
    """A delimiter that would split a one-column header, if the contract's one did not."""
    if len(header) != 1:
        return None
    for candidate in _DELIMITER_CANDIDATES:
        if candidate != expected and candidate in header[0]:
            return candidate
    return None
