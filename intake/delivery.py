"""Take delivered files out of landing safely and inspect them before Spark reads them.

Landing is read-only and closed. Only regular files directly in the feed's folder are
deliveries; a symbolic link, a device or a pipe is refused (recorded, never followed or read).
Each new file is read once, in one streaming pass that

- hashes the delivered bytes (sha256: the identity of a delivery),
- decompresses and decodes them in the contract's encoding (bytes that are not valid become
  U+FFFD, so the rows holding them can be quarantined),
- counts the records a CSV parser sees (quoted fields may hold newlines; the header excluded),
  with a bound on the length of a line,
- writes the text again as UTF-8 with `\\n` line ends into the run's own staging folder, under
  a name made of the hash, and
- keeps the delivered bytes as hashed beside it (ingest keeps them in the lake for a rekey).

Spark then reads that staged copy by its exact path: file names are never globbed, a
partner's characters (`[`, `*`, `:`, a leading `_`) never reach a Hadoop path, a file replaced
during ingest cannot slip in (the staged text derives from exactly the hashed bytes), and the
rows Spark reads can be checked against the records counted here. Binary formats (Parquet,
GeoJSON) are copied byte for byte while they are hashed. A workbook (xlsx) is staged as CSV
of the contract's sheet, a GeoPackage or zipped shapefile as GeoJSON in WGS84, so that the rest
of the pipeline reads them as it reads the formats it knew before.
"""

from __future__ import annotations

import codecs
import csv
import fnmatch
import gzip
import hashlib
import io
import json
import os
import stat
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

from riskradar.config import Contract, ReaderOptions

_CHUNK = 1 << 20
_DELIMITER_CANDIDATES = [",", ";", "\t", "|"]
# A delivered line longer than this is refused before Spark reads it: one 300 MB line took the
# driver JVM out of memory. Generous: a WKT polygon in a CSV cell stays far below it.
MAX_LINE_CHARS = 16 * 1024 * 1024
_TEXT_FORMATS = ("csv", "csv.gz", "jsonl")


@dataclass(frozen=True)
class LandingEntry:
    """A name in a feed's landing folder that matches the contract's pattern."""

    path: Path
    name: str
    problem: str | None = None  # why it is refused without being read (symlink, not a file)
    identity: str = ""  # for a refused entry: what was seen, so a rerun knows it again


@dataclass
class FileInspection:
    """What the staging pass over one delivered file found."""

    path: Path
    name: str
    size: int
    sha256: str
    staged: Path | None = None  # the copy Spark reads (UTF-8 text for text formats)
    delivered: Path | None = None  # the delivered bytes as hashed (what the lake keeps of the file)
    # How Spark reads the staged copy: a workbook is staged as CSV, a GeoPackage or shapefile
    # as GeoJSON (WGS84), every other format as delivered.
    staged_format: str = ""
    staged_delimiter: str = ","
    header: list[str] = field(default_factory=list)
    records: int = 0  # data records as a parser counts them (header excluded)
    encoding_errors: int = 0  # records holding bytes that are not valid in the encoding
    first_encoding_error_record: int | None = None
    problems: list[str] = field(default_factory=list)


class FileChanged(Exception):
    """The delivered file changed while it was being read (still being written, or replaced)."""


def list_landing(folder: Path, pattern: str) -> list[LandingEntry]:
    """The entries of a feed's landing folder matching `pattern`, by name; folders are not
    deliveries and are passed over. Nothing is followed, opened or modified here."""
    if not folder.is_dir():
        return []
    entries = []
    with os.scandir(folder) as it:
        found = sorted(it, key=lambda e: e.name)
    for entry in found:
        if not fnmatch.fnmatchcase(entry.name, pattern):
            continue
        info = entry.stat(follow_symlinks=False)
        path = Path(entry.path)
        problem = None
        if stat.S_ISLNK(info.st_mode):
            problem = (
                "is a symbolic link: only regular files in the landing folder are read, "
                "links are never followed"
            )
        elif stat.S_ISDIR(info.st_mode):
            continue
        elif not stat.S_ISREG(info.st_mode):
            problem = "is not a regular file (a device, a pipe or a socket): it is not read"
        identity = f"{entry.name}\0{info.st_ino}\0{info.st_size}\0{info.st_mtime_ns}" if problem else ""
        entries.append(LandingEntry(path, entry.name, problem, identity))
    return entries


def shown(name: str) -> str:
    """A delivered file name as messages show it: quoted, control characters escaped."""
    return repr(name)


def _open_no_follow(path: Path):
    """Open a landing file for reading without following a link put in its place meanwhile."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    return os.fdopen(fd, "rb")


def _signature(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with _open_no_follow(path) as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _HashingReader(io.RawIOBase):
    """Reads a file, hashes every byte that passes through and writes it to `copy`: the
    delivered bytes exactly as hashed."""

    def __init__(self, fh, copy):
        self._fh = fh
        self._copy = copy
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._fh.readinto(buffer)
        if n:
            self.digest.update(memoryview(buffer)[:n])
            self._copy.write(memoryview(buffer)[:n])
            self.size += n
        return n or 0

    def drain(self) -> None:
        """Hash whatever a decompressor left unread (trailing bytes after the last member)."""
        for chunk in iter(lambda: self._fh.read(_CHUNK), b""):
            self.digest.update(chunk)
            self._copy.write(chunk)
            self.size += len(chunk)


def _is_gzip(name: str, reader: ReaderOptions) -> bool:
    return reader.format == "csv.gz" or name.endswith(".gz")


def staged_suffix(reader: ReaderOptions) -> str:
    """What the staged copy is called after its hash; Spark picks its reader by format only,
    and the text formats are staged uncompressed."""
    return {
        "csv": ".csv",
        "csv.gz": ".csv",
        "jsonl": ".jsonl",
        "parquet": ".parquet",
        "shapefile": ".zip",
    }.get(reader.format, f".{reader.format}")


def stage_file(
    path: Path,
    contract: Contract,
    staging: Path,
    *,
    expected_sha256: str | None = None,
    name: str | None = None,
) -> FileInspection:
    """Copy one delivered file into `staging` while hashing and inspecting it (one pass).

    `name` is the file's name as delivered (default: the path's; a rekey reads the lake's copy
    of a file, named by its hash). Besides the copy Spark reads, the pass keeps the delivered
    bytes as hashed (`delivered`), which ingest keeps in the lake for a rekey.

    Raises FileChanged when the file changed while it was read, or when its bytes no longer
    hash to `expected_sha256` (the hash taken when the run listed it). Problems that make the
    file unreadable as the contract says are returned in `problems`, never raised.
    """
    reader = contract.reader
    name = name or path.name
    staging.mkdir(parents=True, exist_ok=True)
    part = staging / f".{uuid.uuid4().hex}.part"
    copy = part.with_suffix(".copy")
    with _open_no_follow(path) as raw:
        before = os.fstat(raw.fileno())
        result = FileInspection(path=path, name=name, size=before.st_size, sha256="")
        with part.open("wb") as out, copy.open("wb") as kept:
            source = _HashingReader(raw, kept)
            _read_through(source, name, reader, out, result)
        after = os.fstat(raw.fileno())
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        now = None
    sha256 = source.digest.hexdigest()
    problem = None
    if _signature(before) != _signature(after) or now is None or _signature(now) != _signature(before):
        problem = f"{shown(name)} changed while it was read (still being written, or replaced)"
    elif expected_sha256 is not None and sha256 != expected_sha256:
        problem = f"{shown(name)} no longer has the content hashed when the run listed it"
    if problem is not None:
        part.unlink(missing_ok=True)
        copy.unlink(missing_ok=True)
        raise FileChanged(problem)
    result.sha256 = sha256
    if result.size == 0:
        result.problems.insert(0, "the file is empty (0 bytes)")
    staged = staging / f"{sha256}{staged_suffix(reader)}"
    part.rename(staged)
    result.delivered = staging / f"{sha256}.delivered"
    copy.rename(result.delivered)
    result.staged = staged
    result.staged_format = reader.format
    result.staged_delimiter = reader.delimiter
    if not result.problems:
        if reader.format == "xlsx":
            _stage_workbook(staged, reader, result)
        elif reader.format in ("gpkg", "shapefile"):
            _stage_geodata(staged, reader, result)
        else:
            _inspect_binary(staged, reader, result)
    if not result.problems and result.records == 0:
        result.problems.append(
            "the file has a header but no data rows" if result.header else "the file has no data rows"
        )
    return result


def _read_through(
    source: _HashingReader, name: str, reader: ReaderOptions, out, result: FileInspection
) -> None:
    """Every byte of the file through `source` (hashed, copied), and its staged form to `out`."""
    try:
        if reader.format in _TEXT_FORMATS:
            _stage_text(source, name, reader, out, result)
        else:
            for chunk in iter(lambda: source.read(_CHUNK), b""):
                out.write(chunk)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        result.problems.append(f"the file cannot be read as {reader.format}: {_reason(exc)}")
    source.drain()


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class _LineTooLong(Exception):
    def __init__(self, line: int):
        self.line = line


def _stage_text(
    source: _HashingReader, name: str, reader: ReaderOptions, out, result: FileInspection
) -> None:
    """Decode, count records and write the text as UTF-8 with `\\n` line ends."""
    binary = gzip.GzipFile(fileobj=source, mode="rb") if _is_gzip(name, reader) else source
    buffered = io.BufferedReader(binary, buffer_size=_CHUNK)  # type: ignore[arg-type]
    # newline=None: '\r\n' and '\r' become '\n', so mixed line ends read as one kind.
    text = io.TextIOWrapper(buffered, encoding=reader.encoding, errors="replace", newline=None)
    writer = codecs.getwriter("utf-8")(out)
    lines = _bounded_lines(text, writer)
    try:
        if reader.format == "jsonl":
            _count_json_lines(lines, result)
        else:
            _count_csv_records(lines, reader, result)
    except _LineTooLong as exc:
        result.problems.append(
            f"line {exc.line} is longer than {MAX_LINE_CHARS:,} characters (a line without its line "
            f"end, or a binary file): the file is not read"
        )
    except csv.Error as exc:
        result.problems.append(f"the file cannot be parsed as CSV: {exc}")


def _bounded_lines(text: io.TextIOWrapper, writer) -> Iterator[str]:
    """The text's lines, each written to the staged copy as it passes; a line over the bound
    stops the pass (memory stays bounded whatever the file holds)."""
    number = 0
    first = True
    while True:
        line = text.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_CHARS:
            raise _LineTooLong(number)
        if first:
            line = line.lstrip("\ufeff")  # a byte-order mark is not part of the first name
            first = False
        writer.write(line)
        yield line


def _count_csv_records(lines: Iterator[str], reader: ReaderOptions, result: FileInspection) -> None:
    parser = csv.reader(lines, delimiter=reader.delimiter, quotechar=reader.quote, doublequote=True)
    records = 0
    header_pending = reader.header
    for fields in parser:
        if not fields:  # an empty line: the CSV reader of Spark skips it too
            continue
        if header_pending:
            result.header = [f.strip("\r\n") for f in fields]
            header_pending = False
            continue
        records += 1
        if any("\ufffd" in f for f in fields):
            result.encoding_errors += 1
            result.first_encoding_error_record = result.first_encoding_error_record or records
    result.records = records
    if header_pending:
        result.problems.append("the file has no header line")


def _count_json_lines(lines: Iterator[str], result: FileInspection) -> None:
    records = 0
    for line in lines:
        if not line.strip():
            continue
        records += 1
        if "\ufffd" in line:
            result.encoding_errors += 1
            result.first_encoding_error_record = result.first_encoding_error_record or records
    result.records = records


def _inspect_binary(staged: Path, reader: ReaderOptions, result: FileInspection) -> None:
    """Count the records of formats Spark reads from the copied bytes."""
    if reader.format == "parquet":
        import pyarrow.parquet as pq

        try:
            result.records = pq.read_metadata(staged).num_rows
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            result.problems.append(f"the file cannot be read as parquet: {_reason(exc)}")
    elif reader.format == "geojson":
        try:
            text = staged.read_bytes().decode(reader.encoding)
            doc = json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            result.problems.append(f"the file cannot be read as GeoJSON: {_reason(exc)}")
            return
        features = doc.get("features") if isinstance(doc, dict) else None
        if not isinstance(features, list):
            result.problems.append("the file is not a GeoJSON FeatureCollection (no 'features' list)")
            return
        result.records = len(features)
        if codecs.lookup(reader.encoding).name != "utf-8":
            staged.write_text(text, encoding="utf-8")  # Spark reads the staged copy as UTF-8


def _cell_text(value: object, number_format: str | None = None) -> str:
    """A workbook cell as the text a CSV export would hold: a date cell as yyyy-MM-dd, a date
    and time cell as yyyy-MM-dd HH:mm:ss (as its number format shows it), whole numbers
    without '.0' (ids and codes stored as numbers), booleans lower case."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        shows_time = number_format is None or any(c in number_format.lower() for c in "hs")
        return value.strftime("%Y-%m-%d %H:%M:%S" if shows_time else "%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return str(value)


def _stage_workbook(staged: Path, reader: ReaderOptions, result: FileInspection) -> None:
    """Stage a workbook's sheet as CSV (UTF-8, ',' and '"') for Spark, counting its data rows."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(staged, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zip, XML and key errors for a damaged workbook
        result.problems.append(f"the file cannot be read as an xlsx workbook: {_reason(exc)}")
        return
    try:
        names = book.sheetnames
        if isinstance(reader.sheet, int):
            if not 0 <= reader.sheet < len(names):
                result.problems.append(
                    f"the workbook has no sheet number {reader.sheet} (0-based; it has {len(names)}: {names})"
                )
                return
            sheet = book.worksheets[reader.sheet]
        elif reader.sheet not in names:
            result.problems.append(f"the workbook has no sheet {reader.sheet!r} (its sheets: {names})")
            return
        else:
            sheet = book[reader.sheet]
        target = staged.with_suffix(".csv")
        records = 0
        width: int | None = None
        with target.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            for cells in sheet.iter_rows():
                texts = [_cell_text(c.value, getattr(c, "number_format", None)) for c in cells]
                while texts and texts[-1] == "":  # a sheet's used range is often wider
                    texts.pop()
                if not texts:
                    continue  # an empty row, as a blank line of a CSV
                if any(len(t) > MAX_LINE_CHARS for t in texts):
                    result.problems.append(
                        f"a cell of row {records + 1} is longer than {MAX_LINE_CHARS:,} characters"
                    )
                    return
                if reader.header and width is None:
                    result.header = [t.strip() for t in texts]
                    width = len(texts)
                    writer.writerow(result.header)
                    continue
                if width is not None and len(texts) < width:
                    texts += [""] * (width - len(texts))  # trailing empty cells of a full row
                writer.writerow(texts)
                records += 1
    finally:
        book.close()
    if reader.header and width is None:
        result.problems.append("the sheet has no header row")
        return
    result.records = records
    result.staged = target
    result.staged_format = "csv"
    result.staged_delimiter = ","


def _stage_geodata(staged: Path, reader: ReaderOptions, result: FileInspection) -> None:
    """Stage a GeoPackage layer or a zipped shapefile as a GeoJSON FeatureCollection in WGS84,
    attributes as properties, for Spark's GeoJSON reading."""
    import numpy as np
    import pyogrio
    import shapely

    from riskradar import crs

    source = f"/vsizip/{staged}" if reader.format == "shapefile" else str(staged)
    try:
        layers = [name for name, _ in pyogrio.list_layers(source)]
        if reader.layer is not None and (
            (isinstance(reader.layer, int) and not 0 <= reader.layer < len(layers))
            or (isinstance(reader.layer, str) and reader.layer not in layers)
        ):
            result.problems.append(f"the file has no layer {reader.layer!r} (its layers: {layers})")
            return
        meta, _, geometry, fields = pyogrio.raw.read(source, layer=reader.layer)
    except Exception as exc:  # GDAL reports damaged files with several error types
        result.problems.append(f"the file cannot be read as {reader.format}: {_reason(exc)}")
        return
    source_crs = meta.get("crs") or reader.crs
    if source_crs is None:
        what = (
            "shapefile came without its .prj"
            if reader.format == "shapefile"
            else "layer has no coordinate system"
        )
        result.problems.append(
            f"the {what}, so its coordinates cannot be placed: deliver it with one, or set reader.crs in the "
            f"contract (e.g. EPSG:28992)"
        )
        return
    shapes = shapely.from_wkb(geometry)

    def to_wgs84(coords: np.ndarray) -> np.ndarray:
        lon, lat = crs.transform_array(coords[:, 0], coords[:, 1], source_crs, "EPSG:4326")
        return np.column_stack([lon, lat])

    try:
        shapes = shapely.transform(shapes, to_wgs84)
    except Exception as exc:  # an unknown or unsupported coordinate system
        result.problems.append(f"the coordinates cannot be transformed from {source_crs}: {_reason(exc)}")
        return
    names = list(meta["fields"])
    features = []
    for i, shape in enumerate(shapes):
        props = {name: _json_value(fields[k][i]) for k, name in enumerate(names)}
        geom = None if shape is None else json.loads(shapely.to_geojson(shape))
        features.append({"type": "Feature", "properties": props, "geometry": geom})
    target = staged.with_suffix(".geojson")
    target.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    result.records = len(features)
    result.staged = target
    result.staged_format = "geojson"


def _json_value(value: object) -> object:
    """An attribute of a GIS file as JSON: numbers and text as they are, dates ISO."""
    if value is None:
        return None
    if hasattr(value, "item"):  # a NumPy scalar
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


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
