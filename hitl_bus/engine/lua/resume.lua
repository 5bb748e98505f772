-- ARGV 6 pause key expected ("" any), 7 response JSON, 8 response field, 9 Running JSON,
-- 10 Resuming JSON (for a suspended run), 11 Failed JSON (deadline passed), 12 request id,
-- 13 actor ("" none: stamped as the response's sender and carried by the control entry)
if redis.call('HGET', RUN, 'resume_id') == ARGV[12] then
  return {tonumber(redis.call('HGET', RUN, 'resume_outcome')), 'PAUSED', '0'}
end
local cur = current()
if not cur then return {0, ''} end
if cur['type'] ~= 'PAUSED' then return {2, cur['type']} end
local key = redis.call('HGET', RUN, 'pause_key') or ''
if ARGV[6] ~= '' and ARGV[6] ~= key then return {4, cur['type']} end
if expired() then
  write_state(ARGV[11], {'pause_deadline', '0'})
  redis.call('XADD', CONTROL, 'MAXLEN', '~', 100, '*', 'type', 'expired', 'pause_key', key)
  return {3, cur['type']}
end
redis.call('HSET', KEYS[4], ARGV[8], ARGV[7])
stamp_values({ARGV[8]}, ARGV[13])
local suspended = redis.call('HGET', RUN, 'suspended') == '1'
local outcome = 1
local next_state = ARGV[9]
if suspended then outcome = 5; next_state = ARGV[10] end
write_state(next_state, {'pause_deadline', '0', 'resumed_key', key, 'resume_id', ARGV[12],
                         'resume_outcome', tostring(outcome)})
redis.call('XADD', CONTROL, 'MAXLEN', '~', 100, '*', 'type', 'resumed', 'pause_key', key,
           'response', ARGV[7], 'actor', ARGV[13])
local queued = '0'
if suspended then queued = enqueue() end
return {outcome, cur['type'], queued}
