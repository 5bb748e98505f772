"""State changes as check-and-set scripts on the run's slot.

Each transition checks the run's current state (and, for pauses, the pause key
and deadline against Redis ``TIME``) and writes the new state, the run event
and any wake-up in one script, so two resumes, or a resume racing a timeout,
cannot both win. The global indexes (runs by state, pause deadlines) and the
global event stream live on other slots; they follow in a pipeline and are
treated as hints: readers re-check a run's own hash.
"""

from __future__ import annotations

import time
from typing import Any

from hitl_bus import keys
from hitl_bus.bus import Bus, codec, get_bus
from hitl_bus.bus.events import event_fields
from hitl_bus.engine.states import State, StateType

# KEYS[1] run hash, KEYS[2] run events, KEYS[3] control stream, KEYS[4] values hash.
_PRELUDE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function current()
  local raw = redis.call('HGET', KEYS[1], 'state')
  if not raw then return nil end
  return cjson.decode(raw)
end
local function write_state(state_json, event_type, maxlen, run_id, fields)
  redis.call('HSET', KEYS[1], 'state', state_json)
  if fields and #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'type', event_type,
             'run_id', run_id, 'ts', tostring(now_ms()),
             'data', '{"state":' .. state_json .. '}')
end
local function expired()
  local deadline = tonumber(redis.call('HGET', KEYS[1], 'pause_deadline') or '0')
  return deadline > 0 and deadline <= now_ms()
end
"""

# ARGV: new state JSON, allowed current types ("" any, else ",A,B,"), maxlen, run id.
SET_STATE = (
    _PRELUDE
    + """
local cur = current()
if not cur then return {0, ''} end
if ARGV[2] ~= '' and not string.find(ARGV[2], ',' .. cur['type'] .. ',', 1, true) then
  return {2, cjson.encode(cur)}
end
write_state(ARGV[1], 'state.changed', ARGV[3], ARGV[4], {'pause_deadline', '0'})
return {1, cjson.encode(cur)}
"""
)

# ARGV: Paused state JSON, maxlen, run id, pause key, deadline ms (0 none), keyset JSON,
#       suspended ("1"/"0"), schema JSON ("" none), then field/JSON pairs for the values hash.
PAUSE = (
    _PRELUDE
    + """
local cur = current()
if not cur then return {0, ''} end
if cur['type'] ~= 'RUNNING' then return {2, cjson.encode(cur)} end
if #ARGV > 8 then redis.call('HSET', KEYS[4], unpack(ARGV, 9)) end
write_state(ARGV[1], 'state.changed', ARGV[2], ARGV[3],
            {'pause_key', ARGV[4], 'pause_deadline', ARGV[5], 'pause_keyset', ARGV[6],
             'suspended', ARGV[7], 'pause_schema', ARGV[8]})
return {1, ''}
"""
)

# ARGV: pause key expected ("" any), response JSON ("" none), response field, new state JSON
#       (for a pause), new state JSON (for a suspension), maxlen, run id, Failed state JSON.
RESUME = (
    _PRELUDE
    + """
local cur = current()
if not cur then return {0, ''} end
if cur['type'] ~= 'PAUSED' then return {2, cjson.encode(cur)} end
local key = redis.call('HGET', KEYS[1], 'pause_key') or ''
if ARGV[1] ~= '' and ARGV[1] ~= key then return {4, key} end
if expired() then
  write_state(ARGV[8], 'state.changed', ARGV[6], ARGV[7], {'pause_deadline', '0'})
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100, '*', 'type', 'expired', 'pause_key', key)
  return {3, key}
end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[4], ARGV[3], ARGV[2]) end
local suspended = redis.call('HGET', KEYS[1], 'suspended') == '1'
local next_state = ARGV[4]
if suspended then next_state = ARGV[5] end
write_state(next_state, 'state.changed', ARGV[6], ARGV[7],
            {'pause_deadline', '0', 'resumed_key', key})
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100, '*', 'type', 'resumed', 'pause_key', key,
           'response', ARGV[2])
if suspended then return {5, key} end
return {1, key}
"""
)

# ARGV: pause key expected ("" any), Failed state JSON, maxlen, run id.
EXPIRE = (
    _PRELUDE
    + """
local cur = current()
if not cur then return {0, ''} end
if cur['type'] ~= 'PAUSED' then return {2, ''} end
local key = redis.call('HGET', KEYS[1], 'pause_key') or ''
if ARGV[1] ~= '' and ARGV[1] ~= key then return {2, ''} end
if not expired() then return {2, ''} end
write_state(ARGV[2], 'state.changed', ARGV[3], ARGV[4], {'pause_deadline', '0'})
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100, '*', 'type', 'expired', 'pause_key', key)
return {1, key}
"""
)

# ARGV: pause key expected, Suspended state JSON, maxlen, run id. A paused run whose
# process died keeps its pause (and deadline) but becomes a suspension: resuming it
# re-executes it on a live worker.
MARK_SUSPENDED = (
    _PRELUDE
    + """
local cur = current()
if not cur then return {0, ''} end
if cur['type'] ~= 'PAUSED' then return {2, ''} end
if (redis.call('HGET', KEYS[1], 'pause_key') or '') ~= ARGV[1] then return {2, ''} end
write_state(ARGV[2], 'state.changed', ARGV[3], ARGV[4], {'suspended', '1'})
return {1, ''}
"""
)

# ARGV: Cancelling state JSON, Cancelled state JSON, maxlen, run id. A run with a process
# (pending, running, paused) goes to Cancelling and its process is told on the control
# stream; a queued or suspended run has none, so it is Cancelled at once.
CANCEL = (
    _PRELUDE
    + """
local cur = current()
if not cur then return {0, ''} end
local t = cur['type']
if t == 'COMPLETED' or t == 'FAILED' or t == 'CRASHED' or t == 'CANCELLED' then
  return {2, t}
end
if t == 'CANCELLING' then return {1, t} end
local suspended = t == 'PAUSED' and redis.call('HGET', KEYS[1], 'suspended') == '1'
if t == 'SCHEDULED' or suspended then
  write_state(ARGV[2], 'state.changed', ARGV[3], ARGV[4], {'pause_deadline', '0'})
  return {5, t}
end
write_state(ARGV[1], 'state.changed', ARGV[3], ARGV[4], {'pause_deadline', '0'})
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100, '*', 'type', 'cancel')
return {1, t}
"""
)

OK, MISSING, WRONG_STATE, EXPIRED, OTHER_PAUSE, SUSPENDED_RESUMED = 1, 0, 2, 3, 4, 5


def run_keys(run_id: str) -> list[str]:
    return [keys.run(run_id), keys.run_events(run_id), keys.run_control(run_id),
            keys.run_values(run_id)]  # fmt: skip


async def run_script(bus: Bus, source: str, run_id: str, args: list[Any]) -> list[Any]:
    """Run one transition script; returns ``[status, detail]`` with detail as text."""
    status, detail = await bus.eval(source, run_keys(run_id), args)
    return [int(status), codec.text(detail) or ""]


async def index_state(
    bus: Bus,
    run_id: str,
    state: State,
    *,
    previous: StateType | None = None,
    pause_deadline_ms: int | None = None,
) -> None:
    """Follow a committed state change in the global indexes and the global event stream.

    ``previous`` (the state the script saw) limits the index removal to one key.
    """
    ts = int(state.timestamp.timestamp() * 1000)
    async with bus.client.pipeline(transaction=False) as pipe:
        for other in StateType if previous is None else (previous,):
            if other is not state.type:
                pipe.zrem(keys.runs_by_state(other.value), run_id)
        pipe.zadd(keys.runs_by_state(state.type.value), {run_id: ts})
        if pause_deadline_ms:
            pipe.zadd(keys.PAUSE_DEADLINES, {run_id: pause_deadline_ms})
        elif previous in (None, StateType.PAUSED):
            pipe.zrem(keys.PAUSE_DEADLINES, run_id)
        pipe.xadd(
            keys.EVENTS,
            event_fields("state.changed", run_id, {"state": state.model_dump(mode="json")}),
            maxlen=bus.settings.events_maxlen,
            approximate=True,
        )
        await pipe.execute()


async def redis_time_ms() -> int:
    """Redis's clock in ms: deadlines are set and checked against it, not the local one."""
    seconds, micros = await get_bus().client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def local_ms() -> int:
    return int(time.time() * 1000)
