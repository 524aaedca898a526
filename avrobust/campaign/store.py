"""The results store: one SQLite database (WAL mode) per run directory.

A job's rows are written in one transaction together with its status, so an interrupted run
loses at most the jobs in flight, and rerunning the same command skips every finished job. The
campaign file and software versions are stored for provenance. Schema changes bump
``SCHEMA_VERSION``; an older database is refused with a clear message rather than misread.
"""

from __future__ import annotations

import json
import platform
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from avrobust.campaign.records import (
    AlarmRecord,
    CampaignRecord,
    DetectionRecord,
    DriveRecord,
    EncounterRecord,
    FrameRecord,
    JobOutcome,
    JobRecord,
    PictureRecord,
)
from avrobust.core.errors import DataError
from avrobust.scenario.campaign import Job

SCHEMA_VERSION = 4
# Version 2 added the detections, pictures and components tables, version 3 the alarms table,
# version 4 the drives table (closed loop); an older store gains them (empty) when opened, so
# older runs stay readable.
_UPGRADABLE = {1, 2, 3}
DB_NAME = "results.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS campaigns (
    registered REAL NOT NULL, name TEXT NOT NULL, text TEXT NOT NULL, versions TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, idx INTEGER NOT NULL, scenario TEXT NOT NULL, conditions TEXT NOT NULL,
    model TEXT NOT NULL, attack TEXT NOT NULL, defence TEXT NOT NULL, spec TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', error TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    finished REAL, duration REAL, frames INTEGER);
CREATE TABLE IF NOT EXISTS frames (
    job_id TEXT NOT NULL, frame INTEGER NOT NULL, target TEXT NOT NULL, time REAL,
    distance REAL, bearing REAL, visible INTEGER, visible_fraction REAL, box_height REAL,
    surface_pixels INTEGER, lidar_points INTEGER, detected INTEGER, predicted TEXT,
    correct INTEGER, score REAL, PRIMARY KEY (job_id, frame, target));
CREATE TABLE IF NOT EXISTS encounters (
    job_id TEXT NOT NULL, target TEXT NOT NULL, frames_in_window INTEGER,
    frames_visible INTEGER, frames_failed INTEGER, longest_failure INTEGER, failed INTEGER,
    PRIMARY KEY (job_id, target));
CREATE TABLE IF NOT EXISTS detections (
    job_id TEXT NOT NULL, frame INTEGER NOT NULL, kind TEXT NOT NULL, truth TEXT NOT NULL,
    predicted TEXT NOT NULL, PRIMARY KEY (job_id, frame));
CREATE TABLE IF NOT EXISTS pictures (
    job_id TEXT NOT NULL, frame INTEGER NOT NULL, role TEXT NOT NULL, path TEXT NOT NULL,
    PRIMARY KEY (job_id, frame, role));
CREATE TABLE IF NOT EXISTS components (job_id TEXT PRIMARY KEY, provenance TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alarms (
    job_id TEXT NOT NULL, frame INTEGER NOT NULL, "check" TEXT NOT NULL, kind TEXT NOT NULL,
    detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alarms_job ON alarms (job_id);
CREATE TABLE IF NOT EXISTS drives (
    job_id TEXT PRIMARY KEY, result TEXT NOT NULL, trace BLOB NOT NULL, from_model TEXT NOT NULL);
"""
PICTURES_DIR = "pictures"


def software_versions() -> dict[str, str]:
    import importlib

    out = {"python": platform.python_version()}
    for mod in ("avrobust", "torch", "torchvision", "kornia", "open3d", "numpy", "carla", "ray"):
        try:
            m = importlib.import_module(mod)
            out[mod] = str(getattr(m, "__version__", "installed"))
        except Exception:
            out[mod] = "not installed"
    out["avrobust commit"] = _git_commit()
    return out


def _git_commit() -> str:
    """The source checkout's commit (with '+changes' when it differs), or 'not a checkout'."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return "not a checkout"
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + (" +changes" if dirty else "")


class ResultsStore:
    """Open (creating when missing) the store of a run directory."""

    def __init__(self, run_dir: str | Path, create: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / DB_NAME
        if not self.path.exists():
            if not create:
                raise DataError(
                    "no results store here (is this a run directory?)", file=self.run_dir
                )
            self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            with self.db:
                self.db.executescript(_SCHEMA)
            version = self.meta("schema_version")
        except sqlite3.DatabaseError as exc:
            raise DataError(f"not a readable results store ({exc})", file=self.path) from None
        if version is None or int(version) in _UPGRADABLE:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) != SCHEMA_VERSION:
            raise DataError(
                f"results store has schema version {version}; this avrobust reads "
                f"version {SCHEMA_VERSION}",
                file=self.path,
                field="schema_version",
            )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- metadata --------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- jobs ------------------------------------------------------------------------------
    def register(self, campaign_name: str, campaign_text: str, jobs: list[Job]) -> int:
        """Record the campaign and add its jobs that are not stored yet; returns how many were
        new. A run directory holds one campaign (by name)."""
        existing = self.meta("campaign")
        if existing is not None and existing != campaign_name:
            raise DataError(
                f"this run directory holds campaign {existing!r}, not "
                f"{campaign_name!r}; choose another --out",
                file=self.run_dir,
            )
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('campaign', ?)", (campaign_name,))
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('created', ?)", (str(time.time()),))
            self.db.execute(
                "INSERT INTO campaigns VALUES (?, ?, ?, ?)",
                (time.time(), campaign_name, campaign_text, json.dumps(software_versions())),
            )
            before = self.db.total_changes
            self.db.executemany(
                "INSERT OR IGNORE INTO jobs (id, idx, scenario, conditions, model, attack, "
                "defence, spec) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        j.id,
                        i,
                        j.scenario_name,
                        json.dumps(j.conditions, sort_keys=True),
                        json.dumps(j.model, sort_keys=True),
                        json.dumps(j.attack, sort_keys=True),
                        json.dumps(j.defence, sort_keys=True),
                        j.to_json(),
                    )
                    for i, j in enumerate(jobs)
                ],
            )
            return self.db.total_changes - before

    def pending(self, job_ids: Iterable[str] | None = None) -> list[Job]:
        """Jobs not finished yet (pending or failed), in campaign order."""
        rows = self.db.execute("SELECT id, spec FROM jobs WHERE status != 'done' ORDER BY idx")
        wanted = None if job_ids is None else set(job_ids)
        return [Job.from_json(spec) for jid, spec in rows if wanted is None or jid in wanted]

    def record(self, outcome: JobOutcome, attempts: int = 1) -> None:
        """Store a job's outcome in one transaction (rows and status together)."""
        with self.db:
            if outcome.error is not None:
                self.db.execute(
                    "UPDATE jobs SET status='failed', error=?, attempts=attempts+?, finished=?, "
                    "duration=? WHERE id=?",
                    (outcome.error, attempts, time.time(), outcome.duration, outcome.job_id),
                )
                return
            for table in (
                "frames",
                "encounters",
                "detections",
                "pictures",
                "components",
                "alarms",
                "drives",
            ):
                self.db.execute(f"DELETE FROM {table} WHERE job_id=?", (outcome.job_id,))
            self.db.executemany(
                f"INSERT INTO frames VALUES ({','.join('?' * len(FrameRecord.columns()))})",
                [r.row() for r in outcome.frames],
            )
            self.db.executemany(
                f"INSERT INTO encounters VALUES ({','.join('?' * len(EncounterRecord.columns()))})",
                [r.row() for r in outcome.encounters],
            )
            self.db.executemany(
                "INSERT INTO detections VALUES (?, ?, ?, ?, ?)",
                [r.row() for r in outcome.detections],
            )
            self.db.executemany(
                "INSERT INTO pictures VALUES (?, ?, ?, ?)",
                [
                    (outcome.job_id, p.frame, p.role, self._write_picture(outcome.job_id, p))
                    for p in outcome.pictures
                ],
            )
            self.db.executemany(
                "INSERT INTO alarms VALUES (?, ?, ?, ?, ?)", [r.row() for r in outcome.alarms]
            )
            if outcome.drive is not None:  # with the job's other rows: a drive is whole or absent
                self.db.execute("INSERT INTO drives VALUES (?, ?, ?, ?)", outcome.drive.row())
            self.db.execute(
                "INSERT INTO components VALUES (?, ?)",
                (outcome.job_id, json.dumps(outcome.components, sort_keys=True)),
            )
            self.db.execute(
                "UPDATE jobs SET status='done', error=NULL, attempts=attempts+?, finished=?, "
                "duration=?, frames=? WHERE id=?",
                (attempts, time.time(), outcome.duration, outcome.num_frames, outcome.job_id),
            )

    def _write_picture(self, job_id: str, picture) -> str:
        """Write an example frame beside the store; returns its path relative to the run."""
        from avrobust.core.files import atomic_write

        rel = f"{PICTURES_DIR}/{job_id}_{picture.frame:03d}_{picture.role}.jpg"
        with atomic_write(self.run_dir / rel) as fh:
            fh.write(picture.jpeg)
        return rel

    # --- reading: the records (frames and encounters sorted by job, the rest as written) -----
    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        out = {"pending": 0, "done": 0, "failed": 0}
        out.update(dict(rows))
        out["total"] = sum(v for k, v in out.items() if k != "total")
        return out

    def jobs(self, status: str | None = None) -> list[JobRecord]:
        """The jobs in campaign order, all or those with ``status`` (pending, done, failed)."""
        where, params = (" WHERE status = ?", (status,)) if status else ("", ())
        rows = self.db.execute(f"SELECT {_cols(JobRecord)} FROM jobs{where} ORDER BY idx", params)
        return [JobRecord.from_row(r) for r in rows]

    def frames(self) -> list[FrameRecord]:
        return self._records(FrameRecord, "frames", "job_id, frame, target")

    def encounters(self) -> list[EncounterRecord]:
        return self._records(EncounterRecord, "encounters", "job_id, target")

    def detections(self) -> list[DetectionRecord]:
        return self._records(DetectionRecord, "detections", "rowid")

    def pictures(self) -> list[PictureRecord]:
        return self._records(PictureRecord, "pictures", "rowid")

    def alarms(self) -> list[AlarmRecord]:
        return self._records(AlarmRecord, "alarms", "rowid")

    def drives(self) -> list[DriveRecord]:
        """The closed-loop jobs' drives, in the order they were stored."""
        return self._records(DriveRecord, "drives", "rowid")

    def components(self) -> dict[str, dict]:
        """Job id -> the provenance of its model, attack and defence as they were when it ran."""
        rows = self.db.execute("SELECT job_id, provenance FROM components ORDER BY rowid")
        return {jid: json.loads(text) for jid, text in rows}

    def campaign(self) -> CampaignRecord | None:
        """The campaign as last registered (its text and the registering software's versions)."""
        row = self.db.execute(
            f"SELECT {_cols(CampaignRecord)} FROM campaigns ORDER BY registered DESC LIMIT 1"
        ).fetchone()
        return None if row is None else CampaignRecord.from_row(row)

    def campaign_text(self) -> str | None:
        entry = self.campaign()
        return None if entry is None else entry.text

    def columns(self, table: str) -> list[str]:
        """A table's columns as the database has them (for the schema-against-records check)."""
        return [r[1] for r in self.db.execute(f'PRAGMA table_info("{table}")')]

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Raw SQL, for tests and debugging; the package reads through the methods above."""
        return self.db.execute(sql, params).fetchall()

    def _records(self, record: type, table: str, order: str) -> list:
        rows = self.db.execute(f"SELECT {_cols(record)} FROM {table} ORDER BY {order}")
        return [record.from_row(r) for r in rows]

    def table(self, name: str) -> tuple[list[str], list[tuple]]:
        if name not in ("jobs", "frames", "encounters"):
            raise ValueError(name)
        cur = self.db.execute(f"SELECT * FROM {name} ORDER BY rowid")
        return [d[0] for d in cur.description], cur.fetchall()

    def export(self, fmt: str, out_dir: Path | None = None) -> list[Path]:
        """Write jobs, frames and encounters as CSV or Parquet files."""
        from avrobust.core.files import atomic_path

        out_dir = Path(out_dir or self.run_dir / "export")
        written = []
        for name in ("jobs", "frames", "encounters"):
            cols, rows = self.table(name)
            path = out_dir / f"{name}.{fmt}"
            with atomic_path(path) as tmp:
                if fmt == "csv":
                    import csv

                    with open(tmp, "w", newline="") as fh:
                        w = csv.writer(fh)
                        w.writerow(cols)
                        w.writerows(rows)
                elif fmt == "parquet":
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    table = pa.table({c: [r[i] for r in rows] for i, c in enumerate(cols)})
                    pq.write_table(table, tmp)
                else:
                    raise DataError(
                        f"unknown export format {fmt!r}", field="--format", allowed="csv, parquet"
                    )
            written.append(path)
        return written


def _cols(record: type) -> str:
    return ", ".join(f'"{c}"' for c in record.columns())


def outcome_summary(store: ResultsStore) -> dict[str, Any]:
    """Numbers for ``avrobust runs show``."""
    done = store.jobs("done")
    return {
        "jobs": store.counts(),
        "duration_s": sum(j.duration or 0.0 for j in done),
        "frames_rendered": sum(j.frames or 0 for j in done),
    }
