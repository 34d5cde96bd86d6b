"""mixlab's llm.c export read by a compiled C loader that follows llm.c's DataLoader (``llmc/dataloader.h``).

``tests/data/llmc_reader.c`` (mixlab's own code, not llm.c's) globs the shard files in name order, validates each
one as llm.c does (256 int32 header; magic 20240520 with version 1 for uint16 tokens or 20240801 with version 7
for uint32; token count > 0; file size == header + count tokens; at least one global batch), then reads every
``B*T+1`` window of every process at llm.c's offsets and dumps inputs and targets. The tests compile it with the
system C compiler (``$CC``, ``cc`` or ``gcc``; skipped, saying so, when there is none) and compare what it read
with the tokens mixlab packed, read back from the phase's shard files with numpy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xxhash

from mixlab.pack.dataset import SequenceLoader, open_phase
from mixlab.pack.export import Export, export_phase
from tests.test_export import MIX, B, L, make_phase, packed

SOURCE = Path(__file__).parent / "data" / "llmc_reader.c"
PROCESSES = 2  # llm.c's num_processes; each process reads B // PROCESSES rows per step (global batch = B)


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C loader, compiled once for the module with the system C compiler."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        pytest.skip("no C compiler (cc or gcc, or $CC) on PATH to build tests/data/llmc_reader.c")
    binary = tmp_path_factory.mktemp("llmc") / "llmc_reader"
    built = subprocess.run([compiler, "-std=c11", "-O2", "-Wall", "-Wextra", "-o", str(binary), str(SOURCE)],
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, f"{compiler} failed to build {SOURCE}:\n{built.stderr}"
    return binary


def run_reader(reader: Path, pattern: str, out: Path, rows: int = B // PROCESSES,
               processes: int = PROCESSES) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(reader), pattern, str(rows), str(L), str(processes), str(out)],
                          capture_output=True, text=True, timeout=120)


def export_files(tmp: Path, vocab: int) -> tuple[Path, Export, list[Path]]:
    """A three-source phase exported as llm.c files of three batches each (several files, a short last one)."""
    phase = make_phase(tmp, vocab, MIX, tokens=4000)
    res = export_phase(phase, tmp / "llmc" / "train", "llmc", llmc_file_tokens=3 * B * L)
    files = sorted((tmp / "llmc").glob("train_*.bin"))
    assert len(files) == len(res.files) > 2
    return phase, res, files


def expected_windows(want: np.ndarray, files: list[Path]) -> np.ndarray:
    """What llm.c must read, from the packed sequences alone: file f holds the next ``(ntok - 1) // L`` sequences
    (ntok from its header) as the stream ``seq[:L]`` of each, then its last sequence's token L; windows follow
    llm.c's order (sample, then process), each its inputs then its targets, as uint32."""
    rows, parts, first = B // PROCESSES, [], 0
    for f in files:
        n = (int(np.fromfile(f, "<i4", 3)[2]) - 1) // L
        seqs = want[first : first + n]
        stream = np.concatenate([seqs[:, :L].ravel(), seqs[-1, L:]])
        for w in range(n // rows):  # (sample * P + process) = w: windows are consecutive in the stream
            start = w * rows * L
            parts += [stream[start : start + rows * L], stream[start + 1 : start + rows * L + 1]]
        first += n
    assert first == len(want)
    return np.concatenate(parts).astype("<u4")


@pytest.mark.skipif(sys.byteorder != "little", reason="the expected dump is built little-endian, as llm.c's hosts")
@pytest.mark.parametrize("vocab", [1000, 100_000], ids=["uint16-v1", "uint32-v7"])
def test_c_loader_reads_exactly_the_packed_tokens(reader: Path, vocab: int, tmp_path: Path) -> None:
    """Invariant: a C program that loads mixlab's sharded llm.c export as llm.c's DataLoader does (header checks,
    then B*T+1 windows per process at llm.c's offsets, files in glob order) accepts every file and reads exactly
    the tokens mixlab packed: its dump equals, byte for byte, the windows built from the phase's shard files;
    every step's inputs, rank by rank, are the SequenceLoader's batch inputs (what mixlab trains on); and its
    targets differ from each sequence's own next tokens only at the export's counted seams. Fails on a wrong
    magic/version for the token width, a header count that disagrees with the file size, a file that is not
    whole batches, or any token out of place."""
    phase, res, files = export_files(tmp_path, vocab)
    want = packed(phase)
    dump = tmp_path / "read.u32"
    ran = run_reader(reader, str(tmp_path / "llmc" / "train_*.bin"), dump)
    assert ran.returncode == 0, ran.stderr
    rows = B // PROCESSES
    total = sum(int(np.fromfile(f, "<i4", 3)[2]) for f in files)
    assert ran.stdout.split() == ["files", str(len(files)), "windows", str(len(want) // rows), "tokens", str(total)]

    got, expected = dump.read_bytes(), expected_windows(want, files).tobytes()
    assert got == expected, (f"C loader read xxh64 {xxhash.xxh64(got).hexdigest()} ({len(got)} bytes), mixlab "
                             f"packed xxh64 {xxhash.xxh64(expected).hexdigest()} ({len(expected)} bytes)")

    windows = np.frombuffer(got, "<u4").reshape(-1, 2, rows, L).astype(np.int64)  # [window, inputs|targets, B, T]
    loaders = [SequenceLoader(open_phase(phase), B, rank=p, world_size=PROCESSES) for p in range(PROCESSES)]
    for w, (inputs, _) in enumerate(windows):
        step, rank = divmod(w, PROCESSES)
        assert (inputs == loaders[rank].batch(step)[:, :L].numpy()).all(), f"step {step} rank {rank}"
    targets = windows[:, 1].reshape(-1, L)
    assert (targets[:, :-1] == want[:, 1:L]).all()
    assert int(np.count_nonzero(targets[:, -1] != want[:, L])) == res.seams


@pytest.mark.parametrize("damage, message", [
    ("magic", "bad magic"),
    ("version", "bad version"),
    ("truncated", "file size"),
    ("trailing", "file size"),
    ("count", "file size"),
])
def test_c_loader_refuses_a_damaged_file_before_reading(reader: Path, damage: str, message: str,
                                                       tmp_path: Path) -> None:
    """Invariant: the C loader applies llm.c's header checks to every file before it serves a batch: a wrong magic,
    a version that does not match the magic, a file shorter or longer than header + count tokens, or a header
    count that disagrees with the file, in any one file (here the second), stops it with an error naming that
    file and nothing read. Fails if the reader trusted the header or checked only the first file (then the
    dump of the first file's windows would exist)."""
    _, _, files = export_files(tmp_path, 1000)
    target = files[1]
    raw = bytearray(target.read_bytes())
    header = np.frombuffer(raw, "<i4", 3).copy()
    if damage == "magic":
        header[0] = 20240521
    elif damage == "version":
        header[1] = 7
    elif damage == "count":
        header[2] += 1
    raw[:12] = header.tobytes()
    if damage == "truncated":
        raw = raw[:-2]
    elif damage == "trailing":
        raw += b"\x00\x00"
    target.write_bytes(bytes(raw))
    dump = tmp_path / "read.u32"
    ran = run_reader(reader, str(tmp_path / "llmc" / "train_*.bin"), dump)
    assert ran.returncode == 1
    assert ran.stderr.startswith(str(target)) and message in ran.stderr, ran.stderr
    assert not dump.exists()


def test_c_loader_refuses_files_smaller_than_one_batch(reader: Path, tmp_path: Path) -> None:
    """Invariant: as in llm.c, every file must hold at least one global batch (P*B*T+1 tokens); a batch larger than
    a file is refused instead of reading past its end. Fails if the reader served windows beyond a file."""
    _, _, files = export_files(tmp_path, 1000)
    ntok = int(np.fromfile(files[-1], "<i4", 3)[2])
    ran = run_reader(reader, str(tmp_path / "llmc" / "train_*.bin"), tmp_path / "read.u32",
                     rows=(ntok - 1) // L + 1, processes=1)
    assert ran.returncode == 1 and "fewer tokens than one batch" in ran.stderr, ran.stderr
