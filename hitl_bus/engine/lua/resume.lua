-- ARGV 5 pause key expected ("" any), 6 response JSON, 7 response field, 8 Running JSON,
-- 9 Resuming JSON (for a suspended run), 10 Failed JSON (deadline passed), 11 request id,
-- 12 actor ("" none: stamped as the response's sender and carried by the control entry)
if redis.call('HGET', RUN, 'resume_id') == ARGV[11] then
  return {tonumber(redis.call('HGET', RUN, 'resume_outcome')), 'PAUSED', '0'}
end
local cur = current()
if not cur then return {0, ''} end
if cur['type'] ~= 'PAUSED' then return {2, cur['type']} end
local key = redis.call('HGET', RUN, 'pause_key') or ''
if ARGV[5] ~= '' and ARGV[5] ~= key then return {4, cur['type']} end
if expired() then
  write_state(ARGV[10], {'pause_deadline', '0'})
  redis.call('XADD', CONTROL, 'MAXLEN', '~', 100, '*', 'type', 'expired', 'pause_key', key)
  return {3, cur['type']}
end
redis.call('HSET', KEYS[4], ARGV[7], ARGV[6])
stamp_values({ARGV[7]}, ARGV[12])
local suspended = redis.call('HGET', RUN, 'suspended') == '1'
local outcome = 1
local next_state = ARGV[8]
if suspended then outcome = 5; next_state = ARGV[9] end
write_state(next_state, {'pause_deadline', '0', 'resumed_key', key, 'resume_id', ARGV[11],
                         'resume_outcome', tostring(outcome)})
redis.call('XADD', CONTROL, 'MAXLEN', '~', 100, '*', 'type', 'resumed', 'pause_key', key,
           'response', ARGV[6], 'actor', ARGV[12])
local queued = '0'
if suspended then queued = enqueue() end
return {outcome, cur['type'], queued}
