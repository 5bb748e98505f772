-- ARGV 6 state JSON, 7 state id, 8 allowed current types (",A,B,"; "" any), 9 attempt ("" any),
-- 10 the worker group and 11 the queue entry to acknowledge with the state (KEYS[12] the
-- queue; "" none): a worker's run ends and leaves its queue in one step; 12 the worker's
-- consumer name to take the queue's next entry for in the same step ("" none).
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
if KEYS[12] and ARGV[12] ~= '' then
  local taken = redis.call('XREADGROUP', 'GROUP', ARGV[10], ARGV[12], 'COUNT', 1,
                           'STREAMS', KEYS[12], '>')
  if taken then return {1, cur['type'], '', taken[1][2][1]} end
end
return {1, cur['type']}
