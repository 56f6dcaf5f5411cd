"""Reading real-world CSV exports without losing a row.

Every cell is read as text (nothing is guessed by a type inferrer); the encoding (UTF-8
with or without BOM, else Latin-1) and the delimiter (`,` `;` tab) are sniffed; a row with
more fields than the header is caught (two spare columns receive the overflow) rather than
truncated; fully blank lines are counted and reported, not interpreted.
"""

from __future__ import annotations

import codecs
import contextvars
import csv
import gzip
import io
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

ROW = "__line"  # the 1-based line number in the input file where the row's record starts
# Columns a reader may add before the rows reach the column steps: a reason the row is refused
# (a record that could not be read, a long-format conflict) and a note (orders not placed in time).
INPUT_ERROR = "__input_error"
INPUT_NOTE = "__input_note"
# Spare columns past the header's: a row's extra cells land here (a non-empty one refuses the
# row). A row with more extra cells than these makes polars stop (ragged lines are not
# truncated), and the file is then read record by record (careful_frame): no cell is dropped.
OVERFLOW = ("__overflow_1", "__overflow_2", "__overflow_3")
CHUNK_ROWS = 200_000


class BatchInputError(ValueError):
    """A problem with the file as a whole (not with a row): the run stops before reading rows."""


@dataclass(frozen=True)
class CsvSource:
    path: Path  # the input (gzip is read as a stream), or a UTF-8 copy: mixed encodings, lone CRs
    headers: list[str]
    delimiter: str
    encoding: str  # as found: "utf-8", "utf-8-sig", or "mixed" (some lines not UTF-8)
    compression: str | None = None  # "gzip" when the input was compressed
    temporary: bool = False  # `path` is a copy of this run's own making
    redecoded: tuple[int, ...] = ()  # "mixed": the file's lines (1-based) read as cp1252
    header_line: int = 1  # blank lines before the header are skipped, and lines still counted
    size: int = 0  # bytes of text (uncompressed): what the output's free-disk check starts from
    line_total: int | None = None  # the file's lines, where a pass over it already counted them
    hint: tuple[int, str] | None = None  # (its line, the delimiter) of a spreadsheet's `sep=;` line

    def hint_note(self) -> str | None:
        """What the run says of a `sep=` line: read as the delimiter, not as the header."""
        if self.hint is None:
            return None
        line, delimiter = self.hint
        return f"line {line}, 'sep={delimiter}', is a spreadsheet's delimiter hint: read as the delimiter, not as the header"

    def release(self) -> None:
        """Delete the temporary copy, if the run made one."""
        if self.temporary:
            self.path.unlink(missing_ok=True)

    @property
    def decimal_comma(self) -> bool:
        """Decimal commas are read only where they cannot be field separators."""
        return self.delimiter != ","


HEAD_BYTES = 1 << 20
# The first line some spreadsheet exports write to tell Excel the delimiter ("sep=;")
DELIMITER_HINT = re.compile(r"\ufeff?sep=([,;\t|])", re.IGNORECASE)


def sniff_encoding(path: Path, head_only: bool = False) -> str:
    """UTF-8 (with or without BOM) if the bytes decode as UTF-8, else Latin-1.

    `head_only` checks the first megabyte: for a file that polars reads next, which refuses
    invalid UTF-8 itself (`is_encoding_error`), so the run can start again as Latin-1.
    """
    with open_bytes(path) as f:
        head = f.read(3)
        if head == codecs.BOM_UTF8:
            return "utf-8-sig"
        f.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            if head_only:
                decoder.decode(f.read(HEAD_BYTES))  # a character cut at the end is not an error
                return "utf-8"
            while chunk := f.read(1 << 24):
                if chunk.isascii() and not decoder.getstate()[0]:
                    continue  # plain ASCII is UTF-8 (and checking it is cheaper than decoding)
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "utf-8"


def is_encoding_error(exc: Exception) -> bool:
    """Polars met a byte that is not UTF-8 (past the part `sniff_encoding` looked at)."""
    return isinstance(exc, pl.exceptions.ComputeError) and "utf-8" in str(exc).lower()


def open_csv(
    path: Path, delimiter: str | None = None, encoding: str | None = None, head_only: bool = False
) -> CsvSource:
    """The file's encoding (sniffed unless given), delimiter and header line."""
    if not path.is_file():
        raise BatchInputError(f"{path}: no such file")
    if is_parquet(path):
        return open_parquet(path)
    if is_gzip(path):  # exports are often shipped compressed (MIMIC-IV: labevents.csv.gz)
        expanded, lines = _check_expansion(path)  # then read as a stream: every reader decompresses as it goes
        source = _open_plain(path, delimiter, encoding, head_only)
        counted = lines if source.path == path else None  # a copy (lone CRs) has lines of its own
        return replace(source, compression="gzip", size=expanded, line_total=counted)
    return replace(_open_plain(path, delimiter, encoding, head_only), size=path.stat().st_size)


def _open_plain(path: Path, delimiter: str | None, encoding: str | None, head_only: bool) -> CsvSource:
    encoding = encoding or sniff_encoding(path, head_only)
    if encoding != "latin-1" and _cr_only(path):  # polars reads no lone-CR lines: a copy with LF
        copy, _ = _transcode(path, redecode=False)
        try:
            return replace(open_csv(copy, delimiter, encoding, head_only), temporary=True)
        except BaseException:
            copy.unlink(missing_ok=True)
            raise
    header_line = 0
    hint = None
    with io.TextIOWrapper(open_bytes(path), encoding=encoding, newline="") as f:
        first = ""
        while not first.strip():
            first = f.readline()
            header_line += 1
            if not first:
                raise BatchInputError(f"{path}: the file is empty (no header line)")
            if hint is None and (found := DELIMITER_HINT.fullmatch(first.rstrip("\r\n"))):
                hint, first = (header_line, found.group(1)), ""  # the header is the next line
    given = delimiter or (hint[1] if hint else None)
    delimiter = given or max((",", ";", "\t"), key=lambda d: _count_outside_quotes(first, d))
    headers = next(csv.reader(io.StringIO(first), delimiter=delimiter))
    headers = [h.strip() for h in headers]
    if len(set(headers)) != len(headers):
        dupes = sorted({h for h in headers if headers.count(h) > 1})
        raise BatchInputError(f"{path}: header names repeated: {', '.join(dupes)}")
    if encoding == "latin-1":
        copy, lines = _transcode(path)
        return CsvSource(
            copy, headers, delimiter, "mixed", temporary=True, redecoded=lines, header_line=header_line, hint=hint
        )
    return CsvSource(path, headers, delimiter, encoding, header_line=header_line, hint=hint)


def _cr_only(path: Path) -> bool:
    """Lines end in a lone CR (old Mac OS, some Excel exports): seen in the file's head."""
    with open_bytes(path) as f:
        head = f.read(HEAD_BYTES)
    return b"\r" in head and b"\n" not in head


def remove_leftovers(folder: Path, prefix: str, suffix: str = ".tmp") -> None:
    """Delete `<prefix><pid>-*<suffix>` files of this program whose process is gone (a run
    killed with SIGKILL, or a machine that stopped, cannot clean up after itself)."""
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(prefix) and p.name.endswith(suffix)]
    except OSError:
        return
    for path in candidates:
        pid = path.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _temporary_copy(kind: str) -> Path:
    """A private temporary file named with this process's id, so that a later run can tell a
    killed run's leftover (its process gone) from another live run's copy."""
    folder = Path(tempfile.gettempdir())
    remove_leftovers(folder, f"interpret-{kind}-", ".csv")
    return Path(tempfile.mkstemp(suffix=".csv", prefix=f"interpret-{kind}-{os.getpid()}-")[1])


GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == GZIP_MAGIC


# How much a compressed input may expand to: a 4 MB gzip file can hold 35 GB of zeros. The
# command line's cap is INTERPRET_MAX_UNCOMPRESSED_BYTES (default 64 GiB); the web upload sets
# a smaller one for its run.
DECOMPRESS_LIMIT: contextvars.ContextVar[int] = contextvars.ContextVar(
    "decompress_limit", default=int(os.environ.get("INTERPRET_MAX_UNCOMPRESSED_BYTES") or 64 * 2**30)
)


def _check_expansion(path: Path) -> tuple[int, int]:
    """Refuse a compressed file that expands past the limit, or is no readable gzip, before any
    row is read: decompressed as a stream and counted, nothing written. Returns the bytes and
    the lines it expands to (so the run need not decompress it once more to count them)."""
    limit, expanded = DECOMPRESS_LIMIT.get(), 0

    def counted(src: Any) -> Iterator[bytes]:
        nonlocal expanded
        for chunk in _chunks(src, 1 << 22):
            expanded += len(chunk)
            if expanded > limit:
                raise BatchInputError(
                    f"{path}: expands to more than {limit:,} bytes uncompressed; refused "
                    "(a larger export: raise INTERPRET_MAX_UNCOMPRESSED_BYTES)"
                )
            yield chunk

    try:
        with gzip.open(path, "rb") as src:
            lines = _lines_in(counted(src))
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError; a cut-off file, EOFError
        raise BatchInputError(f"{path}: not a readable gzip file ({exc})") from None
    return expanded, lines


def open_bytes(path: Path) -> BinaryIO:
    """The file's bytes, decompressed as they are read when it is gzip-compressed."""
    return gzip.open(path, "rb") if is_gzip(path) else path.open("rb")  # type: ignore[return-value]


def _count_outside_quotes(line: str, delimiter: str) -> int:
    count, quoted = 0, False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == delimiter and not quoted:
            count += 1
    return count


def _transcode(path: Path, redecode: bool = True) -> tuple[Path, tuple[int, ...]]:
    """A UTF-8 copy, decided line by line: a line that is valid UTF-8 is kept as it is; any
    other is read as Windows-1252 (what Windows exports are, more often than Latin-1; Latin-1
    for the five bytes cp1252 leaves undefined). One stray byte no longer turns every valid
    `µmol/L` of the file into mojibake. Returns the copy and the lines re-decoded."""
    out = _temporary_copy("utf8")
    redecoded: list[int] = []
    with open_bytes(path) as src, out.open("wb") as dst:
        for number, line in enumerate(_physical_lines(src, cr_ends_lines=not redecode), start=1):
            if not redecode:  # a lone-CR file: each line ends in LF, so that polars sees it
                dst.write(line[:-1] + b"\n" if line.endswith(b"\r") else line)
                continue
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                redecoded.append(number)
                try:
                    line = line.decode("cp1252").encode("utf-8")
                except UnicodeDecodeError:
                    line = line.decode("latin-1").encode("utf-8")
            dst.write(line)
    return out, tuple(redecoded)


def _physical_lines(f: Any, cr_ends_lines: bool = False) -> Iterator[bytes]:
    """Lines with their endings: LF (and CRLF); a lone CR too where `cr_ends_lines` (a file
    with no LF at all). Elsewhere a lone CR is a byte inside a line, as polars reads it."""
    ending = re.compile(rb"\r\n|\n|\r(?!$)" if cr_ends_lines else rb"\n")
    rest = b""
    while chunk := f.read(1 << 22):
        data = rest + chunk
        start = 0
        for m in ending.finditer(data):
            yield data[start : m.end()]
            start = m.end()
        rest = data[start:]
    if rest:
        yield rest


PARQUET = "parquet"  # the `encoding` of a Parquet source: typed columns, no lines


def is_parquet(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"PAR1"


def open_parquet(path: Path) -> CsvSource:
    """A Parquet file: its columns are the headers; `line` is the row's number (1-based)."""
    try:
        schema = pl.read_parquet_schema(path)
        rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BatchInputError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None
    nested = [name for name, dtype in schema.items() if dtype.is_nested()]
    if nested:
        raise BatchInputError(f"{path}: column(s) {', '.join(map(repr, nested))} hold lists or structs, not cells")
    return CsvSource(path, list(schema), ",", PARQUET, header_line=0, size=path.stat().st_size, line_total=rows)


def as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    """A typed Parquet column as the text a CSV cell would hold: times as ISO 8601 (an
    instant with Z, a naive time without), numbers as written by polars, "" when null."""
    column = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            column = column.dt.convert_time_zone("UTC").dt.to_string("%Y-%m-%dT%H:%M:%SZ")
        else:
            column = column.dt.to_string("%Y-%m-%d %H:%M:%S")
    elif isinstance(dtype, pl.Date):
        column = column.dt.to_string("%Y-%m-%d")
    elif dtype != pl.String:
        column = column.cast(pl.String)
    return column.fill_null("").alias(name)


def _parquet_chunks(source: CsvSource, chunk_rows: int) -> Iterator[pl.DataFrame]:
    """A Parquet file's rows as text chunks, a slice at a time: a reader that runs ahead of
    the run would hold the whole file (Parquet is read far faster than it is interpreted)."""
    scan = pl.scan_parquet(source.path)
    texts = [as_text(n, t) for n, t in scan.collect_schema().items()]
    overflow = [pl.lit(None, dtype=pl.String).alias(c) for c in OVERFLOW]
    rows = source.line_total or 0
    for start in range(0, rows, chunk_rows):
        piece = scan.slice(start, chunk_rows).select(*texts, *overflow)
        yield piece.collect().with_row_index(ROW, offset=start + 1)


def read_chunks(source: CsvSource, chunk_rows: int = CHUNK_ROWS) -> Iterator[pl.DataFrame]:
    """Chunks of rows, all cells as text ("" when empty), with their line numbers.

    Reading starts at once, in polars' own threads (the chunks are read ahead of their use).
    """
    if source.encoding == PARQUET:
        return _parquet_chunks(source, chunk_rows)
    columns = [*source.headers, *OVERFLOW]
    frame = pl.scan_csv(
        source.path,
        has_header=False,
        skip_rows=source.header_line,
        separator=source.delimiter,
        schema={c: pl.String for c in columns},
        truncate_ragged_lines=False,
        missing_columns="insert",
        empty_string_is_null=False,
        row_index_name=ROW,
        row_index_offset=source.header_line + 1,
        encoding="utf8",
        quote_char='"',
    )
    return frame.collect_batches(chunk_size=chunk_rows)


class Prefetch:
    """A plain UTF-8 file whose reading starts before the ruleset is loaded.

    The command line then imports the batch machinery and loads the ruleset (Python, on one
    core); the reader uses the other core meanwhile. The run takes these chunks only if it reads the file
    exactly so (`take`): same path, delimiter and encoding, as a mapping file may change them.
    """

    def __init__(self, source: CsvSource) -> None:
        self.source = source
        self._chunks: Iterator[pl.DataFrame] | None = read_chunks(source)

    @classmethod
    def start(cls, path: Path) -> Prefetch | None:
        """None where a run would read the file otherwise (a Latin-1 copy) or refuse it."""
        try:
            if (
                not path.is_file()
                or is_gzip(path)
                or _cr_only(path)
                or sniff_encoding(path, head_only=True) == "latin-1"
            ):
                return None
            return cls(open_csv(path, head_only=True))
        except (OSError, BatchInputError):
            return None  # the run itself will say what is wrong with the file

    def take(self, source: CsvSource) -> Iterator[pl.DataFrame] | None:
        """The chunks, once, if `source` is the file as prefetched."""
        chunks, self._chunks = self._chunks, None
        return chunks if source == self.source else None


def frame_chunks(frame: pl.DataFrame, chunk_rows: int = CHUNK_ROWS) -> Iterator[pl.DataFrame]:
    """An in-memory frame (the long format's panels) in the same chunks as `read_chunks`."""
    for start in range(0, frame.height, chunk_rows):
        yield frame.slice(start, chunk_rows)


def blank_rows(chunk: pl.DataFrame, headers: list[str]) -> pl.Series:
    """True where every field is empty: a blank line, not a row.

    Only rows whose first field is empty can be blank, so the full test runs on those alone.
    """
    if not headers:
        return pl.Series([True] * chunk.height)
    empty = [pl.col(h).fill_null("").str.strip_chars() == "" for h in headers]
    first = chunk.select(empty[0]).to_series()
    candidates = first.arg_true()
    if len(candidates) == 0:
        return first
    blank = chunk[candidates].select(pl.all_horizontal(empty)).to_series()
    return first.scatter(candidates, blank)


LONE_CR = "\ufffc"  # stands for a lone CR while the csv module splits a record
MAX_RECORD_LINES = 50  # a quoted field may span lines; one still open after this many is broken


def line_count(path: Path) -> int:
    """The file's physical lines (a last line without its newline counted too)."""
    with open_bytes(path) as f:
        return _lines_in(_chunks(f, 1 << 24))


def _chunks(f: Any, size: int) -> Iterator[bytes]:
    while chunk := f.read(size):
        yield chunk


def _lines_in(chunks: Iterator[bytes]) -> int:
    count, last = 0, b""
    for chunk in chunks:
        count += chunk.count(b"\n")
        last = chunk[-1:]
    return count + (1 if last not in (b"", b"\n") else 0)


def needs_careful_reading(exc: Exception) -> bool:
    """Polars could not split the file into rows: a stray or unbalanced quote, or a row with
    more extra cells than the spare columns hold."""
    text = str(exc).lower()
    said = any(word in text for word in ("csv", "fields", "escaped", "schema"))
    if isinstance(exc, pl.exceptions.SchemaError):
        return said
    return isinstance(exc, pl.exceptions.ComputeError) and said and not is_encoding_error(exc)


def careful_frame(source: CsvSource) -> pl.DataFrame:
    """The whole file as rows, read record by record in Python: the slow path for a file polars
    cannot split (a stray or unbalanced quote). A record that cannot be read is kept as a row
    with its reason in INPUT_ERROR, named by the line where it starts, never with its text; the
    rows after it are read as usual. Every row's line is the line where its record starts."""
    width = len(source.headers)
    columns: list[list[str]] = [[] for _ in range(width + len(OVERFLOW))]
    lines: list[int] = []
    errors: list[str | None] = []
    with open_bytes(source.path) as f:
        physical = [line.decode("utf-8", errors="replace") for line in _physical_lines(f)]
    number = source.header_line  # the header's line; records start after it
    while number < len(physical):
        start = number
        cells, used, problem = _record(physical, start, source.delimiter)
        number = start + used
        if not "".join(physical[start : start + used]).strip():
            continue  # a blank line: not a row (unlike the fast path, not counted as skipped)
        lines.append(start + 1)
        errors.append(problem)
        cells = [] if problem else cells
        spare = width + len(OVERFLOW) - 1
        spill = cells[spare:]
        cells = cells[:spare] + ([source.delimiter.join(spill)] if any(c.strip() for c in spill) else [])
        for i, column in enumerate(columns):
            column.append(cells[i] if i < len(cells) else "")
    data: dict[str, Any] = {h: columns[i] for i, h in enumerate([*source.headers, *OVERFLOW])}
    frame = pl.DataFrame(data, schema={c: pl.String for c in data})
    return frame.with_columns(pl.Series(ROW, lines, dtype=pl.UInt32), pl.Series(INPUT_ERROR, errors, dtype=pl.String))


def _record(physical: list[str], start: int, delimiter: str) -> tuple[list[str], int, str | None]:
    """(cells, lines used, problem) of the record starting at `physical[start]`."""
    for used in range(1, MAX_RECORD_LINES + 1):
        if start + used > len(physical):
            break
        # a lone CR is a byte inside the line (as polars reads it), not the record's end
        text = "".join(physical[start : start + used]).replace("\r\n", "\n").replace("\r", LONE_CR)
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
        except csv.Error as exc:
            if "unexpected end of data" in str(exc) or "EOF" in str(exc):
                continue  # a quoted field goes on in the next line
            return [], 1, f"line {start + 1}: a quote in a field is not written as CSV quotes it ({exc}); row refused"
        return ([c.replace(LONE_CR, "\r") for c in rows[0]] if rows else []), used, None
    return (
        [],
        1,
        f"line {start + 1}: a quote opened in this line is never closed; row refused (the lines after it are read)",
    )
