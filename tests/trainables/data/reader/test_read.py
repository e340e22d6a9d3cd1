from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.trainables.data.helpers import HEADER, ctt_rows, write_csv
from trainables.data.reader import read_capture
from trainables.errors import UserError


def test_read_capture_parses_ctt_values(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "a.csv",
        [
            "1513921815.350702,081,7F84690000000069,0",
            "1513921815.350959,1A5,08E8,1",
            "1513921815.351189,18F,,0",
            "1513921815.351190,1FFFFFFF,00FF,0",
        ],
    )
    capture = read_capture(path)
    assert capture.can_id.tolist() == [0x081, 0x1A5, 0x18F, 0x1FFFFFFF]
    assert capture.dlc.tolist() == [8, 2, 0, 2]
    assert capture.payload[0].tolist() == [0x7F, 0x84, 0x69, 0, 0, 0, 0, 0x69]
    assert capture.payload[1].tolist() == [0x08, 0xE8, 0, 0, 0, 0, 0, 0]
    assert capture.payload[2].tolist() == [0] * 8
    assert capture.attack.tolist() == [False, True, False, False]
    assert capture.timestamp[1] == pytest.approx(1513921815.350959)
    assert capture.num_dropped_rows == 0


def test_read_capture_csv_gz_and_parquet_agree(tmp_path: Path) -> None:
    rows = ctt_rows(500, seed=3, attack_every=7)
    plain = read_capture(write_csv(tmp_path / "a.csv", rows))
    gz = read_capture(write_csv(tmp_path / "a.csv.gz", rows))
    table = pa.table(
        {
            "timestamp": pa.array([float(r.split(",")[0]) for r in rows]),
            "arbitration_id": pa.array([r.split(",")[1] for r in rows]),
            "data_field": pa.array([r.split(",")[2] for r in rows]),
            "attack": pa.array([int(r.split(",")[3]) for r in rows], pa.int8()),
        }
    )
    pq.write_table(table, tmp_path / "a.parquet")
    parquet = read_capture(tmp_path / "a.parquet")
    for other in (gz, parquet):
        for field in ("timestamp", "can_id", "dlc", "payload", "attack"):
            np.testing.assert_array_equal(getattr(plain, field), getattr(other, field))


def test_read_capture_parquet_with_integer_ids(tmp_path: Path) -> None:
    table = pa.table(
        {
            "timestamp": [0.0, 0.5],
            "arbitration_id": [0x81, 0x316],
            "data_field": ["0102", "FF"],
            "attack": [0, 1],
        }
    )
    pq.write_table(table, tmp_path / "ints.parquet")
    capture = read_capture(tmp_path / "ints.parquet")
    assert capture.can_id.tolist() == [0x81, 0x316]
    assert capture.payload[:, :2].tolist() == [[1, 2], [255, 0]]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Timestamp,CAN ID,DLC,DATA[0],DATA[1],DATA[2],DATA[3],"
        "DATA[4],DATA[5],DATA[6],DATA[7],Flag",
    ],
)
def test_read_capture_hcrl_rows_with_varying_fields(tmp_path: Path, header: str | None) -> None:
    path = write_csv(
        tmp_path / "DoS_dataset.csv",
        [
            "1478198376.389427,0316,8,05,21,68,09,21,21,00,6f,R",
            "1478198376.389636,018f,2,fe,5b,R",
            "1478198376.389864,0000,8,00,00,00,00,00,00,00,00,T",
            "1478198376.390000,0260,0,R",
        ],
        header=header,
    )
    capture = read_capture(path)
    assert capture.can_id.tolist() == [0x316, 0x18F, 0x0, 0x260]
    assert capture.dlc.tolist() == [8, 2, 8, 0]
    assert capture.payload[0].tolist() == [0x05, 0x21, 0x68, 0x09, 0x21, 0x21, 0x00, 0x6F]
    assert capture.payload[1].tolist() == [0xFE, 0x5B, 0, 0, 0, 0, 0, 0]
    assert capture.attack.tolist() == [False, False, True, False]


BAD_ROWS = [
    ("1.0,XYZ,00,0", "line 3: arbitration_id is not a hex CAN ID"),
    ("1.0,081,0G,0", "line 3: data_field is not hex"),
    ("1.0,081,000,0", "line 3: data_field has an odd number of hex digits"),
    ("1.0,081,000000000000000000,0", "line 3: data_field is longer than 8 bytes"),
    ("1.0,081,00,2", "line 3: attack must be 0 or 1"),
    ("abc,081,00,0", "line 3: timestamp is not a number"),
    # Its inter-arrival time overflowed the float32 edge features: NaN losses, exit 0.
    ("1e300,081,00,0", "line 3: timestamp is out of range"),
    ("1.0,081,00", "line 3: expected 4 fields, got 3"),
    ("1.0,,00,0", "line 3: arbitration_id is not a hex CAN ID"),
]


@pytest.mark.parametrize(("bad_row", "message"), BAD_ROWS)
def test_read_capture_bad_row_names_file_and_line(
    tmp_path: Path, bad_row: str, message: str
) -> None:
    good = ctt_rows(5)
    path = write_csv(tmp_path / "bad.csv", [good[0], bad_row, *good[1:]])
    with pytest.raises(UserError, match=rf"bad\.csv: {message}.*--on-bad-rows skip"):
        read_capture(path)


@pytest.mark.parametrize(("bad_row", "message"), BAD_ROWS)
def test_read_capture_skip_drops_and_counts_bad_rows(
    tmp_path: Path, bad_row: str, message: str
) -> None:
    good = ctt_rows(5)
    path = write_csv(tmp_path / "bad.csv", [good[0], bad_row, *good[1:], bad_row])
    capture = read_capture(path, on_bad_rows="skip")
    assert len(capture) == 5
    assert capture.num_dropped_rows == 2
    assert capture.timestamp.tolist() == [float(r.split(",")[0]) for r in good]


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("1478198376.3,0316,3,05,21,R", "number of data bytes does not match DLC"),
        ("1478198376.3,0316,2,05,21,X", "Flag must be R or T"),
        ("1478198376.3,0316,2,05,2G,R", "data byte '2G' is not 1-2 hex digits"),
        ("1478198376.3,0316,x,R", "DLC must be an integer 0-8"),
    ],
)
def test_read_capture_hcrl_bad_rows(tmp_path: Path, bad_row: str, message: str) -> None:
    good = "1478198376.389636,018f,2,fe,5b,R"
    path = write_csv(tmp_path / "h.csv", [good, bad_row, good], header=None)
    with pytest.raises(UserError, match=rf"h\.csv: line 2: {message}"):
        read_capture(path)
    assert len(read_capture(path, on_bad_rows="skip")) == 2


@pytest.mark.parametrize("hcrl", [False, True])
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_read_capture_row_with_bytes_that_are_not_text(
    tmp_path: Path, hcrl: bool, suffix: str
) -> None:
    # A byte that is not UTF-8 (a capture tool's stray 0xff) is one bad row, with its line,
    # like any other: it used to fail the whole file without one, even under skip.
    rows = ["1478198376.389636,018f,2,fe,5b,R"] * 4 if hcrl else ctt_rows(4)
    text = write_csv(tmp_path / "plain.csv", rows, header=None if hcrl else HEADER).read_bytes()
    lines = text.split(b"\n")
    bad = 1 if hcrl else 2  # the second row
    lines[bad] = lines[bad][:-1] + b"\xff" + lines[bad][-1:]
    lines[3] = b"\xc3" + lines[3]  # a lone UTF-8 lead byte: the next row
    data = b"\n".join(lines)
    path = tmp_path / f"c{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    what = "the row" if hcrl else "attack"
    with pytest.raises(UserError, match=rf"c\.csv(\.gz)?: line {bad + 1}: {what} holds bytes"):
        read_capture(path)
    capture = read_capture(path, on_bad_rows="skip")
    assert len(capture) == 2 and capture.num_dropped_rows == 2


@pytest.mark.parametrize(
    ("row", "message"),
    [
        # Too few fields as well: pyarrow could not hand the row to its handler as text.
        (b"1.1,08\xff1,00", r"line 3: expected 4 fields, got 3 \('1\.1,08\xff1,00'\)"),
        (b"1.1,08\xc3\xa91,00,0", "line 3: arbitration_id holds bytes that are not ASCII"),  # é
    ],
)
def test_read_capture_bad_bytes_in_a_row_pyarrow_rejects(
    tmp_path: Path, row: bytes, message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    good = [r.encode() for r in ctt_rows(3)]
    path = tmp_path / "c.csv"
    path.write_bytes(b"\n".join([HEADER.encode(), good[0], row, *good[1:]]) + b"\n")
    with pytest.raises(UserError, match=message):
        read_capture(path)
    assert len(read_capture(path, on_bad_rows="skip")) == 3
    assert "Exception ignored" not in capfd.readouterr().err


def test_read_capture_missing_column_is_named(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "m.csv", ["1.0,081,00"], header="timestamp,arbitration_id,data_field"
    )
    with pytest.raises(UserError, match=r"m\.csv: line 1: missing column\(s\) attack"):
        read_capture(path)


def test_read_capture_rows_out_of_time_order_are_bad_rows(tmp_path: Path) -> None:
    # They were read as they stood: the graphs' edges had negative inter-arrival times.
    rows = ctt_rows(10)
    rows[3], rows[6] = rows[6], rows[3]  # file lines 5 and 8
    path = write_csv(tmp_path / "o.csv", rows)
    late, early = (float(rows[i].split(",")[0]) for i in (3, 4))
    with pytest.raises(UserError, match=rf"o\.csv: line 6: timestamp {early!r} is earlier than"):
        read_capture(path)
    kept = read_capture(path, on_bad_rows="skip")
    assert (np.diff(kept.timestamp) >= 0).all() and late in kept.timestamp.tolist()
    assert kept.num_dropped_rows == 3 and len(kept) == 7


@pytest.mark.parametrize(
    ("header", "named"),
    [
        ("timestamp,arbitration_id,data_field,attack,attack", "attack appears 2 times"),
        ("Timestamp,arbitration_id,data_field,attack,timestamp", "'Timestamp', 'timestamp'"),
    ],
)
def test_read_capture_csv_column_given_twice_is_named(
    tmp_path: Path, header: str, named: str
) -> None:
    # The first was read and the second ignored: a file whose second attack column held the
    # labels trained on all-normal ones.
    path = write_csv(tmp_path / "d.csv", ["1.0,081,00,0,1"], header=header)
    with pytest.raises(UserError, match=r"d\.csv: line 1: column .*" + re.escape(named)):
        read_capture(path)


def test_read_capture_parquet_column_given_twice_is_named(tmp_path: Path) -> None:
    table = pa.table(_PARQUET_ROWS).append_column("Attack", pa.array([1, 1]))
    pq.write_table(table, tmp_path / "d.parquet")
    with pytest.raises(UserError, match=r"d\.parquet: column attack appears 2 times"):
        read_capture(tmp_path / "d.parquet")


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_read_capture_empty_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "e.csv").write_bytes(content)
    with pytest.raises(UserError, match=r"e\.csv: empty file"):
        read_capture(tmp_path / "e.csv")


def test_read_capture_header_only_has_no_messages(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "h.csv", [])
    with pytest.raises(UserError, match=r"h\.csv: no valid messages"):
        read_capture(path)


def test_read_capture_truncated_gzip(tmp_path: Path) -> None:
    full = write_csv(tmp_path / "full.csv.gz", ctt_rows(20000, seed=1))
    data = full.read_bytes()
    (tmp_path / "cut.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"cut\.csv\.gz: cannot .*(truncated|corrupt|gzip)"):
        read_capture(tmp_path / "cut.csv.gz")


def test_read_capture_missing_or_foreign_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nope\.csv: no such capture file"):
        read_capture(tmp_path / "nope.csv")
    (tmp_path / "notes.txt").write_text(HEADER)
    with pytest.raises(UserError, match=r"notes\.txt: not a capture file"):
        read_capture(tmp_path / "notes.txt")
    (tmp_path / "weird.csv").write_text("a;b;c\n1;2;3\n")
    with pytest.raises(UserError, match=r"weird\.csv: line 1: unrecognised format"):
        read_capture(tmp_path / "weird.csv")


def test_read_capture_rejects_unknown_policy(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", ctt_rows(3))
    with pytest.raises(UserError, match="--on-bad-rows must be 'error' or 'skip'"):
        read_capture(path, on_bad_rows="ignore")  # type: ignore[arg-type]


_field = st.one_of(
    st.text(alphabet="0123456789abcdefABCDEFxyz.-, ", max_size=20),
    st.integers(0, 0x1FFFFFFF).map(lambda v: f"{v:X}"),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.lists(_field, min_size=1, max_size=5), min_size=1, max_size=30),
    policy=st.sampled_from(["error", "skip"]),
)
def test_read_capture_random_input_gives_capture_or_user_error(
    tmp_path: Path, rows: list[list[str]], policy: str
) -> None:
    path = tmp_path / "random.csv"
    path.write_text("\n".join([HEADER, *(",".join(r) for r in rows)]) + "\n")
    try:
        capture = read_capture(path, on_bad_rows=policy)  # type: ignore[arg-type]
    except UserError as err:
        assert "random.csv" in str(err)
        return
    assert len(capture) >= 1
    assert (capture.dlc <= 8).all()
    for i, dlc in enumerate(capture.dlc):
        assert not capture.payload[i, dlc:].any()
    if policy == "skip":
        assert len(capture) + capture.num_dropped_rows <= len(rows)


def test_read_capture_real_capture(shared_data: Path) -> None:
    path = shared_data / "hcrl_sa" / "train_02_with_attacks" / "DoS-kia.csv.gz"
    capture = read_capture(path)
    with gzip.open(path, "rt") as f:
        num_lines = sum(1 for _ in f) - 1
    assert len(capture) == num_lines
    assert capture.attack.any() and not capture.attack.all()
    assert (np.diff(capture.timestamp) >= -1e-3).all()


_PARQUET_ROWS = {
    "timestamp": [0.0, 0.5],
    "arbitration_id": ["081", "316"],
    "data_field": ["0102", "FF"],
    "attack": [0, 1],
}


@pytest.mark.parametrize(
    "column",
    [
        {"data_field": pa.array([b"\x01\x02", b"\xff"], pa.binary())},  # the payload's bytes
        {"data_field": pa.array([b"0102", b"FF"], pa.binary())},  # hex text, not annotated
        {"attack": pa.array([False, True])},
        {"attack": pa.array([0.0, 1.0])},
        {"attack": pa.array(["0", " 1"])},
        {"arbitration_id": pa.array([0x81, 0x316], pa.uint64())},
        {"arbitration_id": pa.array([129.0, 790.0])},  # 129, not 0x129
    ],
)
def test_parquet_columns_of_other_types_read_as_the_same_capture(
    tmp_path: Path, column: dict[str, pa.Array]
) -> None:
    pq.write_table(pa.table({**_PARQUET_ROWS, **column}), tmp_path / "a.parquet")
    capture = read_capture(tmp_path / "a.parquet")
    assert capture.can_id.tolist() == [0x81, 0x316]
    assert capture.payload[:, :2].tolist() == [[1, 2], [255, 0]]
    assert capture.attack.tolist() == [False, True]


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ({"attack": pa.array([0.0, 1.5])}, "line 2: attack must be 0 or 1, got 1.5"),
        ({"attack": pa.array(["0", "x"])}, "line 2: attack must be 0 or 1, got 'x'"),
        ({"attack": pa.array([0, 2**63], pa.uint64())}, "attack must be 0 or 1, got 92233"),
        (
            {"arbitration_id": pa.array([0x81, 2**64 - 1], pa.uint64())},
            "line 2: arbitration_id is not a CAN ID (0 to 2^29-1): 18446744073709551615",
        ),
        ({"timestamp": pa.array([[1.0], [2.0]])}, "column timestamp has type list<"),
        ({"data_field": pa.array([{"a": 1}, {"a": 2}])}, "column data_field has type struct<"),
        ({"arbitration_id": pa.array([b"\xff", b"\x01"])}, "arbitration_id holds bytes that"),
        # Numbers have no byte length, and 1234 was read as the hex bytes 12 34.
        ({"data_field": pa.array([1234, 255])}, "column data_field has type int64; expected"),
        (
            {"data_field": pa.array([1.0, 2.0]).dictionary_encode()},
            "column data_field has type double; expected",
        ),
    ],
)
def test_parquet_columns_of_types_that_cannot_be_read_are_named(
    tmp_path: Path, column: dict[str, pa.Array], message: str
) -> None:
    # They were tracebacks (ArrowInvalid, OverflowError, ArrowNotImplementedError).
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({**_PARQUET_ROWS, **column}), path)
    with pytest.raises(UserError, match=re.escape(f"{path}: ") + ".*" + re.escape(message)):
        read_capture(path)
