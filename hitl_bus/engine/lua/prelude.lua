-- Shared by every run-store script (hitl_bus/engine/store.py).
-- KEYS: 1 run hash, 2 events, 3 control, 4 values, 5 logs, 6 receivers, 7 tasks,
-- 8 input prefix set, 9 input-key set, 10 values metadata, 11 input index, and 12 the
-- deployment queue when the script may queue the run or acknowledge its queue entry
-- (standalone Redis only: in Cluster the queue lives on another slot).
-- ARGV 1-5: run id, events maxlen, retention ms (0: keep), input stream key base
-- ("hitl:{<run>}:input:"), and the key prefix of the run's bucket of the global indexes
-- and event stream ("hitl", or "hitl:{hitl-index-<i>-<salt>}"), given on standalone Redis
-- only: there the script keeps them too, in Cluster (other slots) the caller follows with
-- them ("" here). Each script's own arguments start at ARGV[6].
local RUN, EVENTS, CONTROL, TASKS = KEYS[1], KEYS[2], KEYS[3], KEYS[7]
local run_id, maxlen, retention, input_base = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local INDEX = ARGV[5]
local TERMINAL = {COMPLETED = true, FAILED = true, CRASHED = true, CANCELLED = true}
-- The state type the run had when the script read it (nil: a new run, or not read).
local before = nil
local read_before = false
-- What a script that read them knows of the paused run it moves on (nil: not read):
-- whether it had assignees to drop, and a deadline that put it in the sweep's index.
local had_assignees, had_deadline = nil, nil
-- Redis's clock, read once per script: one step, one time. Every redis.call counts here:
-- a script runs between other processes' turns on the CPU, where each call costs several
-- µs, so the scripts read and write with as few calls as they can.
local clock = nil
local function now_ms()
  if not clock then
    local t = redis.call('TIME')
    clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return clock
end
-- A state's id and type, read from its JSON's head where hitl_bus wrote it
-- ('{"id":"<uuid>","type":"<TYPE>"', a state model's field order), else decoded:
-- decoding the whole state costs a script tens of µs when Redis runs it cold.
local function head_of(state_json)
  local id, found = string.match(state_json, '^{"id":"([%x%-]*)","type":"(%u+)"')
  if found then return id, found end
  local state = cjson.decode(state_json)
  return state['id'], state['type']
end
-- The state's actor (state_details.actor) as JSON text, nil when it has none. Only keys
-- are followed by '":' in JSON (within a string a quote is escaped), and state_details,
-- the last field, ends with actor and assignees, so the last '"actor":' is that key. An
-- actor with escapes in it is decoded instead.
local function actor_of(state_json)
  local at = string.match(state_json, '.*()"actor":')
  if not at then return nil end
  local actor = string.match(state_json, '^"actor":("[^"\\]*")', at)
  if actor then return actor end
  if string.sub(state_json, at + 8, at + 8) ~= '"' then return nil end  -- null
  local details = cjson.decode(state_json)['state_details']
  if type(details) == 'table' and type(details['actor']) == 'string' then
    return cjson.encode(details['actor'])
  end
  return nil
end
-- The run's current state (nil: no such run) as its id, type and JSON, and with it any
-- other fields of its hash, read in the same call: current('pause_key', 'suspended')
-- returns state, key, suspended.
local function current(...)
  local raw = redis.call('HMGET', RUN, 'state', ...)
  read_before = true
  if not raw[1] then return nil end
  local id, state_type = head_of(raw[1])
  local state = {id = id, type = state_type, json = raw[1]}
  before = state_type
  return state, unpack(raw, 2, select('#', ...) + 1)
end
-- Whether the execution ``attempt`` ("" any) no longer owns the run; ``now`` is the run's
-- attempt field when the caller has read it already (current('attempt')).
local function superseded(attempt, now)
  if attempt == '' then return false end
  if now == nil then now = redis.call('HGET', RUN, 'attempt') end
  return (now or '0') ~= attempt
end
local function expire_all()
  if retention <= 0 then return end
  redis.call('PEXPIRE', KEYS[1], retention)
  redis.call('PEXPIRE', KEYS[2], retention)
  -- The others exist only when the run used them (a control entry, a value, a log line, an
  -- input...): one EXISTS over them spares a run that used none nine PEXPIREs.
  if redis.call('EXISTS', unpack(KEYS, 3, 11)) == 0 then return end
  for i = 3, 11 do redis.call('PEXPIRE', KEYS[i], retention) end
  for _, prefix in ipairs(redis.call('SMEMBERS', KEYS[8])) do
    redis.call('PEXPIRE', input_base .. prefix, retention)
  end
end
-- The global indexes and event stream follow a state change (standalone Redis: INDEX set).
-- The run leaves its old state's index; a pause with a deadline enters the sweep's index
-- and any other state leaves it (a suspended run too: it waits without a deadline sweep);
-- a final state is noted for forgetting once the run's keys have expired.
local function index_state(new_type, ts, fields, data)
  if INDEX == '' then return end
  local state_index = INDEX .. ':runs:state:'
  if before ~= nil and before ~= new_type then redis.call('ZREM', state_index .. before, run_id) end
  redis.call('ZADD', state_index .. new_type, ts, run_id)
  local deadline = 0
  for i = 1, #fields - 1, 2 do
    if fields[i] == 'pause_deadline' then deadline = tonumber(fields[i + 1]) or 0 end
  end
  if new_type == 'PAUSED' and deadline > 0 then
    redis.call('ZADD', INDEX .. ':pauses', deadline, run_id)
  elseif before == 'PAUSED' and had_deadline ~= false then
    redis.call('ZREM', INDEX .. ':pauses', run_id)
  end
  if TERMINAL[new_type] and retention > 0 then
    redis.call('ZADD', INDEX .. ':runs:expiring', ts + retention, run_id)
  end
  redis.call('XADD', INDEX .. ':events', 'MAXLEN', '~', maxlen, '*', 'type', 'state.changed',
             'run_id', run_id, 'ts', tostring(ts), 'data', data)
end
-- A state's actor (state_details.actor) is repeated at the top of the event's data; a
-- state other than Paused ends the pause, and with it the pause's assignees.
local function write_state(state_json, fields)
  fields = fields or {}
  local _, state_type = head_of(state_json)
  redis.call('HSET', RUN, 'state', state_json, unpack(fields))
  if state_type ~= 'PAUSED' and (before == 'PAUSED' or not read_before)
      and had_assignees ~= false then
    redis.call('HDEL', RUN, 'pause_assignees')  -- only a paused run has them
  end
  local data = '{"state":' .. state_json .. '}'
  local actor = actor_of(state_json)
  if actor then data = '{"state":' .. state_json .. ',"actor":' .. actor .. '}' end
  local ts = now_ms()
  redis.call('XADD', EVENTS, 'MAXLEN', '~', maxlen, '*', 'type', 'state.changed',
             'run_id', run_id, 'ts', tostring(ts), 'data', data)
  index_state(state_type, ts, fields, data)
  if TERMINAL[state_type] then expire_all() end
end
-- Where an execution starts from, read in the step that begins it: the run's hash as it
-- now stands, its control stream's newest id (a cancel after it counts) and its stored
-- task results.
local function starting_point()
  local newest = redis.call('XREVRANGE', CONTROL, '+', '-', 'COUNT', 1)
  local position = '0-0'
  if #newest > 0 then position = newest[1][1] end
  return {redis.call('HGETALL', RUN), position, redis.call('HGETALL', TASKS)}
end
-- Whether a run in ``state`` waits to start (a begin takes only such a run).
local function startable(state)
  return state['type'] == 'SCHEDULED' or state['type'] == 'PENDING'
end
-- Begin an execution of the run this script is on, for ``worker`` ("" in process), with
-- the Running state ``running``: its attempt counted and the state written; the caller
-- checked that it is startable. Returns the attempt's number as text.
local function begin_execution(running, worker)
  local attempt = redis.call('HINCRBY', RUN, 'attempt', 1)
  write_state(running, {'pause_deadline', '0', 'worker', worker})
  return tostring(attempt)
end
-- Move on to another run (standalone Redis, where every key is reachable): its keys are
-- this run's with its id between the braces. Only the state, its indexes and events and
-- the starting point follow; a script that switched writes no final state after.
local function switch_run(id)
  local function of(key)
    local open, close = string.find(key, '{', 1, true), string.find(key, '}', 1, true)
    return string.sub(key, 1, open) .. id .. string.sub(key, close)
  end
  RUN, EVENTS, CONTROL, TASKS = of(KEYS[1]), of(KEYS[2]), of(KEYS[3]), of(KEYS[7])
  run_id = id
  before, read_before, had_assignees, had_deadline = nil, false, nil, nil
end
-- Values-hash fields written by a script are stamped with their creation time (Redis
-- clock, as stream entry ids), so Prefect's filter_flow_run_input orders them with inputs,
-- and with who wrote them when known (``sender``: a resume's actor).
local function stamp_values(fields, sender)
  if #fields == 0 then return end
  local stamp = {created = now_ms()}
  if sender and sender ~= '' then stamp['sender'] = sender end
  local meta = cjson.encode(stamp)
  local stamps = {}
  for _, field in ipairs(fields) do
    stamps[#stamps + 1] = field
    stamps[#stamps + 1] = meta
  end
  redis.call('HSET', KEYS[10], unpack(stamps))
end
local function expired()
  local deadline = tonumber(redis.call('HGET', RUN, 'pause_deadline') or '0')
  return deadline > 0 and deadline <= now_ms()
end
local function enqueue()
  if KEYS[12] then
    redis.call('XADD', KEYS[12], '*', 'run_id', run_id)
    return '1'
  end
  return '0'
end
