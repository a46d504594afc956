"""Product usage: Segment ``track`` calls of each active user, one month of one chunk at a time.

One line is one (user, day, event type) with ``properties.count`` repeats, as a client that
batches its calls would send. The daily active users come from the history; here each of them
does each event type with a probability that grows with health (logins excepted), and repeats
it a health-dependent number of times. The new segment uses the API far more and logs in
far less.

This is the volume hot path, so every string column is assembled as fixed-width bytes by numpy
gathers from small lookup tables, and handed to Arrow without copying; no Python object is made
per line.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa

from csa.ingestion.simulator.history import ChunkHistory
from csa.ingestion.simulator.scenarios import USAGE_DROP_EVENT, USAGE_DROP_FACTOR, Scenario
from csa.ingestion.simulator.timeline import SECONDS_PER_DAY, Timeline, working_seconds

EVENTS = (
    ("Logged In", "login"),
    ("Report Created", "report_created"),
    ("Dashboard Viewed", "dashboard_viewed"),
    ("Integration Connected", "integration_connected"),
    ("API Call Made", "api_call"),
    ("User Invited", "user_invited"),
    ("Data Exported", "data_exported"),
    ("Alert Configured", "alert_configured"),
    ("Comment Posted", "comment_posted"),
)
EVENT_NAMES = tuple(display for display, _ in EVENTS)
CANONICAL_EVENTS = tuple(canonical for _, canonical in EVENTS)
_DROPPED = CANONICAL_EVENTS.index(USAGE_DROP_EVENT)
# Per segment (core, new) and event: chance that an active user does it on a day...
_DOING = np.array(
    [
        [0.95, 0.28, 0.50, 0.01, 0.12, 0.03, 0.10, 0.04, 0.15],
        [0.30, 0.22, 0.35, 0.03, 0.75, 0.02, 0.15, 0.06, 0.05],
    ]
)
# ... and how often they repeat it beyond the first time, at average health.
_REPEATS = np.array(
    [
        [0.3, 1.2, 3.0, 0.0, 20.0, 0.5, 0.8, 0.4, 1.5],
        [0.2, 1.0, 2.0, 0.2, 60.0, 0.3, 1.0, 0.4, 0.5],
    ]
)
# Logging in does not depend on how engaged a user is; everything else does.
_HEALTH_SENSITIVE = np.array([False, True, True, True, True, True, True, True, True])

# Bit layout of the message id key: account number, user, day, event. Every field fits, so
# distinct lines have distinct keys, and the mix below is a bijection: ids never collide.
_USER_SHIFT, _ACCOUNT_SHIFT, _DAY_SHIFT = 18, 32, 4
MAX_DAYS = 1 << 14
MAX_ACCOUNTS = (1 << 20) - 1


def usage_table(
    rng: np.random.Generator,
    history: ChunkHistory,
    timeline: Timeline,
    scenario: Scenario,
    days: tuple[int, int],
    seed: int,
) -> pa.Table:
    """The track calls of one chunk for days ``[first, stop)``, in time order.

    Columns follow the Segment track call: ``messageId``, ``type``, ``event``, ``userId``,
    ``timestamp``, ``context.groupId``, ``properties.count``.
    """
    first, stop = days
    active = history.daily_active_users[:, first:stop]
    account, offset = np.nonzero(active)
    day = first + offset
    present = active[account, offset].astype(np.int64)
    users = history.users[account, day].astype(np.int64)
    health = history.health[account, day].astype(np.float64)
    segment = history.accounts.segment[account]

    # Who does what: a binomial draw per (account, day, event) among that day's active users.
    doing = _DOING[segment] * np.where(_HEALTH_SENSITIVE, 0.55 + 0.9 * health[:, None], 1.0)
    if scenario.drops_usage:
        doing[:, _DROPPED] *= np.where(day >= scenario.change_day, USAGE_DROP_FACTOR, 1.0)
    doers = rng.binomial(present[:, None], np.clip(doing, 0.0, 1.0))
    cell, event = np.nonzero(doers)
    per_pair = doers[cell, event]
    line_cell = np.repeat(cell, per_pair)
    line_event = np.repeat(event, per_pair)
    rank = np.arange(len(line_cell)) - np.repeat(np.cumsum(per_pair) - per_pair, per_pair)

    # Which users: the day's active users are a run of the account's users from an offset
    # skewed towards the first (longest-serving, most engaged) users; each event's doers are
    # distinct members of that run, so (user, day, event) never repeats.
    run_start = np.floor(users * rng.random(len(present)) ** 3).astype(np.int64)
    pair_start = np.repeat(rng.integers(0, present[cell]), per_pair)
    within = (pair_start + rank) % present[line_cell]
    user = (run_start[line_cell] + within) % users[line_cell]

    line_account = account[line_cell]
    line_day = day[line_cell]
    lam = _REPEATS[segment[line_cell], line_event] * (0.5 + health[line_cell])
    count = 1 + rng.poisson(lam)
    second = working_seconds(rng, history.accounts.utc_offset[line_account])
    order = np.argsort(line_day * SECONDS_PER_DAY + second, kind="stable")

    number = history.accounts.number
    return _track_calls(
        message=_message_ids(number[line_account], user, line_day, line_event, seed)[order],
        event=line_event[order],
        account=line_account[order],
        user=user[order],
        day=line_day[order] - first,
        second=second[order],
        count=count[order],
        account_numbers=number,
        month_days=timeline.seconds(np.arange(first, stop)),
    )


def _message_ids(
    number: np.ndarray, user: np.ndarray, day: np.ndarray, event: np.ndarray, seed: int
) -> np.ndarray:
    key = (
        (number.astype(np.uint64) << np.uint64(_ACCOUNT_SHIFT))
        | (user.astype(np.uint64) << np.uint64(_USER_SHIFT))
        | (day.astype(np.uint64) << np.uint64(_DAY_SHIFT))
        | event.astype(np.uint64)
    )
    salt = _mix(np.array([seed], dtype=np.uint64))
    return _mix(key + salt)


def _mix(values: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser: a bijection of 64-bit integers that scatters nearby keys."""
    z = values.astype(np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _track_calls(
    message: np.ndarray,
    event: np.ndarray,
    account: np.ndarray,
    user: np.ndarray,
    day: np.ndarray,
    second: np.ndarray,
    count: np.ndarray,
    account_numbers: np.ndarray,
    month_days: np.ndarray,
) -> pa.Table:
    lines = len(message)
    hex_pairs, clock, user_digits = _byte_tables()
    digits = np.frombuffer(message.astype(">u8").tobytes(), np.uint8).reshape(lines, 8)
    number_text = np.char.zfill(account_numbers.astype(str), 6)
    group_prefix = _fixed_bytes(np.char.add("ACC-", number_text))
    user_prefix = _fixed_bytes(np.char.add(np.char.add("USR-", number_text), "-"))
    dates = np.datetime_as_string(month_days.astype("datetime64[s]").astype("datetime64[D]"))
    day_prefix = _fixed_bytes(np.char.add(dates, "T"))
    return pa.table(
        {
            "messageId": _strings(hex_pairs[digits].reshape(lines, 16)),
            "type": pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(lines, np.int8)), pa.array(["track"])
            ),
            "event": pa.DictionaryArray.from_arrays(
                pa.array(event.astype(np.int8)), pa.array(EVENT_NAMES)
            ),
            # User numbers start at 1, as people count them.
            "userId": _strings(np.hstack([user_prefix[account], user_digits[user + 1]])),
            "timestamp": _strings(np.hstack([day_prefix[day], clock[second]])),
            "context": pa.StructArray.from_arrays([_strings(group_prefix[account])], ["groupId"]),
            "properties": pa.StructArray.from_arrays([pa.array(count)], ["count"]),
        }
    )


@functools.cache
def _byte_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hex digit pairs of a byte, ``HH:MM:SSZ`` of a second of the day, four-digit numbers."""
    alphabet = np.frombuffer(b"0123456789abcdef", np.uint8)
    byte = np.arange(256)
    hex_pairs = np.stack([alphabet[byte >> 4], alphabet[byte & 15]], axis=1)
    second = np.arange(SECONDS_PER_DAY)
    clock = np.char.mod("%02d:", second // 3600)
    clock = np.char.add(clock, np.char.mod("%02d:", second // 60 % 60))
    clock = np.char.add(clock, np.char.mod("%02dZ", second % 60))
    user_digits = _fixed_bytes(np.char.zfill(np.arange(10_000).astype(str), 4))
    return hex_pairs, _fixed_bytes(clock), user_digits


def _fixed_bytes(texts: np.ndarray) -> np.ndarray:
    """Equal-length ASCII strings as a (rows, width) byte matrix."""
    encoded = np.asarray(texts).astype(np.bytes_)
    # numpy string results can be wider than their content: trim to the real width, else
    # the padding bytes would land inside the strings.
    width = int(np.char.str_len(encoded).max(initial=0))
    fitted = encoded.astype(f"S{max(width, 1)}")
    return np.frombuffer(fitted.tobytes(), np.uint8).reshape(len(encoded), max(width, 1))


def _strings(matrix: np.ndarray) -> pa.LargeStringArray:
    """A (rows, width) byte matrix as an Arrow string array, without a per-row object.

    64-bit offsets: a month of a large chunk can exceed the 2 GiB a 32-bit offset addresses.
    """
    rows, width = matrix.shape
    offsets = np.arange(0, width * (rows + 1), width, dtype=np.int64)
    data = np.ascontiguousarray(matrix)
    return pa.LargeStringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data))
