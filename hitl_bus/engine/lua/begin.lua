-- ARGV 5 Running state JSON, 6 its id, 7 worker id ("" in process)
local cur = current()
if not cur then return {0, ''} end
if cur['id'] == ARGV[6] then return {1, '', redis.call('HGET', RUN, 'attempt') or '0'} end
if cur['type'] ~= 'SCHEDULED' and cur['type'] ~= 'PENDING' then return {2, cur['type']} end
local attempt = redis.call('HINCRBY', RUN, 'attempt', 1)
write_state(ARGV[5], {'pause_deadline', '0', 'worker', ARGV[7]})
return {1, cur['type'], tostring(attempt)}
