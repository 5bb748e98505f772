-- ARGV 5 pause key expected ("" any), 6 Failed JSON
local cur = current()
if not cur then return {0, ''} end
if cur['type'] ~= 'PAUSED' then return {2, cur['type']} end
local key = redis.call('HGET', RUN, 'pause_key') or ''
if ARGV[5] ~= '' and ARGV[5] ~= key then return {2, cur['type']} end
if not expired() then return {2, cur['type']} end
write_state(ARGV[6], {'pause_deadline', '0'})
redis.call('XADD', CONTROL, 'MAXLEN', '~', 100, '*', 'type', 'expired', 'pause_key', key)
return {1, cur['type']}
