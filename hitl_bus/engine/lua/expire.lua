-- ARGV 6 pause key expected ("" any), 7 Failed JSON
local cur = current()
if not cur then return {0, ''} end
if cur['type'] ~= 'PAUSED' then return {2, cur['type']} end
local key = redis.call('HGET', RUN, 'pause_key') or ''
if ARGV[6] ~= '' and ARGV[6] ~= key then return {2, cur['type']} end
if not expired() then return {2, cur['type']} end
write_state(ARGV[7], {'pause_deadline', '0'})
redis.call('XADD', CONTROL, 'MAXLEN', '~', 100, '*', 'type', 'expired', 'pause_key', key)
return {1, cur['type']}
