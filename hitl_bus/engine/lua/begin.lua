-- ARGV 6 Running state JSON, 7 its id, 8 worker id ("" in process)
local cur = current()
if not cur then return {0, ''} end
if cur['id'] == ARGV[7] then return {1, '', redis.call('HGET', RUN, 'attempt') or '0'} end
if cur['type'] ~= 'SCHEDULED' and cur['type'] ~= 'PENDING' then return {2, cur['type']} end
local attempt = redis.call('HINCRBY', RUN, 'attempt', 1)
write_state(ARGV[6], {'pause_deadline', '0', 'worker', ARGV[8]})
return {1, cur['type'], tostring(attempt)}
