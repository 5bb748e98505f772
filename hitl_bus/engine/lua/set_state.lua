-- ARGV 6 state JSON, 7 state id, 8 allowed current types (",A,B,"; "" any), 9 attempt ("" any),
-- 10 the worker group and 11 the queue entry to acknowledge with the state (KEYS[12] the
-- queue; "" none): a worker's run ends and leaves its queue in one step; 12 the worker's
-- consumer name to take the queue's next entry for in the same step ("" none), and 13 a
-- fresh Running state's JSON ("" none) with which that step also begins the entry's run
-- for the worker, as begin.lua does (standalone Redis with one index bucket: its indexes
-- are this run's), answering the attempt and the starting point after the entry.
local function acknowledge()
  if KEYS[12] and ARGV[11] ~= '' then redis.call('XACK', KEYS[12], ARGV[10], ARGV[11]) end
end
local cur, attempt = current('attempt')
if not cur then return {0, ''} end
if cur['id'] == ARGV[7] then acknowledge(); return {1, ''} end
if superseded(ARGV[9], attempt) then return {6, cur['type']} end
if ARGV[8] ~= '' and not string.find(ARGV[8], ',' .. cur['type'] .. ',', 1, true) then
  return {2, cur['type']}
end
write_state(ARGV[6], {'pause_deadline', '0'})
acknowledge()
-- The taken entry's run begun (nil: not here; the worker begins it, or learns why not).
local function begin_next(fields)
  if (ARGV[13] or '') == '' then return nil end
  local next_run = nil
  for i = 1, #fields - 1, 2 do
    if fields[i] == 'run_id' then next_run = fields[i + 1] end
  end
  if not next_run then return nil end
  switch_run(next_run)
  local ok, state = pcall(current)
  if not ok or not state or not startable(state) then return nil end
  return {begin_execution(ARGV[13], ARGV[12]), starting_point()}
end
if KEYS[12] and ARGV[12] ~= '' then
  local taken = redis.call('XREADGROUP', 'GROUP', ARGV[10], ARGV[12], 'COUNT', 1,
                           'STREAMS', KEYS[12], '>')
  -- {{queue, {entry}}}, or nil when there is none (fakeredis, tests only: {queue, {entry}})
  local stream = type(taken) == 'table' and taken[1]
  if type(stream) ~= 'table' then stream = taken end
  local entry = type(stream) == 'table' and type(stream[2]) == 'table' and stream[2][1]
  if entry then
    if entry[2] then entry[3] = begin_next(entry[2]) end
    return {1, cur['type'], '', entry}
  end
end
return {1, cur['type']}
