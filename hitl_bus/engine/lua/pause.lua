-- ARGV 5 Paused state JSON, 6 its id, 7 attempt, 8 pause key, 9 deadline ms (0 none),
-- 10 keyset JSON, 11 suspended ("1"/"0"), 12 schema JSON ("" none), 13 assignees (JSON
-- list, "" none), then field/JSON pairs for the values hash.
local cur = current()
if not cur then return {0, ''} end
if cur['id'] == ARGV[6] then return {1, ''} end
if superseded(ARGV[7]) then return {6, cur['type']} end
if cur['type'] ~= 'RUNNING' then return {2, cur['type']} end
if #ARGV > 13 then
  redis.call('HSET', KEYS[4], unpack(ARGV, 14))
  local fields = {}
  for i = 14, #ARGV, 2 do fields[#fields + 1] = ARGV[i] end
  stamp_values(fields)
end
local fields = {'pause_key', ARGV[8], 'pause_deadline', ARGV[9], 'pause_keyset', ARGV[10],
                'suspended', ARGV[11], 'pause_schema', ARGV[12], 'paused_in', ARGV[7]}
if ARGV[13] ~= '' then
  fields[#fields + 1] = 'pause_assignees'
  fields[#fields + 1] = ARGV[13]
else
  redis.call('HDEL', RUN, 'pause_assignees')
end
write_state(ARGV[5], fields)
return {1, cur['type']}
