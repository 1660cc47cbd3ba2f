"""`modelops project init` reads a CSV as it is written: its encoding (detected, or
``--encoding``), its separator (sniffed, or ``--sep``), decimal commas; undecodable bytes are
refused with their line; the first line says how many rows the gaps between windows drop.

Every table here is made by the test from a seed: accented city names, a ``;`` export with
decimal commas, a stray byte in a UTF-8 file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelops.cli.main import main
from modelops.config.settings import Settings
from modelops.services.project_init.intake import read_table

CITIES = ["Zürich", "Genève", "Malmö", "São Paulo", "Köln", "Besançon"]
COMMON = (
    "--label", "Subscribed", "--positive", "Yes", "--synthesize-ids",
    "--synthesize-time", "2023-01-01..2024-12-31", "--label-delay", "30d", "--costs", "50,5",
)  # fmt: skip


def _table(rows: int = 1_200, seed: int = 3) -> pd.DataFrame:
    """A public-style table without ids or times; the city carries part of the signal."""
    rng = np.random.default_rng(seed)
    city = rng.choice(CITIES, rows)
    balance = rng.gamma(2.0, 800.0, rows).round(2)
    calls = rng.integers(1, 9, rows)
    logit = -1.5 + 0.0004 * (balance - 1600) - 0.2 * calls + 0.9 * (city == "Köln")
    subscribed = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "Yes", "No")
    return pd.DataFrame(
        {"City": city, "Balance": balance, "Calls": calls, "Subscribed": subscribed}
    )


def _init(
    workspace: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    source: Path,
    *extra: str,
) -> tuple[int, str, str]:
    monkeypatch.setenv("MODELOPS_ROOT", str(workspace.root))
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["project", "init", "bank", "--from-csv", str(source), *COMMON, *extra])
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def _features(workspace: Settings) -> pd.DataFrame:
    return pd.read_parquet(workspace.data_dir / "bank_features.parquet")


def test_a_latin1_file_keeps_its_accented_column(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = _table()
    source = workspace.root.parent / "bank.csv"
    frame.to_csv(source, index=False, encoding="latin-1")
    code, out, err = _init(workspace, monkeypatch, capsys, source)
    assert code == 0, err
    assert "binary values" not in out
    assert "note: encoding cp1252, detected: not UTF-8 from line 2 on" in out
    features = _features(workspace)
    assert set(features["city"]) == set(CITIES)
    assert (features["city"].to_numpy() == frame["City"].to_numpy()).all()
    assert "categorical (text columns): city" in out


def test_encoding_given_reads_what_detection_would_not_choose(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = _table()
    central = dict(zip(CITIES, ["Łódź", "Brno", "Győr", "Kraków", "Plzeň", "Košice"], strict=True))
    frame["City"] = frame["City"].map(central)
    source = workspace.root.parent / "bank.csv"
    frame.to_csv(source, index=False, encoding="cp1250")
    code, out, err = _init(workspace, monkeypatch, capsys, source, "--encoding", "cp1250")
    assert code == 0, err
    assert "detected" not in out
    assert set(_features(workspace)["city"]) == set(central.values())
    spec = (workspace.root / "projects/bank/project.yaml").read_text()
    assert "--encoding cp1250" in spec.splitlines()[2]


@pytest.mark.parametrize(
    ("encoding", "given", "expected"),
    [
        ("utf-8", None, "line 42: bytes 0xF6 0x0A are not UTF-8, while other lines are"),
        ("latin-1", "utf-8", "line 2: bytes 0x"),
        ("latin-1", "ascii", "cannot be decoded as ascii (--encoding ascii)"),
    ],
    ids=["stray-byte-in-utf8", "latin1-read-as-utf8", "latin1-read-as-ascii"],
)
def test_undecodable_bytes_are_refused_with_their_line(
    workspace: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    encoding: str,
    given: str | None,
    expected: str,
) -> None:
    frame = _table()
    frame.loc[0, "City"] = "Zürich"  # line 2 holds a non-ASCII character
    lines = frame.to_csv(index=False).encode(encoding).split(b"\n")
    if encoding == "utf-8":
        lines[41] = lines[41] + b"\xf6"  # one latin-1 byte in a UTF-8 file
    source = workspace.root.parent / "bank.csv"
    source.write_bytes(b"\n".join(lines))
    extra = ("--encoding", given) if given else ()
    code, out, err = _init(workspace, monkeypatch, capsys, source, *extra)
    assert code == 2, out
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert expected in err, err
    assert not (workspace.root / "projects/bank").exists()


def test_an_unknown_encoding_is_refused(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = workspace.root.parent / "bank.csv"
    _table().to_csv(source, index=False)
    code, _, err = _init(workspace, monkeypatch, capsys, source, "--encoding", "klingon-8")
    assert code == 2
    assert err.strip() == (
        "error: --encoding 'klingon-8': not an encoding Python knows (e.g. utf-8, cp1252, latin-1)"
    )


def test_a_semicolon_file_with_decimal_commas_is_sniffed(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = _table()
    source = workspace.root.parent / "bank.csv"
    frame.to_csv(source, index=False, sep=";", decimal=",")
    code, out, err = _init(workspace, monkeypatch, capsys, source)
    assert code == 0, err
    assert "note: separator ';' (sniffed; --sep to choose another)" in out
    assert "note: numbers with a decimal comma read as numbers: 'Balance'" in out
    features = _features(workspace)
    assert features["balance"].dtype == np.float64
    assert np.allclose(features["balance"].to_numpy(), frame["Balance"].to_numpy())
    assert features["city"].tolist() == frame["City"].tolist()


def test_a_tab_file_is_sniffed_and_sep_is_recorded(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = workspace.root.parent / "bank.txt"
    _table().to_csv(source, index=False, sep="\t")
    code, out, err = _init(workspace, monkeypatch, capsys, source)
    assert code == 0, err
    assert "note: separator a tab (sniffed" in out
    code, out, err = _init(workspace, monkeypatch, capsys, source, "--sep", "\\t", "--force")
    assert code == 0, err
    assert "sniffed" not in out
    assert list(_features(workspace).columns)[-3:] == ["city", "balance", "calls"]


@pytest.mark.parametrize(
    ("decimal", "expected"),
    [
        (".", "--label 'Subscribed': no such column in"),
        (",", "cannot be read: CSV parse error"),
    ],
    ids=["one-column-read", "parse-error"],
)
def test_a_header_holding_the_separator_is_explained(
    workspace: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    decimal: str,
    expected: str,
) -> None:
    source = workspace.root.parent / "bank.csv"
    _table().to_csv(source, index=False, sep=";", decimal=decimal)
    code, _, err = _init(workspace, monkeypatch, capsys, source, "--sep", ",")
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err, err
    assert err.rstrip().endswith(
        "the header 'City;Balance;Calls;Subscribed' holds ';': if that is the separator, "
        "pass --sep ';'"
    ), err


def test_the_first_line_reports_the_rows_the_gaps_drop(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = workspace.root.parent / "bank.csv"
    _table(rows=2_000).to_csv(source, index=False)
    code, out, err = _init(workspace, monkeypatch, capsys, source)
    assert code == 0, err
    first = out.splitlines()[0]
    windows = [line.split() for line in out.splitlines()[3:6]]
    in_windows = sum(int(w[2].replace(",", "")) for w in windows)
    dropped = 2_000 - in_windows
    assert 0 < dropped < 2_000 * 0.15
    assert first.startswith(
        f"bank: 2,000 of 2,000 rows from bank.csv, {in_windows:,} in the windows: {dropped:,} "
        f"({dropped / 2_000:.1%}) dropped in the 30-day gaps between them"
    ), first


def test_read_table_on_utf8_with_a_byte_order_mark_needs_no_detection(tmp_path: Path) -> None:
    source = tmp_path / "bom.csv"
    source.write_bytes("\ufeffCity,n\nZürich,1\nKöln,2\n".encode())
    notes: list[str] = []
    table = read_table(source, notes=notes)
    assert table.column_names == ["City", "n"] and notes == []
    assert table.column("City").to_pylist() == ["Zürich", "Köln"]
