"""UTCDateTime on SQLite writes the text SQLAlchemy's DATETIME writes, and reads it back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.models import UTCDateTime

metadata = sa.MetaData()
times = sa.Table(
    "times",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("aware", UTCDateTime()),
    sa.Column("plain", sa.DateTime()),  # SQLAlchemy's own SQLite DATETIME, given naive UTC
)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> sa.Engine:
    path: Path = tmp_path_factory.mktemp("utc") / "times.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    return engine


@settings(max_examples=300, deadline=None)
@given(moment=moments)
def test_the_stored_text_is_sqlalchemys_and_reads_back_as_utc(engine, moment: datetime) -> None:
    utc = moment.astimezone(UTC)
    with engine.begin() as conn:
        conn.execute(times.delete())
        conn.execute(times.insert().values(id=1, aware=moment, plain=utc.replace(tzinfo=None)))
        aware_text, plain_text = conn.execute(
            sa.text("SELECT aware, plain FROM times WHERE id = 1")
        ).one()
        assert aware_text == plain_text
        assert len(aware_text) == 26  # "2026-03-02 09:00:00.000000": sorts as it compares
        read = conn.execute(sa.select(times.c.aware)).scalar_one()
    assert read == moment and read.tzinfo is UTC


def test_comparisons_in_sql_use_the_same_text(engine) -> None:
    berlin_summer = timezone(timedelta(hours=2))
    with engine.begin() as conn:
        conn.execute(times.delete())
        conn.execute(
            times.insert(),
            [
                {"id": 1, "aware": datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=UTC)},
                {"id": 2, "aware": datetime(2026, 3, 29, 3, 0, tzinfo=berlin_summer)},
                {"id": 3, "aware": datetime(2026, 3, 29, 1, 0, 1, tzinfo=UTC)},
            ],
        )
        later = conn.execute(
            sa.select(times.c.id)
            .where(times.c.aware >= datetime(2026, 3, 29, 1, tzinfo=UTC))
            .order_by(times.c.aware)
        ).scalars()
        assert list(later) == [2, 3]


def test_a_naive_datetime_is_refused(engine) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), engine.begin() as conn:
        conn.execute(times.insert().values(id=9, aware=datetime(2026, 3, 2, 9)))
